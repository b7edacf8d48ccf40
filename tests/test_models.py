"""Models built from the data's shape, checked against the notes' formulas."""

import pytest
import torch

from dlrun.errors import ConfigError
from dlrun.models.lenet import LeNet5
from dlrun.models.mlp import MLP


def test_lenet_first_convolution_matches_the_notes():
    model = LeNet5((1, 28, 28), 10)
    conv = model.features[0]
    # (f*f*d + 1) * n = (5*5*1 + 1) * 6 = 156
    assert sum(p.numel() for p in conv.parameters()) == (5 * 5 * 1 + 1) * 6 == 156
    assert conv(torch.zeros(1, 1, 28, 28)).shape == (1, 6, 24, 24)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_lenet_on_32x32_has_the_classic_400_features():
    model = LeNet5((3, 32, 32), 10)
    assert model.classifier[1].in_features == 16 * 5 * 5


def test_lenet_names_the_smallest_input():
    with pytest.raises(ConfigError, match="at least 16x16"):
        LeNet5((1, 12, 12), 10)


def test_mlp_options():
    model = MLP((1, 8, 8), 3, hidden=[32, 16], activation="tanh", dropout=0.2, batchnorm=True)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Flatten", "Linear", "BatchNorm1d", "Tanh", "Dropout", "Linear", "BatchNorm1d", "Tanh",
                     "Dropout", "Linear"]
    assert model[1].in_features == 64 and model(torch.zeros(4, 1, 8, 8)).shape == (4, 3)


# --- the zoo: AlexNet, VGG, ResNet -------------------------------------------------------------------------------

from torch import nn  # noqa: E402

from dlrun.models.alexnet import AlexNet  # noqa: E402
from dlrun.models.resnet import BasicBlock, Bottleneck, ResNet  # noqa: E402
from dlrun.models.vgg import VGG  # noqa: E402


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def conv_params(f, d, n):
    """The notes' learnable parameters of a convolution: (f x f x d + 1) x n."""
    return (f * f * d + 1) * n


def test_alexnet_is_the_original_design_with_62_378_344_parameters():
    with torch.device("meta"):  # shapes only: no memory, no initialisation time
        model = AlexNet((3, 227, 227), 1000)
    by_hand = (
        conv_params(11, 3, 96)  # 227 -> 55, pool -> 27
        + conv_params(5, 96, 256)  # 27 (pad 2), pool -> 13
        + conv_params(3, 256, 384)
        + conv_params(3, 384, 384)
        + conv_params(3, 384, 256)  # 13, pool -> 6
        + (6 * 6 * 256 + 1) * 4096
        + (4096 + 1) * 4096
        + (4096 + 1) * 1000
    )
    assert by_hand == 62_378_344
    assert n_params(model) == by_hand
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [96, 256, 384, 384, 256]
    assert all(c.groups == 1 for c in convs)
    model = model.to_empty(device="cpu")  # uninitialised memory is enough to check the shapes
    assert model.features(torch.zeros(1, 3, 227, 227)).shape == (1, 256, 6, 6)
    assert model(torch.zeros(1, 3, 227, 227)).shape == (1, 1000)


@pytest.fixture(scope="module")
def torchvision_counts():
    """torchvision's reference models, instantiated once (weights=None: nothing is downloaded)."""
    from torchvision import models

    with torch.device("meta"):
        return {name: n_params(getattr(models, name)(weights=None)) for name in ("vgg16", "vgg16_bn", "resnet18", "resnet50")}


@pytest.mark.parametrize("name, build", [
    ("vgg16", lambda: VGG((3, 224, 224), 1000, depth=16)),
    ("vgg16_bn", lambda: VGG((3, 224, 224), 1000, depth=16, batchnorm=True)),
    ("resnet18", lambda: ResNet((3, 224, 224), 1000, depth=18)),
    ("resnet50", lambda: ResNet((3, 224, 224), 1000, depth=50)),
])
def test_imagenet_models_have_torchvisions_parameter_counts(torchvision_counts, name, build):
    with torch.device("meta"):
        assert n_params(build()) == torchvision_counts[name]


def test_vgg_depths_are_the_papers_configurations():
    convs = lambda depth: sum(isinstance(m, nn.Conv2d) for m in VGG((3, 32, 32), 10, depth=depth, width_mult=1 / 16).modules())
    # depth = convolutions + 3 dense layers
    assert {d: convs(d) for d in (11, 13, 16, 19)} == {11: 8, 13: 10, 16: 13, 19: 16}


def test_resnet_blocks_use_identity_or_projection_shortcuts_and_stride_2():
    model = ResNet((3, 32, 32), 10, depth=20)
    stage2_first, stage2_second = model.stages[1][0], model.stages[1][1]
    assert isinstance(model.stages[0][0].shortcut, nn.Identity)  # 16 -> 16, stride 1
    proj = stage2_first.shortcut[0]
    assert isinstance(proj, nn.Conv2d) and proj.kernel_size == (1, 1) and proj.stride == (2, 2)
    assert isinstance(stage2_second.shortcut, nn.Identity)
    x = torch.randn(2, 16, 32, 32)
    assert stage2_first(x).shape == (2, 32, 16, 16)  # the notes' downsample=True: half the side, twice the width
    # depth = 6n + 2 weighted layers: stem conv, 3 stages x n blocks x 2 convs, the dense layer
    convs3x3 = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs3x3) + 1 == 20 and isinstance(model.head[-1], nn.Linear)


