"""`dlrun trainer=smoke` as a subprocess produces the whole run folder of DESIGN.md's contract."""

import json

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import read_summary, run_dlrun

pytestmark = pytest.mark.subprocess

EPOCH_KEYS = {"epoch", "step", "train/loss", "train/acc", "val/loss", "val/acc", "lr", "time_s"}


def test_smoke_run_writes_the_contract(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_dlrun("trainer=smoke", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stdout + proc.stderr

    assert (run_dir / ".hydra" / "config.yaml").is_file()
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    for r in rows:
        assert EPOCH_KEYS <= r.keys()
        assert 0.0 <= r["train/acc"] <= 1.0 and 0.0 <= r["val/acc"] <= 1.0
    assert rows[1]["step"] > rows[0]["step"] > 0

    summary = read_summary(run_dir)
    assert summary["status"] == "completed" and summary["error"] is None
    assert summary["epochs"] == 2
    assert summary["best"]["epoch"] in (1, 2) and "val/acc" in summary["best"]
    assert set(summary["test"]) == {"test/loss", "test/acc"}
    assert summary["samples_per_s"] > 0 and summary["duration_s"] > 0

    for name in ("last.pt", "best.pt"):
        ckpt = torch.load(run_dir / "checkpoints" / name, weights_only=True)
        assert ckpt["epoch"] in (1, 2) and "model" in ckpt and ckpt["config"]["trainer"]["max_epochs"] == 2
    assert not list((run_dir / "checkpoints").glob("*.tmp"))

    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    assert {"train/loss", "val/acc", "lr"} <= set(acc.Tags()["scalars"])
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2]

    # the terminal shows the epochs and the closing summary; the log file holds the same lines
    assert "epoch 2/2" in proc.stdout and "dlrun summary" in proc.stdout
    log = (run_dir / "dlrun.log").read_text()
    assert "epoch 2/2" in log
    assert proc.stdout.count("epoch 1/2") == 1  # no line printed twice
    # the log holds all the terminal showed: it ends with the summary, its test metrics and the run folder
    tail = log[log.rindex("dlrun summary"):].splitlines()
    assert any(line.split("│")[1:3] and "test/acc" in line for line in tail)
    assert tail[-2:] == ["run folder:", str(run_dir)]
    assert proc.stdout.splitlines()[-1] == str(run_dir)  # the folder whole on its own line, never cut


def test_two_runs_started_together_never_share_a_folder(tmp_path):
    import subprocess
    import sys

    args = [sys.executable, "-m", "dlrun", "trainer=smoke", "data.size=64", "trainer.max_epochs=1"]
    procs = [subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    runs = list((tmp_path / "outputs" / "runs").iterdir())
    assert len(runs) == 2
    assert all((r / "summary.json").is_file() for r in runs)


def test_help_lists_groups_without_importing_torch():
    import subprocess
    import sys

    code = ("import sys; sys.argv = ['dlrun', '--help']\n"
            "from dlrun.cli.main import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('TORCH_IMPORTED' if 'torch' in sys.modules else 'TORCH_NOT_IMPORTED')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert "TORCH_NOT_IMPORTED" in out
    for group in ("model:", "data:", "optimizer:", "trainer:", "callbacks:", "loss:"):
        assert group in out
    data_entry = out[out.index("\ndata:"):].split("\nexperiment:")[0]  # wrapped at 80 columns
    assert "lenet, mlp" in out and all(f" {name}" in data_entry for name in ("fashion_mnist", "mnist", "synthetic"))


def test_a_training_run_imports_no_launcher_or_search_library(tmp_path):
    """What a plain run does not use stays out of its start-up (and out of a machine that lacks it)."""
    import subprocess
    import sys

    code = ("import sys; sys.argv = ['dlrun', 'trainer=smoke', 'data.size=64', 'trainer.max_epochs=1']\n"
            "from dlrun.cli.main import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('LOADED', sorted(m for m in sys.modules if m.split('.')[0] in ('submitit', 'optuna', 'joblib')"
            " or m == 'dlrun.sweeps.slurm'))")  # Hydra's plugin scan imports the launcher plugins' modules, not submitit
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "LOADED []" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
    assert (tmp_path / "outputs" / "runs").is_dir()


@pytest.mark.subprocess
def test_provenance_names_torchvisions_version_without_importing_it():
    """Importing torchvision pulls in torch._dynamo (about a second): env.json reads the package metadata."""
    import subprocess
    import sys

    code = ("import sys\nfrom dlrun.run_folder.provenance import collect\nenv = collect()\n"
            "print(env['torchvision'], 'torchvision' in sys.modules, 'torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout.split()
    assert out[0].startswith("0.") and out[1:] == ["False", "False"], out
