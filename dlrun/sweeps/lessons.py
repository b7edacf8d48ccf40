"""Each lesson's one figure: `lesson.png` in the experiment's sweep (or run) folder.

An experiment preset names its lesson in a Hydra callback (`hydra.callbacks.lesson.lesson: NAME`); when
the sweep or run ends, the drawer of that name reads the jobs' metrics.jsonl / summary.json and draws
the plot that shows the lesson. A drawer returns the numbers it drew (the tests check them), and a
figure that cannot be drawn is a warning, never a failed run.

`python -m dlrun.sweeps.lessons OUT_DIR [NAME...]` runs the presets and copies their figures (`make figures`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import yaml
from hydra.experimental.callback import Callback as HydraCallback

from dlrun.run_folder.run_record import FAILED, read_summary

log = logging.getLogger("dlrun")
FIGURE = "lesson.png"


# -- reading a sweep ---------------------------------------------------------------------------------------
def read_job(job: Path) -> dict:
    """A job folder's overrides, metric rows and summary."""
    overrides_file = job / ".hydra" / "overrides.yaml"
    overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
    metrics = job / "metrics.jsonl"
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()] if metrics.is_file() else []
    return {"dir": job, "overrides": dict(o.split("=", 1) for o in overrides if "=" in o), "rows": rows,
            "summary": read_summary(job).to_dict(), "label": job.name}


def read_sweep(sweep: Path) -> list[dict]:
    """The jobs of a sweep folder, with `label`: the override values that differ between jobs."""
    from dlrun.sweeps.sweep import job_order

    jobs = [read_job(d) for d in sorted(Path(sweep).iterdir(), key=lambda d: job_order(d.name))
            if (d / "summary.json").is_file()]
    keys = {k for j in jobs for k in j["overrides"]}
    varying = [k for k in sorted(keys) if len({j["overrides"].get(k) for j in jobs}) > 1]
    for j in jobs:
        j["label"] = " ".join(_shown(j["overrides"].get(k, "")) for k in varying) or j["dir"].name
    return jobs


def _shown(value: str) -> str:
    """An override's value as a legend shows it: an empty list (`data.augment=[]`) is "none"."""
    return "none" if value.strip() in ("[]", "") else value


def series(job: dict, key: str) -> list[float]:
    return [r[key] for r in job["rows"] if key in r]


def _whole_epochs(*axes) -> None:
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


# -- the drawers: (jobs, figure) -> the numbers drawn -------------------------------------------------------
def draw_activations(jobs, fig):
    """First- vs last-layer gradient norm per activation over epochs (log scale)."""
    ax = fig.subplots()
    drawn = {}
    for i, job in enumerate(jobs):
        keys = [k for k in job["rows"][0] if k.startswith("grad_norm/")] if job["rows"] else []
        if not keys:
            continue
        first, last = series(job, keys[0]), series(job, keys[-1])
        color = f"C{i}"
        ax.plot(range(1, len(first) + 1), first, color=color, label=f"{job['label']}: first layer")
        ax.plot(range(1, len(last) + 1), last, color=color, linestyle="--", label=f"{job['label']}: last layer")
        drawn[job["label"]] = {"first": first, "last": last}
    ax.set(yscale="log", xlabel="epoch", ylabel="mean weight-gradient norm",
           title="vanishing gradient: first (solid) vs last (dashed) layer")
    _whole_epochs(ax)
    ax.legend(fontsize=7, ncol=2)
    return drawn


def draw_init(jobs, fig):
    """Each layer's output std at the start, per initializer (log scale; zeros: 0, not drawn)."""
    ax_act, ax_grad = fig.subplots(1, 2)
    drawn = {}
    for i, job in enumerate(jobs):
        scales = job["summary"].get("init_scales")
        if not scales:
            continue
        layers = np.arange(1, len(scales["layers"]) + 1)
        act, grad = np.array(scales["activation_std"]), np.array(scales["grad_norm"])
        failed = job["summary"].get("status") == FAILED
        label = job["label"] + (" (diverged)" if failed else "")
        ax_act.plot(layers, np.where(act > 0, act, np.nan), marker="o", color=f"C{i}", label=label)
        ax_grad.plot(layers, np.where(grad > 0, grad, np.nan), marker="o", color=f"C{i}", label=label)
        drawn[job["label"]] = {"activation_std": act.tolist(), "grad_norm": grad.tolist(), "status": job["summary"]["status"]}
    ax_act.set(yscale="log", xlabel="layer", ylabel="std of the layer's output", title="activations at the start")
    ax_grad.set(yscale="log", xlabel="layer", ylabel="weight-gradient norm", title="gradients at the start")
    ax_act.legend(fontsize=7)
    return drawn


