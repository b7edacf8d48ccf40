"""Batched data augmentation on the training device: one set of tensor ops per batch, no per-sample Python.

`data.augment=[crop,flip]` lists the transforms, applied in the order given to every training batch
(never to validation or test batches: the loaders of those splits have no augmentation). Each batch's
randomness comes from a generator seeded by (seed, epoch, batch index), so a resumed run, which skips
the batches already done, draws exactly what the uninterrupted run drew.

crop    pad by data.crop_padding pixels (zeros, i.e. the mean after normalisation), crop back at a random offset
flip    mirror left-right with probability 1/2
erase   random erasing (cutout): with probability data.erase_p, a random rectangle of 2-33 % of the area set to 0
affine  small random rotation (+-data.affine_degrees), translation (+-data.affine_translate of the size), scale
mixup   x = lam x_i + (1-lam) x_j, lam ~ Beta(data.mix_alpha, data.mix_alpha): soft targets
cutmix  a box of x_j pasted into x_i, lam = the kept area: soft targets

mixup and cutmix turn integer labels into class-probability targets (N x classes); softmax
cross-entropy takes them as they are (torch's cross_entropy accepts probabilities), and accuracy
counts the argmax of the target.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from dlrun.errors import ConfigError

SOFT = ("mixup", "cutmix")  # the transforms that mix labels


def batch_seed(seed: int, epoch: int, index: int) -> int:
    """One 63-bit seed per (run seed, epoch, batch): independent of how many batches were skipped."""
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, epoch, index]).generate_state(2, np.uint64)[0] >> 1)


def crop(x, g, padding: int):
    n, _, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (n, 1), generator=g, device=x.device)
    dx = torch.randint(0, 2 * padding + 1, (n, 1), generator=g, device=x.device)
    rows = (dy + torch.arange(h, device=x.device))[:, :, None]  # n x h x 1
    cols = (dx + torch.arange(w, device=x.device))[:, None, :]  # n x 1 x w
    batch = torch.arange(n, device=x.device)[:, None, None]
    # advanced indices around a slice: the result is n x h x w x c
    return padded[batch, :, rows, cols].permute(0, 3, 1, 2).contiguous(memory_format=_format(x))


def flip(x, g):
    mirror = torch.rand(x.shape[0], generator=g, device=x.device) < 0.5
    return torch.where(mirror[:, None, None, None], x.flip(3), x)


def erase(x, g, p: float, scale=(0.02, 0.33), log_ratio=(math.log(0.3), math.log(3.3))):
    """torchvision's RandomErasing (value 0) drawn for the whole batch at once."""
    n, _, h, w = x.shape
    u = torch.rand(n, 5, generator=g, device=x.device)
    area = h * w * (scale[0] + (scale[1] - scale[0]) * u[:, 0])
    ratio = torch.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * u[:, 1])
    eh = torch.sqrt(area * ratio).round().clamp(1, h)
    ew = torch.sqrt(area / ratio).round().clamp(1, w)
    top = ((h - eh + 1) * u[:, 2]).floor()
    left = ((w - ew + 1) * u[:, 3]).floor()
    rows = torch.arange(h, device=x.device)[None, :]
    cols = torch.arange(w, device=x.device)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < (top + eh)[:, None])  # n x h
    in_cols = (cols >= left[:, None]) & (cols < (left + ew)[:, None])  # n x w
    mask = in_rows[:, :, None] & in_cols[:, None, :] & (u[:, 4] < p)[:, None, None]
    return x.masked_fill(mask[:, None], 0.0)


def affine(x, g, degrees: float, translate: float, scale=(0.9, 1.1)):
    n = x.shape[0]
    u = torch.rand(n, 4, generator=g, device=x.device) * 2 - 1  # uniform in [-1, 1]
    angle = u[:, 0] * math.radians(degrees)
    s = 1 + u[:, 1] * (scale[1] - scale[0]) / 2
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    # affine_grid maps output to input coordinates in [-1, 1]: a shift of t*size is 2t there
    theta = torch.stack([torch.stack([cos, -sin, 2 * translate * u[:, 2]], 1),
                         torch.stack([sin, cos, 2 * translate * u[:, 3]], 1)], 1).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _one_hot(y, num_classes):
    return y if y.is_floating_point() else F.one_hot(y, num_classes).float()


