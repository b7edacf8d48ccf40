"""Pictures (matplotlib, headless): used by TensorBoard images, task=eval and task=landscape."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI

import numpy as np  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def confusion_matrix(pred, target, num_classes: int) -> np.ndarray:
    """counts[i, j] = samples of true class i predicted as j."""
    pred, target = np.asarray(pred).ravel(), np.asarray(target).ravel()
    return np.bincount(target * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def confusion_matrix_figure(cm: np.ndarray, class_names: list | None = None, title: str = "confusion matrix") -> Figure:
    n = cm.shape[0]
    names = class_names if class_names and len(class_names) == n else [str(i) for i in range(n)]
    side = min(0.6 * n, 12.0)  # 100 classes: a readable picture, not a 60-inch one
    fig, ax = plt.subplots(figsize=(1.0 + side, 0.8 + side), dpi=100)
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(n if n <= 20 else 0):  # counts are legible up to about 20 classes
        for j in range(n):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if cm[i, j] > threshold else "black")
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path) -> None:
    fig.savefig(path)
    plt.close(fig)
