"""Time to accuracy: whole-command wall time and training seconds to each validation-accuracy threshold.

    .venv/bin/python benchmarks/time_to_accuracy.py --runs 3 -- experiment=fast_fashion
    .venv/bin/python benchmarks/time_to_accuracy.py --runs 1 --label default --

Each run is a fresh `python -m dlrun OVERRIDES seed=S` process (seeds 1..N). "seconds to 0.90" is the
training time (the sum of metrics.jsonl's per-epoch `time_s`, validation included) up to the end of the
first epoch whose val/acc reaches 0.90; "whole command" is the process's wall time, start-up and test
included. Prints one markdown row per run and the median/spread of the wall time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

THRESHOLDS = (0.88, 0.90, 0.92, 0.925)


def seconds_to(rows: list[dict], threshold: float) -> float | None:
    elapsed = 0.0
    for row in rows:
        elapsed += row["time_s"]
        if row["val/acc"] >= threshold:
            return elapsed
    return None


def one_run(overrides: list[str], seed: int, folder: Path) -> dict:
    cmd = [sys.executable, "-m", "dlrun", *overrides, f"seed={seed}", f"hydra.run.dir={folder}",
           "trainer.progress=none"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((folder / "summary.json").read_text())
    return {"seed": seed, "wall": wall, "rows": rows, "test": summary["test"].get("test/acc"),
            "best": max(r["val/acc"] for r in rows)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--label", default=None, help="the run column's name (default: the overrides)")
    ap.add_argument("overrides", nargs="*", help="dlrun overrides (after --)")
    a = ap.parse_args(argv)
    label = a.label or " ".join(a.overrides) or "default"
    print("| run | seed | " + " | ".join(f"s to {t}" for t in THRESHOLDS) + " | best val/acc | test/acc | whole command |")
    print("|---|---:|" + "---:|" * len(THRESHOLDS) + "---:|---:|---:|")
    walls = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, a.runs + 1):
            r = one_run(a.overrides, seed, Path(tmp) / f"run{seed}")
            walls.append(r["wall"])
            cells = [f"{s:.1f}" if (s := seconds_to(r["rows"], t)) is not None else "-" for t in THRESHOLDS]
            print(f"| `{label}` | {seed} | " + " | ".join(cells) + f" | {r['best']:.4f} | {r['test']:.4f} | "
                  f"{r['wall']:.1f} s |", flush=True)
    if len(walls) > 1:
        print(f"\nwhole command: median {statistics.median(walls):.1f} s, min {min(walls):.1f}, max {max(walls):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
