"""Structured configs (types, defaults, ranges) and the validation that runs before anything trains.

Groups whose options build objects (model, loss, optimizer, callbacks) are plain YAML with
`_target_`; the groups with a fixed set of keys (data, trainer, the top level) are typed here,
so Hydra rejects unknown keys and wrong types, and each dataclass's `__post_init__` rejects
out-of-range values. Where each rule lives:
- a typed group's ranges: its dataclass below;
- an object-building group's keys: a `CONFIG_RULES` table next to the component (dlrun/models,
  dlrun/nn/losses.py, optimizers.py, regularizers.py);
- what needs the built objects (the data's task, the model's layers): dlrun/training/assembly.py;
- rules between groups: `validate` (dlrun/training/validate.py), which runs all of the above.
This module must not import torch: `dlrun --help` imports it.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, List, Optional

from omegaconf import MISSING, DictConfig, OmegaConf

from dlrun.errors import ConfigError


@dataclass
class DataConfig:
    name: str = MISSING
    root: str = "data"
    batch_size: int = 128
    eval_batch_size: int = 1024
    val_fraction: float = 0.1
    standardize: bool = True  # inputs scaled with the training split's mean/std; false: raw (the notes' 0/1 gates)
    test_fraction: float = 0.2  # datasets without a test split (scikit-learn's): held out once, seeded
    num_workers: int = 0
    # synthetic data
    shape: List[int] = field(default_factory=lambda: [1, 28, 28])
    num_classes: int = 10
    size: int = 1024
    noise: float = 0.5
    # logic-gate / tabular / subsets
    gate: str = "and"
    classes: Optional[List[int]] = None
    limit: Optional[int] = None
    outliers: float = 0.0  # tabular regression: this fraction of TRAINING targets replaced by outliers (test clean)
    features: List[str] = field(default_factory=list)  # tabular: keep only these columns, by name (e.g. [bmi])
    augment: List[str] = field(default_factory=list)  # training batches only, in this order: AUGMENTATIONS
    crop_padding: int = 4  # crop: pixels of zero padding before the random crop
    erase_p: float = 0.5  # erase: probability that an image gets a rectangle erased
    affine_degrees: float = 10.0  # affine: largest rotation
    affine_translate: float = 0.1  # affine: largest shift, a fraction of the image size
    mix_alpha: float = 1.0  # mixup/cutmix: lam ~ Beta(alpha, alpha)
    image_size: int = 64  # image_folder: images are resized to image_size x image_size
    stats_sample: int = 512  # image_folder: training images read to estimate the normalisation statistics
    source: Any = None  # a project's own data: a `_target_` node returning dlrun.data.source.Source (docs/extending.md)

    def __post_init__(self):
        require(self.batch_size >= 1, "data.batch_size", self.batch_size, "an integer >= 1")
        require(self.eval_batch_size >= 1, "data.eval_batch_size", self.eval_batch_size, "an integer >= 1")
        require(0.0 <= self.val_fraction < 1.0, "data.val_fraction", self.val_fraction, "a fraction in [0, 1)")
        require(self.size >= 1, "data.size", self.size, "an integer >= 1")
        require(0.0 <= self.outliers < 1.0, "data.outliers", self.outliers, "a fraction in [0, 1)")
        require(self.num_classes >= 1, "data.num_classes", self.num_classes, "an integer >= 1")
        require(all(a in AUGMENTATIONS for a in self.augment), "data.augment", list(self.augment),
                f"a list of {', '.join(AUGMENTATIONS)} (e.g. data.augment=[crop,flip])")
        require(self.crop_padding >= 0, "data.crop_padding", self.crop_padding, "an integer >= 0")
        require(0.0 <= self.erase_p <= 1.0, "data.erase_p", self.erase_p, "a probability in [0, 1]")
        require(self.affine_degrees >= 0 and 0 <= self.affine_translate < 1, "data.affine_degrees/affine_translate",
                [self.affine_degrees, self.affine_translate], "degrees >= 0 and a translate fraction in [0, 1)")
        require(self.mix_alpha > 0, "data.mix_alpha", self.mix_alpha, "a number > 0")
        require(self.image_size >= 1 and self.stats_sample >= 1, "data.image_size/stats_sample",
                [self.image_size, self.stats_sample], "integers >= 1")
        require(self.num_workers >= 0, "data.num_workers", self.num_workers, "an integer >= 0")
        require(len(self.shape) in (1, 3) and all(s >= 1 for s in self.shape), "data.shape", list(self.shape),
                "[features] or [channels, height, width], all >= 1")
        require(0.0 < self.test_fraction < 1.0, "data.test_fraction", self.test_fraction, "a fraction in (0, 1)")


@dataclass
class TrainerConfig:
    max_epochs: int = 10
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    precision: str = "32"  # 32 | bf16 | 16
    deterministic: bool = False
    num_threads: int = 0  # 0: leave torch's default
    progress: str = "auto"  # auto | rich | plain | none
    log_every_n_steps: int = 50
    limit_train_batches: int = 0  # 0: all; a debugging aid like Lightning's
    resume: bool = False
    channels_last: Any = "auto"  # auto | true | false; auto: on for CPU and for CUDA under AMP (dlrun/training/device.py)
    compile: bool = False
    gradient_clip_val: float = 0.0
    accumulate_grad_batches: int = 1
    devices: int = 1  # >1: DDP over N processes through torch's elastic launcher (torchrun)
    sync_batchnorm: bool = False  # DDP: batch-norm statistics over the global batch
    unfreeze_at_epoch: int = 0  # model.freeze: the frozen layers train too from this epoch (1-based) on; 0 = never

    def __post_init__(self):
        require(self.max_epochs >= 1, "trainer.max_epochs", self.max_epochs, "an integer >= 1")
        require(self.precision in PRECISIONS, "trainer.precision", self.precision, "one of 32, bf16, 16")
        require(self.progress in PROGRESS, "trainer.progress", self.progress, f"one of {', '.join(PROGRESS)}")
        require(bool(_DEVICE.match(self.device)), "trainer.device", self.device, "auto, cpu, cuda, cuda:N or mps")
        require(self.channels_last == "auto" or isinstance(self.channels_last, bool), "trainer.channels_last",
                self.channels_last, "auto, true or false")
        require(self.num_threads >= 0, "trainer.num_threads", self.num_threads, "an integer >= 0 (0 = torch's default)")
        require(self.log_every_n_steps >= 1, "trainer.log_every_n_steps", self.log_every_n_steps, "an integer >= 1")
        require(self.limit_train_batches >= 0, "trainer.limit_train_batches", self.limit_train_batches,
                "an integer >= 0")
        require(self.gradient_clip_val >= 0, "trainer.gradient_clip_val", self.gradient_clip_val,
                "a number >= 0 (0 = off)")
        require(self.devices >= 1, "trainer.devices", self.devices, "an integer >= 1 (processes for DDP)")
        require(self.accumulate_grad_batches >= 1, "trainer.accumulate_grad_batches", self.accumulate_grad_batches,
                "an integer >= 1")
        require(self.unfreeze_at_epoch >= 0, "trainer.unfreeze_at_epoch", self.unfreeze_at_epoch,
                "an integer >= 0 (0 = never)")


@dataclass
class EvalConfig:
    split: str = "test"  # task=eval scores this split: test | val | train
    topk: int = 5  # top-k accuracy (reported when 1 < topk < number of classes)
    tta: str = "none"  # none | flip: validation and test predictions averaged with the mirrored images (dlrun/training/tta.py)

    def __post_init__(self):
        require(self.split in SPLITS, "eval.split", self.split, f"one of {', '.join(SPLITS)}")
        require(self.topk >= 1, "eval.topk", self.topk, "an integer >= 1")


@dataclass
class PredictConfig:
    inputs: Optional[str] = None  # task=predict: an image file, a folder, a glob, or a .npy array
    topk: int = 3  # classes shown (and written) per input

    def __post_init__(self):
        require(self.topk >= 1, "predict.topk", self.topk, "an integer >= 1")


@dataclass
class LrFindConfig:  # task=lr_find (dlrun/training/lr_find.py): the learning-rate range test
    min_lr: float = 1e-7
    max_lr: float = 10.0
    num_steps: int = 200  # one optimizer step per batch, the lr growing exponentially from min_lr to max_lr
    smoothing: float = 0.05  # weight of the newest loss in the moving average
    diverge: float = 4.0  # stop when the smoothed loss exceeds this many times its lowest value

    def __post_init__(self):
        require(0 < self.min_lr < self.max_lr, "lr_find.min_lr", self.min_lr,
                f"a positive lr below lr_find.max_lr={self.max_lr}")
        require(self.num_steps >= 10, "lr_find.num_steps", self.num_steps, "at least 10")


@dataclass
class DlrunConfig:
    task: str = "train"  # train | summary | eval | predict | landscape | lr_find
    seed: int = 42
    ckpt_path: Optional[str] = None
    monitor: str = "val/acc"
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    model: Any = MISSING
    loss: Any = MISSING
    optimizer: Any = MISSING
    callbacks: Any = field(default_factory=dict)
    initializer: Any = None  # conf/initializer: a torch.nn.init function (`_partial_`), null = PyTorch's
    regularizer: Any = field(default_factory=dict)  # conf/regularizer: one key per regularizer (l1, l2, dropout, ...)
    scheduler: Any = None  # conf/scheduler: an lr scheduler (`_partial_`), null = constant lr
    eval: EvalConfig = field(default_factory=EvalConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    landscape: Any = None  # task=landscape: a dlrun/conf/landscape/*.yaml (its rules: landscape/task.py)
    lr_find: LrFindConfig = field(default_factory=LrFindConfig)

    def __post_init__(self):
        require(self.task in TASKS, "task", self.task, f"one of {', '.join(TASKS)}")
        require(re.match(r"^(train|val|test)/", self.monitor) is not None, "monitor", self.monitor,
                "a metric name such as val/acc or val/loss")
        if self.task in ("eval", "predict"):
            require(self.ckpt_path is not None, "ckpt_path", None, f"task={self.task} needs ckpt_path=PATH")


# task name -> "module:function" (dlrun/training/tasks.py runs it); imported only when chosen
TASKS = {
    "train": "dlrun.training.tasks:train",
    "summary": "dlrun.training.model_summary:run",
    "eval": "dlrun.training.evaluate:run_eval",
    "predict": "dlrun.training.evaluate:run_predict",
    "landscape": "dlrun.landscape:run",
    "lr_find": "dlrun.training.lr_find:run",
}
PRECISIONS = ("32", "bf16", "16")
SPLITS = ("test", "val", "train")
PROGRESS = ("auto", "rich", "plain", "none")
AUGMENTATIONS = ("crop", "flip", "erase", "affine", "mixup", "cutmix")  # dlrun/data/augment.py
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")

# One token per process: two runs started in the same second still get different folders.
_STAMP: str | None = None


def run_stamp() -> str:
    """`<date>_<time>-<microseconds>-<random>`, fixed for the process (Hydra resolves the folder more than once).

    Two runs started in the same second still differ; the ranks of one DDP run share rank 0's stamp
    through DLRUN_RUN_STAMP (see dlrun/training/distributed.py).
    """
    global _STAMP
    if _STAMP is None:
        now = time.time()
        _STAMP = os.environ.get("DLRUN_RUN_STAMP") or (
            time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(now)) + f"-{int(now * 1e6) % 1_000_000:06d}-{secrets.token_hex(2)}"
        )
    return _STAMP


def _short_tag(overrides: str) -> str:
    """A folder-safe, bounded rendering of the command-line overrides."""
    tag = re.sub(r"[^A-Za-z0-9.+-]+", "_", overrides)[:60]  # no = or , : the path stays a valid override value
    return f"_{tag}" if tag else ""


def register_configs() -> None:
    """Register the schema and the resolvers used by conf/config.yaml (idempotent)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="dlrun_schema", node=DlrunConfig)
    if not OmegaConf.has_resolver("dlrun_stamp"):
        OmegaConf.register_new_resolver("dlrun_stamp", run_stamp)
        OmegaConf.register_new_resolver("dlrun_tag", _short_tag)
        from dlrun.config.job import job_tag

        OmegaConf.register_new_resolver("dlrun_job_tag", job_tag)  # a sweep job's folder: what differs


