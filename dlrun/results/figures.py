"""Figures drawn once a run or sweep has ended: a run's curves.png and confusion_matrix.png, a sweep's curves.png
and metrics.png, an Optuna study's plots. matplotlib (Agg, no display) is imported only here, never while training.

Every function that draws returns its Figure (tests read the plotted data from it) and reads only what the
run folders hold: metrics.jsonl, summary.json and compare's rows.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

log = logging.getLogger("dlrun")

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    from matplotlib import pyplot as plt

    return plt


def save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=100)
    _plt().close(fig)
    return path


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    _plt().close(fig)
    return buf.getvalue()


def _integer_epochs(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def second_metric(history: list[dict]) -> str:
    """acc for classification, mae for regression: the curve beside the loss."""
    keys = {k.split("/", 1)[1] for row in history for k in row if "/" in k}
    return "acc" if "acc" in keys or "mae" not in keys else "mae"


# -- one run ---------------------------------------------------------------------------------------------
def run_curves_figure(history: list[dict], best: dict | None = None, monitor: str | None = None, title: str = ""):
    """Loss and accuracy (regression: MAE) per epoch, train and validation; the best epoch marked."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    history = [row for row in history if "epoch" in row]
    epochs = [row["epoch"] for row in history]
    for ax, metric in zip(axes, ("loss", second_metric(history))):
        for split, style in (("train", "--"), ("val", "-")):
            key = f"{split}/{metric}"
            points = [(e, row[key]) for e, row in zip(epochs, history) if isinstance(row.get(key), (int, float))]
            if points:
                ax.plot(*zip(*points), style, marker="o", markersize=3, label=key)
        if best and best.get("epoch"):
            ax.axvline(best["epoch"], color="grey", linestyle=":", linewidth=1)
            if monitor and monitor.endswith(f"/{metric}") and isinstance(best.get(monitor), (int, float)):
                ax.plot([best["epoch"]], [best[monitor]], "*", color="black", markersize=12,
                        label=f"best {monitor} {best[monitor]:.4f} (epoch {best['epoch']})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize=8)
        _integer_epochs(ax)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def write_run_figures(run_dir: Path, confusion=None, class_names: list | None = None) -> list[Path]:
    """curves.png from the run's metrics.jsonl and summary.json; confusion_matrix.png from the test split's counts.
    A figure that cannot be drawn is a warning, never a failed run."""
    from dlrun.run_folder.records import read_jsonl
    from dlrun.run_folder.run_record import read_summary

    run_dir = Path(run_dir)
    written = []
    try:
        history = read_jsonl(run_dir / "metrics.jsonl") if (run_dir / "metrics.jsonl").is_file() else []
        summary = read_summary(run_dir)
        best = (summary.best if summary else None) or {}
        monitor = next((k for k in best if k != "epoch"), None)
        if history:
            written.append(save(run_curves_figure(history, best, monitor, title=run_dir.name), run_dir / "curves.png"))
        if confusion is not None:
            from dlrun.results.plots import confusion_matrix_figure

            acc = ((summary.test if summary else None) or {}).get("test/acc")
            title = "test split" + (f", acc {acc:.4f}" if isinstance(acc, float) else "")
            written.append(save(confusion_matrix_figure(confusion, class_names, title=title),
                                run_dir / "confusion_matrix.png"))
    except Exception as e:  # noqa: BLE001 - a figure is a convenience: the run's results are already on disk
        log.warning("could not draw the figures of %s: %s: %s", run_dir, type(e).__name__, e)
    return written


# -- several runs ----------------------------------------------------------------------------------------
def _series(histories: list[list[dict]], key: str):
    """(epochs, mean, low, high) of a metric over runs, on the epochs every run reached (low/high: min and max)."""
    per_run = [{row["epoch"]: row[key] for row in h if isinstance(row.get(key), (int, float)) and "epoch" in row}
               for h in histories]
    per_run = [r for r in per_run if r]
    if not per_run:
        return None
    epochs = sorted(set.intersection(*(set(r) for r in per_run)))
    if not epochs:
        return None
    values = [[r[e] for r in per_run] for e in epochs]
    mean = [sum(v) / len(v) for v in values]
    return epochs, mean, [min(v) for v in values], [max(v) for v in values]


def sweep_curves_figure(groups: list[tuple[str, list[list[dict]]]], monitor: str = "val/acc", title: str = ""):
    """Validation curves of several runs overlaid, one colour per configuration; a configuration run with
    several seeds is one line (the mean) with a band from the lowest to the highest run."""
    plt = _plt()
    all_rows = [row for _, hs in groups for h in hs for row in h]
    split = "val" if any(k.startswith("val/") for row in all_rows for k in row) else "train"
    metrics = ["loss", second_metric(all_rows)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for i, (label, histories) in enumerate(groups):
        color = COLORS[i % len(COLORS)]
        for ax, metric in zip(axes, metrics):
            series = _series(histories, f"{split}/{metric}")
            if series is None:
                continue
            epochs, mean, low, high = series
            n = len(histories)
            ax.plot(epochs, mean, color=color, marker="o", markersize=3,
                    label=f"{label} (mean of {n})" if n > 1 else label)
            if n > 1:
                ax.fill_between(epochs, low, high, color=color, alpha=0.2, linewidth=0)
    for ax, metric in zip(axes, metrics):
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{split}/{metric}")
        ax.grid(alpha=0.3)
        _integer_epochs(ax)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, min(0.35, 0.06 * ((len(labels) + 2) // 3) + 0.02), 1, 1))
    return fig


def main_test_metric(monitor: str, test_keys) -> str | None:
    """The test metric that matches the monitored one (val/acc -> test/acc), else test/acc, else test/loss."""
    name = "test/" + monitor.split("/", 1)[-1]
    for key in (name, "test/acc", "test/mae", "test/loss"):
        if key in test_keys:
            return key
    return None


def sweep_metrics_figure(groups: list[dict], monitor: str, title: str = ""):
    """The monitored metric and the main test metric per configuration (aggregate.group_rows), best first:
    the mean with a ±std bar, and each run's own value as a small grey dot when seeds repeat."""
    from dlrun.results.aggregate import differing
    from dlrun.run_folder.metric_mode import mode_for

    plt = _plt()
    test_key = main_test_metric(monitor, {k for g in groups for k in g})
    keys = [f"best/{monitor}"] + ([test_key] if test_key else [])
    labels = dict(zip(map(id, groups), differing([g["config"] for g in groups])[0]))
    height = max(2.5, 0.4 * len(groups) + 1.3)
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), height), squeeze=False)
    for ax, key in zip(axes[0], keys):
        shown = [g for g in groups if g.get(key) is not None]
        shown.sort(key=lambda g: g[key].mean, reverse=mode_for(key) == "max")  # the best first, at the top
        ys = list(range(len(shown)))
        for y, g in zip(ys, shown):
            values = [r[key] for r in g["runs"] if isinstance(r.get(key), (int, float))]
            if len(values) > 1:
                ax.plot(values, [y] * len(values), "o", color="grey", markersize=3, alpha=0.7)
        errs = [g[key].std or 0.0 for g in shown]
        ax.errorbar([g[key].mean for g in shown], ys, xerr=errs if any(errs) else None, fmt="o", color=COLORS[0],
                    capsize=4, markersize=7)
        ax.set_yticks(ys, [_short(labels[id(g)]) for g in shown], fontsize=8)
        ax.set_ylim(len(shown) - 0.4, -0.6)  # y grows downwards: the first at the top
        ax.set_xlabel(key + (" (mean ± std, dots: runs)" if any(g["n"] > 1 for g in shown) else ""))
        ax.grid(axis="x", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def histories_of(groups: list[dict], root: Path | None) -> list[tuple[str, list[list[dict]]]]:
    """(label, metrics.jsonl of each run) per group, labels reduced to the overrides that differ."""
    from dlrun.run_folder.records import read_jsonl

    from dlrun.results.aggregate import differing

    labels, _ = differing([g["config"] for g in groups])
    out = []
    for label, g in zip(labels, groups):
        histories = []
        for r in g["runs"]:
            path = run_path(r, root) / "metrics.jsonl"
            if path.is_file():
                histories.append(read_jsonl(path))
        out.append((label, histories))
    return out


def run_path(row: dict, root: Path | None) -> Path:
    path = Path(row["run"])
    return root / path if root is not None and not path.is_absolute() and (root / path).exists() else path


def comparison_figures(groups: list[dict], root: Path | None, title: str = "") -> dict:
    """{"curves": Figure, "metrics": Figure} for a set of runs (aggregate.group_rows), those that can be drawn."""
    monitors = {g["monitor"] for g in groups}
    monitor = monitors.pop() if len(monitors) == 1 else "val/acc"
    figures = {}
    series = [s for s in histories_of(groups, root) if s[1]]
    if any("epoch" in row for _, histories in series for h in histories for row in h):  # not task=landscape's steps
        figures["curves"] = sweep_curves_figure(series, monitor, title)
    if any(g.get(f"best/{monitor}") is not None for g in groups):
        figures["metrics"] = sweep_metrics_figure(groups, monitor, title)
    return figures


# -- Optuna ----------------------------------------------------------------------------------------------
def optuna_figures(study, folder: Path) -> list[Path]:
    """optuna_parallel_coordinates.png and optuna_param_importances.png of a finished study (importances need
    two completed trials or more). Drawn here from the trials rather than by optuna.visualization.matplotlib,
    which fails with optuna 2.x on current matplotlib and numpy (the version hydra-optuna-sweeper pins)."""
    import optuna

    folder = Path(folder)
    trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]
    params = sorted({p for t in trials for p in t.params})
    if not trials or not params:
        return []
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    written = [save(parallel_coordinates_figure(trials, params, maximize), folder / "optuna_parallel_coordinates.png")]
    if len(trials) >= 2:
        try:  # a random forest's impurity decrease: the evaluator that works on every optuna version
            evaluator = optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=0)
            importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
        except (ValueError, RuntimeError) as e:  # e.g. no parameter varies
            log.warning("optuna parameter importances skipped: %s", e)
        else:
            written.append(save(param_importances_figure(importances), folder / "optuna_param_importances.png"))
    return written


