"""Shared by the robustness, fuzz and killed-run tests: tiny checkpoints, hostile files, CLI checks."""

from __future__ import annotations

import json
import os
import pathlib
import re
from pathlib import Path

import torch

import interp
from interp import checkpoints as ck
from interp.cli import main
from interp.errors import CheckpointError

CFG = interp.ModelConfig(p=11, d_model=16, n_heads=2, d_head=8, d_mlp=32, eq_token=False, causal=False, biases="mlp")
MARKER = "PWNED"  # the file a malicious pickle creates when it is unpickled


def state(seed: int = 3, cfg: interp.ModelConfig = CFG) -> dict[str, torch.Tensor]:
    """A model's parameters as saved in a checkpoint (no mask / IGNORE buffers)."""
    m = interp.Transformer(cfg, seed=seed)
    return {k: v.clone() for k, v in m.state_dict().items() if not k.endswith((".mask", ".IGNORE"))}


def write_checkpoint(path: Path, tensors: dict | None = None, **meta) -> Path:
    """An interp safetensors checkpoint; `meta` overrides its metadata (JSON strings pass as they are)."""
    ck.save_tensors(path, state() if tensors is None else tensors, {"model_config": CFG.to_dict(), **meta})
    return path


def raw_safetensors(path: Path, header, body: bytes = b"", header_len: int | None = None) -> Path:
    """A safetensors file written by hand: 8-byte little-endian header length, header, data."""
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes((len(h) if header_len is None else header_len).to_bytes(8, "little") + h + body)
    return path


class Bomb:
    """Unpickling this calls `func(*args)`: code a checkpoint must never get to run."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def bomb_payloads(marker: Path) -> dict[str, Bomb]:
    return {"path-touch": Bomb(pathlib.Path.touch, marker), "os-system": Bomb(os.system, f"touch '{marker}'"),
            "exec": Bomb(exec, f"open({str(marker)!r}, 'w').close()")}


def save_bomb(path: Path, payload: Bomb, legacy: bool = False) -> Path:
    """A .pt file shaped like the TransformerLens demo's (a state dict beside a pickled object)."""
    torch.save({"model": state(), "config": payload}, path, _use_new_zipfile_serialization=not legacy)
    return path


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """(exit code, stderr) of `interp ARGV`, argparse's own exits included."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def assert_one_line_error(code, err: str, *needles: str) -> str:
    """Non-zero exit and exactly one stderr line `interp: error: ...` containing every needle."""
    lines = err.strip().splitlines()
    assert code not in (0, None) and "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("interp: error: "), err
    for n in needles:
        assert n in lines[0], (n, err)
    return lines[0]


def assert_clear_checkpoint_error(path: Path, match: str | None = None) -> str:
    """interp.load(path) raises CheckpointError: one line, naming the file (and matching `match`)."""
    try:
        interp.load(path)
    except CheckpointError as e:
        msg = str(e)
    else:
        raise AssertionError(f"{path} loaded")
    assert "\n" not in msg and str(path) in msg, msg
    if match:
        assert re.search(match, msg), msg
    return msg


def load_or_refuse(path: Path) -> None:
    """The loader's contract on any input: a valid model (finite weights) or one clear CheckpointError."""
    try:
        model = interp.load(path)
    except CheckpointError as e:
        assert "\n" not in str(e) and str(path) in str(e), str(e)
        return
    assert isinstance(model, interp.Transformer) and not model.training
    assert all(torch.isfinite(v).all() for v in model.parameters())


class one_thread:
    """Stacked equals alone bit for bit at one torch thread. With more, MKL may split a batched (vmapped)
    matmul and the single one differently: on this CI machine's CPU (2026-12-05) 2 threads gave last-bit
    differences after one update (up to 5.5e-7), which 40 updates amplify past any tolerance."""

    def __enter__(self):
        self.n = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.n)
