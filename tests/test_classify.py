"""classify(): the committed fixtures classify as what they are, the decision rule on planted
numbers, the result's dict/JSON, the CLI's exit codes, and bit-for-bit fixture regeneration."""

import dataclasses
import importlib
import importlib.util
import json
from pathlib import Path

import pytest

import interp
from interp.cli import main
from interp.errors import InterpError
from interp.metrics import FrequencyFit, TemplateFits

C = importlib.import_module("interp.classifier")  # the module; the package re-exports its function classify

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def verdicts():
    return {name: C.classify(FIXTURES / f"{name}.safetensors") for name in ("clock", "pizza", "non_generalizing")}


def test_fixtures_are_small():
    for f in FIXTURES.glob("*.safetensors"):
        assert f.stat().st_size < 300_000, f


def test_clock_fixture_is_a_clock(verdicts):
    v = verdicts["clock"]
    assert v.label == "clock" and v.evidence == {"gs_di": "clock", "templates": "clock"}
    assert v.gradient_symmetricity < C.GS_CLOCK and v.distance_irrelevance > C.DI_CLOCK
    assert v.clock_template_fve > v.pizza_template_fve
    assert all(f.label != "pizza" for f in v.frequencies)


def test_pizza_fixture_is_a_pizza(verdicts):
    v = verdicts["pizza"]
    assert v.label == "pizza" and v.evidence == {"gs_di": "pizza", "templates": "pizza"}
    assert v.gradient_symmetricity > C.GS_PIZZA and v.distance_irrelevance < C.DI_PIZZA
    assert v.pizza_template_fve > v.clock_template_fve and v.pizza_exact_template_fve > v.clock_template_fve
    assert all(f.label != "clock" for f in v.frequencies)


def test_non_generalizing_fixture_gets_no_algorithm_label(verdicts):
    v = verdicts["non_generalizing"]
    assert v.label == "non-generalizing" and v.accuracy < C.ACCURACY_MIN
    assert "no algorithm label" in v.explanation


def test_results_carry_every_field_in_range(verdicts):
    for v in verdicts.values():
        assert v.label in C.LABELS and 0.0 <= v.confidence <= 1.0
        assert all(isinstance(k, int) for k in v.key_frequencies)
        assert [f.frequency for f in v.frequencies] == v.key_frequencies
        assert v.explanation and "\n" not in v.explanation
        assert "fixtures" in v.source


def test_to_dict_and_json_have_the_same_fields(verdicts):
    v = verdicts["pizza"]
    d = v.to_dict()
    assert set(d) == {f.name for f in dataclasses.fields(C.Classification)}
    assert json.loads(v.to_json()) == json.loads(json.dumps(d))
    for name in ("gradient_symmetricity", "distance_irrelevance", "distance_irrelevance_max_wrong", "circularity",
                 "accuracy", "clock_template_fve", "pizza_template_fve", "key_frequencies", "label", "confidence"):
        assert d[name] == getattr(v, name)


def test_classify_takes_a_loaded_model_and_a_run_directory(tmp_path, verdicts):
    model = interp.load(FIXTURES / "clock.safetensors")
    v = C.classify(model)
    assert v.label == "clock" and v.gradient_symmetricity == verdicts["clock"].gradient_symmetricity
    with pytest.raises(InterpError, match="config applies to checkpoint paths"):
        C.classify(model, config={"C": 23})
    with pytest.raises(InterpError, match="checkpoint path or an interp model"):
        C.classify(42)


# ---- the decision rule on planted numbers --------------------------------------------------------
def fits(pizza: float, clock: float, per_freq=()) -> TemplateFits:
    return TemplateFits([k for k, *_ in per_freq], clock, pizza, pizza, [FrequencyFit(*f) for f in per_freq])


def test_two_agreeing_lines_give_the_label():
    assert C.decide(1.0, 0.99, 0.2, fits(0.95, 0.78))[0] == "pizza"
    assert C.decide(1.0, 0.3, 0.85, fits(0.8, 0.98))[0] == "clock"


def test_disagreeing_lines_give_ambiguous_not_a_coin_toss():
    assert C.decide(1.0, 0.99, 0.2, fits(0.8, 0.98))[0] == "ambiguous"  # GS/DI pizza, templates clock
    assert C.decide(1.0, 0.3, 0.85, fits(0.95, 0.78))[0] == "ambiguous"  # GS/DI clock, templates pizza
    assert C.decide(1.0, 0.95, 0.5, fits(0.95, 0.78))[0] == "ambiguous"  # GS/DI inconclusive
    assert C.decide(1.0, 0.99, 0.2, fits(0.90, 0.88))[0] == "ambiguous"  # templates inconclusive
    assert C.decide(1.0, 0.99, 0.2, fits(0.40, 0.30))[0] == "ambiguous"  # templates fit poorly


def test_a_key_frequency_running_the_other_circuit_makes_it_ambiguous():
    mixed = fits(0.95, 0.82, [(3, 0.7, 0.80, 0.99), (7, 0.3, 0.99, 0.81)])
    assert C.decide(1.0, 0.99, 0.2, mixed)[0] == "ambiguous"
    minor = fits(0.95, 0.82, [(3, 0.97, 0.80, 0.99), (7, 0.03, 0.99, 0.81)])  # below FREQUENCY_SHARE_MIN
    assert C.decide(1.0, 0.99, 0.2, minor)[0] == "pizza"


def test_low_accuracy_is_non_generalizing_whatever_the_metrics_say():
    label, conf = C.decide(0.85, 0.99, 0.2, fits(0.95, 0.78))
    assert label == "non-generalizing" and conf == 1.0


def test_confidence_grows_with_distance_from_the_thresholds():
    near = C.decide(1.0, C.GS_PIZZA + 0.001, 0.2, fits(0.95, 0.78))
    far = C.decide(1.0, 0.999, 0.2, fits(0.95, 0.78))
    assert near[0] == far[0] == "pizza" and 0 <= near[1] < 0.1 < far[1] <= 1
    torn = C.decide(1.0, 0.99, 0.1, fits(0.78, 0.98))  # strongly pizza by GS/DI, strongly clock by templates
    barely = C.decide(1.0, C.GS_PIZZA - 0.001, 0.2, fits(0.95, 0.78))
    assert torn[0] == barely[0] == "ambiguous" and barely[1] < 0.1 < torn[1] <= 1


# ---- CLI ---------------------------------------------------------------------------------------
def test_cli_prints_the_verdict_and_exits_0(capsys):
    assert main(["classify", str(FIXTURES / "pizza.safetensors")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("pizza (confidence") and "gradient_symmetricity" in out and "Pizza: both lines agree" in out


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


# ---- fixtures regenerate bit for bit -----------------------------------------------------------
def test_pizza_fixture_regenerates_bit_for_bit(tmp_path):
    spec = importlib.util.spec_from_file_location("make_fixtures", ROOT / "scripts" / "make_fixtures.py")
    make_fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_fixtures)
    path = make_fixtures.make("pizza", tmp_path)
    assert path.read_bytes() == (FIXTURES / "pizza.safetensors").read_bytes()
