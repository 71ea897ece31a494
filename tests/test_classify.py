"""classify(): the committed fixtures classify as what they are, the decision rule on planted
numbers, the result's dict/JSON, the CLI's exit codes, and bit-for-bit fixture regeneration."""

import dataclasses
import importlib
import importlib.util
import json
from pathlib import Path

from types import SimpleNamespace

import pytest

import interp
from interp.cli import main
from interp.errors import InterpError

C = importlib.import_module("interp.classifier")  # the module; the package re-exports its function classify

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def verdicts():
    return {name: C.classify(FIXTURES / f"{name}.safetensors") for name in ("clock", "pizza", "mixed", "non_generalizing")}


def test_fixtures_are_small():
    for f in FIXTURES.glob("*.safetensors"):
        assert f.stat().st_size < 300_000, f


def main_circles(v):
    return [c for c in v.circles if c.label != "accompanying"]


def test_clock_fixture_is_a_clock_circle_by_circle(verdicts):
    v = verdicts["clock"]
    assert v.label == "clock" and v.evidence["whole_model"] == "clock" and v.confidence == 1.0
    assert main_circles(v) and all(c.label == "clock" for c in main_circles(v))
    for c in main_circles(v):  # each clock circle alone: the correct logit ignores a - b
        assert c.distance_irrelevance >= C.CIRCLE_DI_CLOCK and c.clock_fve > c.pizza_fve
    assert v.gradient_symmetricity <= C.GS_CLOCK and v.distance_irrelevance >= C.DI_CLOCK


def test_pizza_fixture_is_a_pizza_circle_by_circle(verdicts):
    v = verdicts["pizza"]
    assert v.label == "pizza" and v.evidence["whole_model"] == "pizza" and v.confidence >= 0.75
    pizzas = [c for c in v.circles if c.label == "pizza"]
    assert len(pizzas) >= 2 and not any(c.label == "clock" for c in v.circles)
    for c in pizzas:
        assert c.distance_irrelevance <= C.CIRCLE_DI_PIZZA and c.pizza_fve > c.clock_fve
    assert v.gradient_symmetricity >= C.GS_PIZZA + 0.01  # not on the edge of the whole-model vote


def test_mixed_fixture_is_a_clock_with_a_pizza_circle_reported(verdicts):
    """The 'mixed' fixture (alpha 1, 800 steps) has a pizza circle beside two clocks; measured on their
    own contributions, the clocks carry ~4/5 of the push on the right answer: a clock with a minority
    pizza, as the authors' Model B, reported circle by circle but not the label."""
    v = verdicts["mixed"]
    labels = {c.label for c in v.circles}
    assert v.label == "clock" and not v.mixed and {"clock", "pizza"} <= labels
    share = C.algorithm_shares([(c.label, c.margin_share) for c in v.circles])
    assert 0.05 < share["pizza"] < C.MIXED_MIN_SHARE - 0.05 and share["clock"] > 0.5 + 0.05
    for c in v.circles:
        if c.label == "clock":
            assert c.distance_irrelevance >= C.CIRCLE_DI_CLOCK
        if c.label == "pizza":
            assert c.distance_irrelevance <= C.CIRCLE_DI_PIZZA and c.pizza_fve > c.clock_fve
    assert "pizza circles" not in v.explanation or "Clock:" in v.explanation


def test_non_generalizing_fixture_gets_no_algorithm_label(verdicts):
    v = verdicts["non_generalizing"]
    assert v.label == "non-generalizing" and v.accuracy < C.ACCURACY_MIN and v.circles == []
    assert "no algorithm label" in v.explanation


def test_results_carry_every_field_in_range(verdicts):
    for v in verdicts.values():
        assert v.label in C.LABELS and 0.0 <= v.confidence <= 1.0
        assert all(isinstance(k, int) for k in v.key_frequencies)
        assert [f.frequency for f in v.frequencies] == v.key_frequencies
        assert v.explanation and "\n" not in v.explanation
        assert "fixtures" in v.source
        for c in v.circles:
            assert c.label in C.CIRCLE_LABELS and c.frequency in v.key_frequencies
            assert 0 <= c.variance_share <= 1 and 0 <= c.accuracy <= 1 and 0 <= c.output_share <= 1
            assert (c.accompanies is not None) == (c.label == "accompanying")


