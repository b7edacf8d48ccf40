"""Transfer learning as in the lecture notes: reuse a trained network, freeze its early layers, replace the head, fine-tune.

- `model.pretrained=PATH` (a dlrun checkpoint or a plain state_dict file) or `model.pretrained=torchvision:ENUM.NAME`
  (a torchvision weights enum, read from the local torch hub cache only): tensors whose names and shapes match
  are copied; the others (the classifier head for another class count) keep their fresh initialisation.
  A first convolution pretrained on 3 channels is adapted to 1-channel data (and the reverse).
- `model.freeze=none|backbone|N`: the frozen parameters get requires_grad=False, are left out of the optimizer
  and their batch-norm layers stay in eval mode, so nothing about them changes while training.
- `optimizer.head_lr_mult` (the head trains at lr * mult) and the group that `trainer.unfreeze_at_epoch` adds later
  are the optimizer's parameter groups: dlrun/nn/optimizers.py.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import urlparse

import torch
from omegaconf import OmegaConf
from torch import nn

from dlrun.errors import CheckpointError, ConfigError

log = logging.getLogger("dlrun")

MODEL_KEYS = ("pretrained", "freeze")  # dlrun's keys in the model node, not arguments of the model class
TORCHVISION = "torchvision:"
MIN_MATCH = 0.5  # fewer of the model's tensors found in a file than this: the file is for another architecture


# -- the model node ---------------------------------------------------------------------------------------
def split_model_node(node):
    """(the node without dlrun's keys, pretrained spec or None, freeze spec)."""
    pretrained, freeze = node.get("pretrained"), node.get("freeze", "none")
    if not any(k in node for k in MODEL_KEYS):
        return node, None, "none"
    plain = OmegaConf.to_container(node, resolve=True)
    for k in MODEL_KEYS:
        plain.pop(k, None)
    pretrained = None if pretrained in (None, "", "none", "null") else str(pretrained)
    return OmegaConf.create(plain), pretrained, "none" if freeze is None else freeze


# -- loading ----------------------------------------------------------------------------------------------
def _file_state(path: Path) -> tuple[dict, list | None]:
    """(weights, class names or None) of a dlrun checkpoint or of a plain state_dict file, read with weights_only."""
    from dlrun.run_folder import checkpoint

    if not path.is_file():
        raise CheckpointError(f"model.pretrained: {path} does not exist")
    try:
        ckpt = checkpoint.load(path)
        return ckpt["model"], (ckpt.get("data_info") or {}).get("class_names")
    except CheckpointError as e:
        first_error = e  # a plain state_dict has no "model" entry; anything else unreadable stays this error
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        raise CheckpointError(f"model.pretrained: {first_error}") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not (isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values())):
        raise CheckpointError(f"model.pretrained: {path} is neither a dlrun checkpoint nor a state_dict "
                              "(a dict of parameter names to tensors)")
    # a state_dict saved from a DistributedDataParallel / torch.compile wrapper: strip the wrapper's prefix
    for prefix in ("module.", "_orig_mod."):
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state, None


def hub_file(weights) -> Path:
    """Where torch.hub keeps a torchvision weights file: <torch.hub.get_dir()>/checkpoints/<name in the URL>."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def _torchvision_state(spec: str) -> dict:
    """A torchvision weights enum's state_dict from the local hub cache; dlrun never downloads."""
    from torchvision.models import get_weight

    name = spec[len(TORCHVISION):]
    try:
        weights = get_weight(name)
    except Exception:
        raise ConfigError("model.pretrained", spec, "torchvision:<Weights enum>.<entry>, "
                          "e.g. torchvision:ResNet18_Weights.IMAGENET1K_V1") from None
    path = hub_file(weights)
    if not path.is_file():
        raise CheckpointError(
            f"model.pretrained={spec} needs its weights file downloaded once (dlrun never downloads): {path} "
            f"is missing; run python -c \"import torchvision; torchvision.models.get_weight('{name}')"
            f".get_state_dict(progress=True)\" on a machine with a network (TORCH_HOME moves the cache)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"model.pretrained={spec}: cannot read {path} ({type(e).__name__}); "
                              "delete it and download it again") from None


