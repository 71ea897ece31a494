"""Analyses compute on the model's device: no tensor made on torch's default device and mixed with the model's.

A CPU-only machine cannot run them on a GPU, so the tests make the default device `meta` while the model
and its tensors are real CPU tensors (`torch.device("meta")` as a context manager): a tensor an analysis
creates without an explicit device (torch.arange / zeros / tensor / ...) then lands on meta, and mixing
it with the model's raises or yields values that are not the CPU run's. Each analysis must give exactly
the numbers it gives without the trick. On a machine with CUDA the same comparisons run on the GPU
(`test_analyses_on_cuda_match_the_cpu`, skipped here)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import interp
from interp import batched, circles, fourier, metrics, probes, progress
from interp import checkpoints as ck
from interp.classifier import classify
from interp.cli import main
from interp.data import all_tokens, split
from interp.device import analysis_device, to_device
from interp.errors import ConfigError

FIXTURES = Path(__file__).parent / "fixtures"


def meta_default():
    """Torch's default device is meta inside: factory calls without device= do not make CPU tensors."""
    return torch.device("meta")


def same(x, y) -> bool:
    """Equal values (bit for bit, NaN equal to NaN) on CPU, through dataclasses, dicts, lists and tensors."""
    if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
        return (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.device == y.device == torch.device("cpu")
                and x.dtype == y.dtype and x.shape == y.shape and torch.equal(x.nan_to_num(), y.nan_to_num()))
    if hasattr(x, "__dataclass_fields__"):
        return type(x) is type(y) and all(same(getattr(x, f), getattr(y, f)) for f in x.__dataclass_fields__)
    if isinstance(x, dict):
        return isinstance(y, dict) and x.keys() == y.keys() and all(same(x[k], y[k]) for k in x)
    if isinstance(x, (list, tuple)):
        return type(x) is type(y) and len(x) == len(y) and all(same(a, b) for a, b in zip(x, y))
    if isinstance(x, float) and math.isnan(x):
        return isinstance(y, float) and math.isnan(y)
    return x == y


def under_meta(fn, *args, **kw):
    """fn(*args, **kw) normally and with meta as the default device: both results, which must be equal."""
    plain = fn(*args, **kw)
    fourier._basis64.cache_clear()  # cached tensors are made again under the trick
    with meta_default():
        tricked = fn(*args, **kw)
    return plain, tricked


def test_the_trick_catches_a_tensor_made_on_the_default_device():
    x = torch.ones(3)  # a "model" tensor on the CPU
    with meta_default():
        with pytest.raises(RuntimeError, match="meta"):
            x + torch.arange(3)  # what an analysis without device= would do
        assert (x + torch.arange(3, device=x.device)).tolist() == [1, 2, 3]


@pytest.fixture(scope="module")
def clock():
    return interp.load(FIXTURES / "clock.safetensors")


@pytest.fixture(scope="module")
def pizza():
    return interp.load(FIXTURES / "pizza.safetensors")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    interp.train("tiny", out=out, progress=False, checkpoint_every=50)
    return out


@pytest.mark.parametrize("name", ["clock", "pizza"])
def test_classify_under_a_meta_default_device(name, request):
    model = request.getfixturevalue(name)
    plain, tricked = under_meta(classify, model)
    assert plain.label == name and plain.circles
    assert plain.to_dict() == tricked.to_dict()


def test_probes_under_a_meta_default_device(clock):
    for fn in (probes.embedding, probes.attention, probes.neurons, probes.logits):
        plain, tricked = under_meta(fn, clock)
        assert same(plain, tricked), fn.__name__
    keys = fourier.key_frequencies(clock)
    assert under_meta(probes.logits, clock, freqs=keys)[1].fve == probes.logits(clock, freqs=keys).fve
    assert same(*under_meta(probes.embedding, clock, freqs=keys))


def test_builders_make_their_tensors_on_the_device_given(clock):
    p = clock.cfg.p
    for fn, args in [(fourier.fourier_basis, (p, torch.float64, "cpu")), (fourier.sum_directions, (p, [1, 4], "cpu")),
                     (fourier.freq_masks_2d, (p, "cpu")), (probes.clock_templates, (p, [2, 3], "cpu")),
                     (all_tokens, (clock.cfg, "cpu"))]:
        plain, tricked = under_meta(fn, *args)
        assert same(plain, tricked), fn.__name__
    with meta_default():  # None: torch's default device, as torch's own factories
        assert fourier.fourier_basis(p).device.type == all_tokens(clock.cfg).device.type == "meta"


