"""Fresh-process start-up: `interp --help` / `--version` (must not import torch), `import interp`
(lazy), and the imports `interp train` needs (torch, TransformerLens, interp.training)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

CASES = {
    "interp --help": ["-m", "interp.cli", "--help"],
    "interp --version": ["-m", "interp.cli", "--version"],
    "import interp": ["-c", "import interp"],
    "import torch": ["-c", "import torch"],
    "import transformer_lens": ["-c", "import transformer_lens"],
    # a submodule runs the package __init__ first (transformers, datasets, pandas): no lighter route
    "import transformer_lens.hook_points": ["-c", "import transformer_lens.hook_points"],
    "import interp.training (what train needs)": ["-c", "import interp.training, interp.cli"],
}


def fresh(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], capture_output=True, check=True)
    return time.perf_counter() - t0


def run(quick: bool = False) -> list[tuple[str, str, str]]:
    n = 1 if quick else 5
    rows = []
    for name, args in CASES.items():
        times = sorted(fresh(args) for _ in range(n))  # interleaving matters less than the page cache here
        rows.append((f"start-up: {name}", f"{statistics.median(times):.2f} s median",
                     f"{n} fresh processes, min {times[0]:.2f} s" + ("; target well under 1 s, no torch" if "--" in name else "")))
    return rows


if __name__ == "__main__":
    for row in run():
        print(" | ".join(row))
