"""Figures, report.html, seed groups, --diff and env.json: built from the runs' own files and checked through
matplotlib's objects and Python's html.parser, not by pixels."""

import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import TINY, make_cfg, run_dlrun

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path) -> bool:
    from PIL import Image

    with Image.open(path) as image:
        return path.read_bytes()[:8] == PNG_MAGIC and image.format == "PNG" and min(image.size) > 100


# -- one run -----------------------------------------------------------------------------------------------
def test_a_run_writes_curves_confusion_matrix_and_env_from_its_own_metrics(tmp_path):
    import torch

    from dlrun.results.figures import run_curves_figure
    from dlrun.run_folder.provenance import FIELDS
    from dlrun.run_folder.records import read_jsonl
    from dlrun.training.tasks import execute

    run = tmp_path / "run"
    run.mkdir()
    code, _ = execute(make_cfg(*TINY, "model=mlp", "callbacks=none"), run)  # 2 epochs
    assert code == 0
    assert _is_png(run / "curves.png") and _is_png(run / "confusion_matrix.png")

    env = json.loads((run / "env.json").read_text())
    assert set(FIELDS) <= set(env)
    assert env["torch"] == torch.__version__ and env["device"] == "cpu" and env["cpu_count"] >= 1
    assert env["started_utc"].endswith("+00:00") and env["command"]

    history = read_jsonl(run / "metrics.jsonl")
    best = json.loads((run / "summary.json").read_text())["best"]
    fig = run_curves_figure(history, best, "val/acc")
    loss_ax, acc_ax = fig.axes
    lines = {line.get_label(): line for ax in fig.axes for line in ax.get_lines()}
    for key in ("train/loss", "val/loss", "train/acc", "val/acc"):
        assert list(lines[key].get_ydata()) == [row[key] for row in history]
        assert list(lines[key].get_xdata()) == [1, 2]
    star = next(line for line in acc_ax.get_lines() if line.get_label().startswith("best val/acc"))
    assert (star.get_xdata()[0], star.get_ydata()[0]) == (best["epoch"], best["val/acc"])


def test_the_test_splits_confusion_matrix_comes_from_the_same_pass_as_test_acc(tmp_path):
    from dlrun.training.tasks import build_loop

    loop = build_loop(make_cfg(*TINY, "model=mlp", "callbacks=none", "trainer.max_epochs=1"), tmp_path)
    summary = loop.fit()
    cm = loop.test_confusion
    assert cm.shape == (4, 4)
    assert cm.sum() == len(loop.data.test.y)
    # the same counts as the test labels, class by class
    assert list(cm.sum(axis=1)) == np.bincount(loop.data.test.y.numpy(), minlength=4).tolist()
    assert cm.trace() / cm.sum() == pytest.approx(summary["test"]["test/acc"])


def test_a_regression_run_has_loss_and_mae_curves_and_no_confusion_matrix(tmp_path):
    from dlrun.results.figures import run_curves_figure

    history = [{"epoch": e, "train/loss": 1.0 / e, "val/loss": 1.2 / e, "train/mae": 2.0 / e, "val/mae": 2.5 / e}
               for e in (1, 2)]
    fig = run_curves_figure(history, {"epoch": 2, "val/mae": 1.25}, "val/mae")
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "mae"]
    assert list(fig.axes[1].get_lines()[1].get_ydata()) == [2.5, 1.25]


# -- a sweep's runs, made by hand with known numbers --------------------------------------------------------
ACC = {("sgd", 0): 0.61, ("sgd", 1): 0.65, ("sgd", 2): 0.60, ("adam", 0): 0.80, ("adam", 1): 0.84, ("adam", 2): 0.79}


