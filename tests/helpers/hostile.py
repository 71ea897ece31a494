"""The eleven cases of the hardening issue: hostile files, odd paths, racing runs.

Each case builds its inputs the way an attacker or a careless user would (generated here, never
checked in) and runs `interp ...` in a child process under an address-space cap, reporting the exit
code, stderr, peak RSS and whether it hung. tests/test_hostile.py asserts on these; run this file to
print the before/after table:

    .venv/bin/python tests/helpers/hostile.py                          # this checkout
    .venv/bin/python tests/helpers/hostile.py --python /work/main/.venv/bin/python --cwd /work/main
"""

from __future__ import annotations

import io
import json
import os
import pickle
import resource
import signal
import stat
import subprocess
import sys
import time
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

GB = 1 << 30
AS_LIMIT = 4 * GB  # the address-space cap
RSS_LIMIT = 1 << 30  # what any one case may cost
BIG = 1_500_000_000  # bytes a hostile file claims (1.5 GB)
TINY = ["--preset", "tiny", "--quiet"]


# ---- files as other tools (and attackers) write them ----------------------------------------------
class _Tensor:
    """Pickles as torch pickles a float32 tensor [numel] whose storage is archive member data/0,
    without ever allocating it: numel may claim gigabytes."""

    def __init__(self, numel: int):
        self.numel = numel

    def __reduce__(self):
        import torch

        return torch._utils._rebuild_tensor_v2, (_Storage(self.numel), 0, (self.numel,), (1,), False, OrderedDict())


class _Storage:
    def __init__(self, numel: int):
        self.numel = numel


class _TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        import torch

        if isinstance(obj, _Storage):
            return "storage", torch.FloatStorage, "0", "cpu", obj.numel
        return None


def torch_zip(path: Path, pkl: bytes, members: dict[str, object] | None = None, compress: bool = False) -> Path:
    """A torch.save-style zip archive (archive/data.pkl, byteorder, version, data/KEY): members map a
    name to bytes or to (chunk, count), a chunk written `count` times (streamed: never all in memory)."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", "little")
        for name, data in (members or {}).items():
            with z.open(f"archive/{name}", "w", force_zip64=True) as f:
                chunk, count = (data, 1) if isinstance(data, bytes) else data
                for _ in range(count):
                    f.write(chunk)
        z.writestr("archive/version", "3\n")
    return path


def deep_tuple_key_pt(path: Path, depth: int = 5000) -> Path:
    """Case 1: a .pt whose dict has a key that is a tuple nested `depth` deep (hand-assembled
    pickle opcodes: pickling such a tuple would itself hit the recursion limit)."""
    key = b"X\x01\x00\x00\x00a" + b"\x85" * depth  # BINUNICODE 'a', then TUPLE1 `depth` times
    pkl = b"\x80\x02}(" + key + b"K\x01u."  # PROTO 2, EMPTY_DICT, MARK, key, BININT1 1, SETITEMS, STOP
    return torch_zip(path, pkl)


def deflate_bomb_pt(path: Path, size: int = BIG) -> Path:
    """Case 3: ~1.5 MB on disk, a deflate-compressed storage of `size` bytes of zeros behind it."""
    buf = io.BytesIO()
    _TorchPickler(buf, protocol=2).dump({"embed.W_E": _Tensor(size // 4)})
    chunk = bytes(1 << 24)
    return torch_zip(path, buf.getvalue(), {"data/0": (chunk, size // len(chunk))}, compress=True)


def sparse_safetensors(path: Path, size: int = BIG) -> Path:
    """Case 4: a sparse file (a few KB on disk) whose header describes `size` bytes of float32."""
    n = size // 4
    header = json.dumps({"embed.W_E": {"dtype": "F32", "shape": [n], "data_offsets": [0, 4 * n]}}).encode()
    with open(path, "wb") as f:
        f.write(len(header).to_bytes(8, "little") + header)
        f.truncate(8 + len(header) + 4 * n)
    return path


def deep_json(path: Path, depth: int = 100_000) -> Path:
    """Case 2: a JSON config nested `depth` deep."""
    path.write_text("[" * depth + "]" * depth)
    return path


def small_state_pt(path: Path, protocol: int = 2) -> Path:
    """A TransformerLens-layout state dict (p 11, d_model 16) saved by torch.save."""
    import torch

    import interp

    cfg = interp.ModelConfig(p=11, d_model=16, n_heads=2, d_head=8, d_mlp=32, eq_token=False, causal=False, biases="mlp")
    sd = {k: v for k, v in interp.Transformer(cfg, seed=0).state_dict().items() if not k.endswith((".mask", ".IGNORE"))}
    torch.save(sd, path, pickle_protocol=protocol)
    return path


CONFIG = {"C": 11, "n_layers": 1, "d_model": 16, "n_heads": 2, "act_fn": "ReLU", "attn_coeff": 1.0, "diff_vocab": False,
          "eqn_sign": False}


# ---- running `interp` bounded ----------------------------------------------------------------------
@dataclass
class Outcome:
    code: int | None  # None: killed after the timeout (a hang)
    err: str
    out: str
    rss: int  # peak resident set size, bytes
    seconds: float
    extra: dict = field(default_factory=dict)

    @property
    def lines(self) -> list[str]:
        return self.err.strip().splitlines()

    def row(self) -> str:
        code = "hang" if self.code is None else str(self.code)
        first = (self.lines or [""])[0][:90]
        return f"exit {code}, {len(self.lines)} stderr line(s), peak RSS {self.rss / 2**20:.0f} MiB: {first}"


def _limit(as_bytes: int, umask: int | None):
    def pre():
        resource.setrlimit(resource.RLIMIT_AS, (as_bytes, as_bytes))
        if umask is not None:
            os.umask(umask)
        os.setsid()

    return pre


def spawn(cmd: list, cwd: str | None = None, as_bytes: int = AS_LIMIT, umask: int | None = None,
          env: dict | None = None) -> subprocess.Popen:
    """`cmd` in a child process of its own group, under the address-space cap (and umask)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "default", **(env or {})}
    return subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, preexec_fn=_limit(as_bytes, umask))


