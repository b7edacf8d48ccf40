"""Each optimizer config against the notes' update rule written out in numpy, on a small quadratic."""

import numpy as np
import pytest
import torch

from conftest import TINY, make_cfg
from dlrun.config.schema import build
from dlrun.data import build_data
from dlrun.nn.optimizers import Momentum

# f(w) = 1/2 w^T A w - b^T w, gradient A w - b: an ill-conditioned bowl
A = np.array([[3.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 0.1]])
B = np.array([1.0, -2.0, 0.5])
W0 = np.array([1.0, 2.0, -1.5])
STEPS = 25


def grad(w):
    return A @ w - B


def torch_path(optimizer_factory) -> np.ndarray:
    w = torch.nn.Parameter(torch.tensor(W0, dtype=torch.float64))
    opt = optimizer_factory([w])
    At, Bt = torch.tensor(A), torch.tensor(B)
    path = []
    for _ in range(STEPS):
        opt.zero_grad()
        (0.5 * w @ At @ w - Bt @ w).backward()
        opt.step()
        path.append(w.detach().numpy().copy())
    return np.array(path)


def reference_path(update) -> np.ndarray:
    """The update rule written out: update(w, g, state, t) -> w (t from 1)."""
    w, state, path = W0.copy(), {}, []
    for t in range(1, STEPS + 1):
        w = update(w, grad(w), state, t)
        path.append(w.copy())
    return np.array(path)


def gd(lr):
    return lambda w, g, s, t: w - lr * g


def notes_momentum(lr, beta):
    def update(w, g, s, t):
        s["m"] = beta * s.get("m", 0.0) + (1 - beta) * g
        return w - lr * s["m"]
    return update


def nesterov(lr, mu):
    def update(w, g, s, t):  # torch's (Sutskever) form: b = mu b + g, step along g + mu b
        s["b"] = mu * s["b"] + g if "b" in s else g
        return w - lr * (g + mu * s["b"])
    return update


def adagrad(lr, eps):
    def update(w, g, s, t):
        s["v"] = s.get("v", 0.0) + g**2
        return w - lr * g / (np.sqrt(s["v"]) + eps)
    return update


def rmsprop(lr, beta, eps):
    def update(w, g, s, t):
        s["v"] = beta * s.get("v", 0.0) + (1 - beta) * g**2
        return w - lr * g / (np.sqrt(s["v"]) + eps)
    return update


def adam(lr, b1, b2, eps, decoupled_decay=0.0):
    def update(w, g, s, t):
        w = w - lr * decoupled_decay * w
        s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g**2
        m_hat, v_hat = s["m"] / (1 - b1**t), s["v"] / (1 - b2**t)
        return w - lr * m_hat / (np.sqrt(v_hat) + eps)
    return update


def root_eps_adagrad(lr, eps):  # the notes: w <- w - lr g / sqrt(V_t + eps)
    def update(w, g, s, t):
        s["v"] = s.get("v", 0.0) + g**2
        return w - lr * g / np.sqrt(s["v"] + eps)
    return update


def root_eps_rmsprop(lr, beta, eps):
    def update(w, g, s, t):
        s["v"] = beta * s.get("v", 0.0) + (1 - beta) * g**2
        return w - lr * g / np.sqrt(s["v"] + eps)
    return update


def root_eps_adam(lr, b1, b2, eps):
    def update(w, g, s, t):
        s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g**2
        return w - lr * (s["m"] / (1 - b1**t)) / np.sqrt(s["v"] / (1 - b2**t) + eps)
    return update


def configured(name, *overrides):
    return build(make_cfg(f"optimizer={name}", *overrides).optimizer, "optimizer")