def draw_curves(key: str, title: str):
    """One metric's curve per job, overlaid (optimizers: the training loss)."""
    def draw(jobs, fig):
        ax = fig.subplots()
        drawn = {}
        for job in jobs:
            values = series(job, key)
            if values:
                ax.plot(range(1, len(values) + 1), values, label=job["label"])
                drawn[job["label"]] = values
        ax.set(xlabel="epoch", ylabel=key, title=title)
        _whole_epochs(ax)
        if key.endswith("loss"):
            ax.set_yscale("log")
        ax.legend(fontsize=8)
        return drawn
    return draw


def draw_train_val_gap(jobs, fig):
    """Training (solid) vs validation (dashed) accuracy per job, and the gap train - val over epochs."""
    ax_acc, ax_gap = fig.subplots(1, 2)
    drawn = {}
    for i, job in enumerate(jobs):
        train, val = series(job, "train/acc"), series(job, "val/acc")
        n = min(len(train), len(val))
        if not n:
            continue
        epochs = range(1, n + 1)
        gap = [t - v for t, v in zip(train[:n], val[:n])]
        ax_acc.plot(epochs, train[:n], color=f"C{i}", label=job["label"])
        ax_acc.plot(epochs, val[:n], color=f"C{i}", linestyle="--")
        ax_gap.plot(epochs, gap, color=f"C{i}", label=job["label"])
        drawn[job["label"]] = {"train": train[:n], "val": val[:n], "gap": gap}
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="train (solid) vs validation (dashed)")
    ax_gap.set(xlabel="epoch", ylabel="train acc - val acc", title="the gap: variance (overfitting)")
    _whole_epochs(ax_acc, ax_gap)
    ax_acc.legend(fontsize=7)
    return drawn


def draw_resnet_depth(jobs, fig):
    """Final training loss and error vs depth, plain vs residual."""
    ax_loss, ax_err = fig.subplots(1, 2)
    drawn = {}
    for job in jobs:
        kind = "residual" if str(job["overrides"].get("model.shortcut", "true")).lower() == "true" else "plain"
        depth = int(job["overrides"].get("model.depth", 0))
        loss, acc = series(job, "train/loss"), series(job, "train/acc")
        if loss:
            drawn.setdefault(kind, {})[depth] = {"train_loss": loss[-1], "train_error": 1 - acc[-1] if acc else None}
    for kind, style in (("plain", "o--"), ("residual", "s-")):
        points = sorted(drawn.get(kind, {}).items())
        if points:
            depths = [d for d, _ in points]
            ax_loss.plot(depths, [p["train_loss"] for _, p in points], style, label=kind)
            ax_err.plot(depths, [p["train_error"] for _, p in points], style, label=kind)
            for ax in (ax_loss, ax_err):
                ax.set_xticks(depths)
    ax_loss.set(xlabel="depth (layers)", ylabel="final training loss", title="deeper plain nets train worse")
    ax_err.set(xlabel="depth (layers)", ylabel="final training error", title="the shortcut keeps depth trainable")
    ax_loss.legend()
    return drawn


