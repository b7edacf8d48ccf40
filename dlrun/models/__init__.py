"""Models of the lecture notes. Each is built from the data's shape: Model(in_shape, num_classes, **options)."""

from __future__ import annotations

from dlrun.config.schema import is_number


def _freeze_spec(v) -> bool:
    return v in ("none", "backbone") or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)


# the model group's keys that dlrun reads itself, checked before anything is built (dlrun/config/schema.py validate)
CONFIG_RULES = {
    "dropout": (lambda v: is_number(v) and 0 <= v < 1, "a probability in [0, 1)"),
    "freeze": (_freeze_spec, "none, backbone or a number of leading parameterised layers"),
    "pretrained": (lambda v: isinstance(v, str),
                   "a checkpoint or state_dict file, or torchvision:<Weights enum>.<entry>"),
}


def build_model(cfg, info, init=None, pretrained: bool = True):
    """Instantiate `cfg.model` (a `_target_` config) with the data's input shape and class count.

    dlrun's own keys of the model node (`pretrained`, `freeze`: dlrun/models/transfer.py) are applied after the
    model is built: `init` (a function of the model, the initializer group) first, so that it sets only
    what the pretrained file does not replace. `pretrained=False` skips the file (a checkpoint follows).
    """
    import torch

    from dlrun.config.schema import build
    from dlrun.config.contracts import check_type
    from dlrun.models.transfer import freeze, load_pretrained, split_model_node

    node, spec, frozen = split_model_node(cfg)
    model = build(node, "model", in_shape=tuple(info.in_shape), num_classes=info.num_classes)
    check_type(model, torch.nn.Module, "model", node.get("_target_"), "torch.nn.Module")
    if init is not None:
        init(model)
    if spec and pretrained:
        load_pretrained(model, spec, class_names=getattr(info, "class_names", None))
    freeze(model, frozen)
    return model


def build_model_and_loss(cfg, info, init=None, pretrained: bool = True):
    """(model, loss) as every task builds them (train, summary, eval, predict): the loss is checked against
    the data first and fixes the output width (one output for bce/hinge on two classes); the regularizer
    group may switch model options on (dropout, batchnorm) in the model node that is built."""
    from dlrun.nn.losses import build_loss, model_info
    from dlrun.nn.regularizers import with_model_options

    loss_fn = build_loss(cfg.loss, info)  # fails here when the loss does not fit the data
    model = build_model(with_model_options(cfg).model, model_info(loss_fn, info), init=init, pretrained=pretrained)
    return model, loss_fn
