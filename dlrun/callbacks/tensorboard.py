"""TensorBoard (the lecture notes' third callback): what the notes draw, for the run being trained.

Written into the run folder itself (so that `tensorboard --logdir` of a sweep names each run by its folder,
i.e. by what differs, and `--logdir outputs` by its path), x axis = epoch:
- SCALARS   every numeric metric of each epoch (train/…, val/…, lr, samples_per_s, time_s), and at the
            end test/… and best/<monitor>;
- HPARAMS   the group choices (model=lenet, optimizer=gd, ...), the keys a user tunes and every key
            overridden on the command line, with the run's real final metrics (test/…, best/…) as the
            only metrics (each run's experiment record: its columns, the swept keys first); the trial
            id says what tells the run apart (`3 adagrad · <sweep>/3_optimizer-adagrad`); written only
            by a run that reached its test (never a placeholder);
- HISTOGRAMS weights/<layer>.<param> and grads/<layer>.<param> (the last optimizer step of the epoch), every
            `histograms_every_n_epochs` epochs (and the first);
- IMAGES    every `images_every_n_epochs` epochs (and the first): inputs/train (the first batch as
            the model receives it: normalised, augmented), filters/<first conv> (its kernels),
            feature_maps/<conv> (one fixed test image after the last convolution of each stage, i.e. of
            each resolution: the notes' feature maps);
            at the end confusion_matrix/test;
- GRAPHS    the model graph when `log_graph=true`.
A layer is named by the model's own module name (`stem.conv`), or by its kind and rank (`conv2`, `fc1`)
where the model only numbers it inside a Sequential (`features.3`).
Everything heavy happens at an epoch's end (or once at the end), never per batch; nothing here draws
from the global random generators, so an exact resume stays exact.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import warnings

import torch
from dlrun.config.schema import plain_config

from dlrun.callbacks.base import Callback
from dlrun.run_folder.checkpoint import unwrap
from dlrun.models.common import eval_mode
from dlrun.errors import ConfigError
from dlrun.run_folder.run_record import FINISHED, PRUNED

log = logging.getLogger("dlrun")
_NOT_SCALARS = ("epoch", "step")
KEY = "callbacks.tensorboard"


GROUPS = ("experiment", "model", "optimizer", "loss", "data", "scheduler", "initializer", "regularizer")
TUNED = ("optimizer.lr", "optimizer.weight_decay", "optimizer.momentum", "data.batch_size", "trainer.max_epochs",
         "model.dropout", "model.hidden", "model.depth", "model.width_mult", "seed")


def _hparam_value(value):
    """TensorBoard holds numbers, strings and booleans; lists and dicts become their compact text."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if value is None:
        return "none"
    return json.dumps(value, separators=(",", ":"))


def run_hparams(cfg, choices: dict, overrides: list[str]) -> dict:
    """What HPARAMS shows for a run: each group's choice (`optimizer: gd`), the keys a user tunes, and every
    key overridden on the command line (its final value), not the whole flattened config."""
    from omegaconf import OmegaConf

    plain = OmegaConf.create(plain_config(cfg))
    hp = {g: _hparam_value(choices[g]) for g in GROUPS if g in choices and (g != "experiment" or choices[g])}
    overridden = [o.lstrip("+~").split("=")[0] for o in overrides]
    for key in [*TUNED, *overridden]:
        if key in hp or key in GROUPS or key.startswith("hydra") or "/" in key:
            continue
        value = OmegaConf.select(plain, key, default=None)
        if value is not None or key in overridden:
            hp[key] = _hparam_value(OmegaConf.to_container(value) if OmegaConf.is_config(value) else value)
    return hp


def hydra_context(run_dir) -> tuple[dict, list[str], bool]:
    """(group choices, command-line overrides, whether it is a sweep's job) of the run: from Hydra when it runs
    this process, else from the run folder's .hydra/hydra.yaml; empty without either (a loop built in Python)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        from dlrun.config.schema import typed_overrides
        from dlrun.config.job import in_multirun

        hc = HydraConfig.get()
        return dict(hc.runtime.choices), typed_overrides(hc), in_multirun()
    path = run_dir / ".hydra" / "hydra.yaml"
    if path.is_file():
        import yaml

        hc = (yaml.safe_load(path.read_text()) or {}).get("hydra", {})
        return (dict(hc.get("runtime", {}).get("choices") or {}), list(hc.get("overrides", {}).get("task") or []),
                hc.get("mode") == "MULTIRUN")
    return {}, [], False


def distinguishing_overrides(overrides: list[str], job: bool) -> list[str]:
    """What tells the run from others: a sweep job's swept overrides (not those all its jobs share), else all."""
    from dlrun.config.job import swept_overrides

    return [o for o in (swept_overrides(overrides) if job else overrides) if not o.startswith("hydra")]


