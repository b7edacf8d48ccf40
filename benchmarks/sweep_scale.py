"""Sweeps at scale: how each cost of a sweep's bookkeeping grows with its number of jobs.

For N = 100, 1,000 and 10,000 synthetic run folders shaped like real ones (.hydra/config.yaml composed from
dlrun's own config, overrides.yaml, summary.json, a 10-epoch metrics.jsonl, checkpoints/ and tb/), it times

- job end: what a sweep's job pays when it ends, with N jobs already in the sweep (median of 5 jobs),
- compare: `dlrun-compare DIR --format csv` and `dlrun-compare DIR --top 20` as a user runs them (a new process),
- end table: the sweep's end (its rows, sweep.json, summary.csv, the printed table),
- report: report.html, curves.png and metrics.png of the sweep's end,

then runs M tiny in-process jobs (`dlrun -m trainer=smoke data=synthetic seed=range(0,M)`) and reads the
process's RSS after each job. It prints each cost at each N and how it grows from the first N to the last.

    .venv/bin/python benchmarks/sweep_scale.py [--sizes 100,1000,10000] [--jobs 500] [--skip-rss]

SWEEP_SCALE_CODE=/path/to/other/checkout measures another dlrun tree with the same script (before and after).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(os.environ.get("SWEEP_SCALE_CODE") or Path(__file__).resolve().parents[1])  # the dlrun tree measured
PYTHON = sys.executable


# -- synthetic run folders --------------------------------------------------------------------------------------
def composed_config() -> str:
    """dlrun's default config as a run's .hydra/config.yaml holds it."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from dlrun.config import schema as config

    config.register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "dlrun" / "conf"), version_base="1.3"):
        return OmegaConf.to_yaml(compose(config_name="config"))


def make_run(folder: Path, i: int, config_text: str, rng: random.Random) -> None:
    lr, opt, seed = rng.choice([0.1, 0.01, 0.001]), rng.choice(["sgd", "adam"]), i
    overrides = [f"optimizer={opt}", f"optimizer.lr={lr}", f"seed={seed}"]
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text(config_text)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "last.pt").write_bytes(b"")
    (folder / "tb").mkdir()
    (folder / "tb" / "events.out.tfevents.0").write_bytes(b"")
    acc = [min(0.99, 0.5 + 0.04 * e + rng.random() * 0.05) for e in range(10)]
    (folder / "metrics.jsonl").write_text("".join(
        json.dumps({"epoch": e + 1, "step": 100 * (e + 1), "train/loss": 1 - a, "train/acc": a + 0.01,
                    "val/loss": 1.1 - a, "val/acc": a, "lr": lr, "time_s": 1.0, "samples_per_s": 5e3}) + "\n"
        for e, a in enumerate(acc)))
    status = "failed" if i % 97 == 5 else "completed"
    best = max(range(10), key=lambda e: acc[e])
    (folder / "summary.json").write_text(json.dumps({
        "status": status, "epochs": 10, "best": {"epoch": best + 1, "val/acc": acc[best]},
        "test": {"test/loss": 1.1 - acc[best], "test/acc": acc[best] - 0.01}, "samples_per_s": 5e3,
        "duration_s": 10.0, "error": "RuntimeError: synthetic" if status == "failed" else None,
        "run_dir": str(folder)}, indent=2))


def make_sweep(sweep: Path, n: int, config_text: str, start: int = 0) -> list[Path]:
    rng = random.Random(start)
    runs = []
    for i in range(start, start + n):
        run = sweep / f"{i}_job-{i}"
        make_run(run, i, config_text, rng)
        runs.append(run)
    return runs


# -- the costs ----------------------------------------------------------------------------------------------------
def job_end_s(sweep: Path, runs: list[Path]) -> float:
    """A job's bookkeeping when it ends (the SweepReport callback's on_job_end, less the printed line)."""
    from dlrun.sweeps import sweep as sweep_mod

    times = []
    for run in runs:
        t0 = time.perf_counter()
        if hasattr(sweep_mod, "record_job"):
            sweep_mod.record_job(sweep, run, "val/acc")
        else:  # before: each job's end rewrote sweep.json from every folder
            sweep_mod.write_manifest(sweep)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def record_all(sweep: Path, runs: list[Path]) -> None:
    from dlrun.sweeps import sweep as sweep_mod

    if hasattr(sweep_mod, "record_job"):  # before: there was no per-job record
        for run in runs:
            sweep_mod.record_job(sweep, run, "val/acc")