def _fake_run(folder: Path, optimizer: str, seed: int, status: str = "completed") -> Path:
    folder.mkdir(parents=True)
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["data=synthetic", f"seed={seed}",
                                                                       f"optimizer={optimizer}"]))
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(
        {"seed": seed, "monitor": "val/acc", "optimizer": {"name": optimizer, "lr": 0.1 if optimizer == "sgd" else 1e-3}}))
    acc = ACC[optimizer, seed]
    rows = [{"epoch": e, "train/loss": 2 - acc * e / 2, "val/loss": 2.1 - acc * e / 2, "train/acc": acc * e / 2 + 0.05,
             "val/acc": acc * e / 2} for e in (1, 2)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "summary.json").write_text(json.dumps({
        "status": status, "epochs": 2, "best": {"epoch": 2, "val/acc": acc}, "test": {"test/loss": 1.0 - acc,
        "test/acc": acc - 0.01}, "samples_per_s": 1000.0 + seed, "duration_s": 3.0 + seed, "error": None}))
    return folder


@pytest.fixture
def six_runs(tmp_path):
    sweep = tmp_path / "sweep"
    for i, (optimizer, seed) in enumerate(ACC):
        _fake_run(sweep / f"{i}_seed-{seed}_optimizer-{optimizer}", optimizer, seed)
    return sweep


def test_seed_groups_are_numpys_mean_and_sample_std(six_runs):
    from dlrun.results.aggregate import group_rows
    from dlrun.results.compare import collect

    groups = group_rows(collect([six_runs]))
    assert [g["config"] for g in groups] == ["data=synthetic optimizer=adam", "data=synthetic optimizer=sgd"]
    for g in groups:
        opt = g["config"].split("optimizer=")[1]
        for col, values in (("best/val/acc", [ACC[opt, s] for s in range(3)]),
                            ("test/acc", [ACC[opt, s] - 0.01 for s in range(3)]),
                            ("time_s", [3.0, 4.0, 5.0])):
            assert g[col].n == 3
            assert g[col].mean == pytest.approx(np.mean(values))
            assert g[col].std == pytest.approx(np.std(values, ddof=1))
    assert str(groups[0]["best/val/acc"]).endswith("(3)") and " ± " in str(groups[0]["best/val/acc"])