def draw_depth_remedies(jobs, fig):
    """Final validation accuracy of each combination of the three remedies for depth (ReLU, Xavier, batch
    norm), from none to all three: one bar per job, the remedies it has named."""
    def remedies(job):
        o = job["overrides"]
        return (o.get("model.activation") == "relu", "xavier" in o.get("initializer", ""),
                str(o.get("model.batchnorm", "false")).lower() == "true")

    rows = []
    for job in jobs:
        acc, loss = series(job, "val/acc"), series(job, "train/loss")
        if acc:
            has = remedies(job)
            names = [n for n, on in zip(("ReLU", "Xavier", "batch norm"), has) if on]
            rows.append((sum(has), has, " + ".join(names) or "none (sigmoid, N(0, 0.01²))", acc[-1], loss[-1]))
    rows.sort(key=lambda r: (r[0], r[1]))
    ax = fig.subplots()
    ax.barh(range(len(rows)), [r[3] for r in rows], color=[f"C{r[0]}" for r in rows])
    for i, r in enumerate(rows):
        ax.text(r[3] + 0.01, i, f"{r[3]:.2f} (train loss {r[4]:.2f})", va="center", fontsize=8)
    ax.axvline(0.1, color="0.5", linestyle=":", label="chance (10 classes)")
    ax.set_yticks(range(len(rows)), [r[2] for r in rows], fontsize=8)
    ax.set(xlim=(0, 1.25), xlabel="final validation accuracy",
           title="remedies for depth: a 10-layer MLP on digits, remedies added bottom to top")
    ax.legend(loc="lower right", fontsize=8)
    return {r[2]: {"remedies": r[0], "val_acc": r[3], "train_loss": r[4]} for r in rows}


def draw_transfer(jobs, fig):
    """Fine-tuned from the pretrained weights vs trained from scratch: the training loss over epochs (the
    pretrained features start lower) and the test accuracy each reaches."""
    ax_loss, ax_test = fig.subplots(1, 2)
    drawn = {}
    for job in jobs:
        pretrained = str(job["overrides"].get("model.pretrained", "none"))
        label = "from scratch" if pretrained in ("none", "null", "") else f"fine-tuned from {Path(pretrained).name}"
        loss = series(job, "train/loss")
        test = (job["summary"].get("test") or {}).get("test/acc")
        if loss:
            ax_loss.plot(range(1, len(loss) + 1), loss, "--" if label == "from scratch" else "-", label=label)
            drawn[label] = {"train_loss": loss, "test_acc": test}
    labels = [k for k in drawn if drawn[k]["test_acc"] is not None]
    bars = ax_test.bar(range(len(labels)), [drawn[k]["test_acc"] for k in labels], color=["C0", "C1"][:len(labels)])
    ax_test.bar_label(bars, fmt="%.4f")
    ax_test.set_xticks(range(len(labels)), [k.replace(" from ", "\nfrom ") for k in labels])
    low = min((drawn[k]["test_acc"] for k in labels), default=0.5)
    ax_test.set(ylim=(max(0.0, low - 0.1), 1.0), ylabel="test accuracy", title="test accuracy (5 new classes)")
    ax_loss.set(xlabel="epoch", ylabel="train/loss", title="the same 500 images: pretrained features vs none")
    _whole_epochs(ax_loss)
    ax_loss.legend(fontsize=8)
    return drawn


