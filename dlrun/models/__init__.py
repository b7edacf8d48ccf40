"""Models of the notes. Each is built from the data's shape: Model(in_shape, num_classes, **options)."""

from __future__ import annotations


def build_model(cfg, info):
    """Instantiate `cfg.model` (a `_target_` config) with the data's input shape and class count."""
    from dlrun.config import build

    return build(cfg, "model", in_shape=tuple(info.in_shape), num_classes=info.num_classes)