# The child's own peak RSS: wait4's ru_maxrss also counts the pages the child shared with pytest between
# fork and exec (a pytest that has imported Ray is ~650 MiB), so the child writes its VmHWM (peak RSS
# of its own image, reset at exec) to the file named in INTERP_TEST_HWM when it exits.
_HWM_CODE = ("import atexit, os, sys\n"
             "def _hwm(path=os.environ.get('INTERP_TEST_HWM')):\n"
             "    try:\n"
             "        with open('/proc/self/status') as f:\n"
             "            line = [l for l in f if l.startswith('VmHWM:')]\n"
             "        with open(path, 'w') as f:\n"
             "            f.write(line[0].split()[1])\n"
             "    except Exception:\n"
             "        pass\n"
             "atexit.register(_hwm)\n"
             "from interp.cli import main; sys.exit(main(sys.argv[1:]))")


def start(argv: list, python: str = sys.executable, **kw) -> subprocess.Popen:
    """`interp ARGV` as a child process (see spawn); it reports its peak RSS on exit (_HWM_CODE)."""
    import tempfile

    hwm = tempfile.NamedTemporaryFile(prefix="interp-hwm-", delete=False)
    hwm.close()
    env = {**(kw.pop("env", None) or {}), "INTERP_TEST_HWM": hwm.name}
    proc = spawn([python, "-c", _HWM_CODE, *argv], env=env, **kw)
    proc.hwm_path = hwm.name
    return proc


def _peak_rss(proc: subprocess.Popen, usage) -> int:
    """The child's own peak RSS in bytes (VmHWM it reported), else wait4's (which may include pytest's)."""
    path = getattr(proc, "hwm_path", None)
    try:
        text = Path(path).read_text().strip() if path else ""
        return int(text) * 1024 if text else usage.ru_maxrss * 1024
    finally:
        if path:
            Path(path).unlink(missing_ok=True)


def finish(proc: subprocess.Popen, timeout: float, t0: float) -> Outcome:
    """Wait for `proc` (killing its process group after `timeout` s); its own peak RSS from wait4."""
    import threading

    streams = {}
    readers = [threading.Thread(target=lambda k=k, s=s: streams.__setitem__(k, s.read()))
               for k, s in (("out", proc.stdout), ("err", proc.stderr))]
    for r in readers:
        r.start()
    code, usage = None, None
    while time.monotonic() - t0 < timeout:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            code = os.waitstatus_to_exitcode(status)
            break
        time.sleep(0.05)
    if code is None:  # a hang: kill it, and report no exit code
        os.killpg(proc.pid, signal.SIGKILL)
        _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = code if code is not None else -9
    for r in readers:
        r.join()
    return Outcome(code, streams["err"].decode(errors="replace"), streams["out"].decode(errors="replace"),
                   _peak_rss(proc, usage), time.monotonic() - t0)


def run(argv: list, timeout: float = 120, **kw) -> Outcome:
    t0 = time.monotonic()
    return finish(start(argv, **kw), timeout, t0)


# ---- the cases --------------------------------------------------------------------------------------
def case_deep_tuple_key(d: Path, **kw) -> Outcome:
    return run(["classify", deep_tuple_key_pt(d / "deep.pt")], **kw)


def case_deep_json(d: Path, **kw) -> Outcome:
    model = small_state_pt(d / "model.pt")
    return run(["classify", model, "--config", deep_json(d / "deep.json")], **kw)


def case_deflate_bomb(d: Path, **kw) -> Outcome:
    return run(["classify", deflate_bomb_pt(d / "bomb.pt")], **kw)


def case_sparse_safetensors(d: Path, **kw) -> Outcome:
    return run(["classify", sparse_safetensors(d / "sparse.safetensors")], **kw)


def case_config_dev_zero(d: Path, **kw) -> Outcome:
    return run(["classify", small_state_pt(d / "model.pt"), "--config", "/dev/zero"], **kw)


