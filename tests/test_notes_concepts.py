"""The notes' concepts checked against independent values: derivatives by finite differences, the 4x4
convolution by hand, batch norm's statistics and learnable gamma/beta, dropout's zeros and scaling, the
chain rule on the notes' N1, N2 -> y_hat network, padding's output-size formula, ResNet's shortcut."""

import pytest
import torch
from torch import nn

from conftest import make_cfg
from dlrun.data import DataInfo
from dlrun.models import build_model_and_loss
from dlrun.models.resnet import ResNet
from dlrun.nn.activations import activation_factory
from dlrun.training.model_summary import summarize
from dlrun.nn.optimizers import build_optimizer

X = torch.linspace(-6, 6, 241, dtype=torch.float64)


def finite_difference(f, x, h=1e-5):
    return (f(x + h) - f(x - h)) / (2 * h)


def autograd_derivative(module, x):
    x = x.clone().requires_grad_(True)
    module(x).sum().backward()
    return x.grad


@pytest.mark.parametrize("name,closed_form", [
    ("sigmoid", lambda x: torch.sigmoid(x) * (1 - torch.sigmoid(x))),  # the notes: s' = s (1 - s)
    ("tanh", lambda x: 1 - torch.tanh(x) ** 2),  # the notes: tanh' = 1 - tanh^2
])
def test_derivatives_match_finite_differences_and_the_notes_closed_form(name, closed_form):
    act = activation_factory(name)()
    fd = finite_difference(act, X)
    torch.testing.assert_close(autograd_derivative(act, X), fd, atol=1e-8, rtol=0)
    torch.testing.assert_close(closed_form(X), fd, atol=1e-8, rtol=0)
    if name == "sigmoid":  # the vanishing gradient: never above 1/4, and ~0.0025 at |x| = 6
        assert fd.max().item() == pytest.approx(0.25, abs=1e-9) and fd[0].item() < 0.0025


def test_leaky_relu_slope_below_zero_by_finite_differences():
    act = activation_factory("leaky_relu")()
    x = X[X.abs() > 1e-3]  # away from the kink
    torch.testing.assert_close(finite_difference(act, x), torch.where(x > 0, 1.0, 0.01).double(), atol=1e-8, rtol=0)


# the notes' image and filter; the notes print [[160, 210], [210, 285]], but their own products are
# 20*1 + 100*1 = 120 (they add 140 instead of the image's 100) and 130*1 + 205*1 = 335
IMAGE = torch.tensor([[20, 30, 40, 70], [100, 100, 180, 170], [60, 120, 130, 140], [110, 150, 170, 205]],
                     dtype=torch.float64)
FILTER = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)


def test_the_notes_4x4_convolution_by_hand():
    by_hand = torch.tensor([[20 + 100, 40 + 170], [60 + 150, 130 + 205]], dtype=torch.float64)
    assert by_hand.tolist() == [[120, 210], [210, 335]]
    conv = nn.Conv2d(1, 1, kernel_size=2, stride=2, bias=False).double()  # LeNet's layer type
    with torch.no_grad():
        conv.weight.copy_(FILTER.view(1, 1, 2, 2))
    torch.testing.assert_close(conv(IMAGE.view(1, 1, 4, 4))[0, 0], by_hand)
    # weight sharing: one 2x2 filter (4 weights) gives every cell of the map, whatever the image's size
    assert sum(p.numel() for p in conv.parameters()) == 4
    assert conv(torch.ones(1, 1, 8, 8, dtype=torch.float64)).shape[-1] == 4


def lenet_rows(side, padding):
    cfg = make_cfg("model=lenet", f"model.padding={padding}")
    model, _ = build_model_and_loss(cfg, DataInfo((1, side, side), 10, list("0123456789")))
    return summarize(model, (1, side, side)).rows


