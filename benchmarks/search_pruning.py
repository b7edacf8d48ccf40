"""What pruning saves on a real search: the same Optuna search with the median pruner and without.

Runs `hparams_search=mlp data=digits monitor=val/loss` twice per seed (pruner=median, pruner=none),
then prints trials, epochs trained, time in the jobs, the whole search's time and the best value,
and draws every trial's val/loss curve (pruned trials end early) into search_pruning.png.

    .venv/bin/python benchmarks/search_pruning.py [--seeds 42 1] [--trials 16] [--epochs 10] [--out DIR]
    .venv/bin/python benchmarks/search_pruning.py --draw-only --out DIR    # from the folders of an earlier run
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

import dlrun
from dlrun.results.plots import plt, save_figure

SEARCH = ["hparams_search=mlp", "data=digits", "monitor=val/loss", "callbacks=none", "trainer.progress=none",
          "trainer.num_threads=1"]


def measure(sweep: Path, seconds: float | None) -> dict:
    jobs = [json.loads(p.read_text()) for p in sweep.glob("*/summary.json")]
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    return {"trials": len(jobs), "pruned": sum(j["status"] == "pruned" for j in jobs),
            "epochs": sum(j["epochs"] for j in jobs), "job_s": sum(j["duration_s"] for j in jobs),
            "search_s": seconds, "best": results["best_value"]}


def draw(sweeps: dict[str, Path], path: Path) -> None:
    fig, axes = plt.subplots(1, len(sweeps), figsize=(5 * len(sweeps), 3.6), dpi=100, sharey=True)
    for ax, (name, sweep) in zip(axes, sweeps.items()):
        for job in sorted(sweep.glob("*/metrics.jsonl")):
            rows = [json.loads(line) for line in job.read_text().splitlines()]
            pruned = json.loads((job.parent / "summary.json").read_text())["status"] == "pruned"
            ax.plot([r["epoch"] for r in rows], [r["val/loss"] for r in rows], color="C3" if pruned else "C0",
                    alpha=0.8, lw=1, marker="x" if pruned else None, markevery=[-1])
        m = measure(sweep, None)
        ax.set_title(f"{name}: {m['trials']} trials, {m['epochs']} epochs, best {m['best']:.4f}", fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
    axes[0].set_ylabel("val/loss (red: pruned)")
    fig.tight_layout()
    save_figure(fig, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 1])
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--out", type=Path, default=Path("outputs/search_pruning"))
    p.add_argument("--draw-only", action="store_true")
    args = p.parse_args()
    print("| seed | pruner | trials (pruned) | epochs trained | time in jobs | whole search | best val/loss |")
    print("|---|---|---|---|---|---|---|")
    for seed in args.seeds:
        sweeps = {}
        for pruner in ("median", "none"):
            sweep = args.out / f"{pruner}-seed{seed}"
            seconds = None
            if not args.draw_only:
                start = time.perf_counter()
                dlrun.sweep([*SEARCH, f"seed={seed}", f"trainer.max_epochs={args.epochs}",
                             f"hydra.sweeper.n_trials={args.trials}", f"hydra.sweeper.pruner={pruner}",
                             f"hydra.sweep.dir={sweep}"])
                seconds = time.perf_counter() - start
            m = measure(sweep, seconds)
            whole = f"{m['search_s']:.0f} s" if m["search_s"] else "-"
            print(f"| {seed} | {pruner} | {m['trials']} ({m['pruned']}) | {m['epochs']} | {m['job_s']:.0f} s | {whole} "
                  f"| {m['best']:.4f} |", flush=True)
            sweeps[f"pruner={pruner}"] = sweep
        draw(sweeps, args.out / f"search_pruning-seed{seed}.png")


if __name__ == "__main__":
    main()