def run_label(run_dir, overrides: list[str], job: bool) -> str:
    """The run's trial id in HPARAMS: what tells it apart first, values before keys (TensorBoard's column
    shows about 16 characters: `3 adagrad lr=0.01`), then its folder, which keeps it unique (runs of one
    label would be merged into one row)."""
    parts = []
    for override in distinguishing_overrides(overrides, job):
        key, _, value = override.lstrip("+~").partition("=")
        parts.append(value if key in GROUPS else f"{key.rsplit('.', 1)[-1]}={value}")
    folder = f"{run_dir.parent.name}/{run_dir.name}" if job else run_dir.name
    if job:
        parts.insert(0, run_dir.name.split("_", 1)[0])  # the job's number, as its folder starts
    return f"{' '.join(parts)} · {folder}" if parts else folder


def _summary(tag: str, data):
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import metadata

    return Summary(value=[Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(data))])


def hparams_summaries(hparams: dict, group_name: str = "") -> list:
    """TensorBoard's session start and end records for `hparams`, booleans kept as booleans (torch's
    `hparams()` writes them as numbers); `group_name` is the trial id HPARAMS shows."""
    import time

    from tensorboard.plugins.hparams import api_pb2, metadata
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData, SessionEndInfo, SessionStartInfo

    start = SessionStartInfo(start_time_secs=time.time(), group_name=group_name)
    for key, value in hparams.items():
        if isinstance(value, bool):
            start.hparams[key].bool_value = value
        elif isinstance(value, (int, float)):
            start.hparams[key].number_value = value
        else:
            start.hparams[key].string_value = str(value)
    end = SessionEndInfo(status=api_pb2.STATUS_SUCCESS, end_time_secs=time.time())
    return [_summary(metadata.SESSION_START_INFO_TAG, HParamsPluginData(session_start_info=start)),
            _summary(metadata.SESSION_END_INFO_TAG, HParamsPluginData(session_end_info=end))]


def experiment_summary(hparams: dict, metrics: list[str], distinguishing: set[str]):
    """The HPARAMS columns: the run's hparams, those in `distinguishing` and their groups' keys first
    (TensorBoard checks the first ones), and as metrics only `metrics` (best/…, test/…), not every scalar of
    every epoch."""
    from tensorboard.plugins.hparams import api_pb2, metadata
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    def kind(value):
        return (api_pb2.DATA_TYPE_BOOL if isinstance(value, bool) else
                api_pb2.DATA_TYPE_FLOAT64 if isinstance(value, (int, float)) else api_pb2.DATA_TYPE_STRING)

    experiment = api_pb2.Experiment(
        hparam_infos=[api_pb2.HParamInfo(name=k, type=kind(v), differs=k in distinguishing or k.split(".")[0] in distinguishing)
                      for k, v in hparams.items()],  # a swept group's keys (optimizer.lr) differ with it
        metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=m)) for m in metrics])
    return _summary(metadata.EXPERIMENT_TAG, HParamsPluginData(experiment=experiment))


_KINDS = {"Conv1d": "conv", "Conv2d": "conv", "Linear": "fc", "BatchNorm1d": "bn", "BatchNorm2d": "bn",
          "LayerNorm": "ln", "PReLU": "prelu", "Embedding": "emb"}


def layer_names(model: torch.nn.Module) -> dict[str, str]:
    """Module path -> the name its TensorBoard tags use: the path where the model names the module
    (`stem.conv`, `stages.0.0.conv1`), `conv2`/`fc1` (kind and rank in the model) where it is only a
    Sequential's index (`features.3`, `1`)."""
    names, counts = {}, {}
    for path, module in model.named_modules():
        if not path or next(module.parameters(recurse=False), None) is None:
            continue
        kind = _KINDS.get(type(module).__name__, type(module).__name__.lower())
        counts[kind] = counts.get(kind, 0) + 1
        if path.rsplit(".", 1)[-1].isdigit():
            names[path] = f"{kind}{counts[kind]}"
    taken = {p for p in dict(model.named_modules()) if p}
    return {p: (n if n not in taken else p) for p, n in names.items()}


def param_tag(name: str, layers: dict[str, str]) -> str:
    """`features.3.weight` -> `conv2.weight` (see layer_names)."""
    path, _, attr = name.rpartition(".")
    return f"{layers.get(path, path)}.{attr}" if path else name


