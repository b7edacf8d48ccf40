"""dlrun's Optuna sweeper: a search and its best trial, a resumed search, pruning, joblib, lr_find, dlrun.run.

In-process (dlrun.sweep / dlrun.run compose and launch as the command does) on tiny synthetic data.
"""

import json
import math
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
import yaml

import dlrun
from conftest import make_cfg, read_summary, run_dlrun
from dlrun.callbacks.optuna_trial import open_storage

TINY = ["model=mlp", "model.hidden=[8]", "data=synthetic", "data.size=64", "data.shape=[1,4,4]", "data.num_classes=2",
        "data.batch_size=16", "trainer.progress=none", "trainer.num_threads=1"]
SPACE = ["hydra/sweeper=dlrun_optuna", "hydra.sweeper.sampler=random", "optimizer.lr=tag(log,interval(0.001,0.3))"]


def test_search_space_syntax_of_hydra_optuna_sweeper():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from dlrun.sweeps.search.space import grid, parse

    space, fixed = parse(["optimizer.lr=tag(log, interval(1e-4, 0.1))", "model.dropout=interval(0.0, 0.5)",
                          "model.hidden=choice([64],[128,64])", "optimizer=sgd,adam", "data.batch_size=range(32,257,32)",
                          "x=range(0.1,0.5,0.1)", "model.depth=int(interval(2, 8))", "trainer.max_epochs=3"])
    assert space["optimizer.lr"] == FloatDistribution(1e-4, 0.1, log=True)
    assert space["model.dropout"] == FloatDistribution(0.0, 0.5)
    assert space["model.hidden"] == CategoricalDistribution(["[64]", "[128,64]"])
    assert space["optimizer"] == CategoricalDistribution(["sgd", "adam"])
    assert space["data.batch_size"] == IntDistribution(32, 256, step=32)  # range's stop is excluded
    assert space["model.depth"] == IntDistribution(2, 8)
    assert fixed == {"trainer.max_epochs": "3"}
    assert grid({"x": space["x"], "optimizer": space["optimizer"]}) == {"x": [0.1, 0.2, 0.3, 0.4],
                                                                       "optimizer": ["sgd", "adam"]}
    # a fixed value on the command line replaces the preset's searched one
    assert parse(["model.dropout=interval(0.0, 0.5)", "model.dropout=0.1"]) == ({}, {"model.dropout": "0.1"})


def search(sweep: Path, *more: str):
    return dlrun.sweep([*TINY, *SPACE, f"hydra.sweep.dir={sweep}", *more])


def trials(sweep: Path, name: str = "dlrun"):
    return optuna.load_study(study_name=name, storage=open_storage(str(sweep / "optuna.log"))).trials


