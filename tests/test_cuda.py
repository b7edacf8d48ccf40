"""The CUDA paths (marked `cuda`, skipped without a GPU): mixed precision, channels_last, compile,
checkpoints across devices, exact resume, nccl DDP. `python benchmarks/gpu_check.py` runs them on a GPU."""

import socket

import pytest
import torch

from dlrun.run_folder import checkpoint
from dlrun.training.device import autocast
from dlrun.training.tasks import build_loop

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
CUDA = ("trainer.device=cuda",)


def _learned(loop, summary) -> bool:
    """The run completed and its training loss fell (a few steps on tiny data: accuracy is still noisy)."""
    losses = [row["train/loss"] for row in loop.history]
    return summary["status"] == "completed" and all(map(torch.isfinite, torch.tensor(losses))) and losses[-1] < losses[0]


def _weights(loop) -> list[torch.Tensor]:
    return [p.detach().cpu().clone() for p in checkpoint.unwrap(loop.model).parameters()]


def test_fp16_trains_with_a_grad_scaler(tiny_cfg, tmp_path):
    loop = build_loop(tiny_cfg(*CUDA, "trainer.precision=16"), tmp_path)
    assert loop.amp_dtype == torch.float16 and loop.scaler.is_enabled()
    assert _learned(loop, loop.fit())
    assert 0 < loop.scaler.get_scale() < float("inf")


def test_bf16_autocasts_and_needs_no_scaler(tiny_cfg, tmp_path):
    loop = build_loop(tiny_cfg(*CUDA, "trainer.precision=bf16"), tmp_path)
    assert not loop.scaler.is_enabled()
    x, _ = next(iter(loop.data.train))
    with autocast(loop.device, loop.amp_dtype):
        assert loop.model(x).dtype == torch.bfloat16
    assert _learned(loop, loop.fit())


def test_channels_last_is_on_under_amp_and_off_at_fp32(tiny_cfg, tmp_path):
    # 3 input channels: with one channel (or a 1-channel kernel) both memory formats are the same layout
    rgb = ("data.shape=[3,28,28]",)
    amp = build_loop(tiny_cfg(*CUDA, *rgb, "trainer.precision=16"), tmp_path / "amp")
    convs = [m for m in amp.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.is_cuda and c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    assert not convs[0].weight.is_contiguous()  # the layout really changed
    x = amp.data.train.x
    assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    assert _learned(amp, amp.fit())
    fp32 = build_loop(tiny_cfg(*CUDA, *rgb), tmp_path / "fp32")
    convs = [m for m in fp32.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.weight.is_contiguous() and not c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)


def test_compiled_model_trains_and_saves_plain_parameter_names(tiny_cfg, tmp_path):
    loop = build_loop(tiny_cfg(*CUDA, "trainer.compile=true"), tmp_path)
    assert _learned(loop, loop.fit())
    keys = checkpoint.load(tmp_path / "checkpoints" / "last.pt")["model"].keys()
    assert keys and not any("_orig_mod" in k for k in keys)


def test_a_cuda_checkpoint_resumes_on_the_cpu_and_back(tiny_cfg, tmp_path):
    cfg = lambda device, epochs: tiny_cfg(f"trainer.device={device}", f"trainer.max_epochs={epochs}", "scheduler=none")
    gpu = build_loop(cfg("cuda", 1), tmp_path)
    gpu.fit()
    path = tmp_path / "checkpoints" / "last.pt"
    cpu = build_loop(cfg("cpu", 2), tmp_path)
    checkpoint.restore(cpu, checkpoint.load(path), path)
    assert all(torch.equal(a, b) for a, b in zip(_weights(gpu), _weights(cpu)))
    assert all(not p.is_cuda for p in cpu.model.parameters())
    assert cpu.fit()["epochs"] == 2
    back = build_loop(cfg("cuda", 3), tmp_path)
    checkpoint.restore(back, checkpoint.load(path), path)
    assert all(p.is_cuda for p in back.model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(_weights(cpu), _weights(back)))
    summary = back.fit()
    assert summary["epochs"] == 3 and summary["status"] == "completed"


def test_deterministic_resume_on_cuda_is_exact(tiny_cfg, tmp_path):
    opts = (*CUDA, "trainer.deterministic=true", "model.dropout=0.3", "scheduler=none")
    full = build_loop(tiny_cfg("trainer.max_epochs=3", *opts), tmp_path / "full")
    full.fit()
    first = build_loop(tiny_cfg("trainer.max_epochs=1", *opts), tmp_path / "part")
    first.fit()
    path = tmp_path / "part" / "checkpoints" / "last.pt"
    second = build_loop(tiny_cfg("trainer.max_epochs=3", *opts), tmp_path / "part")
    checkpoint.restore(second, checkpoint.load(path), path)
    second.fit()
    assert all(torch.equal(a, b) for a, b in zip(_weights(full), _weights(second)))
    assert second.history[-1]["val/loss"] == full.history[-1]["val/loss"]


def test_nccl_ddp_with_one_process(tiny_cfg, tmp_path, monkeypatch):
    import torch.distributed as dist

    from dlrun.training import distributed

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(port)}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(distributed, "launched_by_torchrun", lambda: True)  # dlrun's DDP path at world size 1
    try:
        loop = build_loop(tiny_cfg(*CUDA), tmp_path)
        assert dist.get_backend() == "nccl"
        assert isinstance(loop.model, torch.nn.parallel.DistributedDataParallel)
        summary = loop.fit()
    finally:
        distributed.leave()
    assert _learned(loop, summary)
