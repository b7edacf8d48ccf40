"""`hydra/launcher=slurm` against a real single-node SLURM cluster (tests/slurm/cluster.sh, started by the
`slurm_cluster` fixture; skipped with the reason where it cannot start). Deselect with `-m "not slurm"`."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import read_summary, run_dlrun

TESTS = Path(__file__).parent
CLUSTER = TESTS / "slurm" / "cluster.sh"
pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.subprocess]

# on a CPU-only partition this is the only launcher override the preset needs
SLURM = ["-m", "hydra/launcher=slurm", "hydra.launcher.gpus_per_node=0"]
TINY = ["data=synthetic", "data.size=64", "data.shape=[8]", "data.num_classes=3", "model=mlp", "trainer.max_epochs=1",
        "trainer.progress=none"]
NODE_CPUS = len(os.sched_getaffinity(0))  # `nproc`, which cluster.sh gives the node
ENV = {"PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS / "slurm"), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="session")
def slurm_cluster():
    """The cluster for the whole session: started (packages installed first, as root) unless it runs
    already, and stopped at the end if this fixture started it. DLRUN_REQUIRE_SLURM=1 turns a cluster
    that cannot start into a failure instead of a skip (for CI machines that must run these tests)."""
    try:
        proc = subprocess.run(["bash", str(CLUSTER), "start"], capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        proc = subprocess.CompletedProcess([], 1, "", f"tests/slurm/cluster.sh start: {e}")
    if proc.returncode != 0:
        reason = "no SLURM cluster: " + (proc.stderr.strip().splitlines() or ["cluster.sh start failed"])[-1]
        if os.environ.get("DLRUN_REQUIRE_SLURM") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    conf = subprocess.run(["bash", str(CLUSTER), "env"], capture_output=True, text=True).stdout.split("=", 1)[1].strip()
    before = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf  # sbatch, squeue and the jobs (which inherit it) find the cluster
    yield conf
    if before is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = before
    if proc.stdout.strip() == "started":
        subprocess.run(["bash", str(CLUSTER), "stop"], timeout=120)


def squeue(*args: str) -> list[str]:
    return subprocess.run(["squeue", "-h", "-r", *args], capture_output=True, text=True).stdout.split()


def job_rows(sweep: Path) -> list[dict]:
    with open(sweep / "summary.csv") as f:
        return list(csv.DictReader(f))


def job_dirs(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))


def submission(sweep: Path) -> str:
    return next((sweep / ".submitit").glob("*/*_submission.sh")).read_text()


def test_cpu_only_preset_runs_a_two_job_sweep(slurm_cluster, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_dlrun(*SLURM, *TINY, "optimizer=sgd,adam", f"hydra.sweep.dir={sweep}", env=ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [r["status"] for r in job_rows(sweep)] == ["completed", "completed"]
    assert len(job_dirs(sweep)) == 2
    script = submission(sweep)  # one task, all of the node's CPUs, no GPU request
    assert "--ntasks-per-node=1" in script and f"--cpus-per-task={NODE_CPUS}" in script, script
    assert "--gpus-per-node" not in script, script
    logs = list((sweep / ".submitit").glob("*/*_0_log.out"))
    assert len(logs) == 2 and all(re.search(r"job_id=\d+_\d", p.read_text()) for p in logs)  # real SLURM job ids


@pytest.mark.parametrize("overrides, message", [
    ([], "error: hydra.launcher.gpus_per_node=1 is not allowed: the nodes of partition debug have no GPUs (use "
         "hydra.launcher.gpus_per_node=0)"),  # the preset's default, on this CPU-only node
    (SLURM[2:] + ["+hydra.launcher.additional_parameters.no-such-option=1"],
     "error: sbatch refused the sweep's jobs: sbatch: unrecognized option '--no-such-option=1'"),
])
def test_a_request_slurm_cannot_run_is_one_line_before_any_job(slurm_cluster, tmp_path, overrides, message):
    sweep = tmp_path / "sweep"
    proc = run_dlrun("-m", "hydra/launcher=slurm", *TINY, *overrides, f"hydra.sweep.dir={sweep}", env=ENV)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(message), proc.stderr
    assert not list(sweep.glob("*/summary.json"))


def test_cpus_per_task_more_than_a_node_has_is_refused(slurm_cluster):
    from dlrun.errors import ConfigError
    from dlrun.sweeps.slurm import fit_resources, read_partition

    part = read_partition(None)
    assert (part.name, part.cpus, part.gpus) == ("debug", NODE_CPUS, 0)
    with pytest.raises(ConfigError, match=r"cpus_per_task=8 is not allowed: 1 task\(s\) x 8 CPUs do not fit"):
        fit_resources({"cpus_per_task": 8, "gpus_per_node": 0, "tasks_per_node": 0}, part)


def test_two_tasks_train_as_two_ddp_ranks_with_one_thread_each(slurm_cluster, tmp_path):
    sweep, probe = tmp_path / "sweep", tmp_path / "ranks.jsonl"
    proc = run_dlrun(*SLURM, "hydra.launcher.tasks_per_node=2", "hydra.launcher.cpus_per_task=1", *TINY,
                     "+callbacks.probe._target_=probe_callbacks.RankProbe", f"+callbacks.probe.path={probe}",
                     f"hydra.sweep.dir={sweep}", env=ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ranks = sorted((json.loads(line) for line in probe.read_text().splitlines()), key=lambda r: r["rank"])
    assert [(r["rank"], r["world_size"], r["threads"]) for r in ranks] == [(0, 2, 1), (1, 2, 1)], ranks
    assert ranks[0]["run_dir"] == ranks[1]["run_dir"] and ranks[0]["slurm_job"] == ranks[1]["slurm_job"]
    (run,) = job_dirs(sweep)
    assert read_summary(run)["status"] == "completed"


@contextmanager
def released_requeues(name: str):
    """SLURM holds a requeued job for 2 minutes (BeginTime); the test lets it start at once."""
    done = threading.Event()

    def release():
        while not done.wait(1.0):
            for line in squeue("-n", name, "-t", "PENDING", "-o", "%i|%r"):
                job, reason = line.split("|")
                if reason == "BeginTime":
                    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], capture_output=True)

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def test_time_limit_requeues_and_the_job_resumes_to_the_uninterrupted_weights(slurm_cluster, tmp_path):
    from test_resume import RUN, assert_same_run, paused
    from dlrun.training.tasks import build_loop
    from conftest import make_cfg

    reference = tmp_path / "reference"
    assert build_loop(make_cfg(*RUN), reference).fit()["status"] == "completed"
    # The job holds still mid-epoch 2 until SIGUSR2 comes. SLURM sends it up to 60 s before the time asked
    # (here 2 min - 30 s), so a 1-minute limit could signal a job still starting Python (and kill it).
    sweep, name = tmp_path / "sweep", f"dlrun-requeue-{os.getpid()}"
    with released_requeues(name):
        proc = run_dlrun(*SLURM, "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=2",
                         "hydra.launcher.signal_delay_s=30", f"hydra.launcher.name={name}", *RUN,
                         *paused(tmp_path / "progress", epochs_done=1, batch=6), f"hydra.sweep.dir={sweep}", env=ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run,) = job_dirs(sweep)
    assert not list(run.glob("failed-*"))
    assert_same_run(run, reference)
    log = "".join(p.read_text() for p in (sweep / ".submitit").glob("*/*_0_log.*"))
    assert "Caught signal SIGUSR2" in log and "Exiting gracefully after preemption/timeout" in log, log
    assert "resumed from" in (run / "dlrun.log").read_text()


def test_a_cancelled_job_fails_a_preempted_one_resumes_and_the_sweep_finishes(slurm_cluster, tmp_path):
    from test_resume import paused

    name, held = f"dlrun-scancel-{os.getpid()}", {"cancel": tmp_path / "cancel", "requeue": tmp_path / "requeue"}
    # both jobs hold still after their 3rd batch (each writes its own progress file there): job 0 is
    # cancelled, job 1 requeued as a preemption would (SIGTERM: last.pt, `interrupted`, back in the queue)
    args = [*SLURM, "hydra.launcher.cpus_per_task=1", f"hydra.launcher.name={name}", *TINY, "data.batch_size=8",
            *paused(tmp_path / "unused", epochs_done=0, batch=3)[:-1],
            f"+callbacks.pause.progress={held['cancel']},{held['requeue']}", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    env = {**os.environ, **ENV, "PYTHONUNBUFFERED": "1"}
    env.pop("DLRUN_DEBUG", None)
    with released_requeues(name):
        client = subprocess.Popen([sys.executable, "-m", "dlrun", *args], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 240
        while not all(p.exists() for p in held.values()):
            assert client.poll() is None and time.monotonic() < deadline, client.communicate()
            time.sleep(0.2)
        jobs = sorted(squeue("-n", name, "-o", "%i"))  # N_0, N_1
        subprocess.run(["scancel", jobs[0]], check=True)
        subprocess.run(["scontrol", "requeue", jobs[1]], check=True)
        cancelled = time.monotonic()
        out, err = client.communicate(timeout=300)
    assert client.returncode == 0, out + err
    assert time.monotonic() - cancelled < 150, "the client took too long"
    rows = {r["run"].split("_")[0]: r for r in job_rows(tmp_path / "sweep")}
    assert (rows["0"]["status"], rows["1"]["status"]) == ("failed", "completed"), rows
    # the one error line (the sweep's table, printed whole when piped, also quotes the error in its row)
    lines = [line for line in (out + err).splitlines() if f"error: SLURM job {jobs[0]} failed" in line]
    assert len(lines) == 1 and lines[0].endswith(f"its log: {tmp_path / 'sweep'}/.submitit/{jobs[0]}/"
                                                 f"{jobs[0]}_0_log.err"), err
    cancelled_run, requeued_run = job_dirs(tmp_path / "sweep")
    assert f"SLURM job {jobs[0]} failed: it ended cancelled" in read_summary(cancelled_run)["error"]
    assert "resumed from" in (requeued_run / "dlrun.log").read_text()
