"""The contour plot of a surface with optimizer paths, its critical points and its known minima."""

from __future__ import annotations

import numpy as np
import torch

from dlrun.results.plots import plt  # matplotlib set up headless (Agg) in one place

_KIND_STYLE = {  # marker, colour, label of the notes' second-derivative test result
    "minimum": ("o", "tab:green", "minimum"),
    "maximum": ("^", "tab:red", "maximum"),
    "saddle": ("X", "tab:orange", "saddle point"),
    "test fails": ("s", "tab:gray", "test fails"),
}
# paths are drawn over a light-to-dark map whose light end is the low valley where they run
_PATH_COLOURS = ["crimson", "black", "darkorange", "darkviolet", "saddlebrown", "deeppink", "olive", "teal"]
_PATH_STYLES = ["-", "--", "-.", ":"]
GRID = 200  # contour grid points per axis


def _grid_values(f, bounds):
    (x0, x1), (y0, y1) = bounds
    xs = torch.linspace(x0, x1, GRID, dtype=torch.float64)
    ys = torch.linspace(y0, y1, GRID, dtype=torch.float64)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    with torch.no_grad():
        z = f(gx, gy)
    return gx.numpy(), gy.numpy(), np.broadcast_to(z.numpy(), gx.shape)


def _levels(z: np.ndarray) -> np.ndarray:
    """Contour levels at quantiles of the values: every surface shows its structure, whatever its range
    (Rosenbrock's runs from 0 to thousands, with the interesting part near 0)."""
    finite = z[np.isfinite(z)]
    if finite.size == 0:
        return np.array([0.0])
    return np.unique(np.quantile(finite, np.linspace(0.0, 1.0, 30)))


def landscape_figure(f, bounds, paths, critical=(), minima=(), title: str = ""):
    """Left: contours of f with the paths, critical points and minima; right: f along each path per step.

    paths: [(label, points [k, 2])]; critical: CriticalPoint dicts (x, y, kind); minima: [[x, y]].
    """
    gx, gy, z = _grid_values(f, bounds)
    fig, (ax, curve) = plt.subplots(1, 2, figsize=(12.0, 5.4), dpi=100, width_ratios=[1.25, 1])
    levels = _levels(z)
    if len(levels) > 1:
        filled = ax.contourf(gx, gy, z, levels=levels, cmap="YlGnBu", alpha=0.9)
        ax.contour(gx, gy, z, levels=levels, colors="slategray", linewidths=0.4, alpha=0.6)
        fig.colorbar(filled, ax=ax, label="f(x, y)", format="%.3g")
    shown = set()
    for c in critical:
        marker, colour, label = _KIND_STYLE[c["kind"]]
        ax.scatter(c["x"], c["y"], marker=marker, s=55, c=colour, edgecolors="black", linewidths=0.8, zorder=4,
                   label=None if c["kind"] in shown else label)
        shown.add(c["kind"])
    for i, m in enumerate(minima):
        ax.scatter(m[0], m[1], marker="*", s=220, c="gold", edgecolors="black", linewidths=0.8, zorder=5,
                   label="known minimum" if i == 0 else None)
    positive = True
    for i, (label, points) in enumerate(paths):
        points = np.asarray(points, dtype=float).reshape(-1, 2)
        points = points[np.isfinite(points).all(axis=1)]
        if len(points) == 0:
            continue
        colour, style = _PATH_COLOURS[i % len(_PATH_COLOURS)], _PATH_STYLES[i % len(_PATH_STYLES)]
        width = 1.4 + 1.2 * (len(paths) - 1 - i)  # earlier paths wider, so paths along one valley all show
        ax.plot(points[:, 0], points[:, 1], style, color=colour, linewidth=width, alpha=0.9, zorder=6)
        every = max(1, len(points) // 40)  # dots at equal step intervals: dense where the optimizer crawls
        ax.plot(points[::every, 0], points[::every, 1], ".", color=colour, markersize=4, zorder=6)
        ax.plot(points[0, 0], points[0, 1], "o", color=colour, markersize=7, markeredgecolor="white", zorder=7)
        ax.plot(points[-1, 0], points[-1, 1], "D", color=colour, markersize=7, markeredgecolor="white", zorder=7)
        with torch.no_grad():
            values = np.asarray(f(*torch.tensor(points, dtype=torch.float64).T), dtype=float).reshape(-1)
        values = np.broadcast_to(values, (len(points),))
        positive &= bool((values > 0).all())
        curve.plot(np.arange(len(values)), values, style, color=colour, linewidth=width, alpha=0.9, label=label)
    (x0, x1), (y0, y1) = bounds
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title, fontsize=10)
    if shown or len(minima):
        ax.legend(loc="best", fontsize=7.5, framealpha=0.85)
    if paths:  # one legend for the paths, beside the curves that carry the same colours and line styles
        curve.legend(loc="best", fontsize=8, framealpha=0.85)
    curve.set_yscale("log" if positive else "symlog")  # log shows the last digits of convergence
    curve.set_xlabel("step")
    curve.set_ylabel("f(x, y) along the path")
    curve.grid(True, which="major", alpha=0.3)
    curve.set_title("loss per step", fontsize=10)
    fig.tight_layout()
    return fig
