"""Tasks beyond a + b (interp.tasks): labels and valid pairs, discrete logs, the group view (an addition
model in group coordinates with the same logits), the config field, even-n metrics, and models of sub
and mul trained here, classified through their views."""

import json
import math

import pytest
import torch

import interp
import interp.cli
from helpers import assert_one_line_error, run_cli
from interp import checkpoints as ck
from interp import classifier as C
from interp import metrics as M
from interp import tasks
from interp.config import ModelConfig
from interp.data import all_pairs, all_tokens, labels_for, make_dataset, split
from interp.errors import ConfigError
from interp.model import Transformer
from interp.progress import ProgressError, measure

P = 13  # prime: every task is defined; the multiplicative group has order 12 (even)
ANSWER = {"add": lambda a, b, p: (a + b) % p, "sub": lambda a, b, p: (a - b) % p, "mul": lambda a, b, p: a * b % p,
          "div": lambda a, b, p: a * pow(b, p - 2, p) % p, "sq_sum": lambda a, b, p: (a * a + b * b) % p,
          "quad": lambda a, b, p: (a * a + a * b + b * b) % p}


def small(task: str, p: int = P, **kw) -> ModelConfig:
    return ModelConfig.with_width(16, **{**dict(p=p, task=task, eq_token=False, causal=False, biases="mlp"), **kw})


# ---- definitions -----------------------------------------------------------------------------------
@pytest.mark.parametrize("task", tasks.TASKS)
def test_labels_and_valid_pairs_follow_the_definitions(task):
    """Every label against the formula written out in Python integers (Fermat inverse for div); mul and
    div are defined on the nonzero residues only, the others on all p^2 pairs."""
    pairs = all_pairs(P)
    want = [ANSWER[task](a, b, P) for a, b in pairs.tolist()]
    got = labels_for(pairs, P, task)
    valid = tasks.valid_pairs(task, P)
    if task in ("mul", "div"):
        keep = [a * P + b for a, b in pairs.tolist() if a and b]
        assert valid.tolist() == keep
        assert got[valid].tolist() == [want[i] for i in keep] and 0 not in got[valid].tolist()
    else:
        assert valid is None and got.tolist() == want