def test_six_trial_search_best_trial_is_the_best_row(tmp_path):
    sweep = tmp_path / "sweep"
    rows = search(sweep, "hydra.sweeper.n_trials=6", "monitor=val/loss", "trainer.max_epochs=1", "callbacks=none",
                  "hydra.sweeper.pruner=none")
    assert optuna.__version__ >= "4"
    assert len(rows) == 6 and {r["status"] for r in rows} == {"completed"}
    assert sorted(r["trial"] for r in rows) == list(range(6))
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    best_row = min(rows, key=lambda r: r["best/val/loss"])  # val/loss: the direction is minimize
    assert results["best_value"] == pytest.approx(best_row["best/val/loss"])
    assert results["best_trial"] == best_row["trial"]
    assert f"optimizer.lr={results['best_params']['optimizer.lr']}" in best_row["overrides"].split()
    # the study in the sweep folder holds the same six trials; each job folder is numbered by its trial
    stored = trials(sweep)
    assert [t.state.name for t in stored] == ["COMPLETE"] * 6
    for r in rows:
        assert r["run"].startswith(f"{r['trial']}_")
    # the study's figures, embedded in the sweep's report
    report = (sweep / "report.html").read_text()
    for name in ("optuna_parallel_coordinates.png", "optuna_param_importances.png"):
        assert (sweep / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report.count("data:image/png;base64,") >= 4  # curves, metrics and the two study figures


def test_grid_sampler_runs_each_combination_once(tmp_path):
    rows = dlrun.sweep([*TINY, "hydra/sweeper=dlrun_optuna", "hydra.sweeper.sampler=grid", "optimizer=sgd,adam",
                        "hydra.sweeper.n_trials=10", "trainer.max_epochs=1", "callbacks=none",
                        f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    assert sorted(o for r in rows for o in r["overrides"].split() if o.startswith("optimizer=")) == [
        "optimizer=adam", "optimizer=sgd"]


def test_a_killed_search_run_again_ends_with_n_trials_without_rerunning_the_first(tmp_path):
    from search_components import Killed

    sweep = tmp_path / "sweep"
    kill = ["+callbacks.kill._target_=search_components.KillTrial", "+callbacks.kill.number=3",
            f"+callbacks.kill.marker={tmp_path / 'killed'}"]
    args = ["hydra.sweeper.n_trials=5", "hydra.sweeper.pruner=none", "trainer.max_epochs=1", "callbacks=none", *kill]
    with pytest.raises(Killed):
        search(sweep, *args)
    first = {p.name: p.joinpath("summary.json").stat().st_mtime_ns for p in sweep.glob("[012]_*")}
    assert len(first) == 3
    assert [t.state.name for t in trials(sweep)] == ["COMPLETE"] * 3 + ["RUNNING"]

    rows = search(sweep, *args)
    assert {p.name: p.joinpath("summary.json").stat().st_mtime_ns for p in sweep.glob("[012]_*")} == first
    stored = trials(sweep)
    counted = [t for t in stored if "retried" not in t.user_attrs]
    assert len(counted) == 5 and all(t.state.name == "COMPLETE" for t in counted)
    retry = next(t for t in stored if t.user_attrs.get("retry_of") == 3)
    assert retry.params == stored[3].params  # the killed trial was asked again, in its old folder
    assert len(rows) == 5 and {r["status"] for r in rows} == {"completed"}
    assert len({t.params["optimizer.lr"] for t in counted}) == 5  # the continued search drew new points


def test_median_pruner_prunes_a_trial_worse_than_the_median(tmp_path):
    sweep = tmp_path / "sweep"
    script = ["+callbacks.script._target_=search_components.ScriptedMetric",
              "+callbacks.script.default=[0.5,0.6,0.7,0.8]", "+callbacks.script.values={3: [0.4,0.1,0.1,0.1]}"]
    rows = search(sweep, "hydra.sweeper.n_trials=4", "trainer.max_epochs=4", "hydra.sweeper.pruner=median",
                  "hydra.sweeper.pruner_warmup=1", "hydra.sweeper.pruner_startup_trials=3",
                  "callbacks=default", *script)
    by_trial = {r["trial"]: r for r in rows}
    assert [by_trial[i]["status"] for i in range(4)] == ["completed"] * 3 + ["pruned"]
    pruned_dir = sweep / by_trial[3]["run"]
    summary = read_summary(pruned_dir)
    assert summary["status"] == "pruned" and summary["epochs"] == 2  # epoch 1 is the warm-up; pruned at 2
    assert summary["test"] == {}  # stopped at once: no test pass
    assert (pruned_dir / "checkpoints" / "last.pt").is_file()
    stored = trials(sweep)
    assert stored[3].state.name == "PRUNED" and stored[3].intermediate_values == {1: 0.4, 2: 0.1}
    assert stored[0].intermediate_values == {1: 0.5, 2: 0.6, 3: 0.7, 4: 0.8}
    # TensorBoard's HPARAMS tab shows the pruned trial with the best value it reached
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(str(next(pruned_dir.rglob("events.out.tfevents.*")).parent))
    acc.Reload()
    start = plugin_data_pb2.HParamsPluginData.FromString(
        acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["optimizer.lr"].number_value == pytest.approx(stored[3].params["optimizer.lr"])
    assert acc.Scalars("best/val/acc")[-1].value == pytest.approx(summary["best"]["val/acc"])
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["trials"] == {"complete": 3, "pruned": 1, "fail": 0}


@pytest.mark.slow
@pytest.mark.subprocess
def test_joblib_search_with_two_jobs_shares_one_study(tmp_path):
    sweep = tmp_path / "sweep"
    rows = search(sweep, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2",
                  "hydra.sweeper.n_trials=4", "trainer.max_epochs=2", "callbacks=none")
    storage = open_storage(str(sweep / "optuna.log"))
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["dlrun"]
    stored = trials(sweep)
    assert [t.state.name for t in stored] == ["COMPLETE"] * 4
    # every epoch of every job was reported from the joblib worker processes into the one study
    assert all(sorted(t.intermediate_values) == [1, 2] for t in stored)
    folders = {t.user_attrs.get("run_dir") for t in stored}  # set by each job, from its worker process
    assert len(folders) == 4 and None not in folders and sorted(r["trial"] for r in rows) == [0, 1, 2, 3]


def test_lr_find_suggests_an_lr_near_the_largest_stable_one_on_a_quadratic(tmp_path):
    # linear regression with MSE and full-batch gradient descent: the loss is quadratic with Hessian
    # H = 2/n [X 1]^T [X 1], and gradient descent is stable for lr < 2 / largest eigenvalue of H
    problem = ["data=diabetes", "model=mlp", "model.hidden=[]", "loss=mse", "optimizer=gd"]
    summary = dlrun.run(["task=lr_find", *problem, "trainer.progress=none", "lr_find.min_lr=1e-4",
                         "lr_find.max_lr=10", "lr_find.num_steps=100", f"hydra.run.dir={tmp_path / 'run'}"])
    from dlrun.data import build_data

    cfg = make_cfg(*problem)
    x, _ = next(iter(build_data(cfg.data, torch.device("cpu"), cfg.seed).train.batches(0)))
    X = torch.cat([x.reshape(len(x), -1), torch.ones(len(x), 1)], 1).double().numpy()
    largest_stable = 2 / np.linalg.eigvalsh(2 / len(X) * X.T @ X).max()
    suggested = summary["lr_find"]["suggested_lr"]
    assert largest_stable / 3 <= suggested <= largest_stable * 3, (suggested, largest_stable)
    curve = json.loads((tmp_path / "run" / "lr_find.json").read_text())
    assert curve["suggested_lr"] == suggested and len(curve["lr"]) == len(curve["smoothed"]) < 100  # stopped
    assert (tmp_path / "run" / "lr_find.png").stat().st_size > 10_000
    assert not list((tmp_path / "run").rglob("*.pt"))  # the model is not kept


@pytest.mark.subprocess
def test_dlrun_run_returns_the_test_metrics_of_the_command(tmp_path):
    overrides = [*TINY, "trainer.max_epochs=2", "callbacks=none"]
    proc = run_dlrun(*overrides, f"hydra.run.dir={tmp_path / 'cli'}")
    assert proc.returncode == 0, proc.stderr
    summary = dlrun.run([*overrides, f"hydra.run.dir={tmp_path / 'api'}"])
    assert summary["status"] == "completed"
    assert summary["test"] == read_summary(tmp_path / "cli")["test"]
    assert (tmp_path / "api" / ".hydra" / "config.yaml").is_file()  # the same run-folder contract


def test_dlrun_run_raises_dlrun_errors_with_the_one_line_message(tmp_path):
    from dlrun.errors import ConfigError, DlrunError

    with pytest.raises(ConfigError, match=r"^optimizer.lr=-1 is not allowed: "):
        dlrun.run([*TINY, "optimizer.lr=-1", f"hydra.run.dir={tmp_path / 'a'}"])
    with pytest.raises(DlrunError, match="nosuchmodel"):
        dlrun.run(["model=nosuchmodel", f"hydra.run.dir={tmp_path / 'b'}"])


def test_a_bad_search_setting_is_one_error(tmp_path):
    from dlrun.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^hydra.sweeper.pruner=sometimes is not allowed: median, hyperband or none"):
        search(tmp_path / "a", "hydra.sweeper.pruner=sometimes")
    assert not list((tmp_path / "a").glob("*/summary.json"))  # nothing was trained


@pytest.mark.subprocess
def test_a_bad_sampler_on_the_command_line_is_one_line_and_exit_2(tmp_path):
    proc = run_dlrun("-m", "hparams_search=mlp", "hydra.sweeper.sampler=foo", f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 2
    assert "error: hydra.sweeper.sampler=foo is not allowed: tpe, random, grid or cmaes" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