def test_a_block_adds_its_input_back():
    block = BasicBlock(8, 8, 1, nn.ReLU, batchnorm=True).eval()
    for p in block.residual.parameters():
        nn.init.zeros_(p)  # F(x) = 0: the block is act(x), the identity the notes want deep layers to find
    x = torch.randn(2, 8, 5, 5)
    assert torch.equal(block(x), torch.relu(x))


def test_bottleneck_is_four_times_wider_out():
    block = Bottleneck(64, 64, 1, nn.ReLU, batchnorm=True)
    assert block(torch.zeros(1, 64, 8, 8)).shape == (1, 256, 8, 8)
    assert isinstance(block.shortcut[0], nn.Conv2d)  # 64 -> 256 needs a projection even at stride 1


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("build", [
    lambda s: AlexNet(s, 10, width_mult=1 / 16),
    lambda s: VGG(s, 10, depth=11, width_mult=1 / 16),
    lambda s: ResNet(s, 10, depth=18, width_mult=1 / 16),
    lambda s: ResNet(s, 10, depth=20),
    lambda s: LeNet5(s, 10),
])
def test_small_inputs_get_an_adapted_stem(shape, build):
    model = build(shape)
    assert model(torch.zeros(2, *shape)).shape == (2, 10)
    if hasattr(model, "stem_kind"):
        assert model.stem_kind == "small"


def test_imagenet_sized_inputs_keep_the_imagenet_stem():
    assert ResNet((3, 64, 64), 10, depth=18, width_mult=1 / 16).stem_kind == "imagenet"
    assert AlexNet((3, 67, 67), 10, width_mult=1 / 16).stem_kind == "imagenet"


@pytest.mark.parametrize("build, minimum", [
    (lambda: AlexNet((1, 14, 14), 10), "at least 15x15"),
    (lambda: AlexNet((3, 60, 60), 10, stem="imagenet"), "at least 67x67"),
    (lambda: VGG((1, 12, 12), 10), "at least 16x16"),
    (lambda: ResNet((1, 6, 6), 10, depth=18), "at least 8x8"),
    (lambda: ResNet((1, 3, 3), 10, depth=20), "at least 4x4"),
    (lambda: ResNet((3, 16, 16), 10, depth=50, stem="imagenet"), "at least 32x32"),
])
def test_too_small_input_names_the_minimum(build, minimum):
    with pytest.raises(ConfigError, match=minimum):
        build()


def test_image_models_refuse_flat_data():
    with pytest.raises(ConfigError, match=r"needs image data \[C, H, W\]"):
        ResNet((20,), 3)


@pytest.mark.parametrize("build, valid", [
    (lambda: VGG((3, 32, 32), 10, depth=17), "11, 13, 16, 19"),
    (lambda: ResNet((3, 32, 32), 10, depth=21), "18, 34, 50, 101, 152, 8, 14, 20, 32, 44, 56, 110"),
])
def test_unknown_depth_lists_the_valid_ones(build, valid):
    with pytest.raises(ConfigError, match=f"model.depth=.*one of {valid}"):
        build()


def test_unknown_activation_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="sigmoid, tanh, relu, leaky_relu, prelu, elu, gelu"):
        VGG((3, 32, 32), 10, activation="swish")


def test_leaky_relu_slope_is_configurable_and_prelu_learns_one_slope_per_layer():
    model = MLP((4,), 2, hidden=[3, 3], activation="leaky_relu", negative_slope=0.2)
    assert [m.negative_slope for m in model if isinstance(m, nn.LeakyReLU)] == [0.2, 0.2]
    assert nn.LeakyReLU().negative_slope == 0.01 == MLP((4,), 2, activation="leaky_relu")[2].negative_slope
    prelus = [m for m in MLP((4,), 2, hidden=[3, 3], activation="prelu") if isinstance(m, nn.PReLU)]
    assert len(prelus) == 2 and prelus[0].weight is not prelus[1].weight
    assert prelus[0].weight.requires_grad and prelus[0].weight.item() == 0.25


@pytest.mark.slow
def test_every_model_config_builds_from_the_data_shape():
    from conftest import make_cfg

    from dlrun.data import DataInfo
    from dlrun.models import build_model

    info = DataInfo((1, 28, 28), 10, [str(i) for i in range(10)])
    for name, more in [("mlp", []), ("lenet", []), ("alexnet", ["model.width_mult=0.125"]),
                       ("vgg", ["model.width_mult=0.125"]), ("resnet", [])]:
        model = build_model(make_cfg(f"model={name}", "model.activation=gelu", *more).model, info)
        assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10), name
        assert any(isinstance(m, nn.GELU) for m in model.modules()), name


@pytest.mark.parametrize("model_class", [AlexNet, VGG])
def test_dense_layers_take_dropout_and_convolutions_batchnorm(model_class):
    kinds = lambda m: [type(x).__name__ for x in m.modules()]
    plain = model_class((3, 32, 32), 10, dropout=0.0, width_mult=1 / 16)
    assert "Dropout" not in kinds(plain) and "BatchNorm2d" not in kinds(plain)
    model = model_class((3, 32, 32), 10, dropout=0.3, batchnorm=True, width_mult=1 / 16)
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 2 and all(d.p == 0.3 for d in drops)
    n_convs = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == n_convs