CASES = {
    "gd": (gd(0.1), ()),
    "sgd": (gd(0.05), ()),
    "momentum": (notes_momentum(0.05, 0.9), ()),
    "nesterov": (nesterov(0.01, 0.9), ()),
    "adagrad": (adagrad(0.01, 1e-10), ()),
    "rmsprop": (rmsprop(0.001, 0.9, 1e-8), ()),
    "adam": (adam(0.001, 0.9, 0.999, 1e-8), ()),
    "adamw": (adam(0.001, 0.9, 0.999, 1e-8, decoupled_decay=0.01), ()),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_configured_optimizer_follows_the_update_rule(name):
    update, overrides = CASES[name]
    ours = torch_path(configured(name, *overrides))
    np.testing.assert_allclose(ours, reference_path(update), atol=1e-6, rtol=0)
    assert np.linalg.norm(ours[-1] - ours[0]) > 1e-3  # it moved


# a large eps (0.5) so that inside and outside the root differ visibly on this bowl
ROOT_EPS = {
    "adagrad": (root_eps_adagrad(0.1, 0.5), adagrad(0.1, 0.5)),
    "rmsprop": (root_eps_rmsprop(0.01, 0.9, 0.5), rmsprop(0.01, 0.9, 0.5)),
    "adam": (root_eps_adam(0.01, 0.9, 0.999, 0.5), adam(0.01, 0.9, 0.999, 0.5)),
}


@pytest.mark.parametrize("name", list(ROOT_EPS))
def test_eps_inside_sqrt_is_the_notes_update(name):
    notes, torch_form = ROOT_EPS[name]
    lr = {"adagrad": 0.1, "rmsprop": 0.01, "adam": 0.01}[name]
    ours = torch_path(configured(name, "optimizer.eps_inside_sqrt=true",
                                 f"optimizer.lr={lr}", "optimizer.eps=0.5"))
    np.testing.assert_allclose(ours, reference_path(notes), atol=1e-9, rtol=0)
    assert np.abs(ours - reference_path(torch_form)).max() > 1e-3  # and it is not torch's form
    with_decay = torch_path(configured(name, "optimizer.eps_inside_sqrt=true", "optimizer.weight_decay=0.1"))
    assert np.abs(with_decay - torch_path(configured(name, "optimizer.eps_inside_sqrt=true"))).max() > 1e-6


def test_momentum_reproduces_the_notes_worked_example():
    w = torch.nn.Parameter(torch.tensor([5.0], dtype=torch.float64))
    opt = Momentum([w], lr=0.1, beta=0.5)
    for g, m_expected, w_expected in ((-20.0, -10.0, 6.0), (-7.0, -8.5, 6.85)):
        w.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
        assert opt.state[w]["m"].item() == pytest.approx(m_expected, abs=1e-12)
        assert w.item() == pytest.approx(w_expected, abs=1e-12)


def test_notes_momentum_is_torch_sgd_with_a_scaled_lr():
    # m_t = (1 - beta) b_t for SGD's b_t = beta b_{t-1} + g_t: the same path with lr (1 - beta) lr
    ours = torch_path(lambda p: Momentum(p, lr=0.05, beta=0.8))
    torch_sgd = torch_path(lambda p: torch.optim.SGD(p, lr=0.05 * 0.2, momentum=0.8))
    np.testing.assert_allclose(ours, torch_sgd, atol=1e-6, rtol=0)
    # SGD's dampening=beta is not the same: its first step is undamped (b_1 = g_1)
    damped = torch_path(lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, dampening=0.8))
    assert np.abs(ours - damped).max() > 1e-3


def test_gd_uses_the_whole_training_split_as_one_batch():
    cfg = make_cfg(*TINY, "optimizer=gd")
    data = build_data(cfg.data, torch.device("cpu"), cfg.seed)
    assert len(data.train) == 1 and next(iter(data.train))[0].shape[0] == data.train.num_samples
    assert len(build_data(make_cfg(*TINY, "optimizer=sgd").data, torch.device("cpu"), 0).train) > 1


@pytest.mark.slow
def test_optimizer_configs_are_partial_for_other_tasks():
    # the landscape task builds them the same way, on its own two parameters
    for name in CASES:
        opt = configured(name)([torch.nn.Parameter(torch.zeros(2))])
        assert isinstance(opt, torch.optim.Optimizer)
