"""Transfer learning (dlrun/models/transfer.py): load pretrained weights, replace the head, freeze, adapt channels."""

from __future__ import annotations

import json
import os
from urllib.parse import urlparse

import pytest
import torch

from conftest import TINY, make_cfg
from dlrun.run_folder import checkpoint
from dlrun.callbacks.base import Callback
from dlrun.data import DataInfo, build_data
from dlrun.errors import CheckpointError, ConfigError
from dlrun.models import build_model
from dlrun.models.lenet import LeNet5
from dlrun.training.tasks import build_loop, execute

GREY = (1, 16, 16)
FAST = [*TINY, "model=lenet", "callbacks=none", "trainer.num_threads=1"]


def _lenet(in_shape=GREY, n=4, seed=0, **kw):
    torch.manual_seed(seed)
    return LeNet5(in_shape, n, **kw)


def _built(path, in_shape=GREY, n=4, names=None, seed=1, *more):
    """build_model as a run does it, with model.pretrained=path."""
    cfg = make_cfg("model=lenet", f"model.pretrained={path}", *more)
    torch.manual_seed(seed)
    return build_model(cfg.model, DataInfo(in_shape, n, names or [str(i) for i in range(n)]))


@pytest.mark.slow
@pytest.mark.parametrize("form", ["state_dict", "dlrun"])
def test_another_class_count_reinitialises_exactly_the_head(tmp_path, form):
    source = _lenet(n=10, seed=0)
    path = tmp_path / "w.pt"
    torch.save(source.state_dict() if form == "state_dict" else {"model": source.state_dict()}, path)
    fresh = _lenet(n=4, seed=1).state_dict()  # what build_model makes with the same seed, before loading
    loaded = _built(path, n=4, seed=1).state_dict()
    head = {"classifier.5.weight", "classifier.5.bias"}
    for name, t in loaded.items():
        expected = fresh[name] if name in head else source.state_dict()[name]
        assert torch.equal(t, expected), name
    assert not torch.equal(fresh["features.0.weight"], source.state_dict()["features.0.weight"])  # a real check


def test_a_checkpoint_for_other_classes_of_the_same_count_gets_a_new_head(tmp_path):
    source = _lenet(n=4, seed=0)
    path = tmp_path / "w.pt"
    checkpoint.save({"model": source.state_dict(), "data_info": {"class_names": ["a", "b", "c", "d"]}}, path)
    fresh = _lenet(n=4, seed=1).state_dict()
    other = _built(path, names=["e", "f", "g", "h"]).state_dict()
    same = _built(path, names=["a", "b", "c", "d"]).state_dict()
    assert torch.equal(other["classifier.5.weight"], fresh["classifier.5.weight"])
    assert torch.equal(other["classifier.3.weight"], source.state_dict()["classifier.3.weight"])
    assert torch.equal(same["classifier.5.weight"], source.state_dict()["classifier.5.weight"])


def test_frozen_parameters_stay_bit_exact_and_get_no_optimizer_state(tmp_path):
    cfg = make_cfg(*FAST, "model.batchnorm=true", "model.freeze=backbone")
    loop = build_loop(cfg, tmp_path)
    model = loop.model
    frozen = [n for n, m in model.named_modules() if getattr(m, "dlrun_frozen", False)]
    assert frozen == ["features.0", "features.1", "features.4", "features.5", "classifier.1", "classifier.3"]
    before = {k: v.clone() for k, v in model.state_dict().items()}  # parameters and batch-norm running stats
    loop.fit()
    after = model.state_dict()
    for name in before:
        layer = name.rsplit(".", 1)[0]
        if layer in frozen:
            assert torch.equal(before[name], after[name]), name
        else:
            assert not torch.equal(before[name], after[name]), name  # the head trained
    in_optimizer = {id(p) for g in loop.optimizer.param_groups for p in g["params"]}
    head = {id(p) for p in model.classifier[5].parameters()}
    assert in_optimizer == head
    assert {id(p) for p in loop.optimizer.state} == head
    assert all(not p.requires_grad for n, p in model.named_parameters() if not n.startswith("classifier.5"))


def test_freeze_n_leading_layers_and_the_summary_marks_them():
    from dlrun.training.model_summary import summarize

    cfg = make_cfg("model=lenet", "model.freeze=2")
    model = build_model(cfg.model, DataInfo(GREY, 4, list("abcd")))
    rows = {r.name: r for r in summarize(model, GREY).rows if r.params}
    assert [n for n, r in rows.items() if r.trainable == 0] == ["features.0", "features.3"]
    assert all(r.trainable == r.params for n, r in rows.items() if n.startswith("classifier"))