def draw_gate(jobs, fig):
    """The perceptron's line w.x + b = 0 over the gate's four points (in the raw 0/1 coordinates)."""
    import torch

    from dlrun.data.logic_gate import GATES, ROWS

    job = jobs[0]
    cfg = yaml.safe_load((job["dir"] / ".hydra" / "config.yaml").read_text())
    report = job["summary"].get("perceptron") or {}
    w, b = np.array(report.get("weights", [0.0, 0.0]), dtype=float), float(report.get("bias", 0.0))
    if cfg["data"].get("standardize", True):  # the model saw (x - mean)/std: the same line in raw coordinates
        mean, std = ROWS.mean(0), torch.tensor(ROWS, dtype=torch.float64).std(0).numpy()
        w, b = w / std, b - float((w / std) @ mean)
    y = GATES[cfg["data"]["gate"]](ROWS[:, 0], ROWS[:, 1])
    ax = fig.subplots()
    ax.scatter(ROWS[:, 0], ROWS[:, 1], c=["C1" if v else "C0" for v in y], s=150, zorder=3)
    for (a, c), v in zip(ROWS, y):
        ax.annotate(f"{int(v)}", (a, c), textcoords="offset points", xytext=(10, 8))
    grid = np.linspace(-0.5, 1.5, 201)
    gx, gy = np.meshgrid(grid, grid)
    ax.contourf(gx, gy, (w[0] * gx + w[1] * gy + b > 0).astype(float), levels=[-0.5, 0.5, 1.5],
                colors=["C0", "C1"], alpha=0.15)
    if abs(w[1]) > 1e-12:
        sign = lambda v: f"{'-' if v < 0 else '+'} {abs(v):.2f}"
        ax.plot(grid, -(w[0] * grid + b) / w[1], "k-", label=f"{w[0]:.2f} A {sign(w[1])} B {sign(b)} = 0")
    ax.set(xlim=(-0.5, 1.5), ylim=(-0.5, 1.5), xlabel="A", ylabel="B", aspect="equal",
           title=f"perceptron on {cfg['data']['gate'].upper()}: train acc {report.get('train_acc', 0):.2f}")
    ax.legend(loc="upper left", fontsize=8)
    right = int(((ROWS @ w + b > 0).astype(int) == y).sum())
    return {"weights": w.tolist(), "bias": b, "rows_right": right}


def _trained(job: dict):
    """A job's last checkpoint as training left it: the model on the CPU in eval mode, the stored config,
    the data info, and the training split's normalisation of raw inputs."""
    import torch

    from dlrun.run_folder import checkpoint
    from dlrun.training.evaluate import _info_and_stats, _restore_model, stored_config

    path = job["dir"] / "checkpoints" / "last.pt"
    state = checkpoint.load(path)
    stored = stored_config(state, path)
    info, mean, std = _info_and_stats(state, stored)
    model, _ = _restore_model(stored, info, state, path, torch.device("cpu"))
    return model, stored, info, lambda x: (x - mean.view(1, -1)) / std.view(1, -1)


def draw_regions(jobs, fig):
    """The MLP's two regions over the XOR points, from its last checkpoint: curved, not one line."""
    import torch

    from dlrun.data.logic_gate import GATES, ROWS

    model, stored, _, normalise = _trained(jobs[0])
    grid = np.linspace(-0.5, 1.5, 201)
    gx, gy = np.meshgrid(grid, grid)
    points = torch.tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32)
    with torch.no_grad():
        classes = model(normalise(points)).argmax(1).view(gx.shape).numpy()
        predicted = model(normalise(torch.tensor(ROWS, dtype=torch.float32))).argmax(1).numpy()
    y = GATES[stored.data.gate](ROWS[:, 0], ROWS[:, 1])
    ax = fig.subplots()
    ax.contourf(gx, gy, classes.astype(float), levels=[-0.5, 0.5, 1.5], colors=["C0", "C1"], alpha=0.25)
    ax.contour(gx, gy, classes.astype(float), levels=[0.5], colors="k")
    ax.scatter(ROWS[:, 0], ROWS[:, 1], c=["C1" if v else "C0" for v in y], s=150, zorder=3)
    for (a, c), v in zip(ROWS, y):
        ax.annotate(f"{int(v)}", (a, c), textcoords="offset points", xytext=(10, 8))
    hidden = list(stored.model.get("hidden", []))
    ax.set(xlim=(-0.5, 1.5), ylim=(-0.5, 1.5), xlabel="A", ylabel="B", aspect="equal",
           title=f"MLP (hidden {hidden}, {stored.model.get('activation')}) on {stored.data.gate.upper()}: "
                 f"{int((predicted == y).sum())}/4 right")
    return {"rows_right": int((predicted == y).sum()), "region_fraction_1": float(classes.mean())}


