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