@pytest.mark.parametrize("padding,P,side", [("valid", 0, 28), ("same", 2, 28), ("valid", 0, 32)])
def test_padding_gives_the_notes_output_size(padding, P, side):
    rows = [r for r in lenet_rows(side, padding) if r.kind in ("Conv2d", "MaxPool2d")]
    out = lambda h, f, s, p=0: (h + 2 * p - f) // s + 1  # the notes' H' = (H + 2P - f)/s + 1
    h1 = out(side, 5, 1, P)
    h2 = out(out(h1, 2, 2), 5, 1, P)
    assert [r.output_shape for r in rows] == [(6, h1, h1), (6, h1 // 2, h1 // 2), (16, h2, h2), (16, h2 // 2, h2 // 2)]
    if padding == "same":
        assert h1 == side  # 'same': the map keeps the image's size
    # (f x f x d + 1) x n parameters, independent of the image's size and of the padding: shared weights
    assert [r.params for r in rows if r.kind == "Conv2d"] == [(5 * 5 * 1 + 1) * 6, (5 * 5 * 6 + 1) * 16]


def test_an_unknown_padding_is_one_clear_error():
    from dlrun.errors import ConfigError

    with pytest.raises(ConfigError, match="model.padding.*valid"):
        lenet_rows(28, "full")


def test_batch_norm_normalises_each_channel_per_batch_and_gamma_beta_are_trained():
    torch.manual_seed(0)
    cfg = make_cfg("model=lenet", "regularizer=batchnorm", "optimizer=sgd")
    model, _ = build_model_and_loss(cfg, DataInfo((1, 16, 16), 10, list("0123456789")))
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    seen = {}
    bn.register_forward_hook(lambda m, args, out: seen.update(x=args[0].detach(), y=out.detach()))
    model.train()
    model(torch.randn(32, 1, 16, 16) * 5 + 3)
    y = seen["y"]
    mean, var = y.mean(dim=(0, 2, 3)), y.var(dim=(0, 2, 3), unbiased=False)
    torch.testing.assert_close(mean, torch.zeros(6), atol=1e-5, rtol=0)  # every channel: mean 0
    torch.testing.assert_close(var, torch.ones(6), atol=1e-3, rtol=0)  # and variance 1 (up to eps)
    # N = gamma S + beta, with gamma and beta learnable: in the optimizer's parameters
    optimizer = build_optimizer(cfg.optimizer, model)
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert id(bn.weight) in in_optimizer and id(bn.bias) in in_optimizer
    with torch.no_grad():
        bn.weight.fill_(2.0)
        bn.bias.fill_(3.0)
    model(torch.randn(32, 1, 16, 16) * 5 + 3)
    torch.testing.assert_close(seen["y"].mean(dim=(0, 2, 3)), torch.full((6,), 3.0), atol=1e-4, rtol=0)
    torch.testing.assert_close(seen["y"].std(dim=(0, 2, 3), unbiased=False), torch.full((6,), 2.0), atol=1e-3, rtol=0)


def test_dropout_zeros_a_fraction_p_scales_the_rest_and_is_identity_in_eval():
    torch.manual_seed(0)
    cfg = make_cfg("model=mlp", "regularizer=dropout", "regularizer.dropout.p=0.3")
    model, _ = build_model_and_loss(cfg, DataInfo((8,), 3, list("abc")))
    drop = next(m for m in model.modules() if isinstance(m, nn.Dropout))
    x = torch.rand(200, 500) + 0.5  # no zeros of its own
    drop.train()
    y = drop(x)
    assert (y == 0).double().mean().item() == pytest.approx(0.3, abs=0.01)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / (1 - 0.3))  # survivors scaled by 1/(1 - p)
    model.eval()
    assert torch.equal(drop(x), x)


def test_the_chain_rule_on_the_notes_network_by_hand():
    # N1 = w1 x1 + w2 x2 + w3 x3 + b1, N2 = w4 x1 + w5 x2 + w6 x3 + b2, y_hat = w7 N1 + w8 N2 + b3, L = MSE
    torch.manual_seed(0)
    cfg = make_cfg("model=mlp", "model.hidden=[2]", "model.activation=linear", "loss=mse")
    model, loss_fn = build_model_and_loss(cfg, DataInfo((3,), 1, [], "regression"))
    model = model.double()
    x, y = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 1, dtype=torch.float64)
    loss_fn(model(x), y).backward()
    hidden, out = model[1], model[3]
    (w1, w2, w3), (w4, w5, w6) = hidden.weight.detach().tolist()
    (w7, w8), = out.weight.detach().tolist()
    b1, b2 = hidden.bias.detach().tolist()
    b3 = out.bias.item()
    n = len(x)
    n1 = w1 * x[:, 0] + w2 * x[:, 1] + w3 * x[:, 2] + b1
    n2 = w4 * x[:, 0] + w5 * x[:, 1] + w6 * x[:, 2] + b2
    r = y[:, 0] - (w7 * n1 + w8 * n2 + b3)
    dl_dw7 = (-2 * r * n1).sum() / n  # the notes' dL/dw7 = 1/n sum -2 (y - y_hat) N1
    dl_dw1 = (-2 * r * w7 * x[:, 0]).sum() / n  # chain rule: dL/dN1 * dN1/dw1
    dl_db1 = (-2 * r * w7).sum() / n
    assert out.weight.grad[0, 0].item() == pytest.approx(dl_dw7.item(), abs=1e-12)
    assert hidden.weight.grad[0, 0].item() == pytest.approx(dl_dw1.item(), abs=1e-12)
    assert hidden.bias.grad[0].item() == pytest.approx(dl_db1.item(), abs=1e-12)


