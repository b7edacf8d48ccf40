"""Shared test helpers: compose configs in-process, run the real `dlrun` command in a subprocess, write
fake datasets, read a run's results. Markers (pyproject.toml): `subprocess` for tests that start a process,
`slow` for long ones; `make test-fast` leaves both out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

import dlrun
import dlrun.console  # noqa: F401 - bound now to the session's output capture, not to one test's
import dlrun.data
from dlrun.callbacks.base import Callback
from dlrun.config.schema import register_configs
from dlrun.data import idx

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
    _require_subprocess_marker()
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("DLRUN_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "dlrun", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def one_error_line(proc) -> str:
    """The single `error:` line of a dlrun process that failed as a user mistake should (no traceback)."""
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out
    lines = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, out
    return lines[0]


def read_summary(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "summary.json").read_text())


def last_weights(run_dir: Path) -> dict:
    """The model's tensors in a run's checkpoints/last.pt."""
    return torch.load(Path(run_dir) / "checkpoints" / "last.pt", weights_only=True)["model"]


def write_fashion_mnist(folder: Path, n_train: int = 20, n_test: int = 10, gz: bool = False, seed: int = 0,
                        learnable: bool = False) -> None:
    """Fashion-MNIST's four IDX files (28x28 uint8 images, labels 0-9) in `folder`. With `learnable` every
    image shows its label y as a bright band of rows (3y..3y+2), so a tiny model learns the task."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = rng.integers(0, 10, n)
        x = rng.integers(0, 100 if learnable else 256, (n, 28, 28))
        if learnable:
            x[np.arange(28)[None, :] // 3 == y[:, None]] += 150  # n x 28: the rows of each sample's band
        idx.write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", x)
        idx.write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", y)


def register_source(mp: pytest.MonkeyPatch, name: str, from_config) -> None:
    """`data.name=NAME` loads through `from_config(cfg, seed) -> Source` until `mp` is undone (dlrun imports a
    source's module by name, so the function goes into a module of its own)."""
    module = types.ModuleType(f"fake_source_{name}")
    module.from_config = from_config
    mp.setitem(sys.modules, module.__name__, module)
    mp.setitem(dlrun.data.SOURCES, name, module.__name__)


class ScriptedMetric(Callback):
    """A callback that replaces the metric `key` by scripted values (epoch 1, 2, ...) and keeps a copy of
    every epoch's weights, so that a test decides which epoch is best. Built by `loop_with_metric`."""

    def __init__(self, values, key="val/acc"):
        self.values, self.key, self.weights = values, key, {}

    def on_epoch_end(self, loop, metrics):
        metrics[self.key] = self.values[loop.epoch - 1]
        self.weights[loop.epoch] = {k: v.clone() for k, v in loop.model.state_dict().items()}


def loop_with_metric(cfg, run_dir: Path, values, key="val/acc"):
    """(loop, script): the loop of `cfg` whose `key` follows `values`, set before the other callbacks read it."""
    from dlrun.training.tasks import build_loop

    run_dir.mkdir(parents=True, exist_ok=True)
    loop = build_loop(cfg, run_dir)
    script = ScriptedMetric(values, key)
    loop.callbacks = {"script": script, **loop.callbacks}
    return loop, script


_current_test: list = [None]


@pytest.fixture(autouse=True)
def _remember_test(request):
    _current_test[0] = request.node
    yield
    _current_test[0] = None


def _require_subprocess_marker() -> None:
    """When a run leaves out `subprocess` tests (`make test-fast`), an unmarked test that starts dlrun fails
    here with what to do, instead of silently making the fast set slow."""
    node = _current_test[0]
    if node is None or node.get_closest_marker("subprocess") is not None:
        return
    if "subprocess" in (node.config.getoption("markexpr") or ""):
        pytest.fail(f"{node.nodeid} starts a dlrun process: mark it @pytest.mark.subprocess", pytrace=False)


@pytest.fixture(autouse=True)
def no_hydra_job_left():
    """A test that runs Hydra in-process (the README tour, dlrun.run) must not leave its job's config behind:
    code that asks `HydraConfig.initialized()` (resume, TensorBoard's choices) would read another test's run,
    and runs started later would share its sweep's folder stamp."""
    os.environ.pop("DLRUN_RUN_STAMP", None)  # a sweep's stamp for its jobs, left by a module fixture's sweep
    yield
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().cfg = None
    os.environ.pop("DLRUN_RUN_STAMP", None)  # runs started later get folders of their own


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
