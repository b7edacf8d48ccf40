"""Sweeps: job folders, summary.csv, the table, failing jobs, Optuna, joblib, resumable sweeps, dlrun-compare."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import TINY, run_dlrun

pytestmark = pytest.mark.subprocess

SWEEP_TINY = [o for o in TINY if not o.startswith("trainer.max_epochs")] + ["trainer.max_epochs=1", "data.size=128"]


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def job_dirs(sweep):
    return sorted(p for p in sweep.iterdir() if p.is_dir() and (p / "summary.json").is_file())


def tb_hparams(run):
    """The HPARAMS a run wrote, read back with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(str(run))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    return plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams


def combos_seen(rows):
    return {tuple(o.split("=")[1] for o in sorted(r["overrides"].split()) if o.startswith(("model=", "optimizer=")))
            for r in rows}


def test_four_job_sweep_writes_folders_csv_and_table(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_dlrun("-m", *SWEEP_TINY, "optimizer=sgd,adam", "model=mlp,lenet", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr
    assert len(job_dirs(sweep)) == 4
    rows = read_csv(sweep / "summary.csv")
    assert len(rows) == 4
    assert {r["status"] for r in rows} == {"completed"}
    combos = {tuple(sorted(o for o in r["overrides"].split() if o.startswith(("model=", "optimizer=")))) for r in rows}
    assert combos == {(m, o) for m in ("model=lenet", "model=mlp") for o in ("optimizer=adam", "optimizer=sgd")}
    # sorted by the monitored metric, best first
    values = [float(r["best/val/acc"]) for r in rows]
    assert values == sorted(values, reverse=True)
    # a status line per job as it ends, then the table: a column per swept key, the folder whole on its line
    assert sum(line.startswith("job ") for line in proc.stdout.splitlines()) == 4
    assert re.search(r"^run +optimizer +model +status +best/val/acc +test/loss +test/acc", proc.stdout, re.M)
    assert str(sweep) in proc.stdout.splitlines()
    # job folders (and so TensorBoard's run names) say what differs, not what every job shares
    assert {p.name.split("_", 1)[1] for p in job_dirs(sweep)} == {
        f"model-{m}_optimizer-{o}" for m in ("lenet", "mlp") for o in ("adam", "sgd")}
    hparams = [tb_hparams(job) for job in job_dirs(sweep)]
    assert {(hp["model"].string_value, hp["optimizer"].string_value) for hp in hparams} == combos_seen(rows)
    assert all(hp["data.size"].number_value == 128 for hp in hparams)  # overridden on the command line
    assert not [k for hp in hparams for k in hp if k.startswith("callbacks.model_checkpoint")]
    manifest = json.loads((sweep / "sweep.json").read_text())
    assert len(manifest["jobs"]) == 4


def test_a_failing_job_does_not_stop_the_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_dlrun("-m", *SWEEP_TINY, "optimizer.lr=0.001,-1,0.01", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr
    rows = {next(o for o in r["overrides"].split() if o.startswith("optimizer.lr")): r
            for r in read_csv(sweep / "summary.csv")}
    assert rows["optimizer.lr=-1"]["status"] == "failed"
    assert "optimizer.lr=-1 is not allowed" in rows["optimizer.lr=-1"]["error"]
    assert rows["optimizer.lr=0.001"]["status"] == rows["optimizer.lr=0.01"]["status"] == "completed"
    assert "Traceback" not in proc.stdout + proc.stderr


def test_optuna_search_of_three_trials_returns_the_best(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_dlrun("-m", "hparams_search=mlp", *SWEEP_TINY, "hydra.sweeper.n_trials=3", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    rows = read_csv(sweep / "summary.csv")
    assert len(rows) == 3
    assert result["best_value"] == max(float(r["best/val/acc"]) for r in rows)
    assert set(result["best_params"]) == {"optimizer.lr", "data.batch_size", "model.dropout",
                                          "optimizer.weight_decay", "model.hidden"}


def test_joblib_runs_two_jobs_in_parallel(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_dlrun("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *SWEEP_TINY, "trainer.max_epochs=3",
                     "data.size=512", "optimizer=sgd,adam", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr
    jobs = job_dirs(sweep)
    assert len(jobs) == 2
    spans = [((j / ".hydra" / "config.yaml").stat().st_mtime, (j / "summary.json").stat().st_mtime) for j in jobs]
    (a0, a1), (b0, b1) = spans
    assert a0 < b1 and b0 < a1, f"jobs did not overlap: {spans}"
    # both processes appended their line to the one manifest, whole
    ended = [json.loads(line)["job"] for line in (sweep / "jobs.jsonl").read_text().splitlines()]
    assert sorted(ended) == sorted(j.name for j in jobs)
    # each of the two jobs got one of the two cores, not both
    for j in jobs:
        assert "torch threads 1" in (j / "dlrun.log").read_text() or os.cpu_count() < 2


def test_rerunning_an_interrupted_sweep_skips_finished_jobs_and_resumes_the_rest(tmp_path):
    sweep = tmp_path / "sweep"
    args = [sys.executable, "-m", "dlrun", "-m", *SWEEP_TINY, "trainer.max_epochs=1,12", "model=mlp",
            "+callbacks.slow._target_=user_components.SlowEpochs", "+callbacks.slow.seconds=0.4",
            f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:  # wait until job 0 is done and job 1 has checkpointed an epoch
            second = [p for p in sweep.glob("1_*/checkpoints/last.pt")]
            if second and list(sweep.glob("0_*/summary.json")):
                break
            time.sleep(0.2)
        else:
            raise AssertionError("sweep did not reach its second job")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    first_job = next(sweep.glob("0_*"))
    manifest = [json.loads(line)["job"] for line in (sweep / "jobs.jsonl").read_text().splitlines()]
    assert manifest == [first_job.name]  # killed half-way: the job that ended has its line, the other none
    first_summary = (first_job / "summary.json").read_text()
    first_mtime = (first_job / "summary.json").stat().st_mtime_ns

    again = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0, again.stderr
    assert (first_job / "summary.json").stat().st_mtime_ns == first_mtime  # not re-run
    assert (first_job / "summary.json").read_text() == first_summary
    second_job = next(sweep.glob("1_*"))
    summary = json.loads((second_job / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs"] == 12
    assert "resumed from" in (second_job / "dlrun.log").read_text()
    epochs = [json.loads(line)["epoch"] for line in (second_job / "metrics.jsonl").read_text().splitlines()]
    assert epochs == list(range(1, 13))  # one continuous record, no epoch twice
    assert len(read_csv(sweep / "summary.csv")) == 2
    manifest = [json.loads(line)["row"] for line in (sweep / "jobs.jsonl").read_text().splitlines()]
    assert [(r["run"], r["status"]) for r in manifest[1:]] == [(first_job.name, "completed"),
                                                               (second_job.name, "completed")]


def test_compare_finds_runs_sorts_filters_and_formats(tmp_path):
    sweep = tmp_path / "sweep"
    assert run_dlrun("-m", *SWEEP_TINY, "model=mlp", "optimizer=sgd,adam", f"hydra.sweep.dir={sweep}").returncode == 0
    single = tmp_path / "single"
    assert run_dlrun(*SWEEP_TINY, "model=mlp", f"hydra.run.dir={single}").returncode == 0
    out = subprocess.run([sys.executable, "-m", "dlrun.results.compare", str(tmp_path), "--format", "csv", "--sort", "test/acc"],
                         capture_output=True, text=True).stdout
    rows = list(csv.DictReader(out.splitlines()))
    assert len(rows) == 3
    accs = [float(r["test/acc"]) for r in rows]
    assert accs == sorted(accs)
    out = subprocess.run([sys.executable, "-m", "dlrun.results.compare", str(sweep), "--format", "markdown",
                          "--filter", "optimizer=adam"], capture_output=True, text=True).stdout
    assert out.count("\n|") == 2 and "`optimizer=adam`" in out and "optimizer=sgd" not in out
    bad = subprocess.run([sys.executable, "-m", "dlrun.results.compare", str(tmp_path / "nope")], capture_output=True, text=True)
    assert bad.returncode == 2 and "no such folder" in bad.stderr


def test_landscape_runs_compare_by_their_lowest_loss(tmp_path):
    from dlrun.results.compare import collect, sort_rows

    for opt, lr in (("sgd", "0.001"), ("adam", "0.05")):
        proc = run_dlrun("task=landscape", "landscape=bowl", f"optimizer={opt}", f"optimizer.lr={lr}",
                         "landscape.steps=50", f"hydra.run.dir={tmp_path}/{opt}")
        assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = sort_rows(collect([tmp_path]))
    assert [r["monitor"] for r in rows] == ["landscape/loss"] * 2
    losses = [r["best/landscape/loss"] for r in rows]
    assert losses == sorted(losses) and all(isinstance(v, float) for v in losses)  # lowest first
    assert rows[0]["steps"] == 50 and "final_x" in rows[0]


def test_sweep_job_folders_are_named_by_what_differs(monkeypatch):
    from dlrun.config.job import SHARED_ENV, job_tag, shared_overrides

    command_line = ["data=digits", "data.shape=[1,8,8]", "trainer.max_epochs=1", "trainer.max_epochs=1,12",
                    "optimizer=sgd,adam"]
    monkeypatch.setenv(SHARED_ENV, json.dumps(shared_overrides(command_line)))
    job = ["data=digits", "data.shape=[1,8,8]", "trainer.max_epochs=1", "trainer.max_epochs=12", "optimizer=adam",
           "hydra.run.dir=x"]
    # a key swept on the command line is never dropped, even where one value equals a fixed override
    assert job_tag(job, ["hydra.run.dir"]) == "_optimizer-adam_trainer.max_epochs-1_trainer.max_epochs-12"
    assert job_tag(["data=digits", "optimizer.lr=0.01"], []) == "_optimizer.lr-0.01"  # an Optuna trial's own keys
