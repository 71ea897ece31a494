"""How often `classify`'s clock / pizza labels were right in the calibration sweep, by confidence: the table
is interp/reliability_bins.py, generated with docs/calibration.md by `python scripts/calibrate.py table`."""

from interp.reliability_bins import BINS


def reliability_note(label: str, confidence: float) -> str:
    """One line for a clock / pizza label: how often labels at this confidence were right in calibration."""
    if label not in ("clock", "pizza"):
        return ""
    for lo, hi, right, total in BINS:
        if lo <= confidence < hi or (hi == 1.0 and confidence == 1.0):
            if not total:
                return f"no calibration run had a clock / pizza label at confidence {lo:.2f}-{hi:.2f}"
            return (f"in calibration, clock / pizza labels at confidence {lo:.2f}-{hi:.2f} were right in {right} "
                    f"of {total} runs (docs/calibration.md)")
    return ""