def test_sweep_figures_draw_one_line_with_a_band_per_seed_group(six_runs):
    from matplotlib.collections import PolyCollection

    from dlrun.results.aggregate import group_rows
    from dlrun.results.compare import collect
    from dlrun.results.figures import comparison_figures

    groups = group_rows(collect([six_runs]))
    figs = comparison_figures(groups, six_runs)
    acc_ax = figs["curves"].axes[1]
    lines = acc_ax.get_lines()
    assert [line.get_label() for line in lines] == ["optimizer=adam (mean of 3)", "optimizer=sgd (mean of 3)"]
    adam = [ACC["adam", s] for s in range(3)]
    assert list(lines[0].get_ydata()) == pytest.approx([np.mean(adam) / 2, np.mean(adam)])
    bands = [c for c in acc_ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2
    # the band of adam spans the lowest to the highest run at epoch 2
    ys = bands[0].get_paths()[0].vertices[:, 1]
    assert ys.min() == pytest.approx(min(adam) / 2) and ys.max() == pytest.approx(max(adam))

    best_ax, test_ax = figs["metrics"].axes
    means = list(best_ax.containers[0].lines[0].get_xdata())  # the errorbar's points, best first
    assert means == pytest.approx([np.mean(adam), np.mean([ACC["sgd", s] for s in range(3)])])
    assert [t.get_text() for t in best_ax.get_yticklabels()] == ["optimizer=adam", "optimizer=sgd"]
    assert test_ax.get_xlabel().startswith("test/acc")


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.rows, self.scripts, self.cells = [], [], 0, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.imgs.append(attrs.get("src", ""))
        elif tag == "tr":
            self.cells = []
            self.rows.append(self.cells)
        elif tag == "script":
            self.scripts += 1

    def handle_data(self, data):
        self.cells.append(data)


def test_report_html_is_one_self_contained_file_with_every_run_and_figure(six_runs, tmp_path):
    from dlrun.results.compare import main

    out = tmp_path / "report.html"
    assert main([str(six_runs), "--html", str(out)]) == 0
    text = out.read_text()
    page = _Page()
    page.feed(text)
    assert "http://" not in text and "https://" not in text and page.scripts == 0
    assert len(page.imgs) >= 2 and all(src.startswith("data:image/png;base64,") for src in page.imgs)
    run_cells = {cell for row in page.rows for cell in row}
    assert {p.name for p in six_runs.iterdir()} <= run_cells  # every job's row
    assert "Validation curves" in text and "mean ± std" in text


def test_a_failed_seed_is_left_out_of_the_mean_and_shown_red_in_the_report(six_runs, tmp_path):
    from dlrun.results.aggregate import group_rows
    from dlrun.results.compare import collect
    from dlrun.results.html_report import write_report

    failed = next(p for p in six_runs.iterdir() if p.name.startswith("0_"))  # sgd, seed 0
    (failed / "summary.json").write_text(json.dumps({"status": "failed", "epochs": 0, "best": None, "test": {},
                                                     "duration_s": 0.5, "error": "ConfigError: optimizer.lr=-1"}))
    rows = collect([six_runs])
    sgd = next(g for g in group_rows(rows) if g["config"].endswith("sgd"))
    assert sgd["n"] == 3 and sgd["status"] in ("2 completed, 1 failed", "1 failed, 2 completed")
    assert sgd["best/val/acc"].n == 2 and sgd["best/val/acc"].text(3).endswith("(2)")
    assert sgd["best/val/acc"].mean == pytest.approx(np.mean([ACC["sgd", 1], ACC["sgd", 2]]))
    text = write_report(tmp_path / "r.html", rows, "runs", six_runs).read_text()
    assert '<tr class="bad">' in text and "ConfigError: optimizer.lr=-1" in text


def test_compare_groups_seeds_by_default_and_no_group_shows_single_runs(six_runs, capsys):
    import csv
    import io

    from dlrun.results.compare import main

    assert main([str(six_runs), "--format", "csv"]) == 0
    grouped = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["config"], r["n"]) for r in grouped] == [("data=synthetic optimizer=adam", "3"),
                                                        ("data=synthetic optimizer=sgd", "3")]
    assert float(grouped[0]["best/val/acc_std"]) == pytest.approx(np.std([0.80, 0.84, 0.79], ddof=1))

    assert main([str(six_runs), "--format", "csv", "--no-group"]) == 0
    assert len(list(csv.DictReader(io.StringIO(capsys.readouterr().out)))) == 6

    assert main([str(six_runs), "--format", "csv", "--group-by", "seed"]) == 0
    by_seed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert sorted(r["config"] for r in by_seed) == ["seed=0", "seed=1", "seed=2"]
    assert all(r["n"] == "2" for r in by_seed)


