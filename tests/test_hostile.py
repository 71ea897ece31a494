"""Hostile files, odd paths, racing runs (the hardening issue): each case runs `interp` in a child
process under a 4 GB address-space cap and must give exit 2 and exactly one stderr line
`interp: error: ...` (or, for the pickle-protocol and umask cases, succeed cleanly), peak RSS under
1 GB, and no hang. Then the readers of interp.safeio, the run lock and the resume check, in process.

Note for the lead: cases 1 (deep tuple key) and 7 (pickle warnings) go through the loaders of
interp/formats.py; they pass here because check_torch_archive refuses case 1 before torch.load runs
and the CLI captures the warnings of case 7, whatever the loaders do after.
"""

import io
import json
import os
import pickle
import socket
import stat
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import interp
from interp import checkpoints as ck
from interp import rundir, safeio
from interp.errors import CheckpointError, RunDirError
from interp.fsio import file_mode

from helpers import assert_one_line_error, raw_safetensors, run_cli, state, write_checkpoint
from helpers import hostile


def assert_refused(r: hostile.Outcome, *needles: str) -> str:
    assert r.code is not None, f"hung: {r.err}"
    assert r.code == 2, (r.code, r.err)
    assert len(r.lines) == 1 and r.lines[0].startswith("interp: error: "), r.err
    for n in needles:
        assert n in r.lines[0], (n, r.err)
    assert r.rss < hostile.RSS_LIMIT, f"peak RSS {r.rss / 2**20:.0f} MiB"
    return r.lines[0]


# ---- the eleven cases, end to end ------------------------------------------------------------------
@pytest.mark.parametrize("case, needles", [
    ("1 deep tuple key .pt", ["deep.pt", "nested more than"]),
    ("2 JSON 100k deep", ["deep.json", "nested"]),
    ("3 deflate bomb .pt (1.5 GB)", ["bomb.pt", "compressed"]),
    ("4 sparse .safetensors (1.5 GB)", ["sparse.safetensors", "limit"]),
    ("5a --config /dev/zero", ["/dev/zero", "character device"]),
    ("5b --config FIFO", ["config.json", "FIFO"]),
    ("8a train --p 100000", ["--p", "p=100000", "available"]),
    ("8b train --p 30000", ["--p", "p=30000"]),
])
def test_hostile_input_gives_one_line_bounded(tmp_path, case, needles):
    assert_refused(hostile.CASES[case](tmp_path), *needles)


def test_newline_in_a_path_cannot_forge_a_line(tmp_path):
    line = assert_refused(hostile.case_newline_path(tmp_path))
    assert "x\\ninterp: error: forged" in line  # escaped, on the one line


def test_training_with_a_huge_p_allocates_nothing_and_creates_nothing(tmp_path):
    r = hostile.case_huge_p(tmp_path, 30_000)
    assert_refused(r, "memory")
    assert r.rss < 600 << 20 and not (tmp_path / "p30000").exists()  # the imports only: ~450 MiB


def test_older_pickle_protocol_loads_with_nothing_on_stderr(tmp_path):
    r = hostile.case_pickle_protocol(tmp_path)
    assert r.code == 0 and r.err == "", r.err
    assert json.loads(r.out)["label"]
    verbose = hostile.run(["classify", tmp_path / "model.pt", "--json", "--verbose"])
    assert verbose.code == 0 and "interp: warning: UserWarning: Detected pickle protocol 3" in verbose.err


def test_two_runs_on_one_directory_one_is_refused_naming_the_holder(tmp_path):
    r = hostile.case_concurrent_overwrite(tmp_path)
    assert sorted(r.extra["codes"]) == [0, 2], r.extra
    assert_refused(r, "another interp process", "pid ", "train")
    winner = r.extra["stderr"][r.extra["codes"].index(0)]
    assert winner == ""
    steps = [row["step"] for row in json.loads((tmp_path / "run" / ck.HISTORY).read_text())]
    assert steps == list(range(0, 3001, 100))  # one whole run, not two interleaved
    interp.load(tmp_path / "run")


