"""DDP on CPU (gloo): two processes train exactly like one process on the same global batches."""

import json
import subprocess
import sys

import pytest
import torch

from conftest import last_weights, read_summary, run_dlrun

pytestmark = pytest.mark.subprocess

# no dropout or batch norm: two processes then compute the very same averaged gradients as one
ARGS = ["data=synthetic", "data.size=256", "data.shape=[12]", "data.num_classes=3", "model=mlp", "scheduler=none",
        "trainer.max_epochs=2", "trainer.deterministic=true", "data.batch_size=32", "trainer.progress=plain",
        "trainer.num_threads=1"]


def torchrun(*args, cwd=None):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "dlrun", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_two_processes_equal_one_and_write_one_run_folder(tmp_path):
    proc = torchrun(*ARGS, cwd=tmp_path)  # no hydra.run.dir: each rank resolves the folder itself
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = list((tmp_path / "outputs" / "runs").iterdir())
    assert len(runs) == 1, runs  # one folder for both ranks
    ddp = runs[0]
    assert proc.stdout.count("dlrun summary") == 1  # only rank 0 talks
    assert len(list((ddp / "checkpoints").glob("*.pt"))) == 2  # one last.pt, one best.pt
    assert [json.loads(line)["epoch"] for line in (ddp / "metrics.jsonl").read_text().splitlines()] == [1, 2]

    single = tmp_path / "single"
    assert run_dlrun(*ARGS, f"hydra.run.dir={single}").returncode == 0
    a, b = last_weights(ddp), last_weights(single)
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5), name
    # metrics are all-reduced: the logged numbers are the global ones
    s_ddp, s_single = read_summary(ddp), read_summary(single)
    assert abs(s_ddp["test"]["test/acc"] - s_single["test"]["test/acc"]) < 1e-9
    assert abs(s_ddp["test"]["test/loss"] - s_single["test"]["test/loss"]) < 1e-5

    # a checkpoint saved under DDP resumes in a single process
    resumed = tmp_path / "resumed"
    proc = run_dlrun(*[a for a in ARGS if not a.startswith("trainer.max_epochs")], "trainer.max_epochs=3",
                     f"ckpt_path={ddp}/checkpoints/last.pt", f"hydra.run.dir={resumed}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert read_summary(resumed)["epochs"] == 3


def test_trainer_devices_launches_the_same_through_torchrun(tmp_path):
    run = tmp_path / "run"
    proc = run_dlrun(*ARGS, "trainer.devices=2", f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "launching 2 DDP processes" in proc.stdout
    assert read_summary(run)["status"] == "completed"
    assert "DistributedDataParallel" not in proc.stdout and "MLP" in proc.stdout
