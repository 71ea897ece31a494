"""The fast-vs-published recipe comparison (labels, key frequencies, GS/DI on 5 seeds per preset),
as recorded in benchmarks/results/seed_table.jsonl by scripts/seed_table.py (minutes to hours of
training: `make bench` prints the record; the script's docstring has the commands to re-measure)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))


def run(quick: bool = False) -> list[tuple[str, str, str]]:
    import seed_table

    if not seed_table.LOG.exists():
        return [("recipes: fast vs published", "no record", f"run scripts/seed_table.py (writes {seed_table.LOG.name})")]
    lines = seed_table.table().splitlines()[2:]
    return [(f"recipes: {' '.join(c.strip() for c in line.split('|')[1:3])}", line.split("|")[4].strip(),
             "|".join(line.split("|")[5:-1]).strip()) for line in lines]


if __name__ == "__main__":
    for row in run():
        print(" | ".join(row))
