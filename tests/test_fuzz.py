"""Fuzz the command line (Hypothesis): any mix of valid and invalid overrides on tiny synthetic data
either completes with a valid summary.json, or is rejected with one `error:` line (or Hydra's message
for an unknown option/key) and a non-zero exit code; never a traceback."""

import json
import logging
import os
from pathlib import Path

import pytest
from hydra.errors import HydraException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf.errors import OmegaConfBaseException

from conftest import CONF_DIR, make_cfg, run_dlrun
from dlrun.training.tasks import execute

BASE = ["data=synthetic", "data.size=48", "data.num_classes=3", "trainer.progress=none", "callbacks=none"]


def options(group):
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml")) + ["no_such_option"]


HEAVY = {"alexnet", "vgg", "resnet", "torchvision"}  # full-size nets take a minute each here; tests/test_zoo.py covers them small

VALUES = {
    "model": [m for m in options("model") if m not in HEAVY],
    "optimizer": options("optimizer"),
    "optimizer.lr": ["0.01", "1e-3", "0", "-1", "1e9", "abc"],
    "trainer.max_epochs": ["1", "2", "0", "-3", "x"],
    "data.batch_size": ["1", "16", "0", "100000"],
    "data.val_fraction": ["0", "0.25", "1.5", "-0.1", "1"],
    "data.shape": ["[1,16,16]", "[3,12,12]", "[10]", "[1,32,32]", "[0,4,4]"],
    "model.activation": ["relu", "tanh", "sigmoid", "bogus"],
    "model.dropout": ["0", "0.3", "1.0", "-0.5"],
    "trainer.precision": ["32", "bf16", "16", "8"],
    "trainer.gradient_clip_val": ["0", "1.0", "-1"],
    "trainer.accumulate_grad_batches": ["1", "2", "0"],
    "trainer.nonexistent_key": ["1"],
    "seed": ["0", "7", "minus"],
}

overrides = st.dictionaries(st.sampled_from(sorted(VALUES)), st.none(), max_size=6).flatmap(
    lambda keys: st.tuples(*[st.sampled_from(VALUES[k]).map(lambda v, k=k: f"{k}={v}") for k in sorted(keys)])
)

STATUSES = {"completed", "stopped_early", "failed", "interrupted"}


def check_summary(run_dir: Path, code: int) -> None:
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] in STATUSES
    assert (summary["status"] in ("completed", "stopped_early")) == (code == 0)
    assert (summary["error"] is None) == (code == 0)


@pytest.mark.slow
@settings(max_examples=int(os.environ.get("DLRUN_FUZZ_EXAMPLES", 80)), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=overrides)
def test_fuzz_in_process(args, tmp_path_factory, monkeypatch, caplog):
    monkeypatch.setenv("DLRUN_DEBUG", "1")  # a non-user error would raise here and fail the test
    try:
        cfg = make_cfg(*BASE, *args)
    except (HydraException, OmegaConfBaseException) as e:  # Hydra's own one-message rejection at compose time
        assert str(e).strip()
        return
    run_dir = tmp_path_factory.mktemp("run")
    with caplog.at_level(logging.ERROR, logger="dlrun"):
        caplog.clear()
        code, _ = execute(cfg, run_dir)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    if code == 0:
        assert not errors
    else:
        assert len(errors) == 1 and errors[0].startswith("error: ") and "\n" not in errors[0]
    check_summary(run_dir, code)


@pytest.mark.parametrize("args", [
    ("model=mlp", "optimizer.lr=-1"),
    ("model=no_such_option",),
    ("trainer.nonexistent_key=1",),
    ("data.shape=[10]", "model=lenet"),
    ("optimizer.lr=abc",),
    ("model=mlp", "trainer.precision=bf16", "data.batch_size=16"),
])
@pytest.mark.subprocess
def test_fuzz_examples_through_the_real_command(tmp_path, args):
    proc = run_dlrun(*BASE, *args, f"hydra.run.dir={tmp_path}/run")
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out
    if proc.returncode == 0:
        check_summary(tmp_path / "run", 0)
    else:
        assert out.strip()
        if (tmp_path / "run" / "summary.json").exists():
            check_summary(tmp_path / "run", proc.returncode)
            assert sum(line.startswith("error:") for line in out.splitlines()) == 1
