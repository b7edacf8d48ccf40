"""Sweeps (`dlrun -m ...`): a line per finished job, the sweep table and summary.csv at the end,
a manifest of the jobs, and resumable jobs when the same sweep runs again in the same folder.

`SweepReport` is a Hydra callback (hydra.callbacks in conf/config.yaml), so it works with every
launcher (basic, joblib, submitit) and sweeper (basic, optuna).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from hydra.experimental.callback import Callback as HydraCallback

from dlrun.config.job import SHARED_ENV, in_multirun, shared_overrides

log = logging.getLogger("dlrun")

MANIFEST = "sweep.json"  # the jobs, their overrides and status: written once, at the sweep's end
JOBS = "jobs.jsonl"  # a line per finished job, appended as it ends: what the sweep's end (and a rerun) reads
REPORT_ROWS = 200  # a larger sweep's report.html and figures show its best rows (summary.csv has every job)


def append_record(sweep_dir: Path, record: dict) -> None:
    """One line of jobs.jsonl: a single write to a file opened for appending, under an exclusive lock, so that
    jobs in several processes (joblib, submitit) never interleave their lines. Nothing else is read."""
    import fcntl

    line = (json.dumps(record, default=str) + "\n").encode()
    fd = os.open(Path(sweep_dir) / JOBS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
    finally:
        os.close(fd)  # closing releases the lock


def record_job(sweep_dir: Path, run: Path, monitor: str | None = None) -> dict | None:
    """A finished job's row, appended to its sweep's jobs.jsonl: the cost of one job's files (its summary, its
    overrides, the last line of its metrics), whatever the sweep's size."""
    from dlrun.results.compare import run_row

    row = run_row(run, sweep_dir, monitor)
    if row is not None:
        append_record(sweep_dir, {"event": "end", "job": row["run"], "time": time.time(), "row": row})
    return row


def read_records(sweep_dir: Path) -> dict[str, dict]:
    """The last row of each job in jobs.jsonl (a job run again, or resumed, has a later line); a torn last line
    from a killed process is skipped."""
    rows: dict[str, dict] = {}
    path = Path(sweep_dir) / JOBS
    if not path.is_file():
        return rows
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("event") == "end" and isinstance(record.get("row"), dict):
                rows[record["job"]] = record["row"]
    return rows


def sweep_rows(sweep_dir: Path) -> list[dict]:
    """Every job's row: from jobs.jsonl, and from the folder only for a job with a summary.json and no line
    (killed between writing its summary and its line, or run by an older dlrun)."""
    from dlrun.results.compare import find_runs, run_row

    sweep_dir = Path(sweep_dir)
    rows = read_records(sweep_dir)
    unrecorded = [d for d in _job_folders(sweep_dir) if d.name not in rows]
    for run in find_runs(unrecorded):
        row = run_row(run, sweep_dir)
        if row is not None:
            rows[str(run.relative_to(sweep_dir))] = row
    return [rows[k] for k in sorted(rows, key=job_order)]


def _job_folders(sweep_dir: Path) -> list[Path]:
    return [Path(e.path) for e in os.scandir(sweep_dir) if e.is_dir() and not e.name.startswith(".")]


def job_order(name: str):
    """Job 2 before job 10: by the job number the folder name starts with (`2_optimizer-sgd`)."""
    head = name.split("_", 1)[0]
    return (0, int(head), name) if head.isdigit() else (1, 0, name)


def release(job_return) -> None:
    """Hydra keeps every job's JobReturn until the sweep ends, each with deep copies of the job's config and of
    Hydra's (some 70 OmegaConf nodes): keep only what is read after a job ends (its folder, its sweep's folder,
    its number), as plain attributes, so that a long in-process sweep does not grow with its jobs."""
    from types import SimpleNamespace as NS

    from omegaconf import OmegaConf

    hc = job_return.hydra_cfg.hydra
    job = NS(num=OmegaConf.select(hc, "job.num"), id=OmegaConf.select(hc, "job.id"),
             name=OmegaConf.select(hc, "job.name"))
    job_return.hydra_cfg = NS(hydra=NS(runtime=NS(output_dir=hc.runtime.output_dir), sweep=NS(dir=hc.sweep.dir), job=job))
    job_return.cfg = None


def write_manifest(sweep_dir: Path, rows: list[dict]) -> None:
    """sweep.json: every job folder of the sweep with its overrides and status."""
    from dlrun.run_folder.records import write_json

    write_json(Path(sweep_dir) / MANIFEST, {"jobs": [{k: r[k] for k in ("run", "overrides", "status")} for r in rows]})


class SweepReport(HydraCallback):
    def __init__(self, top: int = 20) -> None:
        self.top = top  # rows of the end table; summary.csv has them all

    def on_multirun_start(self, config, **kwargs) -> None:
        # launchers that run jobs in other processes (submitit, joblib) resolve the sweep folder again
        # there: hand them this process's stamp so that every job lands in the same sweep folder
        from dlrun.config.schema import run_stamp, typed_overrides

        os.environ["DLRUN_RUN_STAMP"] = run_stamp()
        os.environ[SHARED_ENV] = json.dumps(shared_overrides(typed_overrides(config.hydra)))

    def on_job_end(self, config, job_return, **kwargs) -> None:
        if not in_multirun():
            return
        self._record(config, job_return)
        release(job_return)

    def _record(self, config, job_return) -> None:
        from dlrun.console import console
        from dlrun.run_folder.run_record import STATUS_STYLE

        hc = job_return.hydra_cfg.hydra
        # both absolute: a relative sweep.dir (a project's experiment) would not prefix the absolute output_dir,
        # and the job's row would be named by its whole path (and counted twice at the sweep's end)
        run = Path(hc.runtime.output_dir)
        sweep_dir = Path(hc.sweep.dir)
        row = record_job(sweep_dir if sweep_dir.is_absolute() else Path(hc.runtime.cwd) / sweep_dir, run,
                         config.get("monitor"))
        if row is None:
            return
        monitor = row["monitor"]
        value = row.get(f"best/{monitor}")
        shown = f"{monitor}={value:.4f}" if isinstance(value, float) else f"{monitor}=-"
        style = STATUS_STYLE.get(row["status"], "white")
        console.print(f"[bold]job {run.name}[/] [{style}]{row['status']}[/] {shown}", highlight=False, soft_wrap=True)

    def on_multirun_end(self, config, **kwargs) -> None:
        from dlrun.results.compare import print_top, sort_rows, write_csv
        from dlrun.console import console

        # the stamp was for this sweep's jobs: a process this one starts later inherits the environment and
        # must get a folder of its own
        os.environ.pop("DLRUN_RUN_STAMP", None)
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        rows = sweep_rows(sweep_dir)
        write_manifest(sweep_dir, rows)
        rows = sort_rows(rows)
        if not rows:
            return
        write_csv(rows, sweep_dir / "summary.csv")
        print_top(console, rows, self.top, title=f"sweep of {len(rows)} jobs", full_table=sweep_dir / "summary.csv")
        from dlrun.results.compare_views import sweep_end

        sweep_end(sweep_dir, rows[:max(self.top, REPORT_ROWS)] if len(rows) > REPORT_ROWS else rows,
                  total=len(rows))  # seeds grouped, curves.png, metrics.png, report.html
        # the folder whole, each on its own line: a user copies these
        console.print(f"sweep folder (summary.csv, {MANIFEST}, report.html):\n{sweep_dir}\ncompare in TensorBoard:\n"
                      f"tensorboard --logdir {sweep_dir}", markup=False, highlight=False, soft_wrap=True)
