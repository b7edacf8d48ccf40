"""Which fast_fashion recipe reaches which test accuracy in how many epochs: a grid of variants of
`experiment=fast_fashion`, each a fresh `dlrun` process, several at a time, one table at the end.

Accuracy per epoch hardly depends on the device, so the grid can run on a GPU in minutes; the cost of a
recipe on two CPU cores is then measured here (benchmarks/time_to_accuracy.py). Each variant is a name and
its overrides on top of the preset:

    python benchmarks/recipe_grid.py --device cuda --data-root DIR --parallel 4
    python benchmarks/recipe_grid.py --device cpu --only w16_e8      # one variant, on this machine
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

W16, W24, W32 = "model.widths=[16,32,64]", "model.widths=[24,48,96]", "model.widths=[32,64,128]"
ST = "model.downsample=stride"
GRID = {
    "st32_e8": [W32, ST, "trainer.max_epochs=8"],
    "st32_e10": [W32, ST, "trainer.max_epochs=10"],
    "st32_h128_e10": [W32, ST, "model.hidden=[128]", "trainer.max_epochs=10"],
    "st32_h128_e12": [W32, ST, "model.hidden=[128]", "trainer.max_epochs=12"],
    "st32_h256_e10": [W32, ST, "model.hidden=[256]", "trainer.max_epochs=10"],
    "st32_h256_b512_e10": [W32, ST, "model.hidden=[256]", "data.batch_size=512", "optimizer.lr=0.2", "trainer.max_epochs=10"],
    "st32_h256_b512_e12": [W32, ST, "model.hidden=[256]", "data.batch_size=512", "optimizer.lr=0.2", "trainer.max_epochs=12"],
    "st32_h256_b512_lr01_e12": [W32, ST, "model.hidden=[256]", "data.batch_size=512", "trainer.max_epochs=12"],
    "st48_e6": ["model.widths=[48,96,192]", ST, "trainer.max_epochs=6"],
    "st32x2_e5": [W32, ST, "model.convs_per_stage=2", "trainer.max_epochs=5"],
    "w16_e8": [W16, "trainer.max_epochs=8"],
    "w16_e10": [W16, "trainer.max_epochs=10"],
    "w16_e12": [W16, "trainer.max_epochs=12"],
    "w16_h128_e8": [W16, "model.hidden=[128]", "trainer.max_epochs=8"],
    "w16_h128_e10": [W16, "model.hidden=[128]", "trainer.max_epochs=10"],
    "w16_h256_e10": [W16, "model.hidden=[256]", "trainer.max_epochs=10"],
    "w16_h128_e12": [W16, "model.hidden=[128]", "trainer.max_epochs=12"],
    "w16_h128_b512_e10": [W16, "model.hidden=[128]", "data.batch_size=512", "optimizer.lr=0.2", "trainer.max_epochs=10"],
    "w16_h128_lr05_e10": [W16, "model.hidden=[128]", "optimizer.lr=0.05", "trainer.max_epochs=10"],
    "w16_h128_do_e10": [W16, "model.hidden=[128]", "model.dropout=0.2", "trainer.max_epochs=10"],
    "w16_h128_noflip_e10": [W16, "model.hidden=[128]", "data.augment=[]", "trainer.max_epochs=10"],
    "w24_e6": [W24, "trainer.max_epochs=6"],
    "w24_e8": [W24, "trainer.max_epochs=8"],
    "w24_h128_e6": [W24, "model.hidden=[128]", "trainer.max_epochs=6"],
    "w24_h128_e8": [W24, "model.hidden=[128]", "trainer.max_epochs=8"],
    "w32_e4": [W32, "trainer.max_epochs=4"],
    "w32_e6": [W32, "trainer.max_epochs=6"],
    "w32_h128_e5": [W32, "model.hidden=[128]", "trainer.max_epochs=5"],
    "w16x2_e6": [W16, "model.convs_per_stage=2", "trainer.max_epochs=6"],
    "w16x2_h128_e8": [W16, "model.convs_per_stage=2", "model.hidden=[128]", "trainer.max_epochs=8"],
}


def run(name: str, overrides: list[str], a, out: Path, seed: int) -> dict:
    run_dir = out / f"{name}_s{seed}"
    cmd = [sys.executable, "-m", "dlrun", "experiment=fast_fashion", *overrides, f"trainer.device={a.device}",
           f"data.root={a.data_root}", f"seed={seed}", "trainer.progress=none", f"hydra.run.dir={run_dir}"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        return {"name": name, "seed": seed, "error": (done.stderr or done.stdout).strip().splitlines()[-1:]}
    summary = json.loads((run_dir / "summary.json").read_text())
    vals = [json.loads(line).get("val/acc") for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {"name": name, "seed": seed, "epochs": len(vals), "val": [round(v, 4) for v in vals if v is not None],
            "test": (summary.get("test") or {}).get("test/acc"), "train_s": sum(json.loads(line).get("time_s", 0) for line in (run_dir / "metrics.jsonl").read_text().splitlines()), "wall": wall}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--data-root", default=str(ROOT / "data"))
    ap.add_argument("--parallel", type=int, default=1)
    ap.add_argument("--seeds", default="0", help="comma-separated seeds: each variant runs once per seed")
    ap.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    ap.add_argument("--out", default=str(ROOT / "outputs" / "recipe_grid"))
    a = ap.parse_args(argv)
    names = [n for n in GRID if not a.only or n in a.only.split(",")]
    out = Path(a.out) / time.strftime("%Y%m%d-%H%M%S")
    with ThreadPoolExecutor(a.parallel) as pool:
        jobs = [(n, int(seed)) for n in names for seed in a.seeds.split(",")]
        rows = list(pool.map(lambda job: run(job[0], GRID[job[0]], a, out, job[1]), jobs))
    print(f"{'variant':22s} {'seed':>4s} {'epochs':>6s} {'test/acc':>8s} {'best val':>8s} {'train s':>7s} {'wall s':>7s}")
    for r in rows:
        if "error" in r:
            print(f"{r['name']:22s} {r['seed']:4d} error: {r['error']}")
            continue
        print(f"{r['name']:22s} {r['seed']:4d} {r['epochs']:6d} {r['test'] or float('nan'):8.4f} {max(r['val']):8.4f} {r['train_s']:7.1f} {r['wall']:7.1f}")
    (out / "grid.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
