"""The contour plot of a surface with optimizer paths, its critical points and its known minima."""

from __future__ import annotations

import numpy as np
import torch

from dlrun.plots import plt  # matplotlib set up headless (Agg) in one place

_KIND_STYLE = {  # marker, colour, label of the notes' second-derivative test result
    "minimum": ("o", "tab:green", "minimum"),
    "maximum": ("^", "tab:red", "maximum"),
    "saddle": ("X", "tab:orange", "saddle point"),
    "test fails": ("s", "tab:gray", "test fails"),
}
_PATH_COLOURS = ["tab:red", "tab:blue", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "black"]
GRID = 300  # contour grid points per axis


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
    """paths: [(label, points [k, 2] array)]; critical: CriticalPoint-like dicts; minima: [[x, y]]."""
    gx, gy, z = _grid_values(f, bounds)
    fig, ax = plt.subplots(figsize=(7.5, 6.0), dpi=110)
    levels = _levels(z)
    if len(levels) > 1:
        filled = ax.contourf(gx, gy, z, levels=levels, cmap="viridis", alpha=0.85)
        ax.contour(gx, gy, z, levels=levels, colors="white", linewidths=0.4, alpha=0.6)
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
    for i, (label, points) in enumerate(paths):
        points = np.asarray(points, dtype=float)
        points = points[np.isfinite(points).all(axis=1)]
        if len(points) == 0:
            continue
        colour = _PATH_COLOURS[i % len(_PATH_COLOURS)]
        ax.plot(points[:, 0], points[:, 1], "-", color=colour, linewidth=1.6, label=label, zorder=6)
        every = max(1, len(points) // 40)  # dots show the step size: dense where the optimizer crawls
        ax.plot(points[::every, 0], points[::every, 1], ".", color=colour, markersize=4, zorder=6)
        ax.plot(points[0, 0], points[0, 1], "o", color=colour, markersize=7, markeredgecolor="white", zorder=7)
        ax.plot(points[-1, 0], points[-1, 1], "D", color=colour, markersize=7, markeredgecolor="white", zorder=7)
    (x0, x1), (y0, y1) = bounds
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=8, framealpha=0.85)
    fig.tight_layout()
    return fig
