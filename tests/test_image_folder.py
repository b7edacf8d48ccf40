"""data=image_folder on PNG trees the tests write: layouts, seeded splits, statistics, the loader interface."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_cfg
from dlrun.data import build_data
from dlrun.data.image_folder import StreamLoader
from dlrun.errors import DataError

CLASSES = ["cat", "dog", "emu"]


def write_tree(root, per_class=8, size=(12, 10), seed=0):
    """PNG files whose red channel encodes the class (0, 100, 200) so a test can read the label back."""
    rng = np.random.default_rng(seed)
    for k, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            img[..., 0] = 100 * k
            Image.fromarray(img).save(root / name / f"{i}.png")


def cfg_for(root, *more):
    return make_cfg("data=image_folder", f"data.root={root}", "data.image_size=8", "data.num_workers=0",
                    "data.batch_size=4", *more).data


def test_one_tree_gives_seeded_disjoint_splits(tmp_path):
    write_tree(tmp_path / "imgs")
    cfg = cfg_for(tmp_path / "imgs", "data.val_fraction=0.25", "data.test_fraction=0.25")
    data = build_data(cfg, torch.device("cpu"), seed=0)
    assert data.info.in_shape == (3, 8, 8) and data.info.class_names == CLASSES
    # 24 images: 6 test, then a quarter of the other 18 (4.5 -> 4 or 5) for validation
    sizes = data.train.num_samples, data.val.num_samples, data.test.num_samples
    assert sum(sizes) == 24 and sizes[2] == 6
    ids = [set(loader.loader.dataset.indices) for loader in (data.train, data.val, data.test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    again = build_data(cfg, torch.device("cpu"), seed=0)
    assert set(again.test.loader.dataset.indices) == ids[2]  # the same seed, the same split


def test_batches_normalised_labels_right_and_interface(tmp_path):
    write_tree(tmp_path / "imgs")
    data = build_data(cfg_for(tmp_path / "imgs", "data.stats_sample=1000"), torch.device("cpu"), seed=1)
    train = data.train
    assert isinstance(train, StreamLoader) and len(train) == -(-train.num_samples // 4) and train.batch_size == 4
    xs, ys = zip(*train.batches())
    x, y = torch.cat(xs), torch.cat(ys)
    assert x.shape == (train.num_samples, 3, 8, 8) and y.dtype == torch.int64
    # statistics from all training images (the sample covers them): normalised data has mean 0, std 1
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-2)
    red = x[:, 0] * data.std[0, 0] + data.mean[0, 0]  # back to [0, 1]
    assert torch.equal(red.mean(dim=(1, 2)).mul(255 / 100).round().long(), y)  # the red level says the class
    # the epoch's order depends on (seed, epoch) only; a resume skips whole batches
    train.set_epoch(2)
    epoch2 = [b[1] for b in train.batches()]
    resumed = [b[1] for b in train.batches(start=1)]
    assert len(resumed) == len(epoch2) - 1 and all(torch.equal(a, b) for a, b in zip(resumed, epoch2[1:]))
    assert sorted(torch.cat(epoch2).tolist()) == sorted(y.tolist())


def test_train_and_test_subfolders(tmp_path):
    write_tree(tmp_path / "ds" / "train", per_class=6)
    write_tree(tmp_path / "ds" / "test", per_class=2, seed=1)
    data = build_data(cfg_for(tmp_path / "ds", "data.augment=[crop,flip]"), torch.device("cpu"), seed=0)
    assert data.test.num_samples == 6 and data.train.num_samples + data.val.num_samples == 18
    assert data.train.augment is not None and data.test.augment is None
    x, _ = next(data.train.batches())
    assert x.shape == (4, 3, 8, 8)


def test_workers_persist_and_train_end_to_end(tmp_path):
    from dlrun.training.tasks import build_loop

    write_tree(tmp_path / "imgs", per_class=6)
    cfg = make_cfg("data=image_folder", f"data.root={tmp_path / 'imgs'}", "data.image_size=16", "data.num_workers=1",
                   "data.batch_size=8", "trainer.max_epochs=2", "trainer.progress=none", "callbacks=none")
    (tmp_path / "run").mkdir()
    loop = build_loop(cfg, tmp_path / "run")
    assert loop.data.train.loader.persistent_workers and loop.data.train.loader.num_workers == 1
    summary = loop.fit()
    assert summary["status"] == "completed" and summary["epochs"] == 2 and summary["samples_per_s"] > 0


@pytest.mark.slow
def test_errors_name_the_folder(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        build_data(cfg_for(tmp_path / "missing"), torch.device("cpu"), seed=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="sub-folder|class"):
        build_data(cfg_for(tmp_path / "empty"), torch.device("cpu"), seed=0)


@pytest.mark.slow
def test_streamed_batches_follow_the_models_layout(tmp_path):
    """trainer.channels_last (auto on a CPU) reaches streamed batches too: NHWC for a convolutional model,
    the plain layout when it is off."""
    from dlrun.training.tasks import build_loop

    write_tree(tmp_path / "imgs")
    common = ["data=image_folder", f"data.root={tmp_path / 'imgs'}", "data.image_size=16", "data.num_workers=0",
              "data.batch_size=4", "model=lenet", "callbacks=none", "trainer.progress=none"]
    for setting, nhwc in (("auto", True), ("false", False)):
        loop = build_loop(make_cfg(*common, f"trainer.channels_last={setting}"), tmp_path / setting)
        x, _ = next(loop.data.train.batches())
        assert x.shape == (4, 3, 16, 16)
        assert x.is_contiguous(memory_format=torch.channels_last) is nhwc and x.is_contiguous() is not nhwc