def test_to_dict_and_json_have_the_same_fields(verdicts):
    v = verdicts["pizza"]
    d = v.to_dict()
    assert set(d) == {f.name for f in dataclasses.fields(C.Classification)}
    assert json.loads(v.to_json()) == json.loads(json.dumps(d))
    for name in ("gradient_symmetricity", "distance_irrelevance", "distance_irrelevance_max_wrong", "circularity",
                 "accuracy", "clock_template_fve", "pizza_template_fve", "key_frequencies", "label", "confidence"):
        assert d[name] == getattr(v, name)
    circle_fields = {"frequency", "label", "variance_share", "accuracy", "gradient_symmetricity", "distance_irrelevance",
                     "distance_irrelevance_max_wrong", "clock_fve", "pizza_fve", "output_frequency", "accompanies"}
    assert d["circles"] and all(circle_fields <= set(c) for c in d["circles"])
    assert "share of the evidence" in d["confidence_means"]


def test_classify_takes_a_loaded_model_and_a_run_directory(tmp_path, verdicts):
    model = interp.load(FIXTURES / "clock.safetensors")
    v = C.classify(model)
    assert v.label == "clock" and v.gradient_symmetricity == verdicts["clock"].gradient_symmetricity
    with pytest.raises(InterpError, match="config applies to checkpoint paths"):
        C.classify(model, config={"C": 23})
    with pytest.raises(InterpError, match="checkpoint path or an interp model"):
        C.classify(42)


# ---- the decision rule on planted votes ----------------------------------------------------------
def eq(x, y):
    return x[0] == y[0] and abs(x[1] - y[1]) < 1e-12


def test_agreeing_evidence_gives_the_label_and_confidence_is_its_share():
    assert C.decide(1.0, "pizza", [("pizza", 0.5), ("pizza", 0.3), ("pizza", 0.2)]) == ("pizza", 1.0)
    assert C.decide(1.0, "clock", [("clock", 0.6), ("clock", 0.4)]) == ("clock", 1.0)
    # the whole-model vote is half of the evidence: circles all pizza, whole model unclear
    assert C.decide(1.0, "unclear", [("pizza", 0.6), ("pizza", 0.4)])[0] == "ambiguous"  # 1/2 is not a majority
    # circles weigh by margin: a pizza circle carrying 70 %, unclear ones the rest
    assert eq(C.decide(1.0, "pizza", [("pizza", 0.7), ("unclear", 0.2), ("unclear", 0.1)]), ("pizza", 0.85))
    # most of the margin unclear: the pizza circle alone is no majority of the circles
    assert C.decide(1.0, "pizza", [("pizza", 0.4), ("unclear", 0.6)])[0] == "ambiguous"


def test_accompanying_circles_do_not_vote():
    authors_model_a = [("pizza", 0.35), ("pizza", 0.23), ("pizza", 0.39), ("accompanying", 0.0),
                       ("accompanying", 0.0), ("accompanying", 0.0)]
    assert C.decide(1.0, "pizza", authors_model_a) == ("pizza", 1.0)
    # an accompanying circle's margin (if any) does not count either
    assert C.decide(1.0, "pizza", [("pizza", 0.5), ("accompanying", 0.5)]) == ("pizza", 1.0)


def test_evidence_for_the_other_algorithm_makes_it_ambiguous():
    assert C.decide(1.0, "clock", [("pizza", 0.5), ("pizza", 0.5)])[0] == "ambiguous"  # circles pizza, GS/DI clock
    assert C.decide(1.0, "pizza", [("clock", 1.0)])[0] == "ambiguous"
    label, conf = C.decide(1.0, "unclear", [("unclear", 0.5), ("unclear", 0.5)])
    assert label == "ambiguous" and conf == 1.0  # nothing backs either algorithm
    assert C.decide(1.0, "pizza", [])[0] == "pizza"  # no circles: the whole-model vote alone
    assert C.decide(1.0, "unclear", [])[0] == "ambiguous"


