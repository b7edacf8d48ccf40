"""`dlrun task=summary`: a Keras-style table of the model built for the chosen data; nothing is trained.

One row per layer call (name and type, output shape, parameters, trainable), then the totals,
the parameters' memory and the multiply-accumulates (MACs) of one sample's forward pass, counted
by torch's own FlopCounterMode (a MAC is two FLOPs). A convolution's row holds the notes'
(f x f x d + 1) x n parameters.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.table import Table
from torch import nn

from dlrun.console import show
from dlrun.models.common import eval_mode

log = logging.getLogger("dlrun")

# Shapes of the sources that do not describe themselves with an `info(cfg)` function (as cifar,
# image_folder and logic_gate do); anything else is loaded once to find out.
_KNOWN_SHAPES = {
    "mnist": lambda cfg: ((1, 28, 28), 10),
    "fashion_mnist": lambda cfg: ((1, 28, 28), 10),
    "synthetic": lambda cfg: (tuple(cfg.shape), cfg.num_classes),
}


def data_info(cfg, seed: int):
    """The DataInfo a model is built from, without loading the dataset when its shape is known."""
    from dlrun.data import DataInfo, build_data, source_module

    module = source_module(cfg)  # a built-in data.name, or the project's data.source
    if hasattr(module, "info"):  # a source may describe itself
        return module.info(cfg)
    if cfg.name in _KNOWN_SHAPES and not cfg.get("classes"):
        shape, n = _KNOWN_SHAPES[cfg.name](cfg)
        return DataInfo(shape, n, [str(i) for i in range(n)])
    return build_data(cfg, torch.device("cpu"), seed).info


@dataclass
class Row:
    name: str
    kind: str
    output_shape: tuple
    params: int
    trainable: int
    macs: int


@dataclass
class ModelSummary:
    model_name: str
    in_shape: tuple
    rows: list[Row] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    param_bytes: int = 0
    macs: int = 0

    @property
    def param_mb(self) -> float:
        return self.param_bytes / 2**20  # Keras' MB


def _shape(output) -> tuple:
    if isinstance(output, torch.Tensor):
        return tuple(output.shape[1:])
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return tuple(output[0].shape[1:])
    return ()


@torch.no_grad()
def summarize(model: nn.Module, in_shape) -> ModelSummary:
    """Run one zero sample through `model` (eval mode) and record each layer's output and cost."""
    from torch.utils.flop_counter import FlopCounterMode

    root = type(model).__name__
    summary = ModelSummary(root, tuple(in_shape))
    calls: list[tuple[str, nn.Module, tuple]] = []
    hooks = []
    for name, module in model.named_modules():
        own = list(module.parameters(recurse=False))
        is_leaf = next(module.children(), None) is None
        if name and (is_leaf or own):
            hooks.append(module.register_forward_hook(
                lambda m, args, out, name=name: calls.append((name, m, _shape(out)))))
    try:
        like = next(model.parameters(), torch.zeros(()))  # the sample on the model's device, in its dtype
        with eval_mode(model), FlopCounterMode(display=False) as counter:  # batch norm on one sample, no dropout
            model(torch.zeros(1, *in_shape, device=like.device, dtype=like.dtype))
    finally:
        for h in hooks:
            h.remove()
    flops = counter.get_flop_counts()
    for name, module, shape in calls:
        own = list(module.parameters(recurse=False))
        macs = sum(flops.get(f"{root}.{name}", {}).values()) // 2 if next(module.children(), None) is None else 0
        summary.rows.append(Row(name, type(module).__name__, shape, sum(p.numel() for p in own),
                                sum(p.numel() for p in own if p.requires_grad), macs))
    params = list(model.parameters())
    summary.total_params = sum(p.numel() for p in params)
    summary.trainable_params = sum(p.numel() for p in params if p.requires_grad)
    summary.param_bytes = sum(p.numel() * p.element_size() for p in params)
    summary.macs = counter.get_total_flops() // 2
    return summary


def _count(n: int) -> str:
    return f"{n:,}" if n else "0"


def _macs(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return str(n)


def print_summary(s: ModelSummary, title: str | None = None) -> None:
    table = Table(title=title or f"Model: {s.model_name}", title_justify="left")
    table.add_column("Layer (type)")
    table.add_column("Output shape")
    table.add_column("Param #", justify="right")
    table.add_column("Trainable")
    table.add_column("MACs", justify="right")
    for r in s.rows:
        trainable = "" if not r.params else ("yes" if r.trainable == r.params else "no" if not r.trainable else "part")
        table.add_row(f"{r.name} ({r.kind})", str(("None", *r.output_shape)).replace("'", ""), _count(r.params),
                      trainable, _macs(r.macs) if r.macs else "")
    show(table)
    totals = Table(show_header=False, box=None)
    totals.add_column(style="bold")
    totals.add_column(justify="right")
    totals.add_row("Input shape", str(list(s.in_shape)))
    totals.add_row("Total params", f"{s.total_params:,}")
    totals.add_row("Trainable params", f"{s.trainable_params:,}")
    totals.add_row("Non-trainable params", f"{s.total_params - s.trainable_params:,}")
    totals.add_row("Params size (MB)", f"{s.param_mb:.2f}")
    totals.add_row("MACs per sample", f"{s.macs:,} ({_macs(s.macs)})")
    show(totals)


def run(cfg, run_dir: Path):
    """task=summary: build the model for the data's shape and print its table; nothing is trained."""
    from dlrun.models import build_model_and_loss

    torch.manual_seed(cfg.seed)
    info = data_info(cfg.data, cfg.seed)
    model, _ = build_model_and_loss(cfg, info)  # the network training would build
    s = summarize(model, info.in_shape)
    kind = "classes" if info.task == "classification" else "targets"
    print_summary(s, title=f"Model: {s.model_name} for data={cfg.data.name} {list(info.in_shape)}, "
                           f"{info.num_classes} {kind}")
    return s.total_params
