"""Property-based fuzzing (hypothesis). Loaders: any bytes give a valid model or one CheckpointError,
never another exception. Configs: any values give a valid config (that survives its JSON round trip)
or a ConfigError naming a field that was set. Hostile sizes (files claiming gigabytes: sparse
safetensors, compressed or lying torch archives, deep pickles and configs) are fuzzed in a child
process under a 4 GB address-space cap, whose peak RSS must stay under 1 GB.
INTERP_FUZZ_EXAMPLES=5000 fuzzes deeper, with fresh draws (the child too).
"""

import dataclasses
import functools
import io
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import interp
from interp import ModelConfig, TrainConfig
from interp.errors import ConfigError

from helpers import CFG, hostile, load_or_refuse, raw_safetensors, state, write_checkpoint

_N = int(os.environ.get("INTERP_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=_N or 60, deadline=None, derandomize=not _N, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
EXTS = [".safetensors", ".pt", ".pth", ""]


@functools.cache
def valid(ext: str) -> bytes:
    """Bytes of valid checkpoints: ours (safetensors) and a TransformerLens-layout .pt with its config."""
    d = Path(tempfile.mkdtemp())
    torch.save({"model": state(), "config": {"d_vocab": 11, "n_ctx": 2, "attention_dir": "bidirectional"}}, d / "m.pt")
    files = {".safetensors": write_checkpoint(d / "m.safetensors", step=5), ".pt": d / "m.pt"}
    for f in files.values():
        interp.load(f)  # both load as they are: the fuzzing starts from a good file
    data = {e: f.read_bytes() for e, f in files.items()}
    shutil.rmtree(d)
    return data[ext]


def _check(tmp_path, data: bytes, ext: str) -> None:
    path = tmp_path / f"fuzzed{ext}"
    path.write_bytes(data)
    load_or_refuse(path)


@FUZZ
@given(data=st.binary(max_size=3000), ext=st.sampled_from(EXTS))
def test_random_bytes(tmp_path, data, ext):
    _check(tmp_path, data, ext)


@FUZZ
@given(ext=st.sampled_from([".safetensors", ".pt"]), cut=st.floats(0, 1, exclude_max=True))
def test_truncated_checkpoint(tmp_path, ext, cut):
    _check(tmp_path, valid(ext)[: int(cut * len(valid(ext)))], ext)


@FUZZ
@given(ext=st.sampled_from([".safetensors", ".pt"]), header=st.booleans(),
       where=st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=4))
def test_bit_flips(tmp_path, ext, where, header):
    """Flips anywhere, or (header=True) in the first 2 KB, where the metadata and the zip's pickle live."""
    data = bytearray(valid(ext))
    span = min(2048, len(data)) if header else len(data)
    for w in where:
        bit = int(w * span * 8)
        data[bit // 8] ^= 1 << (bit % 8)
    _check(tmp_path, bytes(data), ext)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=6)
DTYPES = ["F32", "F16", "BF16", "F64", "I64", "I32", "U8", "BOOL", "F8_E4M3", "XX"]


@st.composite
def headers(draw):
    """Safetensors headers that look almost right: real names, odd dtypes, shapes and offsets, metadata."""
    names = draw(st.lists(st.sampled_from(sorted(state())) | st.text(max_size=8), max_size=4, unique=True))
    h = {n: {"dtype": draw(st.sampled_from(DTYPES)), "shape": draw(st.lists(st.integers(0, 40), max_size=3)),
             "data_offsets": sorted(draw(st.lists(st.integers(0, 5000), min_size=2, max_size=2)))} for n in names}
    if draw(st.booleans()):
        h["__metadata__"] = draw(st.dictionaries(st.sampled_from(["format", "model_config", "step", "metrics"]),
                                                 st.sampled_from(["interp", "{}", "null", "[1]"]) | JSON.map(json.dumps)))
    return draw(st.sampled_from([h, json.dumps(h).encode(), draw(JSON)]))


@FUZZ
@given(header=headers(), body=st.binary(max_size=5000))
def test_handmade_safetensors(tmp_path, header, body):
    _check(tmp_path, raw_safetensors(tmp_path / "h", header, body).read_bytes(), ".safetensors")


JSON_VALUE = (st.integers(-3, 300) | st.integers() | st.sampled_from([2**63 - 1, 2**63, 10**400]) | st.floats()
              | st.floats(-0.5, 1.5) | st.booleans() | st.none() | st.text(max_size=6)
              | st.sampled_from(["relu", "gelu", "none", "mlp", "all"])
              | st.tuples(st.floats(-0.5, 1.5), st.floats(-0.5, 1.5)) | st.lists(st.integers(-2, 5), max_size=3))
CONFIG_VALUE = JSON_VALUE | st.just(10**5000)  # too long for json.dumps or str()


@FUZZ
@given(changes=st.dictionaries(st.sampled_from(["model_config", "train_config", "step", "metrics", "format"]),
                               JSON.map(json.dumps) | st.text(max_size=10), max_size=3),
       field=st.sampled_from([f.name for f in dataclasses.fields(ModelConfig)]), value=JSON_VALUE)
def test_checkpoint_metadata(tmp_path, changes, field, value):
    """Our own checkpoint with its metadata replaced, or one model_config field set to anything."""
    meta = {"model_config": json.dumps({**CFG.to_dict(), field: value}), **changes}
    _check(tmp_path, write_checkpoint(tmp_path / "m.safetensors", **meta).read_bytes(), ".safetensors")


def _config_outcome(cls, kwargs: dict, via_dict: bool = False) -> None:
    try:
        cfg = cls.from_dict(kwargs) if via_dict else cls(**kwargs)
    except ConfigError as e:
        msg = str(e)
        assert "\n" not in msg and len(msg) < 400, msg
        m = re.match(rf"{cls.__name__}\.(\w+) ", msg)
        if m:  # the field at fault (d_head * n_heads != d_model names all three) is one that was set
            assert ({m.group(1)} | ({"n_heads", "d_model"} if m.group(1) == "d_head" else set())) & set(kwargs), msg
        else:
            unknown = set(kwargs) - {f.name for f in dataclasses.fields(cls)}
            assert msg.startswith(f"{cls.__name__} has no field(s) ") and unknown and all(repr(k) in msg for k in unknown), msg
        return
    assert cls.from_dict(json.loads(cfg.to_json())) == cfg  # what checkpoints store comes back the same


def _kwargs(cls):
    return st.dictionaries(st.sampled_from([f.name for f in dataclasses.fields(cls)]), CONFIG_VALUE, max_size=4)


@FUZZ
@given(kw=_kwargs(ModelConfig))
def test_model_config_fields(kw):
    _config_outcome(ModelConfig, kw)


@FUZZ
@given(kw=_kwargs(TrainConfig))
def test_train_config_fields(kw):
    _config_outcome(TrainConfig, kw)


@FUZZ
@given(cls=st.sampled_from([ModelConfig, TrainConfig]),
       d=st.dictionaries(st.sampled_from(["p", "d_model", "steps", "lr", "betas", "act_fn"]) | st.text(max_size=6), JSON,
                         max_size=4))
def test_configs_from_json(cls, d):
    """What a config in a checkpoint or run.json may hold: any JSON object."""
    _config_outcome(cls, d, via_dict=True)


# ---- hostile sizes, memory-bounded -----------------------------------------------------------------
IN_CHILD = os.environ.get("INTERP_FUZZ_CHILD") == "1"
child_only = pytest.mark.skipif(not IN_CHILD, reason="run by test_hostile_sizes_fuzz_in_bounded_memory, in a child "
                                "process under an address-space cap")
SIZES = st.integers(0, 40) | st.integers(0, 2**34) | st.sampled_from([2**31, 2**32 + 4, 2**62, 2**64 - 1])


@child_only
@FUZZ
@given(entries=st.lists(st.tuples(st.sampled_from(sorted(state())), st.sampled_from(DTYPES),
                                  st.lists(SIZES, max_size=3), SIZES, SIZES), min_size=1, max_size=4),
       extra=SIZES, consistent=st.booleans())
def test_hostile_safetensors_sizes(tmp_path, entries, extra, consistent):
    """Headers claiming up to exabytes, in sparse files as long as they claim (a few KB on disk)."""
    header, end = {}, 0
    for name, dtype, shape, a, b in entries:
        if consistent:  # offsets that agree with the shape: only the size is hostile
            n = 1
            for k in shape:
                n *= k
            a, b = end, end + n * 4
            dtype, end = "F32", end + n * 4
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [a, b]}
    path = raw_safetensors(tmp_path / "h.safetensors", header)
    with open(path, "r+b") as f:
        f.truncate(min(f.seek(0, 2) + (end if consistent else extra), 2**40))  # sparse: costs no disk
    load_or_refuse(path)