def test_compare_shows_env_fields_as_columns_and_rejects_unknown_ones(six_runs, capsys):
    import csv
    import io

    from dlrun.results.compare import main

    (next(six_runs.iterdir()) / "env.json").write_text(json.dumps({"hostname": "gpu-node-7", "git_commit": "abc"}))
    assert main([str(six_runs), "--no-group", "--format", "csv", "--env", "hostname"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert sorted(r["env/hostname"] for r in rows) == [""] * 5 + ["gpu-node-7"]
    with pytest.raises(SystemExit) as exit_info:
        main([str(six_runs), "--env", "hostnme"])
    assert exit_info.value.code == 2
    assert "no such env.json field" in capsys.readouterr().err


@pytest.fixture
def console_text(monkeypatch):
    """What dlrun's shared rich console prints (it holds the sys.stdout of its import time)."""
    import io

    from dlrun.console import console

    buf = io.StringIO()
    monkeypatch.setattr(console, "file", buf)
    return buf


def test_diff_lists_config_keys_metrics_and_env_fields_that_differ(six_runs, capsys, console_text):
    from dlrun.results.compare import main
    from dlrun.results.config_diff import diff_dicts, metric_deltas, run_config

    a, b = sorted(six_runs.iterdir())[0], sorted(six_runs.iterdir())[4]  # sgd seed 0, adam seed 1
    assert [k for k, _, _ in diff_dicts(run_config(a), run_config(b))] == ["optimizer.lr", "optimizer.name", "seed"]
    deltas = {k: d for k, _, _, d in metric_deltas(a, b)}
    assert deltas["best/val/acc"] == pytest.approx(0.84 - 0.61) and deltas["samples/s"] == pytest.approx(1.0)
    (a / "env.json").write_text(json.dumps({"git_commit": "aaa", "torch": "2.14.1"}))
    (b / "env.json").write_text(json.dumps({"git_commit": "bbb", "torch": "2.14.1"}))
    assert main(["--diff", str(a), str(b)]) == 0
    out = console_text.getvalue()
    assert "3 keys differ" in out and "optimizer.lr" in out and "git_commit" in out and "bbb" in out
    assert main(["--diff", str(a), str(a.parent)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_flatten_gives_dotted_keys_and_keeps_lists_whole():
    from dlrun.results.config_diff import flatten

    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": None, "f": {}}) == {"a.b": 1, "a.c.d": [1, 2], "e": None,
                                                                               "f": {}}


def test_a_single_run_std_is_none_not_nan():
    from dlrun.results.aggregate import stat

    assert stat([0.5]).std is None and stat([None, math.nan]) is None
    assert stat([1.0, 3.0]).std == pytest.approx(math.sqrt(2))


# -- the real thing: a sweep with repeated seeds ------------------------------------------------------------
@pytest.mark.subprocess
def test_a_seeded_sweep_ends_with_groups_figures_report_and_env(tmp_path, console_text):
    from dlrun.results.compare import main

    sweep = tmp_path / "sweep"
    tiny = [o for o in TINY if not o.startswith(("trainer.max_epochs", "data.size"))]
    proc = run_dlrun("-m", *tiny, "data.size=64", "model=mlp", "trainer.max_epochs=1", "seed=0,1",
                     "optimizer.lr=0.1,0.01", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr
    # the grouped table: 2 configurations of 2 seeds each
    assert len(re.findall(r"optimizer\.lr=0\.0?1 +│ 2 │ \d\.\d{4} ± \d\.\d{4}", proc.stdout)) == 2, proc.stdout
    for name in ("report.html", "curves.png", "metrics.png"):
        assert (sweep / name).is_file(), name
    assert _is_png(sweep / "curves.png")
    jobs = sorted(p for p in sweep.iterdir() if (p / "summary.json").is_file())
    assert len(jobs) == 4 and all((j / "env.json").is_file() and (j / "curves.png").is_file() for j in jobs)
    overrides = {j: yaml.safe_load((j / ".hydra" / "overrides.yaml").read_text()) for j in jobs}
    a = next(j for j in jobs if {"seed=0", "optimizer.lr=0.1"} <= set(overrides[j]))
    b = next(j for j in jobs if {"seed=1", "optimizer.lr=0.01"} <= set(overrides[j]))
    from dlrun.results.config_diff import diff_dicts, run_config

    assert [k for k, _, _ in diff_dicts(run_config(a), run_config(b))] == ["optimizer.lr", "seed"]
    assert main(["--diff", str(a), str(b)]) == 0
    assert "2 keys differ" in console_text.getvalue()


def test_optuna_figures_draw_every_trial_and_the_importances(tmp_path):
    optuna = pytest.importorskip("optuna")
    from dlrun.results.figures import optuna_figures, parallel_coordinates_figure

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: -(t.suggest_float("lr", 1e-4, 1e-1, log=True) - 0.01) ** 2 + t.suggest_int("depth", 1, 4)
                   + (t.suggest_categorical("opt", ["sgd", "adam"]) == "adam"), n_trials=8)
    written = optuna_figures(study, tmp_path)
    assert [p.name for p in written] == ["optuna_parallel_coordinates.png", "optuna_param_importances.png"]
    assert all(_is_png(p) for p in written)
    fig = parallel_coordinates_figure(study.trials, ["depth", "lr", "opt"], maximize=True)
    lines = fig.axes[0].get_lines()
    assert len(lines) == 8
    best = max(range(8), key=lambda i: study.trials[i].value)
    assert lines[best].get_ydata()[0] == 1.0  # the objective axis: the best trial at the top
    opt_axis = [line.get_ydata()[3] for line in lines]
    assert opt_axis == [1.0 if t.params["opt"] == "adam" else 0.0 for t in study.trials]
