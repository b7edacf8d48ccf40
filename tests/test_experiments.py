"""Every `dlrun experiment=NAME` composes, each sweep's values are valid options that build, and
`dlrun experiment=NAME` alone launches the whole sweep (hydra.mode: MULTIRUN in the file)."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

from dlrun.config.schema import register_configs

from dlrun.training.validate import validate
from dlrun.data import DataInfo
from conftest import CONF_DIR, TINY, make_cfg, run_dlrun

EXPERIMENTS = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))
# the notes' lessons that are one sweep each, and how many jobs each runs
SWEEPS = {"activations": 5, "init": 8, "resnet_depth": 6, "optimizers": 6, "regularization": 6, "losses_regression": 4, "cnn_zoo": 4}
# the input each experiment's data gives a model (no data files read here)
SHAPES = {"digits": (1, 8, 8), "fashion_mnist": (1, 28, 28), "diabetes": (10,), "logic_gate": (2,)}


def _compose(*overrides: str):
    register_configs()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def test_the_lessons_are_all_there():
    assert set(SWEEPS) | {"perceptron_and", "perceptron_xor", "mlp_xor"} <= set(EXPERIMENTS)


def _leaves(node, prefix=""):
    """(dotted key, value) of every leaf of a plain dict from YAML."""
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_each_experiment_sets_what_its_file_says_and_validates(name):
    """The preset's group choices and values land in the composed config (not overridden by a later default),
    and the result passes validation."""
    preset = OmegaConf.to_container(OmegaConf.load(Path(CONF_DIR) / "experiment" / f"{name}.yaml"))
    cfg = _compose(f"experiment={name}")
    choices = cfg.hydra.runtime.choices
    for entry in preset.pop("defaults", []):
        if not isinstance(entry, dict):  # another preset it builds on (perceptron_notes: perceptron_and)
            continue
        for key, value in entry.items():
            group = key.removeprefix("override /")
            if isinstance(value, str) and not group.startswith("hydra/"):  # a list of options has no one choice
                assert choices[group] == value, (name, group)
    preset.pop("hydra", None)
    for key, value in _leaves(preset):
        assert OmegaConf.to_container(OmegaConf.create({"v": OmegaConf.select(cfg, key)}))["v"] == value, (name, key)
    with open_dict(cfg):
        del cfg["hydra"]
    validate(cfg)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_every_job_of_a_sweep_builds(name):
    """`dlrun experiment=NAME` is a sweep (no -m needed) whose every value is a real option: each job's
    config validates and its model and loss build."""
    from dlrun.models import build_model_and_loss

    register_configs()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        hydra = compose(config_name="config", overrides=[f"experiment={name}"], return_hydra_config=True).hydra
        assert hydra.mode == RunMode.MULTIRUN
        axes = [[f"{key}={value.strip()}" for value in str(values).split(",")]
                for key, values in hydra.sweeper.params.items()]
        jobs = list(itertools.product(*axes))  # every combination, as the basic sweeper runs them
        assert len(jobs) == SWEEPS[name]
        for job in jobs:
            cfg = compose(config_name="config", overrides=[f"experiment={name}", *job])
            validate(cfg)
            regression = cfg.data.name == "diabetes"
            info = DataInfo(SHAPES[cfg.data.name], 1 if regression else 10,
                            [] if regression else list("0123456789"), "regression" if regression else "classification")
            model, _ = build_model_and_loss(cfg, info)
            assert sum(p.numel() for p in model.parameters()) > 0, job


@pytest.mark.subprocess
def test_activations_runs_its_sweep_from_one_command(tmp_path):
    """`dlrun experiment=activations` (no -m) on tiny data: 5 job folders, a 5-row summary.csv with the
    gradient-norm columns, and sigmoid's first-layer gradient far below relu's."""
    sweep = tmp_path / "sweep"
    r = run_dlrun("experiment=activations", *TINY, "data.size=64", "trainer.max_epochs=1", "trainer.num_threads=1",
                  "callbacks.tensorboard.histograms_every_n_epochs=0", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len([p for p in sweep.iterdir() if (p / "summary.json").is_file()]) == 5
    rows = {row["overrides"].split()[0]: row for row in csv.DictReader((sweep / "summary.csv").open())}
    assert len(rows) == 5
    sigmoid, relu = rows["model.activation=sigmoid"], rows["model.activation=relu"]
    assert float(sigmoid["grad_norm/first"]) < float(sigmoid["grad_norm/last"]) / 100
    assert float(sigmoid["grad_norm/first"]) < float(relu["grad_norm/first"]) / 10
    assert "gap" in rows["model.activation=relu"]


def test_outliers_corrupt_training_targets_only():
    from dlrun.data import tabular

    clean = tabular.load("diabetes")
    cfg = OmegaConf.create({"name": "diabetes", "test_fraction": 0.2, "outliers": 0.1})
    dirty = tabular.from_config(cfg, seed=1)
    moved = np.flatnonzero(dirty.train_y[:, 0] != clean.train_y[:, 0])
    assert len(moved) == round(0.1 * len(clean.train_y))
    assert np.all(dirty.train_y[moved] - clean.train_y[moved] > 5 * clean.train_y.std())  # 10 std up
    assert np.array_equal(dirty.test_y, clean.test_y)  # scored on clean targets
    assert np.array_equal(tabular.from_config(cfg, seed=2).train_y, dirty.train_y)  # the same in every run


@pytest.mark.subprocess
def test_outliers_are_refused_where_they_mean_nothing():
    from dlrun.data import tabular
    from dlrun.errors import ConfigError

    with pytest.raises(ConfigError, match="data.outliers"):
        tabular.from_config(OmegaConf.create({"name": "iris", "test_fraction": 0.2, "outliers": 0.1}), seed=0)
    r = run_dlrun("data=diabetes", "data.outliers=1.5", "model=mlp")
    assert r.returncode == 2 and "data.outliers" in r.stderr + r.stdout and "Traceback" not in r.stderr + r.stdout


def test_features_keep_the_named_columns_and_are_refused_where_there_are_none(tmp_path):
    import torch

    from dlrun.data import build_data, tabular
    from dlrun.errors import ConfigError

    full = tabular.load("diabetes")
    bmi = tabular.load("diabetes", features=["bmi"])
    assert bmi.train_x.shape == (len(full.train_x), 1)
    assert np.array_equal(bmi.train_x[:, 0], full.train_x[:, 2])  # bmi is diabetes' third column
    with pytest.raises(ConfigError, match="age, sex, bmi"):
        tabular.load("diabetes", features=["bmx"])
    with pytest.raises(ConfigError, match="data.features.*tabular"):
        build_data(make_cfg("data=synthetic", "data.features=[x]").data, torch.device("cpu"), 0)
    with pytest.raises(ConfigError, match="data.features.*tabular"):
        build_data(make_cfg("data=image_folder", f"data.root={tmp_path}", "data.features=[x]").data,
                   torch.device("cpu"), 0)
