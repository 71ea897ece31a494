"""Reading files a user hands us, bounded: sizes, nesting and shapes checked before anything is allocated.

Every reader here raises one `CheckpointError` naming the file and the fault; none runs code from
the file. The loaders (`interp.checkpoints`, `interp.formats`) read files only through these:

- `read_safetensors(path)`: the 8-byte length and the header first (size-capped, every name,
  dtype, shape and offset checked against the file and against the caps), then the tensor data in
  one read into one buffer the tensors share (no second copy).
- `read_json_file(path, what)`: regular files only (a FIFO, /dev/zero, a directory or a socket is
  refused from `stat`, before any read, and opened non-blocking), size- and nesting-capped.
- `check_torch_archive(path)`, called before `torch.load`: a zip archive's central directory
  (members stored, not compressed; member count, member and total sizes capped) and its data.pkl
  (size-capped; opcodes scanned without executing anything: nesting depth capped, every storage's
  declared size checked against its member); a legacy (non-zip) pickle: file size capped, its
  pickles scanned the same way.

The caps are module settings. `MAX_CHECKPOINT_BYTES` (default 1 GiB, or the environment variable
`INTERP_MAX_CHECKPOINT_BYTES`) bounds the tensor data one file may hold: checkpoints of the models
this toolkit studies are megabytes; the largest real run files (the Grokking demo's 250 snapshots)
a few hundred.
"""

from __future__ import annotations

import gc
import io
import json
import os
import pickletools
import stat
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp.errors import CheckpointError

if TYPE_CHECKING:
    import torch


def _env_bytes(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


MAX_CHECKPOINT_BYTES = _env_bytes("INTERP_MAX_CHECKPOINT_BYTES", 1 << 30)  # tensor data of one file
MAX_CONFIG_BYTES = 1 << 20  # a JSON config is a few hundred bytes; 1 MiB is generous
MAX_HISTORY_BYTES = 256 << 20  # a run's history.json: ~150 bytes per logged step
MAX_HEADER_BYTES = 16 << 20  # a safetensors header: ~100 bytes per tensor
MAX_PICKLE_BYTES = 64 << 20  # a torch archive's data.pkl: ~150 bytes per tensor
MAX_MEMBERS = 100_000  # tensors in a safetensors file, members in a torch archive
MAX_NESTING = 100  # containers in containers (JSON, pickles): real files nest < 20 deep


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:160]


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def _too_big(path, what: str, n: int, limit: int, setting: str) -> CheckpointError:
    return CheckpointError(f"{path}: {what} is {_mib(n)}, over the {_mib(limit)} limit ({setting})")


def _cap_hint() -> str:
    return "interp.safeio.MAX_CHECKPOINT_BYTES, or INTERP_MAX_CHECKPOINT_BYTES"


# ---- opening ---------------------------------------------------------------------------------------
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def open_regular(path: str | Path, what: str = "file"):
    """A binary file object of a regular file, or CheckpointError: FIFOs, devices, directories and
    sockets are refused from `stat` before opening, and the open is non-blocking, so a FIFO swapped
    in between never hangs (`fstat` then refuses it)."""
    path = Path(path)
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise CheckpointError(f"{path}: {what} is {_kind(st.st_mode)}, not a regular file")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: {what} not found") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read the {what} ({e.strerror or e})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise CheckpointError(f"{path}: {what} is {_kind(st.st_mode)}, not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _read_exactly(f, n: int, path, what: str) -> bytearray:
    """n bytes from f into a new buffer, or CheckpointError (the file is shorter than it said)."""
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = f.readinto(view[got:])
        if not k:
            raise CheckpointError(f"{path}: truncated: {what} needs {n} bytes, the file ends after {got}")
        got += k
    return buf


# ---- JSON --------------------------------------------------------------------------------------------
def _depth(obj: Any, limit: int) -> int:
    """Nesting depth of lists/dicts in obj, counted without recursion (stops past `limit`)."""
    deepest, todo = 0, [(obj, 1)]
    while todo:
        x, d = todo.pop()
        if isinstance(x, (list, dict)):
            deepest = max(deepest, d)
            if deepest > limit:
                break
            todo.extend((v, d + 1) for v in (x.values() if isinstance(x, dict) else x))
    return deepest