def draw_fits(jobs, fig):
    """Each loss's fitted line over the one-feature training data (its outliers marked), from the jobs' last
    checkpoints, in the feature's and the target's own units."""
    import torch

    from dlrun.data.tabular import load, with_outliers
    from dlrun.training.evaluate import to_target_units

    ax = fig.subplots()
    drawn, grid = {}, None
    for i, job in enumerate(jobs):
        model, stored, info, normalise = _trained(job)
        features = list(stored.data.get("features") or [])
        if len(features) != 1:
            raise ValueError(f"a line needs one input feature (data.features=[NAME]); this run has {features or 'all'}")
        if grid is None:  # the training data as every job saw it: the same seeded outliers
            src = load(stored.data.name, stored.data.test_fraction, features)
            x, clean = src.train_x[:, 0], src.train_y[:, 0]
            noisy = with_outliers(src.train_y, stored.data.outliers)[:, 0]
            moved = noisy != clean
            ax.scatter(x[~moved], clean[~moved], s=8, color="0.65", label="training data")
            ax.scatter(x[moved], noisy[moved], s=22, color="C3", marker="x", label=f"outliers ({int(moved.sum())})")
            grid = np.linspace(x.min(), x.max(), 50)
        with torch.no_grad():
            fit = to_target_units(model(normalise(torch.tensor(grid, dtype=torch.float32)[:, None])), info)[:, 0].numpy()
        mae = (job["summary"].get("test") or {}).get("test/mae")
        ax.plot(grid, fit, color=f"C{i}", lw=2, label=f"{job['label']}" + (f" (test MAE {mae:.1f})" if mae else ""))
        drawn[job["label"]] = {"x": grid.tolist(), "fit": fit.tolist(), "test_mae": mae}
    ax.set(xlabel=features[0], ylabel="target", title="regression losses with outliers: the fitted lines")
    ax.legend(fontsize=8)
    return drawn


def draw_zoo(jobs, fig):
    """Test accuracy against the model's size (weights in its checkpoint) and against training time."""
    from dlrun.run_folder import checkpoint

    ax_size, ax_time = fig.subplots(1, 2)
    drawn = {}
    for i, job in enumerate(jobs):
        acc = (job["summary"].get("test") or {}).get("test/acc")
        path = job["dir"] / "checkpoints" / "last.pt"
        if acc is None or not path.is_file():
            continue
        size = sum(t.numel() for k, t in checkpoint.load(path)["model"].items() if "running" not in k
                   and "num_batches" not in k)
        seconds = job["summary"].get("duration_s", 0.0)
        label = job["label"].rsplit("=", 1)[-1]
        for ax, x in ((ax_size, size), (ax_time, seconds)):
            ax.scatter([x], [acc], color=f"C{i}", s=60)
            ax.annotate(label, (x, acc), textcoords="offset points", xytext=(6, 4))
        drawn[label] = {"params": size, "seconds": seconds, "test_acc": acc}
    ax_size.set(xscale="log", xlabel="parameters", ylabel="test accuracy", title="accuracy vs size")
    ax_time.set(xlabel="training time (s)", ylabel="test accuracy", title="accuracy vs time")
    return drawn


DRAWERS = {
    "activations": draw_activations,
    "init": draw_init,
    "optimizers": draw_curves("train/loss", "optimizers: training loss"),
    "losses_regression": draw_fits,
    "regularization": draw_train_val_gap,
    "augmentation": draw_train_val_gap,
    "resnet_depth": draw_resnet_depth,
    "depth_remedies": draw_depth_remedies,
    "transfer": draw_transfer,
    "perceptron": draw_gate,
    "mlp_xor": draw_regions,
    "cnn_zoo": draw_zoo,
}


def draw(lesson: str, folder: Path) -> dict:
    """Draw `lesson`'s figure from the sweep (or single run) in `folder` into folder/lesson.png."""
    from dlrun.results.plots import plt, save_figure

    folder = Path(folder)
    jobs = [read_job(folder)] if (folder / "summary.json").is_file() else read_sweep(folder)
    if not jobs:
        raise ValueError(f"no finished job in {folder}")
    wide = lesson in ("init", "regularization", "augmentation", "resnet_depth", "cnn_zoo", "depth_remedies", "transfer")
    fig = plt.figure(figsize=(11 if wide else 7, 4.5 if wide else 5), dpi=100)
    try:
        drawn = DRAWERS[lesson](jobs, fig)
        fig.tight_layout()
        save_figure(fig, folder / FIGURE)
    finally:
        plt.close(fig)
    return drawn