def test_a_minority_circle_of_the_other_kind_is_reported_but_does_not_block_the_label():
    # the authors' Model B: clocks 13 and 16 carry 88 % of the margin, a pizza at 21 11 %
    model_b = [("clock", 0.56), ("clock", 0.32), ("accompanying", 0.0), ("pizza", 0.11)]
    label, conf = C.decide(1.0, "clock", model_b)
    assert label == "clock" and abs(conf - (0.88 / 0.99 + 1) / 2) < 1e-12
    below = 1 - C.MIXED_MIN_SHARE
    assert C.decide(1.0, "clock", [("clock", below + 0.01), ("pizza", C.MIXED_MIN_SHARE - 0.01)])[0] == "clock"


def test_clock_and_pizza_circles_each_carrying_enough_make_it_mixed_whatever_the_whole_model_says():
    for whole in ("clock", "pizza", "unclear"):
        assert C.decide(1.0, whole, [("clock", 0.5), ("pizza", 0.5)]) == ("mixed", 1.0)
        assert C.decide(1.0, whole, [("clock", 0.6), ("pizza", 0.4)])[0] == "mixed"
    assert eq(C.decide(1.0, "unclear", [("clock", 0.35), ("pizza", 0.35), ("unclear", 0.3), ("accompanying", 0)]),
              ("mixed", 0.7))
    # unclear circles count in the total: each algorithm below the share is not mixed
    assert C.decide(1.0, "unclear", [("clock", 0.3), ("pizza", 0.3), ("unclear", 0.4)])[0] == "ambiguous"


def test_low_accuracy_is_non_generalizing_whatever_the_votes():
    assert C.decide(0.85, "pizza", [("pizza", 1.0)]) == ("non-generalizing", 1.0)


def circle(**kw):
    base = dict(frequency=3, pizza_fve=0.99, clock_fve=0.77, distance_irrelevance=0.05, output_frequency=3,
                frequency_output_share=0.95)
    return SimpleNamespace(**{**base, **kw})


def test_circle_labels_on_planted_numbers():
    # the authors' Model A circles (REFERENCES §2): pizza 0.99 vs clock 0.77, DI 0.02-0.07
    assert C.circle_label(circle()) == ("pizza", None)
    # their Model B circles: DI 0.99-1.00, the clock template ahead
    assert C.circle_label(circle(pizza_fve=0.80, clock_fve=0.99, distance_irrelevance=0.99)) == ("clock", None)
    # a circle at 2k whose logits sit at k: accompanying, and it says which
    assert C.circle_label(circle(frequency=6, output_frequency=3, frequency_output_share=0.05,
                                 pizza_fve=0.02, clock_fve=0.01)) == ("accompanying", 3)
    # templates and DI disagree, or neither template fits: unclear
    assert C.circle_label(circle(distance_irrelevance=0.95))[0] == "unclear"
    assert C.circle_label(circle(pizza_fve=0.80, clock_fve=0.99, distance_irrelevance=0.3))[0] == "unclear"
    assert C.circle_label(circle(pizza_fve=0.45, clock_fve=0.30))[0] == "unclear"  # the pizza template fits poorly
    assert C.circle_label(circle(pizza_fve=0.90, clock_fve=0.89))[0] == "unclear"  # within the margin
    # a clock needs DI near 1 and the pizza template not clearly ahead; weak template fits are fine
    assert C.circle_label(circle(pizza_fve=0.42, clock_fve=0.44, distance_irrelevance=0.97))[0] == "clock"
    assert C.circle_label(circle(pizza_fve=0.78, clock_fve=0.69, distance_irrelevance=0.97))[0] == "unclear"


