"""`dlrun --help` wall time: fresh processes, median of N, optionally against other checkouts (alternated).

    .venv/bin/python benchmarks/help_time.py --repeats 5 [--tree /path/to/other/checkout ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--tree", action="append", default=[], help="another checkout to time as well (repeatable)")
    a = ap.parse_args()
    trees = [str(ROOT), *a.tree]
    times = {t: [] for t in trees}
    for r in range(a.repeats):
        for tree in trees if r % 2 == 0 else trees[::-1]:
            env = {**os.environ, "PYTHONPATH": tree}
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "dlrun", "--help"], env=env, capture_output=True, check=True)
            times[tree].append(time.perf_counter() - start)
    for tree, ts in times.items():
        ratio = "" if tree == trees[0] else \
            "  this tree / it per round: " + " ".join(f"{m / t:.2f}" for m, t in zip(times[trees[0]], ts))
        print(f"{tree}: median {statistics.median(ts):.2f} s ({' '.join(f'{t:.2f}' for t in ts)}){ratio}")


if __name__ == "__main__":
    main()
