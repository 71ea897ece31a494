"""Placeholder until `python scripts/calibrate.py table` generates this module."""

BINS: list = []


def reliability_note(label: str, confidence: float) -> str:
    return ""