def _loads(data: bytes | str) -> tuple[Any, str | None]:
    """(object, None) or (None, what is wrong): json.loads with a nesting cap, never raising."""
    try:
        obj = json.loads(data)
    except RecursionError:
        return None, f"nested too deeply (limit {MAX_NESTING})"
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError, too many digits, bad UTF-8
        return None, f"not valid JSON: {_first_line(e)}"
    if _depth(obj, MAX_NESTING) > MAX_NESTING:
        return None, f"nested more than {MAX_NESTING} deep"
    return obj, None


def parse_json(data: bytes | str, source: str, what: str) -> Any:
    """json.loads with a nesting cap: any fault is one CheckpointError naming `source`."""
    obj, problem = _loads(data)
    if problem:
        raise CheckpointError(f"{source}: {what} is {problem}")
    return obj


def read_json_file(path: str | Path, what: str = "config", *, max_bytes: int | None = None) -> Any:
    """The parsed JSON of a small regular file (a config), or CheckpointError."""
    path = Path(path)
    limit = MAX_CONFIG_BYTES if max_bytes is None else max_bytes
    with open_regular(path, f"{what} file") as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise _too_big(path, f"{what} file", size, limit, "interp.safeio.MAX_CONFIG_BYTES")
        data = f.read(limit + 1)
    if len(data) > limit:  # grew while we read
        raise _too_big(path, f"{what} file", len(data), limit, "interp.safeio.MAX_CONFIG_BYTES")
    return parse_json(data, str(path), what)


# ---- safetensors -------------------------------------------------------------------------------------
_ST_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
              "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool", "U16": "uint16",
              "U32": "uint32", "U64": "uint64", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_header(header, path, data_size: int) -> tuple[dict[str, str], list[tuple[str, str, list[int], int, int]]]:
    """(metadata, [(name, dtype, shape, begin, end)] by offset) of a parsed safetensors header, or
    CheckpointError: the rules safetensors itself applies (known dtypes, shape x dtype size = span,
    spans contiguous from 0 and covering the data exactly), plus the size caps."""
    import torch

    def bad(msg):
        return CheckpointError(f"{path}: corrupt safetensors file ({msg})")

    if not isinstance(header, dict):
        raise bad(f"the header is a JSON {type(header).__name__}, not an object")
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise bad("__metadata__ must map strings to strings")
    if len(header) > MAX_MEMBERS:
        raise bad(f"{len(header)} tensors, over the limit of {MAX_MEMBERS}")
    entries = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        where = f"tensor {name[:60]!r}"
        if not isinstance(info, dict):
            raise bad(f"{where}: not an object")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in _ST_DTYPES or not hasattr(torch, _ST_DTYPES[dtype]):
            raise bad(f"{where}: unknown dtype {str(dtype)[:20]!r}")
        if not isinstance(shape, list) or len(shape) > 64 or not all(_is_int(n) and n >= 0 for n in shape):
            raise bad(f"{where}: shape must be a list of at most 64 sizes >= 0")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)
                and 0 <= offsets[0] <= offsets[1]):
            raise bad(f"{where}: data_offsets must be [begin, end] with 0 <= begin <= end")
        numel = 1
        for n in shape:
            numel *= n
        size = numel * getattr(torch, _ST_DTYPES[dtype]).itemsize
        if size != offsets[1] - offsets[0]:
            raise bad(f"{where}: shape {shape[:8]} of {dtype} is {size} bytes, its data_offsets span {offsets[1] - offsets[0]}")
        entries.append((name, dtype, shape, offsets[0], offsets[1]))
    entries.sort(key=lambda e: (e[3], e[4]))
    end = 0
    for name, _, _, begin, stop in entries:
        if begin != end:
            raise bad(f"tensor {name[:60]!r} starts at byte {begin}, expected {end} (overlapping or gapped offsets)")
        end = stop
    if end > MAX_CHECKPOINT_BYTES:
        raise _too_big(path, "the tensor data its header describes", end, MAX_CHECKPOINT_BYTES, _cap_hint())
    if end > data_size:
        raise CheckpointError(f"{path}: truncated: the header describes {end} bytes of tensor data, the file holds {data_size}")
    if end < data_size:
        raise bad(f"{data_size - end} bytes after the tensor data the header describes")
    return meta, entries


