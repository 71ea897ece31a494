"""How strong tests/test_devices.py is: remove each device argument that a change added to the analyses,
one at a time, and run the device tests; each removal should make them fail.

    OMP_NUM_THREADS=1 python tests/helpers/device_mutations.py [BASE]   # BASE: the commit before the change

Removals it makes: `, device=X` and a last positional device argument (`, dev)`, `, L.device)`, ...),
`.to(dev)`, and `with torch.device(...):` (replaced by `if True:`). Prints caught / SURVIVED for each and
restores every file. A survivor is a tensor the default-device trick cannot see (made on the CPU on
purpose and then moved): only a run on a real GPU can tell whether it matters.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FILES = ["interp/fourier.py", "interp/metrics.py", "interp/circles.py", "interp/probes.py", "interp/progress.py",
         "interp/batched.py", "interp/data.py", "interp/classifier.py", "interp/report.py"]
ARG = re.compile(r", device=(?!None)[\w.()\"]+?(?=[,)])|, (dev|device|[\w.]+\.device|device_of\(model\))(?=\))|\.to\((dev|out\.device)\)")
WITH = re.compile(r"with torch\.device\([^)]*\):")


def added_lines(base: str) -> dict[str, set[str]]:
    diff = subprocess.run(["git", "diff", "-U0", base, "HEAD", "--", *FILES], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout
    out, f = {}, None
    for line in diff.splitlines():
        if line.startswith("+++ b/"):
            f = line[6:]
        elif line.startswith("+") and not line.startswith("+++"):
            out.setdefault(f, set()).add(line[1:])
    return out


def tests_fail() -> bool:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    r = subprocess.run([sys.executable, "-m", "pytest", "tests/test_devices.py", "-q", "-x", "-p", "no:cacheprovider"],
                       cwd=ROOT, capture_output=True, text=True, env=env)
    return r.returncode != 0


def main(base: str = "fb315c8") -> int:
    caught = total = 0
    for f, new in added_lines(base).items():
        path = ROOT / f
        orig = path.read_text()
        lines = orig.split("\n")
        try:
            for i, line in enumerate(lines):
                if line not in new or line.lstrip().startswith(("def ", "#")):
                    continue
                mutants = [line[:m.start()] + line[m.end():] for m in ARG.finditer(line)]
                mutants += [WITH.sub("if True:", line)] if WITH.search(line) else []
                for mutant in mutants:
                    path.write_text("\n".join(lines[:i] + [mutant] + lines[i + 1:]))
                    hit = tests_fail()
                    caught, total = caught + hit, total + 1
                    print(f"{'caught  ' if hit else 'SURVIVED'} {f}:{i + 1}: {line.strip()}", flush=True)
        finally:
            path.write_text(orig)
    print(f"{caught} of {total} removals caught")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
