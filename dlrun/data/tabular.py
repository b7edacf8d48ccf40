"""scikit-learn's bundled datasets (no download): diabetes (regression), breast_cancer (binary),
iris and wine (3 classes), digits (8x8 images, 10 classes).

They come without a test split: a stratified (classification) test split of data.test_fraction is held
out here with a fixed seed, so that runs with different `seed`s are scored on the same test samples. The
shared pipeline then splits validation from the rest and standardises with training statistics only.
"""

from __future__ import annotations

import numpy as np

from dlrun.data.source import Source

SPLIT_SEED = 0  # the test split is part of the dataset, not of the run


def _load(name: str):
    from sklearn import datasets

    if name == "diabetes":  # raw (unscaled) features: our standardisation uses training statistics only
        return datasets.load_diabetes(scaled=False)
    return {"breast_cancer": datasets.load_breast_cancer, "iris": datasets.load_iris,
            "wine": datasets.load_wine, "digits": datasets.load_digits}[name]()


def from_config(cfg, seed: int) -> Source:
    source = load(cfg.name, cfg.test_fraction, list(cfg.get("features") or []))
    if cfg.get("outliers", 0.0):
        if source.task != "regression":
            from dlrun.errors import ConfigError

            raise ConfigError("data.outliers", cfg.outliers, "0 for classification (regression data: data=diabetes)")
        source.train_y[:] = with_outliers(source.train_y, cfg.outliers)
    return source


def with_outliers(y: np.ndarray, fraction: float, scale: float = 10.0) -> np.ndarray:
    """A copy of regression targets with round(fraction * n) of them (fixed seed: every run of a sweep sees
    the same ones) moved `scale` standard deviations up: gross label errors, all on one side, so that they
    pull a squared loss's fit away from the clean majority."""
    y = y.copy()
    rows = np.random.default_rng(SPLIT_SEED).choice(len(y), size=round(fraction * len(y)), replace=False)
    y[rows] += scale * y.std()
    return y


def _columns(bunch, name: str, features: list[str]) -> list[int]:
    """The indices of the named columns (data.features), with one clear error for a name the data lacks."""
    from dlrun.errors import ConfigError

    names = [str(n) for n in getattr(bunch, "feature_names", [])] if name != "digits" else []
    if not names:
        raise ConfigError("data.features", features, f"named columns; {name} has none (images)")
    missing = [f for f in features if f not in names]
    if missing or len(set(features)) != len(features):
        raise ConfigError("data.features", features, f"distinct column names of {name}: {', '.join(names)}")
    return [names.index(f) for f in features]


def load(name: str, test_fraction: float = 0.2, features: list[str] | None = None) -> Source:
    from sklearn.model_selection import train_test_split

    bunch = _load(name)
    if features:  # a column subset, e.g. diabetes' bmi alone: a regression that can be drawn as a line
        bunch.data = bunch.data[:, _columns(bunch, name, features)]
    if name == "diabetes":
        x, y, names, task = bunch.data.astype(np.float32), bunch.target.astype(np.float32)[:, None], [], "regression"
    else:
        x = bunch.images[:, None] if name == "digits" else bunch.data  # digits as 1x8x8 images
        x, y, task = x.astype(np.float32), bunch.target.astype(np.int64), "classification"
        names = [str(n) for n in bunch.target_names]
    train_x, test_x, train_y, test_y = train_test_split(
        x, y, test_size=test_fraction, random_state=SPLIT_SEED, stratify=y if task == "classification" else None)
    return Source(train_x, train_y, test_x, test_y, names, task)