def _grid(images: torch.Tensor, nrow: int | None = None, min_side: int = 32, scale_each: bool = True) -> torch.Tensor:
    """[N, C, H, W] -> one [3, H', W'] image; small maps are enlarged (nearest) so that TensorBoard shows them."""
    from torchvision.utils import make_grid

    images = images.detach().float().cpu()
    if images.shape[1] not in (1, 3):
        images = images[:, :1]
    factor = max(1, math.ceil(min_side / max(images.shape[-2:])))
    if factor > 1:
        images = torch.nn.functional.interpolate(images, scale_factor=factor, mode="nearest")
    nrow = nrow or math.ceil(math.sqrt(len(images)))
    return make_grid(images, nrow=nrow, padding=2, normalize=True, scale_each=scale_each, pad_value=1.0)


def _conv_layers(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d))]


def _stage_outputs(maps: dict) -> list[tuple[str, torch.Tensor]]:
    """The last convolution output of each stage, a stage being a run of convolutions at one resolution
    (LeNet: both convolutions; VGG: each block's last; ResNet: the stem's or each stage's last)."""
    items = list(maps.items())
    return [(n, out) for i, (n, out) in enumerate(items)
            if i + 1 == len(items) or items[i + 1][1].shape[-2:] != out.shape[-2:]]


def _evenly(items: list, k: int) -> list:
    if len(items) <= k:
        return items
    return [items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)] if k > 1 else items[:1]