def read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file, or CheckpointError naming the file and the fault.

    The header is read and checked first; the data is then read once, into one buffer that the
    tensors share (views, no copy): peak memory is the data's size, and a header that claims more
    than MAX_CHECKPOINT_BYTES (a sparse file, say) is refused before any of it is read.
    """
    import torch

    path = Path(path)
    with open_regular(path, "checkpoint") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 8:
            raise CheckpointError(f"{path}: file is {'empty' if not size else 'truncated'} ({size} bytes), "
                                  "not a safetensors checkpoint")
        header_len = int.from_bytes(f.read(8), "little")
        if header_len <= 0 or 8 + header_len > size:
            raise CheckpointError(f"{path}: truncated or not a safetensors file (header claims {header_len} bytes, "
                                  f"file has {size})")
        if header_len > MAX_HEADER_BYTES:
            raise _too_big(path, "the safetensors header", header_len, MAX_HEADER_BYTES, "interp.safeio.MAX_HEADER_BYTES")
        raw = _read_exactly(f, header_len, path, "the header")
        header, problem = _loads(bytes(raw))
        if problem:
            raise CheckpointError(f"{path}: corrupt safetensors file (its header is {problem})")
        meta, entries = _check_header(header, path, size - 8 - header_len)
        data = _read_exactly(f, entries[-1][4] if entries else 0, path, "the tensor data")
    tensors = {}
    try:
        for name, dtype, shape, begin, end in entries:
            dt = getattr(torch, _ST_DTYPES[dtype])
            if end == begin:
                tensors[name] = torch.empty(shape, dtype=dt)
            else:
                # safetensors is little-endian, as every machine torch runs on here
                tensors[name] = torch.frombuffer(data, dtype=dt, count=(end - begin) // dt.itemsize, offset=begin).view(shape)
    except (RuntimeError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: corrupt safetensors file ({_first_line(e)})") from None
    return tensors, meta


# ---- torch archives ----------------------------------------------------------------------------------
_STORAGE_BYTES = {"Double": 8, "Float": 4, "Half": 2, "BFloat16": 2, "Long": 8, "Int": 4, "Short": 2, "Char": 1,
                  "Byte": 1, "Bool": 1, "ComplexFloat": 8, "ComplexDouble": 16, "Untyped": 1}
_IN_PLACE = {"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"}  # change the object below them


def _op_table() -> dict[str, tuple[str, int, bool, int]]:
    """opcode name -> (kind, items popped below any mark, pops to a mark, items pushed)."""
    kinds = {"MARK": "mark", "STOP": "stop", "PUT": "put", "BINPUT": "put", "LONG_BINPUT": "put", "MEMOIZE": "memoize",
             "GET": "get", "BINGET": "get", "LONG_BINGET": "get", "DUP": "dup", "PERSID": "persid", "BINPERSID": "persid"}
    table = {}
    for op in pickletools.opcodes:
        before, mark = op.stack_before, pickletools.markobject in op.stack_before
        kind = kinds.get(op.name) or ("in-place" if op.name in _IN_PLACE else "make" if op.stack_after else "pop")
        table[op.name] = (kind, before.index(pickletools.markobject) if mark else len(before), mark, len(op.stack_after))
    return table


_OPS = _op_table()


class _Node:
    """What the scan knows of one pickled object: its nesting depth, who contains it, and its
    value when it is a short string, an int or a tuple of those (enough to read storage ids)."""

    __slots__ = ("depth", "parents", "value", "rises")

    def __init__(self, value: Any = None, rises: bool = False):
        # rises: the depth can still grow (a list, dict or object, or a tuple holding one); only
        # such nodes need to know their parents
        self.depth, self.parents, self.value, self.rises = 1, [], value, rises


def _nest(container: _Node, child: _Node, path) -> None:
    """Record `child` inside `container`, raising the depth of the container and of everything
    holding it; work is bounded because a depth can only rise MAX_NESTING times."""
    if child.rises:
        child.parents.append(container)
    if child.depth < container.depth:
        return
    todo = [(container, child.depth + 1)]
    while todo:
        node, depth = todo.pop()
        if depth <= node.depth:
            continue
        if depth > MAX_NESTING:
            raise CheckpointError(f"{path}: pickled data nested more than {MAX_NESTING} deep (or referring to "
                                  "itself): refusing it before unpickling")
        node.depth = depth
        todo.extend((p, depth + 1) for p in node.parents)


class _Storages(dict):
    """{storage key: bytes} a file's pickles declare, with their running total."""

    total = 0