def _scaled(values: list, distribution) -> tuple[list[float], list[str]]:
    """Values mapped onto [0, 1] for one axis (log for a log-uniform parameter, index for a categorical one),
    and the two labels of the axis' ends."""
    import math

    choices = getattr(distribution, "choices", None)
    if choices is not None:
        k = max(len(choices) - 1, 1)
        return [choices.index(v) / k for v in values], [str(choices[0]), str(choices[-1])]
    log_scale = getattr(distribution, "log", False) or type(distribution).__name__.startswith("LogUniform")
    xs = [math.log10(v) if log_scale else float(v) for v in values]
    lo, hi = min(xs), max(xs)
    ends = [min(values), max(values)]
    return [(x - lo) / (hi - lo) if hi > lo else 0.5 for x in xs], [f"{v:.3g}" for v in ends]


def parallel_coordinates_figure(trials, params: list[str], maximize: bool):
    """One line per completed trial through the objective and each parameter, darker for better trials."""
    plt = _plt()
    trials = [t for t in trials if all(p in t.params for p in params)]
    fig, ax = plt.subplots(figsize=(max(6, 2 + 1.8 * len(params)), 4.5))
    objective = [t.value for t in trials]
    columns = [_scaled(objective, None)]
    for p in params:
        columns.append(_scaled([t.params[p] for t in trials], trials[0].distributions[p]))
    lo, hi = min(objective), max(objective)
    cmap = plt.get_cmap("viridis_r" if maximize else "viridis")
    for i, value in enumerate(objective):
        ax.plot(range(len(columns)), [col[0][i] for col in columns], color=cmap((value - lo) / (hi - lo) if hi > lo else 1.0),
                alpha=0.8, linewidth=1.5)
    ax.vlines(range(len(columns)), 0, 1, color="black", linewidth=0.8)  # the axes (a collection, not lines)
    for x, (_, ends) in enumerate(columns):
        ax.text(x, -0.06, ends[0], ha="center", va="top", fontsize=8)
        ax.text(x, 1.06, ends[1], ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(columns)), ["objective", *params], fontsize=9)
    ax.tick_params(axis="x", pad=18)
    ax.set_yticks([])
    ax.set_ylim(-0.15, 1.15)
    ax.set_title(f"{len(trials)} trials, darker = better", fontsize=10)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig


def param_importances_figure(importances: dict):
    """How much each parameter explains the objective (fractions summing to 1), the largest at the top."""
    plt = _plt()
    names = list(importances)[::-1]
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.45 * len(names)))
    ax.barh(range(len(names)), [float(importances[n]) for n in names], color=COLORS[0])
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("importance (random forest, mean decrease in impurity)")
    ax.set_xlim(0, 1)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig
