"""What the models share: eval mode for any model, and the image models' checks and small layer helpers
(shapes, stems, widths, depths)."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from dlrun.errors import ConfigError

@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """The model in eval mode (batch norm's running statistics, no dropout) without gradients, then back in
    the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


SMALL_INPUT = 64  # below this side (MNIST 28, CIFAR 32) the ImageNet stems would shrink the image to nothing
STEMS = ("auto", "imagenet", "small")


def image_shape(in_shape, model: str) -> tuple[int, int, int]:
    if len(in_shape) != 3:
        raise ConfigError("model", model, f"needs image data [C, H, W]; this data has shape {list(in_shape)}")
    return tuple(in_shape)


def require_size(model: str, h: int, w: int, minimum: int, why: str) -> None:
    if min(h, w) < minimum:
        raise ConfigError("model", model, f"needs inputs of at least {minimum}x{minimum} ({why}); got {h}x{w}")


def choose_stem(stem: str, side: int, imagenet_min: int) -> str:
    """'auto' keeps the ImageNet stem for ImageNet-sized inputs and swaps in the small one below SMALL_INPUT."""
    if stem not in STEMS:
        raise ConfigError("model.stem", stem, f"one of {', '.join(STEMS)}")
    if stem == "auto":
        return "imagenet" if side >= max(SMALL_INPUT, imagenet_min) else "small"
    return stem


def check_depth(depth, valid) -> None:
    if depth not in valid:
        raise ConfigError("model.depth", depth, f"one of {', '.join(str(d) for d in valid)}")


def scaled(width: int, width_mult: float) -> int:
    """A layer width times model.width_mult (tiny networks for tests, slimmer ones for small machines)."""
    if not width_mult > 0:
        raise ConfigError("model.width_mult", width_mult, "a number > 0")
    return max(1, round(width * width_mult))


def norms(channels: int, batchnorm: bool) -> list[nn.Module]:
    """[BatchNorm2d] or nothing: no Identity placeholders cluttering the summary table."""
    return [nn.BatchNorm2d(channels)] if batchnorm else []
