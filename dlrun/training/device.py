"""Device selection and mixed precision: the CUDA paths a GPU user needs, the CPU paths tests can run."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from dlrun.errors import ConfigError


def select_device(name: str) -> torch.device:
    """`auto` picks cuda, then mps, then cpu; an explicit device that is not there is a clear error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("trainer.device", name, "CUDA is not available here; use auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("trainer.device", name, "MPS is not available here; use auto or cpu")
    return torch.device(name)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """None means full fp32. fp16 needs CUDA (with a GradScaler); bf16 runs on CPU and CUDA."""
    if precision == "32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type != "cuda":
        raise ConfigError("trainer.precision", precision, f"16 (fp16) needs CUDA; on {device.type} use bf16 or 32")
    return torch.float16


def use_channels_last(setting, device: torch.device, amp_dtype: torch.dtype | None, model: nn.Module) -> bool:
    """`auto` turns NHWC on where it is faster: on CPU (oneDNN convolutions; a LeNet-5 or ResNet-20 epoch
    takes 0.6-0.8x the NCHW time, benchmarks/speed_options.py) and on CUDA under AMP (tensor cores); never
    where oneDNN computes wrong gradients (see channels_last_hazard)."""
    if setting == "auto":
        wanted = device.type == "cpu" or (device.type == "cuda" and amp_dtype is not None)
    else:
        wanted = bool(setting)
    layer = channels_last_hazard(model) if wanted and device.type == "cpu" else None
    if layer is not None and setting is True:
        raise ConfigError("trainer.channels_last", True, f"on a CPU, oneDNN computes wrong weight gradients for "
                          f"the 1x1 strided convolution '{layer}' (fewer than 16 input channels) in NHWC; "
                          "use auto or false")
    return wanted and layer is None


def channels_last_hazard(model: nn.Module) -> str | None:
    """The first convolution oneDNN gets wrong in NHWC on a CPU, or None. A 1x1 convolution with stride > 1
    and fewer input channels than oneDNN's block (8 with AVX2, 16 with AVX-512) gets wrong weight gradients
    with 2+ threads and corrupts the heap with 1 (uxlfoundation/oneDNN#6035; seen with torch 2.14.1 on
    ResNet-20 at model.width_mult=0.25, whose projection shortcuts have 4 and 8 input channels)."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.stride != (1, 1) \
                and m.in_channels // m.groups < 16:
            return name
    return None


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """Loss scaling only for fp16 on CUDA; a disabled scaler is a no-op with the same interface."""
    return torch.amp.GradScaler(device.type, enabled=(dtype == torch.float16 and device.type == "cuda"))