@child_only
@FUZZ
@given(numel=SIZES, member=st.integers(0, 2**20), compress=st.booleans(), depth=st.integers(0, 300))
def test_hostile_torch_archives(tmp_path, numel, member, compress, depth):
    """torch archives whose pickle declares any storage size, beside a member of another size,
    stored or compressed, the state dict wrapped in lists `depth` deep."""
    obj = {"embed.W_E": hostile._Tensor(numel)}
    for _ in range(depth):
        obj = [obj]
    buf = io.BytesIO()
    hostile._TorchPickler(buf, protocol=2).dump(obj)
    chunk = bytes(min(member, 1 << 16) or 1)
    path = hostile.torch_zip(tmp_path / "m.pt", buf.getvalue(), {"data/0": (chunk, max(member // len(chunk), 1))},
                             compress)
    load_or_refuse(path)


@child_only
@FUZZ
@given(depth=st.integers(0, 3000), pad=st.integers(0, 3 << 20), kind=st.sampled_from(["[", "{\"a\":"]))
def test_hostile_configs(tmp_path, depth, pad, kind):
    """A Clock/Pizza checkpoint whose config is nested up to 3000 deep or padded past the size cap."""
    model = hostile.small_state_pt(tmp_path / "model.pt")
    close = "]" if kind == "[" else "}"
    cfg = tmp_path / "model.json"
    cfg.write_text(json.dumps(hostile.CONFIG)[:-1] + ', "x": ' + kind * depth + "1" + close * depth + " " * pad + "}")
    try:
        interp.load(model, config=cfg)
    except interp.CheckpointError as e:
        assert "\n" not in str(e) and str(cfg) in str(e), str(e)


def test_hostile_sizes_fuzz_in_bounded_memory():
    """The three fuzzers above, in a child under a 4 GB address-space cap: all pass, peak RSS < 1 GB."""
    t0 = time.monotonic()
    if IN_CHILD:  # never recurse
        return
    cmd = [sys.executable, "-m", "pytest", __file__, "-o", "addopts=", "-q", "-p", "no:cacheprovider", "-x",
           "-k", "hostile_ and not bounded_memory"]
    proc = hostile.spawn(cmd, cwd=Path(__file__).parent.parent, env={"INTERP_FUZZ_CHILD": "1"})
    r = hostile.finish(proc, 3600 if _N else 900, t0)
    assert r.code == 0, r.out[-3000:] + r.err[-2000:]
    assert "3 passed" in r.out, r.out[-2000:]
    assert r.rss < hostile.RSS_LIMIT, f"peak RSS {r.rss / 2**20:.0f} MiB"