def test_shortcut_false_is_the_plain_network_of_the_same_layers():
    torch.manual_seed(0)
    residual = ResNet((1, 16, 16), 10, depth=20, width_mult=0.25)
    plain = ResNet((1, 16, 16), 10, depth=20, width_mult=0.25, shortcut=False)
    blocks = [m for m in plain.modules() if hasattr(m, "residual")]
    assert len(blocks) == 9 and all(b.shortcut is None for b in blocks)
    projections = sum(p.numel() for m in residual.modules() if hasattr(m, "residual") and m.shortcut is not None
                      for p in m.shortcut.parameters())
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert projections > 0 and count(plain) == count(residual) - projections
    block = blocks[0].eval()
    x = torch.randn(2, 4, 16, 16)
    torch.testing.assert_close(block(x), torch.relu(block.residual(x)))  # y = act(F(x)), no + x


@pytest.mark.parametrize("padding,P", [("same", 1), ("valid", 0)])
def test_convnet_padding_gives_the_notes_output_size(padding, P):
    cfg = make_cfg("model=convnet", "model.widths=[4,8]", f"model.padding={padding}")
    model, _ = build_model_and_loss(cfg, DataInfo((1, 28, 28), 10, list("0123456789")))
    rows = [r for r in summarize(model, (1, 28, 28)).rows if r.kind in ("Conv2d", "MaxPool2d")]
    out = lambda h, f, s, p=0: (h + 2 * p - f) // s + 1  # the notes' H' = (H + 2P - f)/s + 1
    h1 = out(28, 3, 1, P)
    h2 = out(h1 // 2, 3, 1, P)
    assert [r.output_shape for r in rows] == [(4, h1, h1), (4, h1 // 2, h1 // 2), (8, h2, h2), (8, h2 // 2, h2 // 2)]
    assert (h1, h2) == ((28, 14) if padding == "same" else (26, 11))


def test_convnet_valid_padding_too_deep_for_the_image_is_one_clear_error():
    from dlrun.errors import ConfigError

    with pytest.raises(ConfigError, match="model.padding.*too small"):
        build_model_and_loss(make_cfg("model=convnet", "model.widths=[4,4,4,4]", "model.padding=valid"),
                             DataInfo((1, 28, 28), 10, list("0123456789")))