def test_whole_model_vote():
    assert C.whole_model_vote(0.994, 0.172) == "pizza"  # the authors' Model A (Table 1)
    assert C.whole_model_vote(0.994, 0.6) == "pizza"  # DI alone spreads widely across pizza seeds
    assert C.whole_model_vote(0.31, 0.85) == "clock"  # their Model B
    assert C.whole_model_vote(0.95, 0.85) == "unclear"
    assert C.whole_model_vote(0.5, 0.3) == "unclear"


def test_confidence_is_explained_for_the_cli_help():
    assert "share of the evidence" in C.CONFIDENCE_HELP and all(len(line) < 110 for line in C.CONFIDENCE_HELP.splitlines())


# ---- CLI ---------------------------------------------------------------------------------------
def test_cli_prints_the_verdict_and_exits_0(capsys):
    assert main(["classify", str(FIXTURES / "pizza.safetensors")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("pizza (confidence") and "gradient_symmetricity" in out and "Pizza: pizza circles carry" in out and "margin +0." in out


def test_cli_json_is_the_result_dict(capsys, verdicts):
    assert main(["classify", str(FIXTURES / "clock.safetensors"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["label"] == "clock" and d["gradient_symmetricity"] == verdicts["clock"].gradient_symmetricity


@pytest.mark.parametrize("args", [["missing.pt"], ["README.md"], ["tests/fixtures/clock.safetensors", "--config", "x.json"]])
def test_cli_bad_input_exits_2_with_one_line(capsys, args):
    assert main(["classify", *[str(ROOT / a) if i == 0 else a for i, a in enumerate(args)]]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("interp: error: ") and captured.err.count("\n") == 1


def test_cli_help_has_examples(capsys):
    with pytest.raises(SystemExit) as e:
        main(["classify", "--help"])
    assert e.value.code == 0
    assert "examples:" in capsys.readouterr().out


# ---- fixtures regenerate ------------------------------------------------------------------------
def test_pizza_fixture_regenerates(tmp_path, verdicts):
    """scripts/make_fixtures.py makes the committed pizza fixture: bit for bit on the CPU that made it
    (training is deterministic), and on another CPU the same verdict and key frequencies. Across CPUs
    the bits differ: MKL's kernels round differently and 300 steps at lr 1e-2 amplify the last bits
    (seen 2026-12-05: weights 11-32 % apart, the same pizza with the same circles)."""
    spec = importlib.util.spec_from_file_location("make_fixtures", ROOT / "scripts" / "make_fixtures.py")
    make_fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_fixtures)
    path = make_fixtures.make("pizza", tmp_path)
    again = make_fixtures.make("pizza", tmp_path / "again")
    assert path.read_bytes() == again.read_bytes()  # deterministic here
    if path.read_bytes() != (FIXTURES / "pizza.safetensors").read_bytes():
        v = C.classify(path)
        assert (v.label, v.key_frequencies) == (verdicts["pizza"].label, verdicts["pizza"].key_frequencies)


def test_cli_texts_for_the_classify_command(verdicts):
    assert C.CONFIDENCE_HELP in C.CLI_DESCRIPTION and "mixed" in C.CLI_DESCRIPTION
    lines = C.circle_lines(verdicts["pizza"])
    assert len(lines) == len(verdicts["pizza"].circles) and "accompanying" in lines[1] and "(output at 3)" in lines[1]


def test_a_clock_or_pizza_verdict_says_how_often_its_confidence_was_right(verdicts):
    from interp.reliability_bins import BINS

    v = verdicts["pizza"]
    lo, hi, right, total = next(b for b in BINS if b[0] <= v.confidence < b[1] or (b[1] == 1.0 and v.confidence == 1.0))
    assert v.reliability == C.reliability_note("pizza", v.confidence)
    assert (f"right in {right} of {total} runs" in v.reliability) if total else v.reliability.startswith("no calibration run")
    assert C.reliability_note("mixed", 1.0) == "" and verdicts["non_generalizing"].reliability == ""