def test_head_lr_mult_puts_the_head_in_its_own_group():
    cfg = make_cfg(*FAST, "+optimizer.head_lr_mult=10", "scheduler=none")
    loop = build_loop(cfg, "/nonexistent")
    body, top = loop.optimizer.param_groups
    assert body["lr"] == pytest.approx(0.001) and top["lr"] == pytest.approx(0.01)
    assert [id(p) for p in top["params"]] == [id(p) for p in loop.model.classifier[5].parameters()]
    assert len(body["params"]) == 8


@pytest.mark.slow
def test_unfreeze_at_epoch_adds_the_layers_to_the_optimizer_and_resumes(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = make_cfg(*FAST, "model.freeze=backbone", "trainer.unfreeze_at_epoch=2", "trainer.max_epochs=2",
                   "callbacks=default", "~callbacks.tensorboard")
    loop = build_loop(cfg, run_dir)
    conv = loop.model.features[0].weight
    seen = []

    class Watch(Callback):  # the first convolution after each epoch
        def on_epoch_end(self, loop, metrics):
            seen.append(conv.detach().clone())

    loop.callbacks = {"watch": Watch(), **loop.callbacks}
    start = conv.detach().clone()
    loop.fit()
    assert torch.equal(seen[0], start) and not torch.equal(seen[1], start)  # frozen in epoch 1, trained in 2
    groups = loop.optimizer.param_groups
    assert len(groups) == 2 and any(p is conv for p in groups[1]["params"])
    assert groups[1]["lr"] == pytest.approx(groups[0]["lr"])  # the new group follows the cosine schedule
    # a resumed run rebuilds the unfrozen group before the saved optimizer state is put back
    code, _ = execute(make_cfg(*FAST, "model.freeze=backbone", "trainer.unfreeze_at_epoch=2", "trainer.max_epochs=3",
                               "callbacks=default", "~callbacks.tensorboard", "trainer.resume=true"), run_dir)
    assert code == 0
    assert checkpoint.load(run_dir / "checkpoints" / "last.pt")["epoch"] == 3


@pytest.mark.parametrize("src_c, dst_c", [(3, 1), (1, 3)])
def test_channel_adaptation_keeps_the_output_of_a_grey_image(tmp_path, src_c, dst_c):
    source = _lenet((src_c, 16, 16), n=4, seed=0).eval()
    path = tmp_path / "w.pt"
    torch.save(source.state_dict(), path)
    target = _built(path, (dst_c, 16, 16), n=4).eval()
    grey = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        out_src, out_dst = source(grey.repeat(1, src_c, 1, 1)), target(grey.repeat(1, dst_c, 1, 1))
    torch.testing.assert_close(out_dst, out_src, atol=1e-5, rtol=1e-5)
    assert out_src.abs().max() > 1e-3  # not trivially zero


def _hub_file(torch_home, name):
    from torchvision.models import get_weight

    return torch_home / "hub" / "checkpoints" / os.path.basename(urlparse(get_weight(name).url).path)


@pytest.mark.slow
def test_torchvision_weights_from_the_local_hub_cache(tmp_path, monkeypatch):
    """A stand-in for ResNet18_Weights.IMAGENET1K_V1 in the cache (3 channels, 1000 classes) fits
    model=torchvision on grey 4-class data: conv1 adapted, fc fresh, everything else loaded."""
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(0)
    imagenet = torchvision.models.resnet18(weights=None).eval()
    path = _hub_file(tmp_path, "ResNet18_Weights.IMAGENET1K_V1")
    path.parent.mkdir(parents=True)
    torch.save(imagenet.state_dict(), path)
    cfg = make_cfg("model=torchvision", "model.pretrained=torchvision:ResNet18_Weights.IMAGENET1K_V1")
    model = build_model(cfg.model, DataInfo((1, 32, 32), 4, list("abcd"))).eval()
    state = model.state_dict()
    assert torch.equal(state["conv1.weight"], imagenet.conv1.weight.sum(dim=1, keepdim=True))
    assert torch.equal(state["layer4.1.bn2.running_var"], imagenet.layer4[1].bn2.running_var)
    assert state["fc.weight"].shape == (4, 512)
    grey = torch.rand(1, 1, 32, 32)
    with torch.no_grad():  # the features before the head are those of the grey image on 3 channels
        feats = lambda net, x: torch.nn.Sequential(*list(net.children())[:-1])(x)
        torch.testing.assert_close(feats(model, grey), feats(imagenet, grey.repeat(1, 3, 1, 1)), atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_torchvision_weights_not_in_the_cache_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache: nothing may be downloaded
    cfg = make_cfg("model=torchvision", "model.pretrained=torchvision:ResNet18_Weights.IMAGENET1K_V1")
    with pytest.raises(CheckpointError) as e:
        build_model(cfg.model, DataInfo((1, 32, 32), 4, list("abcd")))
    message = str(e.value)
    assert "downloaded once" in message and str(_hub_file(tmp_path, "ResNet18_Weights.IMAGENET1K_V1")) in message
    assert "get_weight('ResNet18_Weights.IMAGENET1K_V1').get_state_dict" in message
    assert not any(tmp_path.rglob("*.pth"))
    bad = make_cfg("model=torchvision", "model.pretrained=torchvision:ResNet18_Weights.NOPE")
    with pytest.raises(ConfigError, match="torchvision:<Weights enum>"):
        build_model(bad.model, DataInfo((1, 32, 32), 4, list("abcd")))


@pytest.mark.parametrize("content, message", [
    (b"\x00not a pytorch file at all" * 10, "cannot read checkpoint"),
    ("other architecture", "does not fit LeNet5: only 0 of its 10 tensors"),
    ({"lr": 0.1}, "neither a dlrun checkpoint nor a state_dict"),
    (None, "does not exist"),
])
@pytest.mark.slow
def test_a_corrupt_or_mismatched_file_is_one_clear_error(tmp_path, content, message):
    path = tmp_path / "w.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "other architecture":
        torch.save(torch.nn.Sequential(torch.nn.Linear(256, 32), torch.nn.Linear(32, 4)).state_dict(), path)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(CheckpointError, match=message):
        _built(path)


def test_a_mismatched_file_in_a_run_is_one_error_line(tmp_path, caplog):
    path = tmp_path / "w.pt"
    torch.save({"fc.weight": torch.zeros(4, 256)}, path)
    code, _ = execute(make_cfg(*FAST, f"model.pretrained={path}"), tmp_path)
    errors = [r.getMessage() for r in caplog.records if r.getMessage().startswith("error:")]
    assert code == 2 and len(errors) == 1 and "does not fit LeNet5" in errors[0], errors
    assert not (tmp_path / "metrics.jsonl").exists()
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "failed"


@pytest.mark.parametrize("override, key", [
    ("model.freeze=some", "model.freeze=some"),
    ("trainer.unfreeze_at_epoch=2", "trainer.unfreeze_at_epoch=2"),
    ("+optimizer.head_lr_mult=-1", "optimizer.head_lr_mult=-1"),
])
@pytest.mark.slow
def test_bad_transfer_options_are_config_errors(tmp_path, override, key):
    from dlrun.training.validate import validate

    with pytest.raises(ConfigError, match=key.replace("+", "")):
        validate(make_cfg(*FAST, override))


def test_freezing_every_layer_is_refused():
    cfg = make_cfg("model=lenet", "model.freeze=5")
    with pytest.raises(ConfigError, match="model.freeze=5"):
        build_model(cfg.model, DataInfo(GREY, 4, list("abcd")))


def test_data_classes_and_a_balanced_seeded_limit():
    cfg = make_cfg(*TINY, "data.size=400", "data.classes=[3,1]", "data.limit=60", "data.val_fraction=0")
    data = build_data(cfg.data, torch.device("cpu"), seed=0)
    assert data.info.num_classes == 2 and data.info.class_names == ["class_3", "class_1"]
    y = data.train.y if hasattr(data.train, "y") else torch.cat([b[1] for b in data.train])
    assert sorted(torch.bincount(y).tolist()) == [30, 30]
    assert set(data.test.y.tolist() if hasattr(data.test, "y") else torch.cat([b[1] for b in data.test]).tolist()) \
        == {0, 1}
    again = build_data(cfg.data, torch.device("cpu"), seed=0)
    assert torch.equal(again.train.x, data.train.x) if hasattr(data.train, "x") else True
    with pytest.raises(ConfigError, match="data.classes"):
        build_data(make_cfg(*TINY, "data.classes=[1,9]").data, torch.device("cpu"), seed=0)