def test_metrics_and_circles_under_a_meta_default_device(clock, pizza):
    for model in (clock, pizza):
        table = metrics.logit_table(model)
        keys = fourier.key_frequencies(model)
        for fn, args in [(metrics.logit_table, (model,)), (metrics.accuracy, (table,)),
                         (metrics.gradient_symmetricity, (model,)), (metrics.distance_irrelevance, (table,)),
                         (metrics.distance_irrelevance, (table, "max_wrong")), (metrics.circularity, (model,)),
                         (metrics.template_fits, (table, keys)), (fourier.key_frequencies, (model,)),
                         (circles.sum_difference_table, (table,)), (circles.output_spectrum, (table,)),
                         (circles.embedding_pca, (model,)), (circles.isolate_circles, (model,)),
                         (batched.model_metrics, ([model, clock],)),
                         (batched.logit_tables, ([model, clock],))]:
            plain, tricked = under_meta(fn, *args)
            assert same(plain, tricked), (fn.__name__, model.cfg.p, plain, tricked)
        for k in keys:
            assert same(*under_meta(metrics.templates, model.cfg.p, k, "cpu"))
        plain, tricked = under_meta(circles.isolate_circles, model, frequencies=keys)
        assert same(plain, tricked)
        assert same(*under_meta(lambda: circles.isolated_model(model, frequency=keys[0]).state_dict()))


def test_progress_measures_under_a_meta_default_device(tiny_run):
    assert len(ck.list_snapshots(tiny_run)) >= 4
    plain, tricked = under_meta(progress.run_progress, tiny_run)
    assert plain.key_freqs and same(plain, tricked)
    assert all(getattr(plain, m).device.type == "cpu" for m in progress.MEASURES)
    model = interp.load(tiny_run)
    plain, tricked = under_meta(progress.measure, model)
    assert same(plain, tricked) and plain.excluded_loss_per_freq.device.type == "cpu"
    # the one-model measures are the last snapshot's row of the run's
    assert plain.test_loss == pytest.approx(progress.run_progress(tiny_run).test_loss[-1].item(), rel=1e-9)


def test_clean_stop_measures_under_a_meta_default_device(tiny_run):
    """Training's clean-circuit check (interp.stopping) uses the analyses on the training device."""
    from interp import stopping

    model = interp.load(tiny_run)
    state = dict(model.named_parameters())
    plain, tricked = under_meta(lambda: (row := {}, stopping.measure_row(row, state, model.cfg.p))[::-1])
    assert plain[1]["key_freqs"] and same(plain, tricked)


def test_stacked_logits_and_measures_under_a_meta_default_device(tiny_run):
    model = interp.load(tiny_run)
    cfg = model.cfg
    params = batched.stack_states([model.state_dict(), model.state_dict()])
    plain, tricked = under_meta(batched.all_logits, cfg, params, [1.0, 0.5])
    assert same(plain, tricked) and plain.shape == (2, cfg.p ** 2, cfg.p)
    train_idx, test_idx = split(cfg.p, 0.8, 0)
    keys = fourier.key_frequencies(model)
    assert same(*under_meta(progress.stacked_measures, cfg, params, keys, train_idx, test_idx))
    assert same(*under_meta(progress.gini, torch.rand(3, 7, generator=torch.Generator().manual_seed(0))))


def test_stacked_logits_of_a_deeper_model_under_a_meta_default_device(clock):
    """Two layers: all_logits runs the model's own forward, vmapped (its template model and tokens)."""
    from interp.model import Transformer

    cfg = clock.cfg.replace(n_layers=2)
    params = batched.stack_states([Transformer(cfg, seed=s).state_dict() for s in (0, 1)])
    plain, tricked = under_meta(batched.all_logits, cfg, params, [1.0, 0.0])
    assert same(plain, tricked) and plain.shape == (2, cfg.p ** 2, cfg.p)


def test_classify_on_the_cpu_equals_the_default(clock):
    assert classify(clock, device="cpu").to_dict() == classify(clock).to_dict()
    assert classify(FIXTURES / "clock.safetensors", device="cpu").to_dict() == classify(FIXTURES / "clock.safetensors").to_dict()
    assert interp.load(FIXTURES / "clock.safetensors", device="cpu").W_E.device.type == "cpu"