def scan_pickle(f, path, storages: _Storages | None = None) -> _Storages:
    """Walk one pickle's opcodes (pickletools: nothing is built, nothing runs) and return the
    storages it declares, {key: bytes}; refuse nesting past MAX_NESTING and declared storage sizes
    past MAX_CHECKPOINT_BYTES. `storages` accumulates across the pickles of one file."""
    storages = _Storages() if storages is None else storages
    collecting = gc.isenabled()
    gc.disable()  # the scan makes many small objects and no cycles: collections would only cost time
    try:
        return _scan(f, path, storages)
    finally:
        if collecting:
            gc.enable()


def _scan(f, path, storages: _Storages) -> _Storages:
    stack: list[_Node] = []
    marks: list[int] = []
    memo: dict[Any, _Node] = {}
    try:
        for op, arg, _ in pickletools.genops(f):
            kind, n, mark, n_after = _OPS[op.name]
            if kind == "make" and not n and not mark:  # a literal or an empty container: the common case
                value = arg if isinstance(arg, (str, int)) and not isinstance(arg, bool) else None
                stack.append(_Node(value if not isinstance(value, str) or len(value) < 200 else None,
                                   op.name in ("EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET")))
                continue
            if kind == "put":
                memo[arg] = stack[-1]
            elif kind == "memoize":
                memo[len(memo)] = stack[-1]
            elif kind == "get":
                stack.append(memo[arg])
            elif kind == "dup":
                stack.append(stack[-1])
            elif kind == "mark":
                marks.append(len(stack))
            elif kind == "stop":
                return storages
            else:
                items: list[_Node] = []
                if mark:
                    m = marks.pop()
                    items, stack[m:] = stack[m:], []
                if n > len(stack):
                    raise IndexError("stack underflow")
                popped = stack[len(stack) - n:] if n else []
                del stack[len(stack) - n:]
                if kind == "in-place":  # the container stays below: only its depth grows
                    for child in popped[1:] + items:
                        _nest(popped[0], child, path)
                    stack.append(popped[0])
                elif kind != "pop":
                    inputs = popped + items
                    tuple_ = op.name.startswith("TUPLE")
                    node = _Node(_value(op.name, inputs), not tuple_ or any(c.rises for c in inputs))
                    for child in inputs:
                        _nest(node, child, path)
                    if kind == "persid":
                        _storage(popped[0].value if popped else arg, storages, path)
                    stack.extend([node] * n_after)
    except CheckpointError:
        raise
    except (ValueError, IndexError, KeyError, EOFError, TypeError) as e:
        raise CheckpointError(f"{path}: malformed pickle ({_first_line(e)})") from None
    raise CheckpointError(f"{path}: malformed pickle (no STOP opcode)")


def _value(name: str, inputs: list[_Node]):
    if name.startswith("TUPLE"):
        return tuple(n.value for n in inputs)
    if name == "STACK_GLOBAL" and len(inputs) == 2:
        return f"{inputs[0].value} {inputs[1].value}"
    return None


