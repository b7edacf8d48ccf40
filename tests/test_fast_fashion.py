"""experiment=fast_fashion and its pieces, each usable on its own: model=convnet, eval.tta=flip."""

import pytest
import torch

from dlrun.errors import ConfigError
from dlrun.training.loop import score
from dlrun.data.loader import TensorLoader
from dlrun.models.convnet import ConvNet
from dlrun.training.tasks import build_loop


def test_convnet_stages_halve_the_resolution_and_end_in_one_dense_layer():
    model = ConvNet((1, 28, 28), 10, widths=[32, 64, 128])
    assert sum(p.numel() for p in model.parameters()) == 104_426  # the figure in the model's docstring
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 3
    assert model.classifier[-1].in_features == 128 * 3 * 3  # 28 -> 14 -> 7 -> 3
    two = ConvNet((3, 16, 16), 4, widths=[8, 8], convs_per_stage=2, batchnorm=False)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in two.modules()) == 4
    with pytest.raises(ConfigError, match="at least 16x16"):
        ConvNet((1, 8, 8), 10, widths=[4, 4, 4, 4])


def test_convnet_hidden_dense_layers_sit_between_the_last_stage_and_the_output():
    model = ConvNet((1, 28, 28), 10, widths=[16, 32, 64], hidden=[128])
    dense = [m for m in model.classifier if isinstance(m, torch.nn.Linear)]
    assert [(d.in_features, d.out_features) for d in dense] == [(64 * 3 * 3, 128), (128, 10)]
    assert isinstance(model.classifier[2], torch.nn.ReLU)  # an activation between them: not one linear map
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ConfigError, match="model.hidden"):
        ConvNet((1, 28, 28), 10, widths=[8], hidden=[0])


def test_convnet_strided_stages_halve_the_resolution_without_pooling():
    model = ConvNet((1, 28, 28), 10, widths=[32, 64, 128], downsample="stride")
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert [m.stride for m in convs] == [(2, 2)] * 3
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
    assert model.classifier[-1].in_features == 128 * 4 * 4  # (H + 2 - 3) // 2 + 1: 28 -> 14 -> 7 -> 4
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    two = ConvNet((1, 28, 28), 10, widths=[8], convs_per_stage=2, downsample="stride")
    assert [m.stride for m in two.features if isinstance(m, torch.nn.Conv2d)] == [(2, 2), (1, 1)]  # the first of a stage
    with pytest.raises(ConfigError, match="model.downsample"):
        ConvNet((1, 28, 28), 10, widths=[8], downsample="avg")


class LeftMinusRight(torch.nn.Module):
    """Class 0 when the left half is brighter: a model that mirroring fools completely."""

    def forward(self, x):
        diff = x[..., : x.shape[-1] // 2].sum(dim=(1, 2, 3)) - x[..., x.shape[-1] // 2 :].sum(dim=(1, 2, 3))
        return torch.stack([diff, -diff], dim=1)


def test_tta_flip_averages_an_image_with_its_mirror():
    x = torch.zeros(4, 1, 4, 4)
    x[:2, ..., :2] = 1.0  # bright on the left: class 0
    x[2:, ..., 2:] = 1.0  # bright on the right: class 1
    loader = TensorLoader(x, torch.tensor([0, 0, 1, 1]), batch_size=4)
    loss_fn = torch.nn.CrossEntropyLoss()
    plain = score(LeftMinusRight(), loader, loss_fn, torch.device("cpu"), None, "val")
    flipped = score(LeftMinusRight(), loader, loss_fn, torch.device("cpu"), None, "val", tta="flip")
    assert plain["val/acc"] == 1.0
    assert flipped["val/loss"] == pytest.approx(torch.log(torch.tensor(2.0)).item())  # mirror cancels: 50/50


def test_tta_is_checked_before_training(tiny_cfg, tmp_path):
    with pytest.raises(ConfigError, match="eval.tta.*one of none, flip"):
        build_loop(tiny_cfg("eval.tta=rotate"), tmp_path / "a")
    with pytest.raises(ConfigError, match="flip needs C x H x W images"):
        build_loop(tiny_cfg("eval.tta=flip", "data.shape=[8]", "model=mlp"), tmp_path / "b")


def test_fast_fashion_recipe_trains_on_other_data(tiny_cfg, tmp_path):
    """The preset's options together (convnet, flips, label smoothing, one-cycle, TTA) on synthetic images."""
    cfg = tiny_cfg("experiment=fast_fashion", "data=synthetic", "data.size=256", "data.shape=[1,16,16]",
                   "data.num_classes=4", "trainer.max_epochs=2", "model.widths=[8,16]", "data.batch_size=32")
    assert list(cfg.data.augment) == ["flip"] and cfg.loss.label_smoothing == 0.1 and cfg.eval.tta == "flip"
    loop = build_loop(cfg, tmp_path)
    summary = loop.fit()
    assert loop.tta == "flip" and summary["status"] == "completed"
    assert summary["test"]["test/acc"] > 0.5  # 4 classes: chance is 0.25