def test_analyses_default_to_the_cpu_and_refuse_a_device_this_machine_lacks(clock):
    assert analysis_device(None) == analysis_device("cpu") == torch.device("cpu")
    assert to_device(clock, "cpu") is clock  # a model already there is used as it is, not copied
    with pytest.raises(ConfigError, match="not one of"):
        classify(FIXTURES / "clock.safetensors", device="tpu")
    if not torch.cuda.is_available():
        for call in (lambda: classify(FIXTURES / "clock.safetensors", device="cuda"),
                     lambda: interp.load(FIXTURES / "clock.safetensors", device="cuda"),
                     lambda: progress.run_progress(FIXTURES, device="cuda")):
            with pytest.raises(ConfigError, match="not available on this machine"):
                call()


def test_classify_and_the_report_pass_the_device_on(tiny_run, clock, monkeypatch, tmp_path):
    """On one CPU every device is the CPU, so check the plumbing with "cpu:0", a device that computes on
    the CPU but is not the default's torch.device("cpu"): what classify and the report hand to the
    loader, the model copier and the progress measures."""
    import interp.formats
    from interp import report

    seen = []
    for owner, name in ((interp.formats, "load"), (report, "load"), (report, "to_device"), (progress, "run_progress")):
        real = getattr(owner, name)
        monkeypatch.setattr(owner, name, lambda *a, _real=real, _name=name, **kw: (
            seen.append((_name, kw.get("device", a[-1] if _name == "to_device" else None))), _real(*a, **kw))[1])
    cpu0 = torch.device("cpu", 0)
    path = FIXTURES / "clock.safetensors"
    assert classify(path, device="cpu:0").to_dict() == classify(path).to_dict()
    assert seen == [("load", cpu0), ("load", torch.device("cpu"))]  # the second: the default
    seen.clear()
    report.write_report(tiny_run, tmp_path / "r.html", device="cpu:0")
    report.write_report(clock, tmp_path / "m.html", device="cpu:0")
    assert seen == [("load", cpu0), ("run_progress", cpu0), ("to_device", cpu0)]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("command", [["classify", str(FIXTURES / "clock.safetensors")],
                                     ["report", str(FIXTURES / "clock.safetensors"), "-o", "{tmp}/r.html", "--quiet"]])
def test_cli_device_cuda_without_cuda_is_one_line_and_exit_2(command, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in command] + ["--device", "cuda"]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("interp: error: device 'cuda' is not available on this machine")
    assert not (tmp_path / "r.html").exists()


def test_cli_classify_on_the_cpu_prints_the_default_verdict(clock, capsys):
    assert main(["classify", str(FIXTURES / "clock.safetensors"), "--json"]) == 0
    default = capsys.readouterr().out
    assert main(["classify", str(FIXTURES / "clock.safetensors"), "--json", "--device", "cpu"]) == 0
    assert capsys.readouterr().out == default


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_analyses_on_cuda_match_the_cpu(clock, tiny_run, monkeypatch):
    """On a GPU: every analysis runs there and agrees with the CPU within float32 rounding."""
    c_cpu, c_gpu = classify(clock), classify(clock, device="cuda")
    assert c_gpu.label == c_cpu.label and c_gpu.key_frequencies == c_cpu.key_frequencies
    for name in ("accuracy", "gradient_symmetricity", "distance_irrelevance", "circularity", "pizza_template_fve"):
        assert getattr(c_gpu, name) == pytest.approx(getattr(c_cpu, name), abs=1e-4), name
    gpu = interp.load(FIXTURES / "clock.safetensors", device="cuda")
    assert gpu.W_E.device.type == "cuda"
    neu = probes.neurons(gpu)
    assert neu.maps.device.type == "cuda" and neu.cluster_sizes == probes.neurons(clock).cluster_sizes
    p_cpu = progress.run_progress(tiny_run)
    where, real = [], progress.stacked_measures
    monkeypatch.setattr(progress, "stacked_measures", lambda cfg, params, *a: (
        where.append(params["embed.W_E"].device.type), real(cfg, params, *a))[1])
    p_gpu = progress.run_progress(tiny_run, device="cuda")
    assert where and set(where) == {"cuda"}  # the snapshots were measured on the GPU
    assert p_gpu.test_loss.device.type == "cpu" and p_gpu.key_freqs == p_cpu.key_freqs
    assert torch.allclose(p_gpu.restricted_loss, p_cpu.restricted_loss, rtol=1e-3)
    html = interp.report.render(tiny_run, device="cuda").html
    assert "interp report" in html