def case_config_fifo(d: Path, **kw) -> Outcome:
    fifo = d / "config.json"
    os.mkfifo(fifo)
    return run(["classify", small_state_pt(d / "model.pt"), "--config", fifo], timeout=kw.pop("timeout", 60), **kw)


NEWLINE_NAME = "x\ninterp: error: forged by the file name.pt"


def case_newline_path(d: Path, **kw) -> Outcome:
    bad = d / NEWLINE_NAME
    bad.write_bytes(b"not a checkpoint at all")
    return run(["classify", bad], **kw)


def case_pickle_protocol(d: Path, **kw) -> Outcome:
    model = small_state_pt(d / "model.pt", protocol=3)
    (d / "model.json").write_text(json.dumps(CONFIG))
    return run(["classify", model, "--json"], **kw)


def case_huge_p(d: Path, p: int = 100_000, **kw) -> Outcome:
    return run(["train", *TINY, "--p", str(p), "--out", d / f"p{p}"], **kw)


def case_concurrent_overwrite(d: Path, timeout: float = 240, **kw) -> Outcome:
    """Two `interp train --overwrite` on one directory at once (the second starts once the first
    has written run.json, and the first trains for a while: lr 1e-5 never reaches tiny's early stop):
    the outcome of the one that lost (or, if both exited 0, of the second); both exit codes in `extra`."""
    out = d / "run"
    argv = ["train", *TINY, "--steps", "3000", "--lr", "1e-5", "--log-every", "100", "--overwrite", "--out", out]
    t0 = time.monotonic()
    a = start(argv, **kw)
    while not (out / "run.json").exists() and a.poll() is None and time.monotonic() - t0 < timeout:
        time.sleep(0.05)
    b = start(argv, **kw)
    ra, rb = finish(a, timeout, t0), finish(b, timeout, t0)
    loser = rb if rb.code != 0 or ra.code == 0 else ra
    loser.extra = {"codes": (ra.code, rb.code), "stderr": (ra.err, rb.err)}
    return loser


def _make_run(out: Path, *extra, **kw) -> Outcome:
    r = run(["train", *TINY, "--steps", "20", "--checkpoint-every", "10", "--out", out, *extra], **kw)
    assert r.code == 0, r.err
    return r


def case_swapped_resume(d: Path, **kw) -> Outcome:
    """A run whose resume.safetensors is another run's (same shapes, other seed and lr), resumed."""
    a, b = d / "a", d / "b"
    _make_run(a, **kw)
    _make_run(b, "--seed", "1", "--lr", "0.003", **kw)
    os.replace(b / "resume.safetensors", a / "resume.safetensors")
    final_before = (a / "final.safetensors").read_bytes()
    r = run(["train", "--resume", a, "--steps", "30", "--quiet"], **kw)
    final = a / "final.safetensors"
    r.extra = {"final_kept": final.exists() and final.read_bytes() == final_before}
    return r


def case_umask(d: Path, **kw) -> Outcome:
    """A run and a report written under umask 022: the modes of what they created."""
    out = d / "run"
    r = _make_run(out, umask=0o022, **kw)
    rep = run(["report", out, "--quiet"], umask=0o022, **kw)
    assert rep.code == 0, rep.err
    r.extra = {"modes": {str(p.relative_to(out)): oct(stat.S_IMODE(p.stat().st_mode))
                         for p in sorted(out.rglob("*")) if p.is_file()}}
    return r


CASES = {
    "1 deep tuple key .pt": case_deep_tuple_key,
    "2 JSON 100k deep": case_deep_json,
    "3 deflate bomb .pt (1.5 GB)": case_deflate_bomb,
    "4 sparse .safetensors (1.5 GB)": case_sparse_safetensors,
    "5a --config /dev/zero": case_config_dev_zero,
    "5b --config FIFO": case_config_fifo,
    "6 newline in path": case_newline_path,
    "7 pickle protocol 3 warnings": case_pickle_protocol,
    "8a train --p 100000": case_huge_p,
    "8b train --p 30000": lambda d, **kw: case_huge_p(d, 30_000, **kw),
    "9 two train --overwrite": case_concurrent_overwrite,
    "10 swapped resume state": case_swapped_resume,
    "11 modes under umask 022": case_umask,
}


def main() -> None:
    import argparse
    import tempfile

    ap = argparse.ArgumentParser()
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--cwd", default=None)
    ap.add_argument("--only", default=None, help="case number prefix, e.g. 4")
    a = ap.parse_args()
    for name, case in CASES.items():
        if a.only and not name.startswith(a.only + " "):
            continue
        with tempfile.TemporaryDirectory() as d:
            try:
                r = case(Path(d), python=a.python, cwd=a.cwd)
                print(f"{name:32s} {r.row()} {r.extra if name[:2] in ('9 ', '10', '11') else ''}", flush=True)
            except Exception as e:  # a setup step failed: say so and go on
                print(f"{name:32s} setup failed: {type(e).__name__}: {str(e)[:200]}", flush=True)


if __name__ == "__main__":
    main()