def mixup(x, y, g, lam: float, num_classes: int):
    perm = torch.randperm(x.shape[0], generator=g, device=x.device)
    t = _one_hot(y, num_classes)
    return x.lerp(x[perm], 1 - lam), t.lerp(t[perm], 1 - lam)


def cutmix(x, y, g, lam: float, box: tuple, num_classes: int):
    """`box` = (centre row, centre column) as fractions; the box covers 1-lam of the area (clipped at edges)."""
    n, _, h, w = x.shape
    perm = torch.randperm(n, generator=g, device=x.device)
    cut = math.sqrt(1 - lam)
    cy, cx = int(box[0] * h), int(box[1] * w)
    y0, y1 = max(cy - int(h * cut / 2), 0), min(cy + int(h * cut / 2), h)
    x0, x1 = max(cx - int(w * cut / 2), 0), min(cx + int(w * cut / 2), w)
    x = x.clone()
    x[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
    kept = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    t = _one_hot(y, num_classes)
    return x, t.lerp(t[perm], 1 - kept)


def _format(x):
    return torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else torch.contiguous_format


class Augment:
    """The configured transforms as one callable: (x, y, seed) -> (x, y) on a batch of images N x C x H x W."""

    def __init__(self, names, num_classes: int, *, crop_padding: int = 4, erase_p: float = 0.5,
                 affine_degrees: float = 10.0, affine_translate: float = 0.1, mix_alpha: float = 1.0):
        self.names = list(names)
        self.num_classes = num_classes
        self.crop_padding, self.erase_p = crop_padding, erase_p
        self.affine_degrees, self.affine_translate, self.mix_alpha = affine_degrees, affine_translate, mix_alpha
        self.soft_targets = any(n in SOFT for n in self.names)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, seed: int):
        g = torch.Generator(device=x.device).manual_seed(seed)
        rng = np.random.default_rng(seed) if self.soft_targets else None  # Beta draws: torch has no seeded Beta
        for name in self.names:
            if name == "crop":
                x = crop(x, g, self.crop_padding)
            elif name == "flip":
                x = flip(x, g)
            elif name == "erase":
                x = erase(x, g, self.erase_p)
            elif name == "affine":
                x = affine(x, g, self.affine_degrees, self.affine_translate)
            elif name == "mixup":
                x, y = mixup(x, y, g, float(rng.beta(self.mix_alpha, self.mix_alpha)), self.num_classes)
            elif name == "cutmix":
                x, y = cutmix(x, y, g, float(rng.beta(self.mix_alpha, self.mix_alpha)), tuple(rng.random(2)),
                              self.num_classes)
        return x, y

    def __repr__(self) -> str:
        return f"Augment({', '.join(self.names)})"


def build_augment(cfg, in_shape, num_classes: int, task: str = "classification") -> Augment | None:
    """The training batches' augmentation from the data config, or None when data.augment is empty."""
    names = list(cfg.augment or [])
    if not names:
        return None
    if len(in_shape) != 3:
        raise ConfigError("data.augment", names, f"image transforms need C x H x W images; data {cfg.name} has "
                          f"shape {list(in_shape)}: use data.augment=[]")
    if task != "classification" and any(n in SOFT for n in names):
        raise ConfigError("data.augment", names, "mixup and cutmix mix class labels; this data is regression")
    return Augment(names, num_classes, crop_padding=cfg.crop_padding, erase_p=cfg.erase_p,
                   affine_degrees=cfg.affine_degrees, affine_translate=cfg.affine_translate, mix_alpha=cfg.mix_alpha)