def compare_s(sweep: Path, *args: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of the command: on a shared machine the CPU time is what it costs."""
    import resource

    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120", "SWEEP_SCALE_CODE": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([PYTHON, "-m", "dlrun.results.compare", str(sweep), *args], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def end_table_s(sweep: Path) -> tuple[float, list[dict]]:
    """The sweep's end without the report: rows, sweep.json, summary.csv and the printed table."""
    from rich.console import Console

    from dlrun.results import compare

    from dlrun.sweeps import sweep as sweep_mod

    console = Console(file=open(os.devnull, "w"), width=120)
    t0 = time.perf_counter()
    if hasattr(sweep_mod, "sweep_rows"):
        rows = sweep_mod.sweep_rows(sweep)
        sweep_mod.write_manifest(sweep, rows)
        rows = compare.sort_rows(rows)
        compare.write_csv(rows, sweep / "summary.csv")
        compare.print_top(console, rows, 20, title="sweep", full_table=sweep / "summary.csv")
    else:
        from dlrun.results.table import print_table

        rows = compare.sort_rows(sweep_mod.write_manifest(sweep))
        compare.write_csv(rows, sweep / "summary.csv")
        print_table(console, rows, title="sweep")
    return time.perf_counter() - t0, rows


def report_s(sweep: Path, rows: list[dict]) -> float:
    from dlrun.sweeps import sweep as sweep_mod
    from dlrun.results.html_report import write_sweep_report

    t0 = time.perf_counter()
    limit = getattr(sweep_mod, "REPORT_ROWS", None)
    if limit is not None and len(rows) > limit:
        write_sweep_report(sweep, rows[:limit], len(rows))
    else:
        write_sweep_report(sweep, rows)
    return time.perf_counter() - t0


# -- memory over in-process jobs --------------------------------------------------------------------------------
class RssProbe:
    """A Hydra callback: the process's RSS after each job, one line in $SWEEP_SCALE_RSS."""

    def __init__(self, **kwargs):
        self.path = os.environ["SWEEP_SCALE_RSS"]

    def __getattr__(self, name):  # every other callback hook: nothing
        if name.startswith("on_"):
            return lambda *a, **k: None
        raise AttributeError(name)

    def on_job_end(self, config, job_return, **kwargs) -> None:
        import gc

        gc.collect()
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        with open(self.path, "a") as f:
            f.write(f"{rss}\n")


def rss_child(jobs: int, folder: str) -> None:
    from dlrun.api import sweep

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sweep(["trainer=smoke", "data=synthetic", "data.size=64", "trainer.max_epochs=1", f"seed=range(0,{jobs})",
           f"hydra.sweep.dir={folder}", "+hydra.callbacks.rss_probe._target_=sweep_scale.RssProbe"])


def rss_over_jobs(jobs: int) -> list[int]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rss.txt"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "SWEEP_SCALE_RSS": str(out), "SWEEP_SCALE_CODE": str(ROOT)}
        subprocess.run([PYTHON, __file__, "--rss-child", str(jobs), "--folder", str(Path(tmp) / "sweep")], env=env,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
        return [int(line) for line in out.read_text().split()]


# -- main -----------------------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--jobs", type=int, default=500, help="tiny in-process jobs for the RSS measure")
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--ending-jobs", type=int, default=5, help="jobs ending at each N (their median is shown)")
    ap.add_argument("--skip-report-above", type=int, default=10_000,
                    help="sizes above this skip the report (the code before took minutes there)")
    ap.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.rss_child:
        return rss_child(args.rss_child, args.folder)
    sizes = [int(s) for s in args.sizes.split(",")]
    config_text = composed_config()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            sweep = Path(tmp) / f"sweep-{n}"
            t0 = time.perf_counter()
            runs = make_sweep(sweep, n, config_text)
            made = time.perf_counter() - t0
            record_all(sweep, runs)  # as the sweep's jobs did when each ended
            ends = make_sweep(sweep, args.ending_jobs, config_text, start=n)  # the next jobs end with n in the sweep
            r = {"job_end_s": job_end_s(sweep, ends)}
            r["compare_csv_s"], r["compare_csv_cpu_s"] = compare_s(sweep, "--format", "csv")
            r["compare_top20_s"], r["compare_top20_cpu_s"] = compare_s(sweep, "--top", "20") if _has_top() else (None, None)
            r["end_table_s"], rows = end_table_s(sweep)
            r["report_s"] = report_s(sweep, rows) if n <= args.skip_report_above else None
            results[n] = r
            print(f"N={n}: made in {made:.1f} s; " + ", ".join(f"{k}={_s(v)}" for k, v in r.items()), flush=True)
    print()
    first, last = sizes[0], sizes[-1]
    print(f"| cost | " + " | ".join(f"N={n:,}" for n in sizes) + f" | growth {first:,} -> {last:,} (x{last // first} jobs) |")
    print("|---|" + "---:|" * (len(sizes) + 1))
    for key in results[first]:
        vals = [results[n][key] for n in sizes]
        growth = f"x{vals[-1] / vals[0]:.1f}" if vals[0] and vals[-1] else ""
        print(f"| {key} | " + " | ".join(_s(v) for v in vals) + f" | {growth} |")
    if not args.skip_rss:
        rss = rss_over_jobs(args.jobs)
        at = sorted({min(50, len(rss)), len(rss)})
        mb = [rss[i - 1] / 2**20 for i in at]
        print(f"\nRSS over {len(rss)} in-process jobs: " + ", ".join(f"after job {i}: {m:.1f} MB" for i, m in zip(at, mb))
              + (f"; {(mb[-1] - mb[0]) / (at[-1] - at[0]) * 1024:.1f} KB per job" if len(at) > 1 else ""))


def _has_top() -> bool:
    import dlrun.results.compare

    return hasattr(dlrun.results.compare, "print_top")


def _s(v) -> str:
    if v is None:
        return "-"
    return f"{v * 1e3:.2f} ms" if v < 0.1 else f"{v:.2f} s"


if __name__ == "__main__":
    main()