def _storage(pid, storages: _Storages, path) -> None:
    """A tensor storage id, ('storage', type, key, location, numel, ...): its size, checked."""
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
        return
    kind, key, numel = pid[1], str(pid[2]), pid[4]
    elem = _STORAGE_BYTES.get(str(kind).rsplit(" ", 1)[-1].removesuffix("Storage"), 8)
    if not _is_int(numel) or numel < 0:
        raise CheckpointError(f"{path}: malformed pickle (storage {key[:20]!r} has size {str(numel)[:20]})")
    old = storages.get(key, 0)
    storages[key] = max(old, numel * elem)
    storages.total += storages[key] - old
    if storages.total > MAX_CHECKPOINT_BYTES:
        raise _too_big(path, "the tensor data its pickle declares", storages.total, MAX_CHECKPOINT_BYTES, _cap_hint())


def check_torch_archive(path: str | Path) -> None:
    """Refuse a torch file whose contents would cost more than they should, before torch reads it.

    Zip archives (torch.save's format): every member stored (torch reads a compressed member by
    inflating all of it first), at most MAX_MEMBERS members, each member and all of them together
    within MAX_CHECKPOINT_BYTES, data.pkl within MAX_PICKLE_BYTES, nested at most MAX_NESTING deep,
    and each storage it declares no larger than its member. Legacy (non-zip) files: the file within
    MAX_CHECKPOINT_BYTES, its pickles scanned the same way.
    """
    path = Path(path)
    with open_regular(path, "checkpoint") as f:
        size = os.fstat(f.fileno()).st_size
        if f.read(4) != b"PK\x03\x04":
            if size > MAX_CHECKPOINT_BYTES + MAX_PICKLE_BYTES:
                raise _too_big(path, "the file", size, MAX_CHECKPOINT_BYTES, _cap_hint())
            f.seek(0)
            storages = _Storages()
            for _ in range(4):  # magic number, protocol version, system info, the object
                scan_pickle(f, path, storages)
            return
        f.seek(0)
        _check_zip(f, path, size)


def _check_zip(f, path: Path, size: int) -> None:
    try:
        z = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as e:
        raise CheckpointError(f"{path}: unreadable PyTorch file (zip: {_first_line(e)})") from None
    with z:
        infos = z.infolist()
        if len(infos) > MAX_MEMBERS:
            raise CheckpointError(f"{path}: zip archive has {len(infos)} members, over the limit of {MAX_MEMBERS}")
        total = 0
        for info in infos:
            if info.compress_type != zipfile.ZIP_STORED:
                raise CheckpointError(f"{path}: archive member {info.filename[:80]!r} is compressed: torch.save stores "
                                      "members uncompressed, and torch.load would inflate all of it before any check")
            if info.file_size > MAX_CHECKPOINT_BYTES:
                raise _too_big(path, f"archive member {info.filename[:80]!r}", info.file_size, MAX_CHECKPOINT_BYTES,
                               _cap_hint())
            if info.header_offset + info.file_size > size:
                raise CheckpointError(f"{path}: truncated: archive member {info.filename[:80]!r} ends past the file")
            total += info.file_size
        if total > MAX_CHECKPOINT_BYTES + MAX_PICKLE_BYTES:
            raise _too_big(path, "the archive's members together", total, MAX_CHECKPOINT_BYTES, _cap_hint())
        pkl = [i for i in infos if i.filename.endswith("data.pkl") and i.filename.count("/") == 1]
        if len(pkl) != 1:
            raise CheckpointError(f"{path}: zip archive without one data.pkl; not a torch.save file")
        if pkl[0].file_size > MAX_PICKLE_BYTES:
            raise _too_big(path, "data.pkl", pkl[0].file_size, MAX_PICKLE_BYTES, "interp.safeio.MAX_PICKLE_BYTES")
        root = pkl[0].filename[: -len("data.pkl")]
        try:
            storages = scan_pickle(io.BytesIO(z.read(pkl[0])), path)  # small reads from a zip member are slow
        except (zipfile.BadZipFile, OSError) as e:
            raise CheckpointError(f"{path}: unreadable PyTorch file (zip: {_first_line(e)})") from None
        members = {i.filename: i.file_size for i in infos}
        for key, nbytes in storages.items():
            have = members.get(f"{root}data/{key}")
            if have is not None and nbytes > have:
                raise CheckpointError(f"{path}: storage {key[:20]!r} declares {nbytes} bytes, its archive member "
                                      f"holds {have}")
