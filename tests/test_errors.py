"""User mistakes: one clear line naming key, value and what is allowed; non-zero exit; no traceback."""

import pytest

from conftest import TINY, read_summary, run_dlrun

pytestmark = pytest.mark.subprocess


@pytest.mark.parametrize(
    "override, key, allowed",
    [
        ("optimizer.lr=-1", "optimizer.lr=-1", "> 0"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0", ">= 1"),
        ("data.batch_size=0", "data.batch_size=0", ">= 1"),
        ("data.val_fraction=1.5", "data.val_fraction=1.5", "[0, 1)"),
        ("trainer.precision=8", "trainer.precision=8", "32, bf16, 16"),
        ("model.activation=swishy", "model.activation=swishy", "relu"),
    ],
)
def test_bad_value_fails_before_training_with_one_line(tmp_path, override, key, allowed):
    run_dir = tmp_path / "run"
    proc = run_dlrun(*TINY, override, f"hydra.run.dir={run_dir}")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out
    error_lines = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, out
    assert key in error_lines[0] and allowed in error_lines[0]
    # nothing trained, and the folder does not look like a good run
    assert not (run_dir / "metrics.jsonl").exists()
    assert read_summary(run_dir)["status"] == "failed"


def test_unknown_option_lists_the_available_ones(tmp_path):
    proc = run_dlrun("model=foo", f"hydra.run.dir={tmp_path}/run")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Traceback" not in out
    assert "Could not find 'model/foo'" in out
    assert "lenet" in out and "mlp" in out


def test_unknown_key_is_rejected(tmp_path):
    proc = run_dlrun("trainer.max_epoch=3", f"hydra.run.dir={tmp_path}/run")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out
    assert "max_epoch" in out


def test_reusing_a_run_folder_without_resume_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    assert run_dlrun(*TINY, "trainer.max_epochs=1", f"hydra.run.dir={run_dir}").returncode == 0
    proc = run_dlrun(*TINY, "trainer.max_epochs=1", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 2
    assert "already holds a run" in proc.stdout + proc.stderr
    assert read_summary(run_dir)["status"] == "completed"  # the finished result is not lost
