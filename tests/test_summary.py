"""task=summary: the Keras-style table, its counts (the notes' formula), MACs, and nothing trained."""

import pytest
import torch
from conftest import make_cfg, run_dlrun
from torch import nn

from dlrun.models.lenet import LeNet5
from dlrun.models.resnet import ResNet
from dlrun.training.model_summary import data_info, summarize


def test_lenet_rows_follow_the_notes():
    s = summarize(LeNet5((1, 28, 28), 10), (1, 28, 28))
    conv1 = s.rows[0]
    assert (conv1.name, conv1.kind, conv1.output_shape, conv1.params) == ("features.0", "Conv2d", (6, 24, 24), 156)
    shapes = [(r.kind, r.output_shape) for r in s.rows if r.kind in ("Conv2d", "MaxPool2d", "Linear")]
    assert shapes == [("Conv2d", (6, 24, 24)), ("MaxPool2d", (6, 12, 12)), ("Conv2d", (16, 8, 8)),
                      ("MaxPool2d", (16, 4, 4)), ("Linear", (120,)), ("Linear", (84,)), ("Linear", (10,))]
    # (f x f x d + 1) x n for the convolutions, (inputs + 1) x outputs for the dense layers
    params = [r.params for r in s.rows if r.params]
    assert params == [(5 * 5 * 1 + 1) * 6, (5 * 5 * 6 + 1) * 16, (256 + 1) * 120, (120 + 1) * 84, (84 + 1) * 10]
    assert s.total_params == sum(params) == 44_426 == s.trainable_params
    assert s.param_bytes == 4 * 44_426 and s.param_mb == pytest.approx(4 * 44_426 / 2**20)
    # MACs: one per weight of a kernel per output position (a convolution), one per weight (a dense layer)
    macs = 24 * 24 * 6 * 5 * 5 * 1 + 8 * 8 * 16 * 5 * 5 * 6 + 256 * 120 + 120 * 84 + 84 * 10
    assert s.macs == macs == sum(r.macs for r in s.rows) == 281_640


def test_every_convolution_row_follows_the_formula_and_rows_add_up():
    model = ResNet((3, 32, 32), 10, depth=20, batchnorm=False)
    s = summarize(model, (3, 32, 32))
    for r, m in zip(s.rows, [dict(model.named_modules())[r.name] for r in s.rows]):
        if isinstance(m, nn.Conv2d):
            f, d, n = m.kernel_size[0], m.in_channels, m.out_channels
            assert r.params == (f * f * d + 1) * n
    assert sum(r.params for r in s.rows) == s.total_params == sum(p.numel() for p in model.parameters())
    assert any(r.kind == "Identity" for r in s.rows)  # the residual shortcuts are listed


def test_frozen_and_batchnorm_parameters():
    model = ResNet((1, 16, 16), 4, depth=20, width_mult=0.25)
    for p in model.stem.parameters():
        p.requires_grad_(False)
    s = summarize(model, (1, 16, 16))
    frozen = sum(p.numel() for p in model.stem.parameters())
    assert s.total_params - s.trainable_params == frozen > 0
    assert {r.name: r.trainable for r in s.rows}["stem.0"] == 0
    assert model.training  # summarize ran in eval mode and restored the mode


@pytest.mark.slow
def test_data_info_does_not_load_known_datasets(monkeypatch):
    import dlrun.data

    monkeypatch.setattr(dlrun.data, "build_data", lambda *a, **k: pytest.fail("the dataset was loaded"))
    info = data_info(make_cfg("data=fashion_mnist").data, 0)
    assert (info.in_shape, info.num_classes) == ((1, 28, 28), 10)
    info = data_info(make_cfg("data=synthetic", "data.shape=[3,8,8]", "data.num_classes=5").data, 0)
    assert (info.in_shape, info.num_classes) == ((3, 8, 8), 5)
    assert data_info(make_cfg("data=logic_gate").data, 0).in_shape == (2,)


@pytest.mark.subprocess
def test_task_summary_prints_the_table_and_trains_nothing(tmp_path):
    run_dir = tmp_path / "run"
    # the default LeNet on Fashion-MNIST: its shape is known, so nothing is loaded (the files need not exist)
    proc = run_dlrun("task=summary", "data.root=/nonexistent", f"hydra.run.dir={run_dir}",
                     env={"COLUMNS": "200", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "features.0 (Conv2d)" in out and "(None, 6, 24, 24)" in out and " 156 " in out
    assert "44,426" in out and "Params size (MB)" in out and "281,640" in out
    assert not (run_dir / "metrics.jsonl").exists() and not (run_dir / "checkpoints").exists()


@pytest.mark.subprocess
def test_task_summary_reports_a_bad_model_in_one_line(tmp_path):
    proc = run_dlrun("task=summary", "model=vgg", "model.depth=12", "data=synthetic", "data.shape=[3,32,32]",
                     f"hydra.run.dir={tmp_path}/run", env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "error: model.depth=12 is not allowed: one of 11, 13, 16, 19" in proc.stdout + proc.stderr


def test_parameter_memory_follows_the_dtype():
    model = LeNet5((1, 16, 16), 3).double()
    assert summarize(model, (1, 16, 16)).param_bytes == 8 * sum(p.numel() for p in model.parameters())
    assert next(model.parameters()).dtype == torch.float64


def test_summary_builds_the_network_training_would_build():
    from omegaconf import OmegaConf

    from dlrun.console import console
    from dlrun.training.model_summary import run

    # bce on two classes asks for one output; regularizer=dropout switches the MLP's dropout on
    cfg = make_cfg("task=summary", "model=mlp", "model.hidden=[8]", "data=logic_gate", "loss=bce", "regularizer=dropout")
    OmegaConf.set_struct(cfg, False)
    with console.capture() as captured:
        total = run(cfg, None)
    out = captured.get()
    assert total == (2 + 1) * 8 + (8 + 1) * 1
    assert "(Dropout)" in out and "(None, 1)" in out
