"""Shared helpers: compose configs in-process, and run the real `dlrun` command in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

import dlrun
from dlrun.config import register_configs

CONF_DIR = str(Path(dlrun.__file__).parent / "conf")
TINY = ["data=synthetic", "data.size=256", "data.shape=[1,16,16]", "data.num_classes=4", "trainer.max_epochs=2",
        "trainer.progress=none"]


def make_cfg(*overrides: str):
    """The composed config for `dlrun OVERRIDES` (no Hydra run folder)."""
    register_configs()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def run_dlrun(*args: str, cwd: Path | None = None, timeout: int = 300, env: dict | None = None):
    """`python -m dlrun ARGS` as a user would run it; returns the CompletedProcess (text)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("DLRUN_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "dlrun", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def read_summary(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "summary.json").read_text())


@pytest.fixture(autouse=True)
def one_thread():
    """In-process tests run tiny tensors: a second intra-op thread only adds overhead (and on a busy 2-core
    machine makes a forward pass ~100x slower). Subprocess runs keep torch's default."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_cfg():
    return lambda *more: make_cfg(*TINY, *more)