def test_resume_refuses_another_runs_state_and_keeps_final(tmp_path):
    r = hostile.case_swapped_resume(tmp_path)
    assert_refused(r, ck.RESUME, "another run")
    assert r.extra["final_kept"]


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_run_files_honour_the_umask(tmp_path, mask):
    r = hostile.case_umask(tmp_path) if mask == 0o022 else None
    if r is None:  # a second umask, so 0644 is not simply hard-coded
        out = tmp_path / "run"
        hostile._make_run(out, umask=mask)
        modes = {str(p.relative_to(out)): oct(stat.S_IMODE(p.stat().st_mode)) for p in out.rglob("*") if p.is_file()}
    else:
        modes = r.extra["modes"]
    assert {ck.RUN_JSON, ck.HISTORY, ck.FINAL, ck.RESUME} <= set(modes)
    assert set(modes.values()) == {oct(0o666 & ~mask)}, modes


def test_safetensors_data_is_read_once(tmp_path):
    """A 256 MB safetensors file costs its size once, not twice (main read the file, then copied it)."""
    path = tmp_path / "big.safetensors"
    save_file({"w": torch.zeros(64 << 20)}, path)
    base = hostile.run(["classify", tmp_path / "missing.safetensors"])
    r = hostile.run(["classify", path])
    assert_refused(r, "big.safetensors")  # not a model, but read in full first
    assert r.rss - base.rss < 1.25 * path.stat().st_size, (r.rss - base.rss) / 2**20


