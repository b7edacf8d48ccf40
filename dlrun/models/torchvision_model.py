"""`model=torchvision model.name=resnet18`: a torchvision architecture with torchvision's own parameter names,
so `model.pretrained=torchvision:ResNet18_Weights.IMAGENET1K_V1` (dlrun/models/transfer.py) has a model it fits.

The network is torchvision.models.get_model(name, weights=None, num_classes=...) itself (no wrapper module:
a wrapper would prefix every parameter name); its first convolution is rebuilt for the data's channels
(1 for Fashion-MNIST), and loading 3-channel weights into it adapts them (transfer._adapt_channels).
"""

from __future__ import annotations

from torch import nn

from dlrun.errors import ConfigError
from dlrun.models.common import image_shape


def torchvision_model(in_shape, num_classes: int, name: str = "resnet18") -> nn.Module:
    import torchvision
    from torchvision.models import get_model, list_models

    c, _, _ = image_shape(in_shape, "torchvision")
    names = list_models(module=torchvision.models)  # classification models only
    if name not in names:
        raise ConfigError("model.name", name, f"a torchvision classification model, e.g. resnet18, "
                          f"mobilenet_v3_small, vgg11_bn ({len(names)} in all: torchvision.models.list_models())")
    net = get_model(name, weights=None, num_classes=num_classes)
    path, conv = next(((n, m) for n, m in net.named_modules() if isinstance(m, nn.Conv2d)), (None, None))
    if conv is not None and conv.in_channels != c:
        if conv.groups != 1:
            raise ConfigError("model.name", name, f"its first convolution is grouped; it cannot take {c} channels")
        parent = net.get_submodule(path.rpartition(".")[0]) if "." in path else net
        setattr(parent, path.rpartition(".")[2], nn.Conv2d(
            c, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
            bias=conv.bias is not None, padding_mode=conv.padding_mode))
    return net
