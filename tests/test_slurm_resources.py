"""dlrun.sweeps.slurm without a cluster: what a partition can give (sinfo's lines), the resources a job asks for,
the requests refused before submission, and the threads a rank takes from the scheduler."""

import dataclasses
import math
import signal

import pytest

from dlrun.sweeps import slurm
from dlrun.errors import ConfigError, DlrunError
from dlrun.sweeps.slurm import Partition, fit_resources, read_partition
from dlrun.config.job import threads_from_scheduler

CPU_NODE = Partition(name="cpu", nodes=1, cpus=2, memory_mb=21000, gpus=0, time_limit_min=math.inf)
GPU_NODE = Partition(name="gpu", nodes=4, cpus=64, memory_mb=500_000, gpus=8, time_limit_min=24 * 60)
PRESET = {"gpus_per_node": 1, "tasks_per_node": 0, "cpus_per_task": None, "nodes": 1, "mem_gb": None,
          "timeout_min": 240}


def test_cpu_only_node_gets_one_task_with_all_its_cpus_and_no_gpu_request():
    p = fit_resources({**PRESET, "gpus_per_node": 0}, CPU_NODE)
    assert (p["tasks_per_node"], p["cpus_per_task"], p["gpus_per_node"]) == (1, 2, None)


def test_gpu_node_gets_one_task_per_gpu_and_the_gpus_share_of_cpus():
    p = fit_resources({**PRESET, "gpus_per_node": 4}, GPU_NODE)
    assert (p["tasks_per_node"], p["cpus_per_task"]) == (4, 8)  # 4 of 8 GPUs: 32 of 64 CPUs, over 4 tasks


def test_explicit_tasks_and_cpus_are_kept():
    p = fit_resources({**PRESET, "gpus_per_node": 0, "tasks_per_node": 2, "cpus_per_task": 1}, CPU_NODE)
    assert (p["tasks_per_node"], p["cpus_per_task"]) == (2, 1)


@pytest.mark.parametrize("change, message", [
    ({}, "gpus_per_node=1 is not allowed: the nodes of partition cpu have no GPUs (use hydra.launcher.gpus_per_node=0)"),
    ({"gpus_per_node": 0, "cpus_per_task": 8}, "cpus_per_task=8 is not allowed: 1 task(s) x 8 CPUs do not fit"),
    ({"gpus_per_node": 0, "tasks_per_node": 2, "cpus_per_task": 2}, "2 task(s) x 2 CPUs do not fit"),
    ({"gpus_per_node": 0, "nodes": 2}, "nodes=2 is not allowed: partition cpu has 1 node(s)"),
    ({"gpus_per_node": 0, "mem_gb": 64}, "mem_gb=64 is not allowed: the nodes of partition cpu have 20 GB"),
])
def test_requests_no_node_can_satisfy_are_refused(change, message):
    with pytest.raises(ConfigError) as e:
        fit_resources({**PRESET, **change}, CPU_NODE)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_time_limit_over_the_partitions_is_refused():
    with pytest.raises(ConfigError, match="timeout_min=2000 is not allowed: partition gpu allows at most 1440 minutes"):
        fit_resources({**PRESET, "timeout_min": 2000}, GPU_NODE)


SINFO = "cpu*|2|21000|(null)|infinite\ngpu|64|500000|gpu:a100:8(S:0-1)|1-00:00:00\ngpu|32+|250000|gpu:4|1-00:00:00\n"


def test_read_partition_takes_the_largest_node(monkeypatch):
    monkeypatch.setattr(slurm, "_run", lambda *cmd: SINFO)
    assert read_partition(None) == CPU_NODE
    assert read_partition("gpu") == dataclasses.replace(GPU_NODE, nodes=2)
    with pytest.raises(DlrunError, match="hydra.launcher.partition=big is not allowed: sinfo lists cpu, gpu"):
        read_partition("big")


@pytest.mark.parametrize("limit, minutes", [("infinite", math.inf), ("30", 30), ("30:00", 30), ("4:00:00", 240),
                                            ("1-00:00:00", 1440), ("2-12", 3600), ("1:30", 1.5)])
def test_slurm_time_limits_in_minutes(limit, minutes):
    assert slurm._minutes(limit) == minutes


@pytest.mark.parametrize("env, threads", [
    ({"SLURM_JOB_ID": "7", "SLURM_CPUS_PER_TASK": "3", "OMP_NUM_THREADS": "1"}, 3),  # the scheduler's CPUs first
    ({"SLURM_CPUS_PER_TASK": "3"}, 0),  # a stale variable outside a SLURM job is ignored
    ({"OMP_NUM_THREADS": "2"}, 2),  # torchrun's convention
    ({}, 0),  # torch's default
])
def test_threads_from_the_scheduler(monkeypatch, env, threads):
    for name in ("SLURM_JOB_ID", "SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert threads_from_scheduler() == threads


def test_trainer_num_threads_wins_over_the_scheduler(monkeypatch, tiny_cfg, tmp_path):
    import torch

    from dlrun.training.tasks import build_loop

    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    build_loop(tiny_cfg("trainer.num_threads=1"), tmp_path)
    assert torch.get_num_threads() == 1
    build_loop(tiny_cfg(), tmp_path)
    assert torch.get_num_threads() == 2


class FakeLoop:
    stop_reason = None


def test_a_notice_stops_the_running_loop_as_sigterm_does():
    from dlrun.training.loop import _stop_on_signals

    loop = FakeLoop()
    with _stop_on_signals(loop):
        slurm.stop_training()
    assert loop.stop_reason == "interrupted"


def test_a_notice_before_the_loop_runs_calls_no_other_sigterm_handler():
    calls = []  # stands for submitit's handler, which only logs (and would do so inside a signal handler)
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))
    try:
        slurm.stop_training()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert calls == []


def test_submitit_errors_shrink_to_the_line_that_says_what_went_wrong():
    from submitit.core.utils import FailedJobError, UncompletedJobError

    sbatch = "sbatch: error: Invalid generic resource (gres) specification\nTry \"sbatch --help\" for more information"
    assert slurm._one_line(sbatch) == "sbatch: error: Invalid generic resource (gres) specification"
    # submitit's own wording (submitit/core/core.py)
    failed = FailedJobError("Job (task=0) failed during processing with trace:\n----------------------\nTraceback "
                            "(most recent call last):\n  File \"x.py\", line 1, in <module>\nRuntimeError: out of "
                            "memory\n\n----------------------\nYou can check full logs with 'job.stderr(0)' and "
                            "'job.stdout(0)'or at paths:\n  - /s/5_0_log.err\n  - /s/5_0_log.out")
    uncompleted = UncompletedJobError("Job 5 (task: 0) with path /s/5_0_result.pkl\nhas not produced any output "
                                      "(state: TIMEOUT)\nError stream produced:\n----------------------------------------\nx")
    assert slurm._why(failed) == "RuntimeError: out of memory"
    assert slurm._why(uncompleted) == ("Job 5 (task: 0) with path /s/5_0_result.pkl has not produced any output "
                                       "(state: TIMEOUT)")