class TensorBoardLogger(Callback):
    def __init__(self, dirname: str = ".", histograms_every_n_epochs: int = 1, images_every_n_epochs: int = 1,
                 log_graph: bool = False, max_images: int = 64, max_feature_layers: int = 8, max_channels: int = 32):
        for key, value in (("histograms_every_n_epochs", histograms_every_n_epochs),
                           ("images_every_n_epochs", images_every_n_epochs)):
            if value < 0:
                raise ConfigError(f"{KEY}.{key}", value, "an integer >= 0 (0 = never)")
        self.dirname = dirname
        self.histograms_every, self.images_every = histograms_every_n_epochs, images_every_n_epochs
        self.log_graph, self.max_images = log_graph, max_images
        self.max_feature_layers, self.max_channels = max_feature_layers, max_channels
        self.writer = None
        self._hist_epoch, self._hist_batch = None, None  # see _gradient_histogram_batch
        self._hook = None
        self._inputs = None
        self._layers = {}  # module path -> tag name (layer_names)

    @staticmethod
    def _due(every: int, epoch: int) -> bool:
        return every > 0 and (epoch == 1 or epoch % every == 0)

    def _is_image_data(self, loop) -> bool:
        return len(loop.data.info.in_shape) == 3

    # -- hooks ---------------------------------------------------------------------------------------
    def on_fit_start(self, loop) -> None:
        from torch.utils.tensorboard import SummaryWriter

        log_dir = loop.run_dir / self.dirname
        fresh = not any(log_dir.glob("events.out.tfevents.*"))
        # purge_step drops events a resumed run is about to write again, so the curve stays one line
        self.writer = SummaryWriter(str(log_dir), purge_step=loop.epoch + 1 if loop.resumed_from else None)
        self._layers = layer_names(unwrap(loop.model))
        if loop.resumed_from and fresh:  # continued in a new folder: draw the epochs it starts from
            for row in loop.history:
                self._add_scalars(row, row["epoch"])
        if self.log_graph and not loop.resumed_from:
            self._add_graph(loop)

    def on_epoch_start(self, loop) -> None:
        if self._due(self.images_every, loop.epoch + 1) and self._is_image_data(loop):
            def grab(module, args):  # the first training batch, exactly as the model receives it
                self._inputs = args[0][: self.max_images].detach().cpu()
                self._hook.remove()

            self._hook = unwrap(loop.model).register_forward_pre_hook(grab)

    def _gradient_histogram_batch(self, loop) -> int | None:
        """The batch of the epoch's last optimizer step if gradient histograms are due in this epoch, else
        None; worked out once per epoch, because this runs before every step."""
        if self._hist_epoch != loop.epoch:
            self._hist_epoch = loop.epoch
            self._hist_batch = loop.batches_per_epoch - 1 if self._due(self.histograms_every, loop.epoch + 1) else None
        return self._hist_batch

    def on_before_optimizer_step(self, loop) -> None:
        if loop.batch_in_epoch != self._gradient_histogram_batch(loop):
            return
        epoch, scale = loop.epoch + 1, loop.gradient_scale
        for name, p in unwrap(loop.model).named_parameters():
            if p.grad is not None:
                self.writer.add_histogram(f"grads/{param_tag(name, self._layers)}", p.grad.detach().float().cpu() / scale, epoch)

    def on_epoch_end(self, loop, metrics: dict) -> None:
        epoch = loop.epoch
        self._add_scalars(metrics, epoch)
        model = unwrap(loop.model)
        if self._due(self.histograms_every, epoch):
            for name, p in model.named_parameters():
                self.writer.add_histogram(f"weights/{param_tag(name, self._layers)}", p.detach().float().cpu(), epoch)
        if self._due(self.images_every, epoch) and self._is_image_data(loop):
            self._add_images(loop, model, epoch)
        self.writer.flush()

    def _add_scalars(self, metrics: dict, epoch: int) -> None:
        for key, value in metrics.items():
            if key not in _NOT_SCALARS and isinstance(value, numbers.Number):
                self.writer.add_scalar(key, value, epoch)

    def on_fit_end(self, loop, summary: dict) -> None:
        if self.writer is None:
            return
        if self._hook is not None:
            self._hook.remove()
        tested = summary["status"] in FINISHED and summary.get("test")
        if tested or (summary["status"] == PRUNED and summary.get("best")):  # a pruned trial: its best, no test
            results = dict(summary["test"])
            if summary.get("best"):
                results.update({f"best/{k}": v for k, v in summary["best"].items() if k != "epoch"})
            for key, value in results.items():
                self.writer.add_scalar(key, value, loop.epoch)
            if tested and loop.data.info.task == "classification":
                self._add_confusion_matrix(loop)
            self._add_hparams(loop, list(results))
        self.writer.close()

    # -- pictures --------------------------------------------------------------------------------------
    def _add_images(self, loop, model, epoch: int) -> None:
        if self._inputs is not None:
            self.writer.add_image("inputs/train", _grid(self._inputs, scale_each=False), epoch)
            self._inputs = None
        convs = [(n, m) for n, m in _conv_layers(model) if isinstance(m, torch.nn.Conv2d)]
        if not convs:
            return
        name, first = convs[0]
        w = first.weight[: self.max_channels]
        # RGB kernels as colour tiles; otherwise one tile per (output, input) channel pair, a row per output
        tiles = w if w.shape[1] == 3 else w.reshape(-1, 1, *w.shape[-2:])
        nrow = None if w.shape[1] in (1, 3) else w.shape[1]
        self.writer.add_image(f"filters/{self._layers.get(name, name)}", _grid(tiles, nrow=nrow, min_side=40), epoch)

        x = loop.data.test.x[:1]
        maps, handles = {}, []  # filled in execution order
        for n, m in convs:
            handles.append(m.register_forward_hook(lambda mod, args, out, n=n: maps.__setitem__(n, out)))
        try:
            with eval_mode(model):
                model(x)
        finally:
            for h in handles:
                h.remove()
        self.writer.add_image("feature_maps/input", _grid(x), epoch)
        for n, out in _evenly(_stage_outputs(maps), self.max_feature_layers):
            fm = out[0, : self.max_channels].unsqueeze(1)  # one tile per channel
            self.writer.add_image(f"feature_maps/{self._layers.get(n, n)}", _grid(fm), epoch)

    def _add_confusion_matrix(self, loop) -> None:
        """From the counts the loop kept while it evaluated the test split (no second pass)."""
        from dlrun.results.plots import confusion_matrix_figure

        fig = confusion_matrix_figure(loop.test_confusion, loop.data.info.class_names,
                                      title=f"test split, epoch {loop.epoch}")
        self.writer.add_figure("confusion_matrix/test", fig, loop.epoch)  # closes the figure

    def _add_graph(self, loop) -> None:
        model = unwrap(loop.model)
        try:
            with eval_mode(model), torch.random.fork_rng(devices=[]), warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit.trace's deprecation notice
                self.writer.add_graph(model, loop.data.test.x[:1])  # fork_rng: keep the training's random stream
        except Exception as e:  # some models do not trace; the graph is optional
            log.warning("TensorBoard: no model graph (%s: %s)", type(e).__name__, str(e).splitlines()[0][:120])

    def _add_hparams(self, loop, metrics: list[str]) -> None:
        # into this run's own event file: the metrics are the scalars logged just above
        choices, overrides, job = hydra_context(loop.run_dir)
        hparams = run_hparams(loop.run_config, choices, overrides)
        distinguishing = {o.lstrip("+~").split("=")[0] for o in distinguishing_overrides(overrides, job)}
        for summary in [experiment_summary(hparams, metrics, distinguishing),
                        *hparams_summaries(hparams, run_label(loop.run_dir, overrides, job))]:
            self.writer.file_writer.add_summary(summary)
