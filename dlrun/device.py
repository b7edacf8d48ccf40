"""Device selection and mixed precision: the CUDA paths a GPU user needs, the CPU paths tests can run."""

from __future__ import annotations

import contextlib

import torch

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


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """Loss scaling only for fp16 on CUDA; a disabled scaler is a no-op with the same interface."""
    return torch.amp.GradScaler(device.type, enabled=(dtype == torch.float16 and device.type == "cuda"))