def require(ok: bool, key: str, value, allowed: str) -> None:
    """The one form of a rule: a ConfigError naming key, value and what is allowed, unless `ok`."""
    if not ok:
        raise ConfigError(key, value, allowed)


def is_number(v) -> bool:
    """For the CONFIG_RULES tables: a config value that is a number (true/false are not)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_FROM_ENV = re.compile(r"\$\{(oc\.env|env):")


def typed_overrides(hydra_node) -> list[str]:
    """The command line's overrides as typed (`hydra.overrides.task`). Read item by item from Hydra's
    ListConfig they would be resolved: `x=${oc.env:SECRET}` would become the secret itself."""
    return OmegaConf.to_container(hydra_node.overrides.task, resolve=False)


def plain_config(cfg: DictConfig) -> dict:
    """The resolved config as plain containers, for checkpoints and TensorBoard, with every value that
    comes from an environment variable (`${oc.env:...}`: tokens, passwords) replaced by a placeholder."""
    raw = OmegaConf.to_container(cfg, resolve=False)

    def redacted(node):
        if isinstance(node, dict):
            return {k: redacted(v) for k, v in node.items()}
        if isinstance(node, list):
            return [redacted(v) for v in node]
        return "<from environment>" if isinstance(node, str) and _FROM_ENV.search(node) else node

    safe = OmegaConf.create(redacted(raw))
    return OmegaConf.to_container(safe, resolve=True)


def build(node, key: str, **kwargs):
    """hydra.utils.instantiate, with a user-facing error naming the config key instead of a traceback."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from dlrun.errors import DlrunError

    try:
        return instantiate(node, **kwargs, _convert_="all")
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, DlrunError):
            raise cause from None
        from dlrun.config.contracts import signature_error

        if (mismatch := signature_error(key, node, cause)) is not None:  # names the class, its file, its arguments
            raise mismatch from None
        detail = str(cause or e).strip().splitlines()[0][:300]
        raise ConfigError(key, node.get("_target_"), f"could not be built: {detail}") from None
