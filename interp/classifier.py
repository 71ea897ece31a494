"""Clock, pizza, or neither? `classify(checkpoint_or_model)` -> Classification.

Two independent lines of evidence (Zhong et al. 2023, REFERENCES §2), each voting clock, pizza
or unclear:
  1. gradient symmetricity (GS) and distance irrelevance (DI), the paper's two numbers;
  2. logit templates: does the pizza template |cos(w(a-b)/2)| cos(w(a+b-c)) or the clock
     template cos(w(a+b-c)) explain more of the logits, at the key frequencies jointly.
The label is clock or pizza only when both lines vote for it and no key frequency carries a
substantial circuit of the other kind; otherwise "ambiguous". A model below ACCURACY_MIN on all
p^2 pairs is "non-generalizing" and gets no algorithm label. Thresholds and the runs that set
them: docs/calibration.md.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from interp import metrics as M
from interp.errors import InterpError

LABELS = ("clock", "pizza", "ambiguous", "non-generalizing")

# Accuracy over all p^2 pairs (train included). A memoriser scores about the train fraction (0.8 in
# the Clock/Pizza setup), so the bar must sit well above it; every calibration run that reached test
# accuracy 1.0 scores 1.0 here.
ACCURACY_MIN = 0.99
# Line 1, GS and DI. Pizza: GS >= GS_PIZZA and DI <= DI_PIZZA; clock: GS <= GS_CLOCK and DI >= DI_CLOCK.
GS_PIZZA, DI_PIZZA = 0.98, 0.5
GS_CLOCK, DI_CLOCK = 0.9, 0.5
# Line 2, templates: r = (pizza_fve - clock_fve) / max(both). An exact pizza has r = 1 - 8/pi^2 = +0.19,
# an exact clock -0.19. Vote when |r| >= TEMPLATE_MARGIN and the better template explains at least
# TEMPLATE_FVE_MIN of the logits.
TEMPLATE_MARGIN, TEMPLATE_FVE_MIN = 0.05, 0.5
# Per-frequency labels count for frequencies carrying at least this share of the logit variance.
FREQUENCY_SHARE_MIN = 0.05
IDEAL_R = 1 - 8 / math.pi**2  # template r of an exact pizza (an exact clock: -IDEAL_R)


@dataclass
class FrequencyVerdict:
    frequency: int
    logit_share: float  # fraction of the logit variance at this output frequency
    clock_fve: float  # in-band template fits (see metrics.template_fits)
    pizza_fve: float
    label: str  # clock, pizza, or unclear


@dataclass
class Classification:
    """A verdict with the numbers behind it. `to_dict()` / `to_json()` hold the same fields."""

    label: str
    confidence: float  # distance to the nearest threshold that would change the label, scaled to [0, 1]
    explanation: str
    accuracy: float
    gradient_symmetricity: float
    distance_irrelevance: float
    distance_irrelevance_max_wrong: float
    circularity: float
    clock_template_fve: float
    pizza_template_fve: float
    pizza_exact_template_fve: float
    key_frequencies: list[int]
    key_frequency_source: str  # "embedding" (W_E) or "logits" (their output frequencies), or "none"
    frequencies: list[FrequencyVerdict]
    mixed: bool  # some key frequencies look like clocks and others like pizzas
    evidence: dict[str, str]  # line of evidence -> its vote
    model: dict  # p, d_model, attn_rate, ... of the model classified
    source: str | None = None  # the checkpoint path and format, when classified from a file

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)


def _vote_gs_di(gs: float, di: float) -> str:
    if gs >= GS_PIZZA and di <= DI_PIZZA:
        return "pizza"
    if gs <= GS_CLOCK and di >= DI_CLOCK:
        return "clock"
    return "unclear"


def _ratio(pizza: float, clock: float) -> float:
    """(pizza - clock) / the larger: +0.19 for an exact pizza, -0.19 for an exact clock."""
    top = max(pizza, clock)
    return (pizza - clock) / top if top > 0 else 0.0


def _vote_templates(pizza: float, clock: float) -> str:
    r = _ratio(pizza, clock)
    if max(pizza, clock) < TEMPLATE_FVE_MIN or abs(r) < TEMPLATE_MARGIN:
        return "unclear"
    return "pizza" if r > 0 else "clock"


def criteria(label: str, gs: float, di: float, fits: M.TemplateFits) -> list[float]:
    """Margins of every criterion `label` ("clock" or "pizza") needs; each is met when >= 0, in units
    of the span from its threshold to the value an ideal circuit reaches (1 = ideal)."""
    sign = 1 if label == "pizza" else -1
    span = IDEAL_R - TEMPLATE_MARGIN
    if label == "pizza":
        out = [(gs - GS_PIZZA) / (1 - GS_PIZZA), (DI_PIZZA - di) / DI_PIZZA]
    else:
        out = [(GS_CLOCK - gs) / GS_CLOCK, (di - DI_CLOCK) / (1 - DI_CLOCK)]
    out.append((sign * _ratio(fits.pizza, fits.clock) - TEMPLATE_MARGIN) / span)
    out.append((max(fits.pizza, fits.clock) - TEMPLATE_FVE_MIN) / (1 - TEMPLATE_FVE_MIN))
    # no key frequency carrying a real share of the logits may vote for the other algorithm
    out += [(sign * _ratio(f.pizza_fve, f.clock_fve) + TEMPLATE_MARGIN) / span
            for f in fits.per_frequency if f.logit_share >= FREQUENCY_SHARE_MIN and max(f.pizza_fve, f.clock_fve) >= TEMPLATE_FVE_MIN]
    return out


def decide(acc: float, gs: float, di: float, fits: M.TemplateFits) -> tuple[str, float]:
    """(label, confidence). Confidence: distance to the nearest threshold that would change the label,
    in the criteria's units, clipped to [0, 1]. For "ambiguous" it is the smallest, over clock and
    pizza, of the largest shortfall that keeps the model from that label."""
    acc_margin = (acc - ACCURACY_MIN) / (1 - ACCURACY_MIN)
    if acc < ACCURACY_MIN:
        return "non-generalizing", min(1.0, -acc_margin)
    margins = {label: criteria(label, gs, di, fits) for label in ("clock", "pizza")}
    for label, ms in margins.items():
        if min(ms) >= 0:
            return label, max(0.0, min(1.0, acc_margin, *ms))
    return "ambiguous", min(1.0, *(-min(ms) for ms in margins.values()))


def classify_model(model) -> Classification:
    """Classify a loaded model (see module doc)."""
    from interp.fourier import key_frequencies

    cfg = model.cfg
    table = M.logit_table(model)  # [p, p, p]
    acc = M.accuracy(table)
    gs = M.gradient_symmetricity(model)
    di = M.distance_irrelevance(table)
    di_wrong = M.distance_irrelevance(table, "max_wrong")
    circ = M.circularity(model)
    keys, key_source = key_frequencies(model), "embedding"
    if not keys:  # an embedding without a clear sparse spectrum: use where the logits live in c
        keys, key_source = key_frequencies(table.permute(2, 0, 1).reshape(cfg.p, -1)), "logits"
    key_source = key_source if keys else "none"
    fits = M.template_fits(table, keys)
    freqs = [FrequencyVerdict(f.frequency, f.logit_share, f.clock_fve, f.pizza_fve,
                              _vote_templates(f.pizza_fve, f.clock_fve) if f.logit_share >= FREQUENCY_SHARE_MIN else "unclear")
             for f in fits.per_frequency]
    evidence = {"gs_di": _vote_gs_di(gs, di), "templates": _vote_templates(fits.pizza, fits.clock)}
    label, confidence = decide(acc, gs, di, fits)
    result = Classification(
        label=label, confidence=round(confidence, 4), explanation="",
        accuracy=acc, gradient_symmetricity=gs, distance_irrelevance=di, distance_irrelevance_max_wrong=di_wrong,
        circularity=circ, clock_template_fve=fits.clock, pizza_template_fve=fits.pizza,
        pizza_exact_template_fve=fits.pizza_exact, key_frequencies=keys, key_frequency_source=key_source,
        frequencies=freqs, mixed={"clock", "pizza"} <= {f.label for f in freqs}, evidence=evidence,
        model={k: v for k, v in cfg.to_dict().items() if k in ("p", "d_model", "n_heads", "d_mlp", "n_layers", "attn_rate", "eq_token")},
        source=getattr(model, "source_format", None),
    )
    result.explanation = explain(result)
    return result


def explain(c: Classification) -> str:
    """One or two sentences: the verdict and the numbers that decided it."""
    acc = f"accuracy {c.accuracy:.3f} on all pairs"
    if c.label == "non-generalizing":
        return f"Does not solve the task ({acc}, below {ACCURACY_MIN}): no algorithm label."
    numbers = (f"GS {c.gradient_symmetricity:.2f}, DI {c.distance_irrelevance:.2f} -> {c.evidence['gs_di']}; "
               f"templates pizza {c.pizza_template_fve:.2f} vs clock {c.clock_template_fve:.2f} FVE -> "
               f"{c.evidence['templates']}")
    if c.label in ("clock", "pizza"):
        return f"{c.label.capitalize()}: both lines agree ({numbers}); {acc}."
    votes = set(c.evidence.values())
    if c.mixed:
        by = lambda lab: ", ".join(str(f.frequency) for f in c.frequencies if f.label == lab)  # noqa: E731
        why, numbers = "key frequencies run different circuits", f"{numbers}; clocks at {by('clock')}, pizzas at {by('pizza')}"
    elif votes == {"unclear"}:
        why = "neither line is conclusive"
    elif "unclear" in votes:
        why = "a line is inconclusive"
    else:
        why = "the lines disagree"
    return f"Ambiguous: {why} ({numbers}); {acc}."


def classify(checkpoint_or_model, config=None) -> Classification:
    """Classify a model, or a checkpoint given by path (ours, a run directory, or a foreign file
    with an optional `config`: JSON path, dict or ModelConfig)."""
    if isinstance(checkpoint_or_model, (str, Path)):
        from interp.formats import load

        model = load(checkpoint_or_model, config)
        result = classify_model(model)
        fmt = getattr(model, "source_format", None)
        result.source = f"{checkpoint_or_model}" + (f" ({fmt})" if fmt else "")
        return result
    if config is not None:
        raise InterpError("config applies to checkpoint paths; a loaded model already has its config")
    if not hasattr(checkpoint_or_model, "cfg") or not hasattr(checkpoint_or_model, "last_logits"):
        raise InterpError(f"classify needs a checkpoint path or an interp model, got {type(checkpoint_or_model).__name__}")
    return classify_model(checkpoint_or_model)