def test_checkpoint_cap_is_a_setting(tmp_path):
    env = {**os.environ, "INTERP_MAX_CHECKPOINT_BYTES": "1000"}
    r = subprocess.run([sys.executable, "-m", "interp.cli", "classify", write_checkpoint(tmp_path / "m.safetensors")],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "INTERP_MAX_CHECKPOINT_BYTES" in r.stderr, r.stderr
    assert interp.load(tmp_path / "m.safetensors")  # here, with the default cap, it loads


# ---- interp.safeio, in process -----------------------------------------------------------------------
def _refused(fn, *args, match: str = "") -> str:
    with pytest.raises(CheckpointError) as e:
        fn(*args)
    msg = str(e.value)
    assert "\n" not in msg and match in msg, msg
    return msg


def _entry(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


@pytest.mark.parametrize("header, body, match", [
    ({"a": _entry("F32", [2], 0, 8), "b": _entry("F32", [2], 4, 12)}, bytes(12), "overlapping"),
    ({"a": _entry("F32", [2], 0, 8), "b": _entry("F32", [2], 12, 20)}, bytes(20), "gapped"),
    ({"a": _entry("F32", [2], 0, 8)}, bytes(12), "after the tensor data"),
    ({"a": _entry("F32", [3], 0, 8)}, bytes(8), "span"),
    ({"a": _entry("F32", [2], 8, 0)}, bytes(8), "data_offsets"),
    ({"a": _entry("Q4", [2], 0, 8)}, bytes(8), "dtype"),
    ({"a": _entry("F32", [-2], 0, 8)}, bytes(8), "shape"),
    ({"a": _entry("F32", [True, 2], 0, 8)}, bytes(8), "shape"),
    ({"a": _entry("F32", [2], 0, 8), "__metadata__": {"x": 1}}, bytes(8), "__metadata__"),
    ({"a": _entry("F32", [2 ** 40], 0, 2 ** 42)}, b"", "limit"),
    ({"a": _entry("F32", [4], 0, 16)}, bytes(8), "truncated"),
    (b"[" * 5000 + b"]" * 5000, b"", "nested"),
])
def test_safetensors_header_is_checked_before_any_data(tmp_path, header, body, match):
    _refused(safeio.read_safetensors, raw_safetensors(tmp_path / "h.safetensors", header, body), match=match)


def test_safetensors_caps(tmp_path, monkeypatch):
    path = write_checkpoint(tmp_path / "m.safetensors")
    monkeypatch.setattr(safeio, "MAX_MEMBERS", 3)
    _refused(safeio.read_safetensors, path, match="over the limit of 3")
    monkeypatch.setattr(safeio, "MAX_MEMBERS", 100)
    monkeypatch.setattr(safeio, "MAX_HEADER_BYTES", 100)
    _refused(safeio.read_safetensors, path, match="MAX_HEADER_BYTES")


def test_safetensors_reader_agrees_with_the_library(tmp_path):
    tensors = {"f32": torch.randn(3, 5), "f16": torch.randn(7).half(), "bf16": torch.randn(2, 3).bfloat16(),
               "f64": torch.randn(3, dtype=torch.float64), "i64": torch.arange(5), "bool": torch.tensor([True, False]),
               "u8": torch.arange(9, dtype=torch.uint8), "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 3)}
    save_file(tensors, tmp_path / "t.safetensors", metadata={"k": "v"})
    got, meta = safeio.read_safetensors(tmp_path / "t.safetensors")
    want = load_file(tmp_path / "t.safetensors")
    assert meta == {"k": "v"} and got.keys() == want.keys()
    for k in want:
        assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape and torch.equal(got[k], want[k]), k


def test_json_reader_takes_regular_small_shallow_files_only(tmp_path, monkeypatch):
    _refused(safeio.read_json_file, "/dev/zero", match="character device")
    _refused(safeio.read_json_file, tmp_path, match="directory")
    _refused(safeio.read_json_file, tmp_path / "none.json", match="not found")
    sock_path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(sock_path))
        _refused(safeio.read_json_file, sock_path, match="socket")
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    done = []
    t = threading.Thread(target=lambda: done.append(_refused(safeio.read_json_file, fifo, match="FIFO")), daemon=True)
    t.start()
    t.join(10)
    assert done, "reading a FIFO hung"
    big = tmp_path / "big.json"
    big.write_text(" " * safeio.MAX_CONFIG_BYTES + "{}")
    _refused(safeio.read_json_file, big, match="limit")
    ok, deep = tmp_path / "ok.json", tmp_path / "deep.json"
    ok.write_text("[" * safeio.MAX_NESTING + "]" * safeio.MAX_NESTING)
    deep.write_text("[" * (safeio.MAX_NESTING + 1) + "]" * (safeio.MAX_NESTING + 1))
    assert safeio.read_json_file(ok) == eval("[" * safeio.MAX_NESTING + "]" * safeio.MAX_NESTING)
    _refused(safeio.read_json_file, deep, match="nested more than")
    (tmp_path / "digits.json").write_text("1" * 5000)  # past Python's int-string limit: ValueError inside json
    _refused(safeio.read_json_file, tmp_path / "digits.json", match="not valid JSON")


# ---- torch archives ------------------------------------------------------------------------------------
class _Module(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Sequential(torch.nn.Linear(4, 2)))


@pytest.mark.parametrize("make", [
    lambda p: torch.save(state(), p),
    lambda p: torch.save(state(), p, _use_new_zipfile_serialization=False),
    lambda p: torch.save({"model": state(), "checkpoints": [state(s) for s in range(3)], "train_losses": [0.5] * 100}, p,
                         pickle_protocol=3),
    lambda p: torch.save(_Module(), p),
    lambda p: torch.save({"cfg": {"a": [[[[1]]]]}, "x": torch.zeros(0)}, p),
])
def test_real_torch_files_pass_the_archive_check(tmp_path, make):
    make(tmp_path / "m.pt")
    safeio.check_torch_archive(tmp_path / "m.pt")


def _pickle(obj) -> bytes:
    buf = io.BytesIO()
    hostile._TorchPickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def test_storage_larger_than_its_member_is_refused(tmp_path):
    path = hostile.torch_zip(tmp_path / "m.pt", _pickle({"w": hostile._Tensor(1000)}), {"data/0": bytes(16)})
    _refused(safeio.check_torch_archive, path, match="declares 4000 bytes")


def test_legacy_file_claiming_a_huge_storage_is_refused(tmp_path):
    path = tmp_path / "legacy.pt"
    parts = [pickle.dumps(0x1950A86A20F9469CFC6C, 2), pickle.dumps(1001, 2), pickle.dumps({"little_endian": True}, 2),
             _pickle({"w": hostile._Tensor(hostile.BIG // 4)})]
    path.write_bytes(b"".join(parts))
    _refused(safeio.check_torch_archive, path, match="declares")


def test_nesting_hidden_behind_the_memo_is_found(tmp_path):
    """A chain of lists built through memo references (each one small on the stack) is still deep."""
    n = 300
    ops = b"".join(b"]q" + bytes([i]) + b"0" if i < 256 else b"]r" + i.to_bytes(4, "little") + b"0" for i in range(n))
    get = lambda i: b"h" + bytes([i]) if i < 256 else b"j" + i.to_bytes(4, "little")  # noqa: E731
    ops += b"".join(get(i) + get(i + 1) + b"a0" for i in range(n - 1))
    pkl = b"\x80\x02" + ops + get(0) + b"."
    depth, x = 0, pickle.loads(pkl)
    while x:
        depth, x = depth + 1, x[0]
    assert depth == n - 1  # the control: unpickled, it is that deep
    _refused(safeio.check_torch_archive, hostile.torch_zip(tmp_path / "m.pt", pkl), match="nested more than")


def test_self_referencing_pickle_is_refused(tmp_path):
    lst = []
    lst.append(lst)
    _refused(safeio.check_torch_archive, hostile.torch_zip(tmp_path / "m.pt", pickle.dumps(lst, 2)), match="itself")


def test_archive_caps(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    torch.save(state(), path)
    monkeypatch.setattr(safeio, "MAX_MEMBERS", 5)
    _refused(safeio.check_torch_archive, path, match="members")
    monkeypatch.setattr(safeio, "MAX_MEMBERS", 1000)
    monkeypatch.setattr(safeio, "MAX_PICKLE_BYTES", 100)
    _refused(safeio.check_torch_archive, path, match="data.pkl")
    monkeypatch.setattr(safeio, "MAX_PICKLE_BYTES", 1 << 20)
    monkeypatch.setattr(safeio, "MAX_CHECKPOINT_BYTES", 100)
    _refused(safeio.check_torch_archive, path, match="limit")
    with zipfile.ZipFile(path, "a") as z:  # one compressed member, however small, is refused
        z.writestr("m/extra", b"x" * 10, compress_type=zipfile.ZIP_DEFLATED)
    monkeypatch.setattr(safeio, "MAX_CHECKPOINT_BYTES", 1 << 30)
    _refused(safeio.check_torch_archive, path, match="compressed")


# ---- run directories -----------------------------------------------------------------------------------
TRAIN = ["train", "--preset", "tiny", "--steps", "10", "--checkpoint-every", "5", "--quiet"]


@pytest.mark.parametrize("argv", [
    lambda d: [*TRAIN, "--out", d, "--overwrite"],
    lambda d: ["train", "--resume", d, "--quiet"],
    lambda d: ["demo", "--out", d, "--steps", "10", "--overwrite", "--quiet"],
    lambda d: ["sweep", "--out", d, "--seeds", "0,1", "--steps", "10", "--overwrite", "--quiet"],
])
def test_a_held_directory_refuses_every_writer(tmp_path, capsys, argv):
    run = tmp_path / "run"
    assert run_cli([*TRAIN, "--out", run], capsys)[0] == 0
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != rundir.LOCK}
    with rundir.writer(run):
        r = hostile.run(argv(run))
    line = assert_refused(r, "another interp process", f"pid {os.getpid()}")
    assert str(run) in line
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != rundir.LOCK} == before
    assert run_cli(argv(run), capsys)[0] == 0  # free again: the same command runs


def test_lock_is_reentrant_and_a_refused_run_leaves_no_directory(tmp_path):
    with rundir.writer(tmp_path / "a"):
        with rundir.writer(tmp_path / "a"):
            pass
        assert (tmp_path / "a" / rundir.LOCK).exists()
    assert not (tmp_path / "a").exists()  # created for nothing: removed


@pytest.fixture
def finished_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert run_cli([*TRAIN, "--out", run], capsys)[0] == 0
    return run


@pytest.mark.parametrize("field, value", [("lr", 0.5), ("seed", 7), ("weight_decay", 0.0)])
def test_resume_refuses_a_run_json_that_disagrees(finished_run, capsys, field, value):
    info = json.loads((finished_run / ck.RUN_JSON).read_text())
    info["train_config"][field] = value
    (finished_run / ck.RUN_JSON).write_text(json.dumps(info))
    assert_one_line_error(*run_cli(["train", "--resume", finished_run, "--quiet"], capsys), ck.RESUME, field)


def test_runs_from_before_run_ids_still_resume(finished_run, capsys):
    info = json.loads((finished_run / ck.RUN_JSON).read_text())
    del info["run_id"]
    (finished_run / ck.RUN_JSON).write_text(json.dumps(info))
    tensors, meta = ck.read_safetensors(finished_run / ck.RESUME)
    ck.save_tensors(finished_run / ck.RESUME, tensors, {k: v for k, v in meta.items() if k not in ("run_id", "format")})
    assert run_cli(["train", "--resume", finished_run, "--steps", "15", "--quiet"], capsys)[0] == 0


def test_resume_keeps_final_until_the_new_one_is_written(finished_run):
    from interp.training import load_trainer

    trainer = load_trainer(finished_run, steps=20)
    assert (finished_run / ck.FINAL).exists() and ck.read_checkpoint(finished_run / ck.FINAL).step == 10
    trainer.run(progress=False)
    assert ck.read_checkpoint(finished_run / ck.FINAL).step == 20


def test_refused_overwrite_keeps_the_old_run(finished_run, capsys, monkeypatch):
    import shutil

    before = {p: p.read_bytes() for p in finished_run.rglob("*") if p.is_file()}
    usage = shutil.disk_usage("/")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=100_000))
    assert_one_line_error(*run_cli([*TRAIN, "--out", finished_run, "--overwrite"], capsys), "MiB free")
    assert {p: p.read_bytes() for p in finished_run.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_atomic_writes_honour_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        assert file_mode() == 0o666 & ~mask
        ck.atomic_write_json(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == 0o666 & ~mask


def test_cli_escapes_control_characters():
    from interp.cli import one_line

    assert one_line("a\nb\r\x1b[31mc\x00\u2028") == "a\\nb\\r\\x1b[31mc\\x00\\u2028"
    assert one_line("plain ünïcode path") == "plain ünïcode path"
    assert one_line(Path("/tmp/x\udcff")) == "/tmp/x\\udcff"  # undecodable bytes of a file name


def test_model_config_of_a_resume_state_is_checked(finished_run, capsys):
    info = json.loads((finished_run / ck.RUN_JSON).read_text())
    tensors, meta = ck.read_safetensors(finished_run / ck.RESUME)
    meta = {**meta, "model_config": json.dumps({**json.loads(meta["model_config"]), "act_fn": "gelu"})}
    ck.save_tensors(finished_run / ck.RESUME, tensors, {k: v for k, v in meta.items() if k != "format"})
    assert info["run_id"] == meta["run_id"]
    assert_one_line_error(*run_cli(["train", "--resume", finished_run, "--quiet"], capsys), ck.RESUME, "act_fn")


def test_sweep_and_config_both_refuse_a_huge_p(tmp_path, capsys):
    assert_one_line_error(*run_cli(["sweep", "--p", "5000,30000", "--out", tmp_path / "s", "--quiet"], capsys),
                          "sweep needs about", "--p")
    assert not (tmp_path / "s").exists()