def test_addition_data_and_split_are_unchanged():
    """The add split is the plain permutation of all p^2 indices it always was (Nanda's seed-598 split)."""
    tr, te = split(P, 0.3, 598)
    perm = torch.randperm(P * P, generator=torch.Generator().manual_seed(598))
    n = int(0.3 * P * P)
    assert torch.equal(tr, perm[:n]) and torch.equal(te, perm[n:])
    data = make_dataset(small("add"), 0.3, 598)
    assert torch.equal(data.train_labels, (tr // P + tr % P) % P)


@pytest.mark.parametrize("task", ["sub", "mul", "div", "quad"])
def test_split_covers_the_valid_pairs_once(task):
    cfg = small(task)
    data = make_dataset(cfg, 0.8, 1)
    both = torch.cat([data.train_idx, data.test_idx])
    valid = tasks.valid_pairs(task, P)
    expect = torch.arange(P * P) if valid is None else valid
    assert torch.equal(both.sort().values, expect) and len(data.train_idx) == int(0.8 * len(expect))
    pairs = all_pairs(P)[data.test_idx]
    assert data.test_labels.tolist() == [ANSWER[task](a, b, P) for a, b in pairs.tolist()]


@pytest.mark.parametrize("p", [3, 5, 7, 11, 13, 23, 59, 113])
def test_primitive_root_is_the_smallest_generator(p):
    g = tasks.primitive_root(p)
    order = lambda x: next(k for k in range(1, p) if pow(x, k, p) == 1)  # noqa: E731
    assert order(g) == p - 1 and all(order(x) < p - 1 for x in range(2, g))
    pw, log = tasks.powers(p), tasks.discrete_log(p)
    assert sorted(pw.tolist()) == list(range(1, p)) and log[0] == -1
    assert all(pw[log[a]] == a for a in range(1, p))


# ---- the group view ----------------------------------------------------------------------------------
@pytest.mark.parametrize("task", ["sub", "mul", "div"])
@pytest.mark.parametrize("layout", ["pizza", "nanda", "diff_vocab"])
def test_group_view_has_the_same_logits_reindexed(task, layout):
    """View logit [i, j, s] == the model's logit at (a[i], b[j]) for answer out[s], for every entry; and the
    view's own labels (i + j mod n) are the task's answers at those pairs."""
    kw = {"pizza": {}, "nanda": dict(eq_token=True, causal=True), "diff_vocab": dict(diff_vocab=True)}[layout]
    model = Transformer(small(task, **kw), seed=5).double()
    view = tasks.group_view(model)
    co = tasks.coordinates(task, P)
    n = view.cfg.p
    assert n == (P - 1 if task in ("mul", "div") else P) and view.cfg.task == "add"
    assert view.cfg.diff_vocab == (task != "mul" or layout == "diff_vocab")
    original = M.logit_table(model)
    got = M.logit_table(view)
    assert torch.equal(got, original[co.a[:, None], co.b[None, :]][..., co.out])
    i = torch.arange(n)
    pairs = torch.stack([co.a.repeat_interleave(n), co.b.repeat(n)], 1)
    assert torch.equal(co.out[(i[:, None] + i[None, :]).flatten() % n], labels_for(pairs, P, task))
    # the split's pair indices land on the same pairs in the view
    idx = tasks.valid_pairs(task, P)
    idx = torch.arange(P * P) if idx is None else idx
    vi = tasks.view_index(model.cfg, idx)
    assert torch.equal(co.a[vi // n] * P + co.b[vi % n], idx)


def test_group_view_leaves_add_and_the_quadratic_tasks_alone():
    for task in ("add", "sq_sum", "quad"):
        model = Transformer(small(task), seed=0)
        assert tasks.group_view(model) is model
    with pytest.raises(tasks.TaskError, match="no group"):
        tasks.coordinates("quad", P)


# ---- config ----------------------------------------------------------------------------------------
def test_task_round_trips_and_old_files_load_as_add(tmp_path):
    model = Transformer(small("div"), seed=1)
    ck.save_checkpoint(tmp_path / "m.safetensors", model, interp.TrainConfig(), 0, {})
    assert interp.load(tmp_path / "m.safetensors").cfg.task == "div"
    old = {k: v for k, v in small("add").to_dict().items() if k != "task"}  # written before tasks existed
    ck.save_tensors(tmp_path / "old.safetensors", {k: v for k, v in Transformer(small("add"), seed=1).state_dict().items()
                                                   if not k.endswith((".mask", ".IGNORE"))}, {"model_config": old})
    assert interp.load(tmp_path / "old.safetensors").cfg.task == "add"


@pytest.mark.parametrize("kw, needle", [(dict(task="mult"), "ModelConfig.task must be one of"),
                                        (dict(task="mul", p=15), "needs a prime p"),
                                        (dict(task="div", p=2), "needs a prime p")])
def test_bad_task_is_one_config_error_line(kw, needle):
    with pytest.raises(ConfigError) as e:
        ModelConfig(**kw)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_cli_task_flag_lists_choices_and_refuses_a_bad_one(capsys):
    with pytest.raises(SystemExit):
        interp.cli.main(["train", "--help"])
    assert "--task {add,sub,mul,div,sq_sum,quad}" in capsys.readouterr().out
    code, err = run_cli(["train", "--preset", "tiny", "--task", "mul", "--p", "15", "--steps", "1"], capsys)
    assert_one_line_error(code, err, "ModelConfig.task", "prime")


# ---- metrics at an even modulus (the multiplicative group's order p - 1) -------------------------------
def _cells(table, n):
    """M[s, d] by brute force: the mean correct logit of the pairs with a + b = s, a - b = d (mod n)."""
    cells = {}
    for a in range(n):
        for b in range(n):
            cells.setdefault(((a + b) % n, (a - b) % n), []).append(table[a, b, (a + b) % n].item())
    return {k: sum(v) / len(v) for k, v in cells.items()}


@pytest.mark.parametrize("n", [12, 13])
def test_distance_irrelevance_over_the_cells_that_exist(n):
    """DI against its definition over the (s, d) cells that hold pairs (all n^2 for odd n; s = d mod 2, two
    pairs each, for even n), on a random table: the population std over s per d, mean over d, over the
    std of all cells."""
    table = torch.randn(n, n, n, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    cells = _cells(table, n)
    assert len(cells) == (n * n if n % 2 else n * n // 2)
    by_d = {}
    for (s, d), v in cells.items():
        by_d.setdefault(d, []).append(v)
    std = lambda xs: math.sqrt(sum((x - sum(xs) / len(xs)) ** 2 for x in xs) / len(xs))  # noqa: E731
    want = sum(std(v) for v in by_d.values()) / len(by_d) / std(list(cells.values()))
    assert M.distance_irrelevance(table) == pytest.approx(want, rel=1e-12)


def test_even_n_clock_and_pizza_tables_score_as_such():
    """At n = 12 a logit that depends only on a + b has DI 1, one that depends on a - b DI 0; a clock
    template at the Nyquist frequency n/2 is explained fully by the in-band clock fit."""
    n = 12
    r = torch.arange(n, dtype=torch.float64)
    a, b, c = r[:, None, None], r[None, :, None], r[None, None, :]
    clock = torch.cos(2 * math.pi * 5 * (a + b - c) / n)
    assert M.distance_irrelevance(clock) == pytest.approx(1.0)
    assert M.distance_irrelevance(torch.cos(2 * math.pi * (a - b) / n) * (c == (a + b) % n)) == pytest.approx(0.0, abs=1e-12)
    nyquist = torch.cos(math.pi * (a + b - c))
    fit = M.template_fits(nyquist, [n // 2]).per_frequency[0]
    assert fit.clock_fve == pytest.approx(1.0) and fit.logit_share == pytest.approx(1.0)


# ---- quadratic tasks ---------------------------------------------------------------------------------
def test_quadratic_task_gets_not_defined_never_clock_or_pizza():
    model = Transformer(small("sq_sum"), seed=2)
    c = interp.classify(model)
    assert c.label == "not-defined" and c.label in C.LABELS and c.circles == []
    assert "not defined" in c.explanation and "accuracy" in c.explanation and "key frequencies" in c.explanation
    table = M.logit_table(model)
    want = (table.argmax(-1).flatten() == labels_for(all_pairs(P), P, "sq_sum")).double().mean().item()
    assert c.accuracy == want and math.isnan(c.gradient_symmetricity)
    with pytest.raises(ProgressError, match="group task"):
        measure(model, train_frac=0.8, data_seed=0)
