"""SLURM through Hydra's submitit launcher, fixed where a real cluster breaks it.

`SlurmLauncher` is hydra-submitit-launcher's, with four changes (the `SlurmSetup` callback of dlrun/sweeps/slurm_setup.py swaps it in
for every `submitit_slurm`-based launcher, `hydra/launcher=slurm` included):
- resources that fit the partition (`fit_resources`): one task per GPU, one on CPU-only nodes; CPUs per
  task from what a node has; a request no node can satisfy is one line before anything is submitted;
- a time-out (SIGUSR2) stops training like SIGTERM does (last.pt, status `interrupted`), and only then
  does submitit requeue the job: the requeued job resumes from last.pt;
- a job that ends without a result (scancel, a crash, a lost node) is found with squeue, so the wait
  is bounded with or without accounting; it is recorded `failed` and the sweep goes on;
- submitit's errors become one line that names the job and its log.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as HydraSlurmLauncher

from dlrun.errors import EXIT_INTERRUPTED, EXIT_USAGE

log = logging.getLogger("dlrun")

# squeue states after which a job has nothing more to say; a requeued job is PENDING again
ENDED = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
         "REVOKED", "SPECIAL_EXIT", "TIMEOUT"}
# pending reasons that no amount of waiting resolves
NEVER = {"PartitionConfig", "PartitionNodeLimit", "PartitionTimeLimit", "BadConstraints", "InvalidAccount",
         "InvalidQOS", "QOSMaxCpuPerJobLimit", "QOSMaxGRESPerJob", "QOSMaxNodePerJobLimit", "QOSMaxWallDurationPerJobLimit"}
RESULT_GRACE_S = 15  # a job gone from the queue may still be writing its result file (slow shared disks)
POLL_S = 2.0


def stop_training(frame=None) -> None:
    """Ask the training loop, if it runs, to stop after its current batch as SIGTERM does (last.pt,
    `interrupted`). A notice that comes while the job is still starting changes nothing yet: the loop
    then trains until SLURM's SIGTERM at the time limit, and the job requeues after that stop."""
    handler = signal.getsignal(signal.SIGTERM)
    if getattr(handler, "__module__", None) == "dlrun.training.loop":  # dlrun.training.loop._stop_on_signals, while it runs
        handler(signal.SIGTERM, frame)


# -- what the partition can give ---------------------------------------------------------------------

@dataclass
class Partition:
    name: str
    nodes: int
    cpus: int  # per node (the largest node)
    memory_mb: int
    gpus: int
    time_limit_min: float  # inf when unlimited


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout


def _minutes(limit: str) -> float:
    """SLURM's [days-]hours:minutes:seconds (or minutes, or minutes:seconds) in minutes."""
    if limit in ("infinite", "UNLIMITED", "n/a", ""):
        return math.inf
    days, _, clock = limit.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    if days:  # days-hours[:minutes[:seconds]]
        h, m, s = (parts + [0, 0])[:3]
    else:  # minutes, minutes:seconds or hours:minutes:seconds
        h, m, s = parts if len(parts) == 3 else (0, parts[0], parts[1] if len(parts) > 1 else 0)
    return (int(days or 0) * 24 + h) * 60 + m + s / 60


def read_partition(name: str | None) -> Partition:
    """The partition's largest node, from sinfo (the default partition when `name` is None)."""
    from dlrun.errors import DlrunError

    rows = [line.split("|") for line in _run("sinfo", "-h", "-N", "-o", "%P|%c|%m|%G|%l").split()]
    names = {p.rstrip("*") for p, *_ in rows}
    if name is None:
        defaults = [p.rstrip("*") for p, *_ in rows if p.endswith("*")]
        if not defaults:
            raise DlrunError(f"this cluster has no default partition: set hydra.launcher.partition to one of "
                             f"{', '.join(sorted(names))}")
        name = defaults[0]
    mine = [r for r in rows if r[0].rstrip("*") == name]
    if not mine:
        raise DlrunError(f"hydra.launcher.partition={name} is not allowed: sinfo lists {', '.join(sorted(names))}")
    gpus = [int(m.group(1)) for r in mine for m in [re.search(r"gpu(?::[^:,(]+)?:(\d+)", r[3])] if m]
    return Partition(name=name, nodes=len(mine), cpus=max(int(r[1].rstrip("+")) for r in mine),
                     memory_mb=max(int(r[2].rstrip("+")) for r in mine), gpus=max(gpus, default=0),
                     time_limit_min=_minutes(mine[0][4]))


def fit_resources(params: dict, part: Partition) -> dict:
    """The launcher's parameters with tasks and CPUs filled in for this partition, or a ConfigError for a
    request none of its nodes can ever satisfy (SLURM would keep such a job pending for ever)."""
    from dlrun.errors import ConfigError

    p = dict(params)
    key = "hydra.launcher."
    gpus = p.get("gpus_per_node") or 0
    if gpus > part.gpus:
        has = f"at most {part.gpus} GPUs" if part.gpus else "no GPUs"
        raise ConfigError(key + "gpus_per_node", gpus, f"the nodes of partition {part.name} have {has}"
                          + ("" if part.gpus else f" (use {key}gpus_per_node=0)"))
    p["gpus_per_node"] = gpus or None  # sbatch --gpus-per-node=0 is refused where GPUs are configured
    if not p.get("tasks_per_node"):  # one task (DDP rank) per GPU; one on a CPU-only node
        p["tasks_per_node"] = gpus or 1
    tasks = p["tasks_per_node"]
    if not p.get("cpus_per_task"):  # the GPUs' share of the node's CPUs, or the whole node without GPUs
        share = part.cpus * gpus // part.gpus if gpus else part.cpus
        p["cpus_per_task"] = max(1, share // tasks)
    if tasks * p["cpus_per_task"] > part.cpus:
        raise ConfigError(key + "cpus_per_task", p["cpus_per_task"],
                          f"{tasks} task(s) x {p['cpus_per_task']} CPUs do not fit the nodes of partition {part.name} "
                          f"({part.cpus} CPUs each)")
    if (p.get("nodes") or 1) > part.nodes:
        raise ConfigError(key + "nodes", p["nodes"], f"partition {part.name} has {part.nodes} node(s)")
    if p.get("mem_gb") and p["mem_gb"] * 1024 > part.memory_mb:
        raise ConfigError(key + "mem_gb", p["mem_gb"], f"the nodes of partition {part.name} have "
                          f"{part.memory_mb // 1024} GB")
    if p.get("timeout_min") and p["timeout_min"] > part.time_limit_min:
        raise ConfigError(key + "timeout_min", p["timeout_min"], f"partition {part.name} allows at most "
                          f"{part.time_limit_min:g} minutes")
    return p


def _refuse(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def _one_line(text: str, last: bool = False) -> str:
    """The line of a command's stderr (its first) or of a traceback (its last) that says what went wrong."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip().strip("-")]
    return (lines[-1] if last else lines[0]) if lines else "(no message)"


# -- the launcher ------------------------------------------------------------------------------------

class SlurmLauncher(HydraSlurmLauncher):
    def __call__(self, *args, **kwargs):
        """On the cluster: one job. SIGUSR2 (time-out or preemption notice) stops the training loop as
        SIGTERM does; once it has saved last.pt, submitit's own handler checkpoints this call and requeues."""
        submitit_handler = signal.getsignal(signal.SIGUSR2)
        notices = []

        def on_notice(signum, frame):
            notices.append(signum)
            stop_training(frame)

        signal.signal(signal.SIGUSR2, on_notice)
        signal.signal(signal.SIGCONT, signal.SIG_DFL)  # SLURM sends it with every signal; nothing to do
        try:
            return super().__call__(*args, **kwargs)
        except SystemExit as e:
            if notices and e.code == EXIT_INTERRUPTED and callable(submitit_handler):
                submitit_handler(signal.SIGUSR2, None)  # rank 0: checkpoint, `scontrol requeue`, exit
                time.sleep(60)  # other ranks: the requeue ends this process
            raise
        finally:
            signal.signal(signal.SIGUSR2, submitit_handler)

    def launch(self, job_overrides, initial_job_idx):
        import submitit
        from hydra.core.singleton import Singleton
        from hydra.core.utils import filter_overrides
        from omegaconf import OmegaConf

        from dlrun.errors import DlrunError

        try:
            self.params = fit_resources(self.params, read_partition(self.params.get("partition")))
        except DlrunError as e:
            _refuse(str(e))
        except (OSError, subprocess.SubprocessError) as e:  # no sinfo here: submit as asked
            log.warning("sinfo failed (%s): resources are submitted as configured", _one_line(str(e)))
        # the plugin's launch(), up to the wait
        params = self.params
        init_params = {"folder": params["submitit_folder"], "slurm_max_num_timeout": params.get("max_num_timeout", 0)}
        executor = submitit.AutoExecutor(cluster="slurm", **init_params)
        from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()
                                      if k not in ("submitit_folder", "max_num_timeout")})
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info("Submitit 'slurm' sweep output dir : %s (%d task(s) x %d CPUs per job)", sweep_dir,
                 params["tasks_per_node"], params.get("cpus_per_task") or 1)
        job_params = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's complaint; ours is one line
                jobs = executor.map_array(self, *zip(*job_params))
        except (submitit.core.utils.FailedJobError, submitit.core.utils.FailedSubmissionError) as e:
            _refuse(f"sbatch refused the sweep's jobs: {_one_line(str(e))}")
        return wait_for_jobs(self, jobs, job_params)


# -- waiting for the jobs ----------------------------------------------------------------------------

def _queue_states(job_ids: list[str]) -> dict[str, tuple[str, str]]:
    """job id -> (state, pending reason) for the jobs squeue still knows (finished ones for MinJobAge)."""
    try:
        out = _run("squeue", "-h", "-r", "-t", "all", "-j", ",".join(job_ids), "-o", "%i|%T|%r")
    except (OSError, subprocess.SubprocessError):
        return {}  # squeue fails for ids it has forgotten: treat them all as gone
    return {i: (s, r) for i, s, r in (line.split("|", 2) for line in out.splitlines() if line.count("|") == 2)}


def wait_for_jobs(launcher, jobs, job_params) -> list:
    """Each job's JobReturn, in order. A job that squeue shows ended (or no longer shows), and that left
    no result file within RESULT_GRACE_S, is recorded failed; the others are waited for."""
    pending = dict(enumerate(jobs))
    returns: dict[int, object] = {}
    gone_since: dict[int, float] = {}
    while pending:
        states = _queue_states([j.job_id for j in pending.values()])
        for n, job in list(pending.items()):
            state, reason = states.get(job.job_id, ("GONE", ""))
            if job.paths.result_pickle.exists():
                returns[n] = _result(launcher, job, job_params[n])
            elif state == "PENDING" and reason in NEVER:
                subprocess.run(["scancel", job.job_id], check=False)
                returns[n] = _failed(launcher, job, job_params[n], f"SLURM will never start it ({reason})")
            elif state in ENDED or state == "GONE":
                if time.monotonic() - gone_since.setdefault(n, time.monotonic()) < RESULT_GRACE_S:
                    continue
                returns[n] = _failed(launcher, job, job_params[n], f"it ended {state.lower()} without a result")
            else:
                gone_since.pop(n, None)  # running, or requeued and pending again
                continue
            del pending[n]
        if pending:
            time.sleep(POLL_S)
    return [returns[n] for n in range(len(jobs))]


def _result(launcher, job, params):
    import submitit

    try:
        return job.results()[0]
    except submitit.core.utils.UncompletedJobError as e:
        return _failed(launcher, job, params, _why(e))


def _why(error) -> str:
    """One line from submitit's FailedJobError (the job raised: the trace's last line, framed by dashes)
    or UncompletedJobError (no result: its first two lines, which say so)."""
    parts = re.split(r"\n-{10,}\n", str(error))
    return _one_line(parts[1], last=True) if len(parts) > 2 else " ".join(parts[0].split("\n")[:2])


def _failed(launcher, job, params, why: str):
    """A job without a result: one line, a `failed` summary.json in its folder, and a JobReturn whose
    value is NaN (a failed trial), so that the sweep goes on and its table shows the job."""
    from hydra.core.utils import JobReturn, JobStatus
    from omegaconf import open_dict

    from dlrun.run_folder.run_record import FAILED, FINISHED, failed_summary, read_summary, write_summary

    overrides, _, idx, _, _ = params
    cfg = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, list(overrides))
    with open_dict(cfg.hydra.job):
        cfg.hydra.job.num = idx
        cfg.hydra.job.id = job.job_id
    run_dir = Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
    error = f"SLURM job {job.job_id} failed: {why}; its log: {job.paths.stderr}"
    log.error("error: %s", error)
    summary = read_summary(run_dir)
    if summary is None or summary.status not in (*FINISHED, FAILED):
        run_dir.mkdir(parents=True, exist_ok=True)
        old = summary.to_dict() if summary is not None else {}
        write_summary(run_dir, failed_summary(run_dir, error).to_dict() | {k: v for k, v in old.items()
                                                                            if k not in ("status", "error", "run_dir")})
    return JobReturn(overrides=list(overrides), cfg=cfg, working_dir=str(run_dir), task_name=str(cfg.hydra.job.name),
                     status=JobStatus.COMPLETED, _return_value=float("nan"))
