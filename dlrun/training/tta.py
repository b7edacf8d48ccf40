"""Test-time augmentation (`eval.tta`): validation and test predictions averaged over transformed inputs.

flip  the logits of each image and of its left-right mirror, averaged (the speed-run literature's
      cheapest gain on clothes and objects, whose mirror image is as likely; it doubles evaluation time)
"""

from __future__ import annotations

from dlrun.errors import ConfigError

TTA = ("none", "flip")


def check(tta: str, in_shape) -> None:
    if tta not in TTA:
        raise ConfigError("eval.tta", tta, f"one of {', '.join(TTA)}")
    if tta == "flip" and len(in_shape) != 3:
        raise ConfigError("eval.tta", tta, f"flip needs C x H x W images; this data has shape {list(in_shape)}")


def forward(model, x, tta: str):
    """model(x), or its average over the test-time transforms of x."""
    if tta == "flip":
        return (model(x) + model(x.flip(3))) / 2
    return model(x)
