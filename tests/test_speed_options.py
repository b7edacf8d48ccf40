"""Speed options: channels_last (auto by default), fused optimizers, torch.compile; what they change and
what they must not change (the numbers a run computes)."""

from __future__ import annotations

import pytest
import torch

from conftest import TINY, make_cfg
from dlrun.training.device import channels_last_hazard, use_channels_last
from dlrun.errors import ConfigError
from dlrun.training.tasks import build_loop

CPU, CUDA, MPS = torch.device("cpu"), torch.device("cuda"), torch.device("mps")


@pytest.mark.parametrize("setting, device, amp, expected", [
    ("auto", CPU, None, True),  # oneDNN convolutions are faster in NHWC (benchmarks/speed_options.py)
    ("auto", CPU, torch.bfloat16, True),
    ("auto", CUDA, None, False),  # fp32 on a GPU: no tensor cores to feed, so no gain to expect
    ("auto", CUDA, torch.float16, True),
    ("auto", MPS, None, False),
    (True, CUDA, None, True),  # an explicit setting always wins
    (False, CPU, None, False),
])
def test_auto_channels_last_is_on_where_it_is_faster(setting, device, amp, expected):
    assert use_channels_last(setting, device, amp, torch.nn.Conv2d(3, 8, 3)) is expected


def small_resnet(width_mult: float):
    from dlrun.models.resnet import ResNet

    return ResNet((3, 16, 16), 4, depth=20, width_mult=width_mult)


def test_channels_last_stays_off_where_onednn_gets_the_gradients_wrong():
    """uxlfoundation/oneDNN#6035: NHWC 1x1 stride-2 convolutions with few input channels (ResNet-20's
    projection shortcuts at width_mult=0.25: 4 and 8 channels) get wrong weight gradients on a CPU."""
    narrow, default = small_resnet(0.25), small_resnet(1.0)
    assert channels_last_hazard(narrow) is not None and channels_last_hazard(default) is None  # 16+ channels
    assert not use_channels_last("auto", CPU, None, narrow) and use_channels_last("auto", CPU, None, default)
    assert use_channels_last("auto", CUDA, torch.float16, narrow)  # cuDNN is not oneDNN
    with pytest.raises(ConfigError, match="trainer.channels_last.*wrong weight gradients.*use auto or false"):
        use_channels_last(True, CPU, None, narrow)
    assert channels_last_hazard(torch.nn.Conv2d(4, 8, 3, stride=2)) is None  # only 1x1 kernels
    assert channels_last_hazard(torch.nn.Conv2d(4, 8, 1, stride=1)) is None  # only strided ones


def test_auto_picks_nchw_for_the_narrow_resnet_and_nhwc_for_the_default_one(tmp_path):
    for width, nhwc in (("0.25", False), ("1.0", True)):
        loop = build_loop(make_cfg(*TINY, "data.shape=[3,16,16]", "model=resnet", "callbacks=none",
                                   f"model.width_mult={width}"), tmp_path / width)
        x, _ = next(loop.data.train.batches())
        assert x.is_contiguous(memory_format=torch.channels_last) is nhwc and x.is_contiguous() is not nhwc
        assert conv_weight(loop.model).is_contiguous(memory_format=torch.channels_last) is nhwc


@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("in_channels", [16, 32, 64])
def test_strided_1x1_convolutions_the_guard_allows_get_the_nchw_gradients(in_channels, threads):
    """The guard's other side: with 16+ input channels (ResNet-20's shortcuts) NHWC computes what NCHW does.
    (The convolutions it refuses are not run here: on one thread they corrupt the heap.)"""
    torch.set_num_threads(threads)
    conv = torch.nn.Conv2d(in_channels, 2 * in_channels, 1, stride=2, bias=False)
    assert channels_last_hazard(conv) is None
    x = torch.randn(64, in_channels, 16, 16)
    grads = []
    for fmt in (torch.contiguous_format, torch.channels_last):
        conv.weight.grad = None
        xf = x.clone(memory_format=fmt).requires_grad_()
        conv.to(memory_format=fmt)(xf).square().sum().backward()
        grads.append((conv.weight.grad.clone(), xf.grad))
    for nchw, nhwc in zip(*grads):
        torch.testing.assert_close(nhwc, nchw, rtol=1e-4, atol=1e-4 * nchw.abs().max().item())


def conv_weight(model):
    return next(p for p in model.parameters() if p.dim() == 4 and p.shape[1] > 1)


@pytest.mark.slow
def test_speed_options_are_wired(tmp_path):
    cfg = make_cfg(*TINY, "data.shape=[3,16,16]", "trainer.channels_last=true", "trainer.compile=true")
    loop = build_loop(cfg, tmp_path)
    x, _ = next(loop.data.train.batches())
    assert not x.is_contiguous()  # really in the other layout (not a one-channel tensor that is both)
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert conv_weight(loop.model).is_contiguous(memory_format=torch.channels_last)
    assert loop.model._compiled_call_impl is not None  # compiled in place (the first forward compiles)
    assert not any(k.startswith("_orig_mod") for k in loop.model.state_dict())  # checkpoints keep plain names


def test_a_cpu_run_uses_channels_last_and_a_fused_optimizer_by_default(tmp_path):
    loop = build_loop(make_cfg(*TINY, "model=lenet", "data.shape=[3,16,16]"), tmp_path / "default")
    x, _ = next(loop.data.train.batches())
    assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    assert conv_weight(loop.model).is_contiguous(memory_format=torch.channels_last)
    assert loop.optimizer.defaults["fused"] is True
    off = build_loop(make_cfg(*TINY, "model=lenet", "data.shape=[3,16,16]", "trainer.channels_last=false",
                              "optimizer.fused=false"), tmp_path / "off")
    assert next(off.data.train.batches())[0].is_contiguous() and conv_weight(off.model).is_contiguous()
    assert not off.optimizer.defaults["fused"]


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd", "nesterov", "gd"])
def test_fused_optimizers_are_on_and_train_like_the_plain_ones(tmp_path, optimizer):
    """The speed options are layouts and kernels, not a different training: the same weights to 1e-5."""
    args = [*TINY, "model=lenet", f"optimizer={optimizer}", "callbacks=none", "scheduler=none"]
    fast = build_loop(make_cfg(*args), tmp_path / "fast")
    plain = build_loop(make_cfg(*args, "optimizer.fused=false", "trainer.channels_last=false"), tmp_path / "plain")
    assert fast.optimizer.defaults["fused"] is True
    fast.fit(), plain.fit()
    assert fast.step == plain.step > 0
    for a, b in zip(fast.model.parameters(), plain.model.parameters()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("value", ["sometimes", "1"])
def test_a_bad_channels_last_value_is_a_config_error(value):
    from dlrun.training.validate import validate

    with pytest.raises(ConfigError, match="trainer.channels_last.*auto, true or false"):
        validate(make_cfg(*TINY, f"trainer.channels_last={value}"))
