"""Sweeps (`dlrun -m ...`): a line per finished job, the sweep table and summary.csv at the end,
a manifest of the jobs, and resumable jobs when the same sweep runs again in the same folder.

`SweepReport` is a Hydra callback (hydra.callbacks in conf/config.yaml), so it works with every
launcher (basic, joblib, submitit) and sweeper (basic, optuna).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import types
from pathlib import Path

from hydra.experimental.callback import Callback as HydraCallback

log = logging.getLogger("dlrun")

MANIFEST = "sweep.json"
SHARED_ENV = "DLRUN_SWEEP_SHARED"  # the sweep's command-line overrides, which every job shares
_KEEP_ON_RETRY = {".hydra", "dlrun.log", "dlrun.lock"}  # the new attempt's config, the log that spans attempts, its lock


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


class _CallableModule(types.ModuleType):
    def __call__(self, overrides=()) -> list[dict]:
        """`dlrun.sweep([...])`: `dlrun -m OVERRIDES` from Python; the jobs' rows, best first (dlrun/api.py)."""
        from dlrun.api import sweep

        return sweep(overrides)


sys.modules[__name__].__class__ = _CallableModule  # the module keeps its name and is the function too


def threads_from_scheduler() -> int:
    """Torch threads for this process: SLURM's CPUs per task inside a job, else torchrun's OMP_NUM_THREADS
    convention; 0 when neither says (torch's default: all cores)."""
    for name in ("SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS"):
        if name == "SLURM_CPUS_PER_TASK" and "SLURM_JOB_ID" not in os.environ:
            continue
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 0


def threads_per_job() -> int:
    """Parallel local jobs (joblib n_jobs > 1) share the cores instead of each taking them all."""
    from hydra.core.hydra_config import HydraConfig

    if not in_multirun():
        return 0
    n_jobs = HydraConfig.get().launcher.get("n_jobs") or 1
    if n_jobs == -1:
        n_jobs = os.cpu_count() or 1
    return max(1, (os.cpu_count() or 1) // n_jobs) if n_jobs > 1 else 0


def shared_overrides(command_line: list[str]) -> list[str]:
    """The command line's overrides that every job of the sweep gets as they are: not a sweep
    (`a,b`, `range(...)`), and of a key that no sweep on the command line also sets."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(command_line)
    swept = {o.key_or_group for o in parsed if o.is_sweep_override()}
    shared = [o for o in parsed if not o.is_sweep_override() and o.key_or_group not in swept]
    # as the job sees them: the sweeper writes `key=value` again from the parsed override
    return [o.input_line for o in shared] + [f"{o.get_key_element()}={o.get_value_element_as_str()}" for o in shared]


def swept_overrides(overrides) -> list[str]:
    """A job's overrides less those every job of its sweep shares: what tells this job from the others."""
    shared = set(json.loads(os.environ.get(SHARED_ENV, "[]")))
    return [o for o in overrides if o not in shared]


def job_tag(overrides, exclude_keys) -> str:
    """The resolver `dlrun_job_tag` (hydra.sweep.subdir): `_model-mlp_optimizer-sgd`, only what differs."""
    from dlrun.config import _short_tag

    items = sorted(o for o in swept_overrides(overrides) if o.lstrip("+~").split("=")[0] not in set(exclude_keys))
    return _short_tag("_".join(items).replace("=", "-"))


def prepare_job(run_dir: Path) -> tuple[str, object]:
    """What to do with a job folder a previous run of the same sweep may have left.

    ("skip", summary) when it completed, ("resume", last.pt) when it was interrupted or killed
    with a checkpoint, ("fresh", None) otherwise; a failed attempt is moved into failed-N/ first,
    so that no job folder is ever overwritten.
    """
    summary_path = run_dir / "summary.json"
    last = run_dir / "checkpoints" / "last.pt"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None
    status = summary and summary.get("status")
    if status in ("completed", "stopped_early", "pruned"):
        return "skip", summary
    if status in (None, "interrupted") and last.is_file():
        return "resume", last
    leftovers = [p for p in run_dir.iterdir() if p.name not in _KEEP_ON_RETRY and not p.name.startswith("failed-")]
    if leftovers:
        n = 1 + sum(1 for p in run_dir.iterdir() if p.name.startswith("failed-"))
        archive = run_dir / f"failed-{n}"
        archive.mkdir()
        for p in leftovers:
            shutil.move(str(p), archive / p.name)
    return "fresh", None


def write_manifest(sweep_dir: Path) -> list[dict]:
    """sweep.json: every job folder of the sweep with its overrides and status (rebuilt from the folders)."""
    from dlrun.compare import find_runs, run_row
    from dlrun.records import write_json

    rows = [run_row(run, sweep_dir) for run in find_runs([sweep_dir])]
    write_json(sweep_dir / MANIFEST, {"jobs": [{k: r[k] for k in ("run", "overrides", "status")} for r in rows]})
    return rows


class SweepReport(HydraCallback):
    def on_multirun_start(self, config, **kwargs) -> None:
        # launchers that run jobs in other processes (submitit, joblib) resolve the sweep folder again
        # there: hand them this process's stamp so that every job lands in the same sweep folder
        from dlrun.config import run_stamp

        os.environ["DLRUN_RUN_STAMP"] = run_stamp()
        os.environ[SHARED_ENV] = json.dumps(shared_overrides(list(config.hydra.overrides.task)))

    def on_job_end(self, config, job_return, **kwargs) -> None:
        if not in_multirun():
            return
        from dlrun.compare import run_row
        from dlrun.console import console
        from dlrun.table import STATUS_STYLE

        run = Path(job_return.hydra_cfg.hydra.runtime.output_dir)
        if not (run / "summary.json").is_file():
            return
        row = run_row(run)
        monitor = row["monitor"]
        value = row.get(f"best/{monitor}")
        shown = f"{monitor}={value:.4f}" if isinstance(value, float) else f"{monitor}=-"
        style = STATUS_STYLE.get(row["status"], "white")
        console.print(f"[bold]job {run.name}[/] [{style}]{row['status']}[/] {shown}", highlight=False, soft_wrap=True)
        write_manifest(run.parent)

    def on_multirun_end(self, config, **kwargs) -> None:
        from dlrun.compare import sort_rows, write_csv
        from dlrun.console import console
        from dlrun.table import print_table

        # the stamp was for this sweep's jobs: a process this one starts later inherits the environment and
        # must get a folder of its own
        os.environ.pop("DLRUN_RUN_STAMP", None)
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        rows = sort_rows(write_manifest(sweep_dir))
        if not rows:
            return
        write_csv(rows, sweep_dir / "summary.csv")
        print_table(console, rows, title=f"sweep of {len(rows)} jobs")
        from dlrun.compare_views import sweep_end

        sweep_end(sweep_dir, rows)  # seeds grouped, curves.png, metrics.png, report.html
        # the folder whole, each on its own line: a user copies these
        console.print(f"sweep folder (summary.csv, {MANIFEST}, report.html):\n{sweep_dir}\ncompare in TensorBoard:\n"
                      f"tensorboard --logdir {sweep_dir}", markup=False, highlight=False, soft_wrap=True)