def _adapt_channels(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
    """A first-conv weight [O, C_src, k, k] for C_dst input channels, or None when it cannot be adapted.

    3 -> 1: sum over the input channels, so a grey image gives exactly the output of that image repeated
    on 3 channels; 1 -> C: repeat the weights divided by C, so an image whose channels are equal gives
    the output the grey network gave.
    """
    if source.dim() != 4 or source.shape[0] != target.shape[0] or source.shape[2:] != target.shape[2:]:
        return None
    c_src, c_dst = source.shape[1], target.shape[1]
    if c_dst == 1:
        return source.sum(dim=1, keepdim=True)
    if c_src == 1:
        return source.repeat(1, c_dst, 1, 1) / c_dst
    return None


def load_pretrained(model: nn.Module, spec: str, class_names: list | None = None) -> dict:
    """Copy the matching tensors of `spec` into `model`; returns {"loaded", "adapted", "kept"} name lists.

    A dlrun checkpoint knows the classes it was trained on: when they are not `class_names` (a new task with
    as many classes), the head is replaced all the same, as if its shape differed.
    """
    if spec.startswith(TORCHVISION):
        state, trained_on = _torchvision_state(spec), None
    else:
        state, trained_on = _file_state(Path(spec).expanduser())
    own = model.state_dict()
    if trained_on is not None and class_names is not None and list(trained_on) != list(class_names):
        head_name = head(model)[0]
        other = {f"{head_name}.{k}" for k, _ in head(model)[1].named_parameters()}
        state = {k: v for k, v in state.items() if k not in other}
        log.info("model.pretrained=%s was trained on classes %s, this data has %s: the head %s starts afresh",
                 spec, list(trained_on), list(class_names), head_name)
    first_conv = next((n for n, t in own.items() if t.dim() == 4), None)
    new, loaded, adapted, kept = {}, [], [], []
    for name, target in own.items():
        source = state.get(name)
        if source is None:
            kept.append(f"{name} (not in the file)")
            continue
        if source.shape == target.shape:
            new[name] = source
            loaded.append(name)
            continue
        if name == first_conv and (fitted := _adapt_channels(source, target)) is not None:
            new[name] = fitted
            adapted.append(f"{name} ({source.shape[1]} -> {target.shape[1]} channels)")
            continue
        kept.append(f"{name} (file {list(source.shape)}, model {list(target.shape)})")
    n_match = len(loaded) + len(adapted)
    if n_match < MIN_MATCH * len(own):
        example = next(iter(state), "?")
        raise CheckpointError(
            f"model.pretrained={spec} does not fit {type(model).__name__}: only {n_match} of its {len(own)} tensors "
            f"match the file by name and shape (the file has e.g. '{example}', the model '{next(iter(own), '?')}'); "
            "was it trained with another model=? (torchvision weights need model=torchvision)")
    model.load_state_dict(new, strict=False)  # the kept tensors stay as they were built
    log.info("model.pretrained=%s: loaded %d of %d tensors%s%s", spec, n_match, len(own),
             f"; adapted {', '.join(adapted)}" if adapted else "",
             f"; kept the fresh initialisation of {', '.join(kept)}" if kept else "")
    return {"loaded": loaded, "adapted": adapted, "kept": [k.split(" ")[0] for k in kept]}


# -- freezing ---------------------------------------------------------------------------------------------
def parameterised_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules that own parameters themselves (conv, linear, batch norm), in the model's order."""
    return [(n, m) for n, m in model.named_modules() if next(m.parameters(recurse=False), None) is not None]


def head(model: nn.Module) -> tuple[str, nn.Module]:
    """The classifier head: the last parameterised layer (the one replaced for another class count)."""
    layers = parameterised_layers(model)
    if not layers:
        raise ConfigError("model", type(model).__name__, "has no parameters to fine-tune")
    return layers[-1]


def _keep_eval(module: nn.Module, args) -> None:
    """Forward pre-hook of a batch-norm layer: while frozen it normalises with (and keeps) its running stats."""
    if getattr(module, "dlrun_frozen", False):
        module.training = False


def freeze(model: nn.Module, spec) -> list[str]:
    """Freeze `none`, the `backbone` (all but the head) or the N leading parameterised layers; returns their names.

    The spec's form is checked with the config (dlrun/models CONFIG_RULES); here, what needs the model."""
    layers = parameterised_layers(model)
    if spec in (None, "none", 0):
        chosen = []
    elif spec == "backbone":
        chosen = layers[:-1]
    else:
        n = int(spec)
        if not 0 <= n < len(layers):
            raise ConfigError("model.freeze", spec, f"none, backbone or a number of leading layers below "
                              f"{len(layers)} (the model's parameterised layers; freezing all leaves nothing to train)")
        chosen = layers[:n]
    for _, m in chosen:
        m.requires_grad_(False)  # recurse=True is harmless: a parameterised layer's children own nothing here
        m.dlrun_frozen = True
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not getattr(m, "dlrun_eval_hook", False):
            m.register_forward_pre_hook(_keep_eval)
            m.dlrun_eval_hook = True
    if chosen:
        n_params = sum(p.numel() for _, m in chosen for p in m.parameters(recurse=False))
        log.info("model.freeze=%s: %d layers frozen (%s parameters), from %s to %s", spec, len(chosen),
                 f"{n_params:,}", chosen[0][0], chosen[-1][0])
    return [n for n, _ in chosen]


def unfreeze(model: nn.Module) -> list[nn.Parameter]:
    """Make every frozen layer trainable again; returns the parameters that became trainable."""
    params = []
    for m in model.modules():
        if getattr(m, "dlrun_frozen", False):
            m.dlrun_frozen = False
            for p in m.parameters(recurse=False):
                if not p.requires_grad:
                    p.requires_grad_(True)
                    params.append(p)
    return params