class LessonFigure(HydraCallback):
    """hydra.callbacks.lesson: draws lesson.png when the experiment's sweep (or single run) ends."""

    def __init__(self, lesson: str):
        if lesson not in DRAWERS:
            raise ValueError(f"lesson {lesson!r}: one of {', '.join(DRAWERS)}")
        self.lesson = lesson

    def _draw(self, folder) -> None:
        try:
            draw(self.lesson, Path(folder))
            log.info("lesson figure: %s", Path(folder) / FIGURE)
        except Exception as e:  # a figure is a bonus: never fail the experiment over it
            log.warning("lesson figure not drawn (%s: %s)", type(e).__name__, e)

    def on_run_end(self, config, **kwargs) -> None:
        self._draw(config.hydra.runtime.output_dir)

    def on_multirun_end(self, config, **kwargs) -> None:
        self._draw(config.hydra.sweep.dir)


# -- make figures: run each preset and keep its figure ------------------------------------------------------
# the presets whose figure `make figures` collects (docs/figures/NAME.png), and those that need Fashion-MNIST
PRESETS = ["perceptron_and", "perceptron_notes", "perceptron_xor", "mlp_xor", "activations", "init", "depth_remedies",
           "resnet_depth", "losses_regression", "optimizers", "regularization", "augmentation", "cnn_zoo",
           "transfer_fashion"]
NEEDS_FASHION_MNIST = {"optimizers", "regularization", "augmentation", "cnn_zoo", "transfer_fashion"}
PREREQUISITES = {"transfer_fashion": "transfer_fashion_pretrain"}  # run first, in the same folder


def fashion_mnist_here(root: str = "data") -> bool:
    from dlrun.data.mnist import DATASETS, _find_files

    tv_class, system_dir, _ = DATASETS["fashion_mnist"]
    folders = [Path(root) / tv_class / "raw", Path(root) / "fashion_mnist", Path(root), Path(system_dir)]
    return any(_find_files(f) for f in folders)


def make_figures(out: Path, names: list[str]) -> int:
    """Run each preset into a scratch folder and copy its lesson.png to out/NAME.png; prints the times."""
    import shutil
    import subprocess
    import sys
    import tempfile
    import time

    out.mkdir(parents=True, exist_ok=True)
    have_fmnist = fashion_mnist_here()
    failed = 0
    for name in names or PRESETS:
        if name in NEEDS_FASHION_MNIST and not have_fmnist:
            print(f"{name}: skipped (needs Fashion-MNIST: `make data`)", flush=True)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            start = time.time()
            folder = Path(tmp) / "out"
            where = "hydra.run.dir" if "xor" in name or name.startswith("perceptron") else "hydra.sweep.dir"
            multirun = ["-m"] if where == "hydra.sweep.dir" else []  # augmentation's preset is no sweep by itself
            if name in PREREQUISITES:  # e.g. the pretrained weights that transfer_fashion fine-tunes
                subprocess.run([sys.executable, "-m", "dlrun", f"experiment={PREREQUISITES[name]}",
                                "trainer.progress=none"], cwd=tmp, capture_output=True, text=True)
            proc = subprocess.run([sys.executable, "-m", "dlrun", *multirun, f"experiment={name}",
                                   "trainer.progress=none", f"{where}={folder}"], cwd=tmp, capture_output=True, text=True)
            figure = folder / FIGURE
            if figure.is_file():
                shutil.copy(figure, out / f"{name}.png")
                print(f"{name}: {out / (name + '.png')} ({time.time() - start:.0f} s)", flush=True)
            else:
                failed += 1
                print(f"{name}: no figure (exit {proc.returncode}): {proc.stderr.strip()[-300:]}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m dlrun.sweeps.lessons", description="run the lessons' presets and "
                                     "collect their figures as OUT/NAME.png")
    parser.add_argument("out", type=Path)
    parser.add_argument("names", nargs="*", choices=[[], *PRESETS], metavar="NAME", help=", ".join(PRESETS))
    args = parser.parse_args()
    raise SystemExit(make_figures(args.out, args.names))
