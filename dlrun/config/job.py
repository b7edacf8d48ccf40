"""The Hydra job this process runs: whether it is one job of a sweep, what tells it from the sweep's
other jobs (its folder's name), and its share of the machine's cores."""

from __future__ import annotations

import json
import os

SHARED_ENV = "DLRUN_SWEEP_SHARED"  # the sweep's command-line overrides, which every job shares


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


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
    from dlrun.config.schema import _short_tag

    items = sorted(o for o in swept_overrides(overrides) if o.lstrip("+~").split("=")[0] not in set(exclude_keys))
    return _short_tag("_".join(items).replace("=", "-"))
