"""Batched augmentation: each transform keeps shapes and labels, is deterministic under a seed, is off at
validation/test, resumes exactly; mixup/cutmix targets match the mixed images."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from conftest import TINY, make_cfg
from dlrun.data import build_data
from dlrun.data.augment import Augment, affine, batch_seed, crop, erase, flip
from dlrun.errors import ConfigError
from dlrun.training.metrics import EpochMetrics

PLAIN = ["crop", "flip", "erase", "affine"]  # transforms that keep integer labels


def images(n=16, c=3, h=8, w=8, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed)) + 0.5  # strictly positive


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", [*PLAIN, "mixup", "cutmix"])
def test_shape_labels_and_seed(name):
    x, y = images(), torch.arange(16) % 5
    aug = Augment([name], num_classes=5)
    x1, y1 = aug(x, y, seed=7)
    x2, y2 = aug(x, y, seed=7)
    x3, _ = aug(x, y, seed=8)
    assert x1.shape == x.shape and x1.dtype == x.dtype
    assert torch.equal(x1, x2) and torch.equal(y1, y2)  # same seed, same batch
    assert not torch.equal(x1, x3)  # another seed draws differently
    assert not torch.equal(x1, x)  # it did something
    if name in PLAIN:
        assert torch.equal(y1, y)  # labels untouched
    else:
        assert y1.shape == (16, 5) and torch.allclose(y1.sum(1), torch.ones(16))


def test_crop_is_a_window_of_the_padded_image():
    x = images(n=6)
    out = crop(x, gen(1), padding=2)
    padded = F.pad(x, (2, 2, 2, 2))
    for i in range(len(x)):
        windows = [padded[i, :, dy : dy + 8, dx : dx + 8] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)
    assert torch.equal(crop(x, gen(1), padding=0), x)  # no padding: nothing to shift


def test_flip_mirrors_about_half():
    x = images(n=200, h=4, w=4)
    out = flip(x, gen(2))
    mirrored = torch.tensor([torch.equal(o, m) for o, m in zip(out, x.flip(3))])
    same = torch.tensor([torch.equal(o, s) for o, s in zip(out, x)])
    assert bool((mirrored | same).all())
    assert 60 < int(mirrored.sum()) < 140  # p = 1/2


def test_erase_sets_one_rectangle_to_zero():
    x = images(n=32, h=16, w=16)
    out = erase(x, gen(3), p=1.0)
    for o, orig in zip(out, x):
        zero = o[0] == 0
        assert zero.any() and torch.equal(zero, (o == 0).all(0))  # the same pixels in every channel
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        # a solid rectangle: its bounding box is all zeros, everything else untouched
        box = torch.zeros_like(zero)
        box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
        assert torch.equal(zero, box) and torch.equal(o[:, ~box], orig[:, ~box])
        assert 0.02 * 256 * 0.5 <= box.sum() <= 0.33 * 256 * 1.5  # torchvision's area range (rounded)
    assert torch.equal(erase(x, gen(3), p=0.0), x)


def test_affine_identity_and_translation():
    x = images(n=4, h=8, w=8)
    assert torch.allclose(affine(x, gen(4), degrees=0, translate=0, scale=(1, 1)), x, atol=1e-5)
    out = affine(x, gen(4), degrees=0, translate=0.25, scale=(1, 1))
    assert out.shape == x.shape and not torch.allclose(out, x)
    assert (out == 0).any()  # shifted in from outside the image: zero padding


@pytest.mark.parametrize("name", ["mixup", "cutmix"])
def test_mixed_targets_match_mixed_images(name):
    # each image is filled with its class index: after mixing, the pixel mean must be the target's mean class
    n, classes = 32, 4
    y = torch.arange(n) % classes
    x = y.float()[:, None, None, None].expand(n, 1, 8, 8).contiguous()
    out, t = Augment([name], classes, mix_alpha=0.4)(x, y, seed=5)
    expected = (t * torch.arange(classes).float()).sum(1)
    assert torch.allclose(out.mean(dim=(1, 2, 3)), expected, atol=1e-5)
    assert (t >= 0).all() and torch.allclose(t.sum(1), torch.ones(n))


def test_batch_seeds_depend_on_seed_epoch_and_index():
    seeds = {batch_seed(s, e, i) for s in (0, 1) for e in (0, 1) for i in (0, 1)}
    assert len(seeds) == 8 and all(0 <= s < 2**63 for s in seeds)  # distinct, and valid torch seeds
    # pinned: a checkpoint resumed by another process (or dlrun version) must draw the same augmentations
    assert batch_seed(3, 2, 1) == 4404663168949438663


def test_training_batches_only_and_exact_resume():
    cfg = make_cfg(*TINY, "data.augment=[crop,flip,erase]")
    aug = build_data(cfg.data, torch.device("cpu"), seed=0)
    plain = build_data(make_cfg(*TINY).data, torch.device("cpu"), seed=0)
    assert aug.train.augment is not None and aug.val.augment is None and aug.test.augment is None
    for a, p in ((aug.val, plain.val), (aug.test, plain.test)):  # identity at validation and test
        assert all(torch.equal(xa, xp) for (xa, _), (xp, _) in zip(a, p))
    aug.train.set_epoch(3)
    plain.train.set_epoch(3)
    full = list(aug.train.batches())
    assert not torch.equal(full[0][0], next(plain.train.batches())[0])
    assert all(torch.equal(ya, yp) for (_, ya), (_, yp) in zip(full, plain.train.batches()))
    tail = list(aug.train.batches(start=2))  # a resume mid-epoch draws what the full epoch drew
    assert len(tail) == len(full) - 2 and all(torch.equal(a[0], b[0]) for a, b in zip(tail, full[2:]))
    aug.train.set_epoch(4)
    assert not torch.equal(next(aug.train.batches())[0], full[0][0])  # a new epoch, new draws


def test_soft_targets_count_their_argmax_as_the_class():
    m = EpochMetrics(torch.device("cpu"))
    out = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    soft = torch.tensor([[0.7, 0.3, 0.0], [0.6, 0.0, 0.4]])
    m.update(F.cross_entropy(out, soft), out, soft)
    assert m.compute("train")["train/acc"] == 0.5


def test_unknown_augmentation_and_tabular_data_are_config_errors():
    from dlrun.training.validate import validate
    from dlrun.data.augment import build_augment

    with pytest.raises(ConfigError, match=r"data.augment.*crop, flip, erase, affine, mixup, cutmix"):
        validate(make_cfg(*TINY, "data.augment=[crop,rotate90]"))
    with pytest.raises(ConfigError, match="C x H x W"):
        build_augment(make_cfg("data=iris", "data.augment=[flip]").data, (4,), 3)


@pytest.mark.slow
def test_mixup_trains_end_to_end_and_needs_a_softmax_cross_entropy(tmp_path):
    from dlrun.training.tasks import build_loop

    (tmp_path / "ok").mkdir()
    summary = build_loop(make_cfg(*TINY, "data.augment=[flip,mixup]", "callbacks=none"), tmp_path / "ok").fit()
    rows = [json.loads(line) for line in (tmp_path / "ok" / "metrics.jsonl").read_text().splitlines()]
    assert summary["status"] == "completed" and 0 <= summary["test"]["test/acc"] <= 1
    assert len(rows) == 2 and all(0 <= row["train/acc"] <= 1 and row["samples_per_s"] > 0 for row in rows)
    with pytest.raises(ConfigError, match="loss=cross_entropy"):
        build_loop(make_cfg(*TINY, "data.augment=[cutmix]", "loss=hinge"), tmp_path / "bad")
