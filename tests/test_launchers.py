"""Launchers beyond one process: Hydra's submitit launcher (the SLURM path, run locally)."""

import csv

import pytest

from conftest import run_dlrun

pytestmark = pytest.mark.subprocess

TINY = ["data=synthetic", "data.size=64", "data.shape=[8]", "data.num_classes=3", "model=mlp", "trainer.max_epochs=1",
        "trainer.progress=none"]


def test_two_job_sweep_through_submitit_local(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_dlrun("-m", "hydra/launcher=local", *TINY, "optimizer=sgd,adam", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs = sorted(p.name for p in sweep.iterdir() if (p / "summary.json").is_file())
    assert len(jobs) == 2 and jobs[0].startswith("0_") and jobs[1].startswith("1_"), (jobs, proc.stdout, proc.stderr)
    assert list((sweep / ".submitit").glob("*/*_result.pkl"))  # really went through submitit
    with open(sweep / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["completed", "completed"], rows


def test_jobs_in_other_processes_share_the_default_sweep_folder(tmp_path):
    proc = run_dlrun("-m", "hydra/launcher=local", *TINY, "optimizer=sgd,adam", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sweeps = list((tmp_path / "outputs" / "multiruns").iterdir())
    assert len(sweeps) == 1
    assert len([p for p in sweeps[0].iterdir() if (p / "summary.json").is_file()]) == 2
