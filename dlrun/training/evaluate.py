"""task=eval and task=predict: score a checkpoint again, or apply it to new inputs.

The model, the data, the loss and the seed come from the config stored inside the checkpoint, so the
user does not repeat `model=...`, and the same seed gives the same split and the same normalisation
statistics. Only `trainer.*` (device, precision, threads) comes from the command line: it says how to
run here, not what was trained.
"""

from __future__ import annotations

import csv
import glob
import logging
import os
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from rich.table import Table

from dlrun.run_folder import checkpoint
from dlrun.console import show
from dlrun.data import DataInfo, build_data
from dlrun.models.common import eval_mode
from dlrun.training.device import autocast, autocast_dtype, select_device
from dlrun.errors import CheckpointError, ConfigError, DataError
from dlrun.training.loop import score
from dlrun.training.metrics import predict_classes
from dlrun.models import build_model_and_loss
from dlrun.run_folder.records import write_json

log = logging.getLogger("dlrun")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_ROWS_SHOWN = 50  # predict prints at most this many inputs; predictions.csv has them all


# -- rebuilding what was trained ---------------------------------------------------------------------
def stored_config(state: dict, path) -> DictConfig:
    """The training run's config saved in the checkpoint (a plain dict), as a DictConfig."""
    stored = state.get("config")
    if not isinstance(stored, dict) or not all(k in stored for k in ("model", "data", "seed")):
        raise CheckpointError(f"checkpoint {path} holds no stored config (model, data, seed), so its model cannot be "
                              "rebuilt; use a checkpoint written by a dlrun training run")
    return OmegaConf.create(stored)


def _runtime(cfg: DictConfig) -> tuple[torch.device, torch.dtype | None]:
    t = cfg.trainer
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    device = select_device(t.device)
    return device, autocast_dtype(str(t.precision), device)


def _restore_model(stored: DictConfig, info: DataInfo, state: dict, path, device):
    """(model with the checkpoint's weights, loss), built from the stored config as training built them."""
    model, loss_fn = build_model_and_loss(stored, info, pretrained=False)  # the checkpoint holds the weights
    model = model.to(device)
    checkpoint.load_model_weights(model, state, path)
    return model.eval(), loss_fn


def _relative_to_common_folder(rows: list[list[str]]) -> tuple[str | None, list[list[str]]]:
    """(the folder all inputs share, the rows with names relative to it); (None, rows) when they share none."""
    import os

    try:
        folder = os.path.commonpath([r[0] for r in rows]) if len(rows) > 1 else os.path.dirname(rows[0][0])
    except (ValueError, IndexError):
        return None, rows
    if not folder or folder == os.sep:
        return None, rows
    return folder, [[os.path.relpath(r[0], folder), *r[1:]] for r in rows]


def _class_names(info: DataInfo, n_outputs: int) -> list[str]:
    n = 2 if n_outputs == 1 else n_outputs  # one output: a binary classifier
    names = [str(c) for c in info.class_names]
    return names if len(names) == n else [str(i) for i in range(n)]


def _forward(model, batches, device, amp_dtype) -> torch.Tensor:
    """The model's outputs over an iterable of input batches, as one float CPU tensor."""
    outs = []
    with eval_mode(model):
        for x in batches:
            with autocast(device, amp_dtype):
                outs.append(model(x.to(device)).float().cpu())
    return torch.cat(outs)


# -- the numbers ----------------------------------------------------------------------------------------
def topk_accuracy(outputs: torch.Tensor, target: torch.Tensor, k: int) -> float:
    """Fraction of samples whose true class is among the k highest scores."""
    top = outputs.topk(k, dim=1).indices
    return (top == target.view(-1, 1)).any(dim=1).sum().item() / len(target)


def classification_report(target, pred, class_names: list[str]) -> dict:
    """Per-class precision, recall, F1 and support, and their macro and support-weighted averages.

    A class never predicted has precision 0 (not NaN): zero_division=0, as Keras and sklearn report it.
    """
    from sklearn.metrics import precision_recall_fscore_support

    target, pred = np.asarray(target).ravel(), np.asarray(pred).ravel()
    labels = list(range(len(class_names)))
    p, r, f, s = precision_recall_fscore_support(target, pred, labels=labels, zero_division=0)
    per_class = {name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                 for i, name in enumerate(class_names)}
    averages = {}
    for average in ("macro", "weighted"):
        ap, ar, af, _ = precision_recall_fscore_support(target, pred, labels=labels, average=average, zero_division=0)
        averages[average] = {"precision": float(ap), "recall": float(ar), "f1": float(af), "support": int(s.sum())}
    return {"per_class": per_class, "averages": averages}


def r2(target, output) -> float:
    """Coefficient of determination 1 - SS_res / SS_tot (averaged over targets when there are several)."""
    from sklearn.metrics import r2_score

    target = np.asarray(target, dtype=np.float64)
    return float(r2_score(target, np.asarray(output, dtype=np.float64).reshape(target.shape)))


def to_target_units(values: torch.Tensor, info: DataInfo) -> torch.Tensor:
    """Regression outputs or targets back in the dataset's units (build_data standardises the targets)."""
    values = values.float().view(len(values), -1)
    mean, std = getattr(info, "target_mean", None), getattr(info, "target_std", None)
    if mean is None or std is None:
        return values
    return values * torch.tensor(std) + torch.tensor(mean)


def probabilities(outputs: torch.Tensor) -> torch.Tensor:
    """Class probabilities: softmax of several scores, or [1-σ, σ] of a single one (as predict_classes reads it)."""
    if outputs.dim() == 2 and outputs.shape[1] > 1:
        return outputs.float().softmax(dim=1)
    p1 = torch.sigmoid(outputs.float().view(-1))
    return torch.stack([1 - p1, p1], dim=1)


def top_classes(probs: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k most probable classes per row, best first; ties keep the lower class first, so the first
    one is always what predict_classes (argmax, or score > 0) picks."""
    p, i = torch.sort(probs, dim=1, descending=True, stable=True)
    return p[:, :k], i[:, :k]


# -- task=eval ------------------------------------------------------------------------------------------
def run_eval(cfg: DictConfig, run_dir: Path) -> float | None:
    from dlrun.results.plots import confusion_matrix, confusion_matrix_figure, save_figure

    path, split = cfg.ckpt_path, cfg.eval.split
    state = checkpoint.load(path)
    stored = stored_config(state, path)
    device, amp_dtype = _runtime(cfg)
    data = build_data(stored.data, device, stored.seed)
    loader = {"train": data.train, "val": data.val, "test": data.test}[split]
    if loader is None:
        raise ConfigError("eval.split", split, f"the checkpoint's run had no validation split "
                          f"(data.val_fraction={stored.data.val_fraction}); use test or train")
    loader.augment = None  # the training split as it is, not augmented copies (val/test never are)
    model, loss_fn = _restore_model(stored, data.info, state, path, device)

    # loss and accuracy by the very function the training run's test used, so the numbers agree; the outputs
    # and targets come from the same pass (the train split comes shuffled)
    pairs = []
    metrics = score(model, loader, loss_fn, device, amp_dtype, split, data.info.target_std, outputs=pairs)
    outputs, target = torch.cat([o for o, _ in pairs]), torch.cat([t for _, t in pairs])
    result = {"checkpoint": str(path), "epoch": state.get("epoch"), "split": split, "samples": len(target),
              "task": data.info.task, "metrics": metrics}

    if data.info.task == "regression":
        # loss, MAE and RMSE (targets' units) came from evaluate, as in training; R² is scale-free
        metrics[f"{split}/r2"] = r2(target, outputs)
        write_json(run_dir / "eval.json", result)
        _log_to_tensorboard(run_dir, None, metrics, step=int(state.get("epoch") or 0))
        _print_metrics(result)
        return metrics[f"{split}/loss"]

    names = _class_names(data.info, outputs.shape[1] if outputs.dim() == 2 else 1)
    pred = predict_classes(outputs)
    k = cfg.eval.topk
    if outputs.dim() == 2 and 1 < k < outputs.shape[1]:  # top-1 is acc; top-(all classes) is always 1
        metrics[f"{split}/top{k}_acc"] = topk_accuracy(outputs, target, k)
    result.update(classification_report(target, pred, names))
    cm = confusion_matrix(pred.numpy(), target.numpy(), len(names))
    result["class_names"], result["confusion_matrix"] = names, cm.tolist()
    write_json(run_dir / "eval.json", result)

    fig = confusion_matrix_figure(cm, names, title=f"{split} split, {Path(path).name} (epoch {state.get('epoch')})")
    _log_to_tensorboard(run_dir, fig, metrics, step=int(state.get("epoch") or 0))
    save_figure(fig, run_dir / "confusion_matrix.png")
    _print_metrics(result)
    _print_report(result)
    log.info("wrote %s and %s", run_dir / "eval.json", run_dir / "confusion_matrix.png")
    return metrics[f"{split}/acc"]


def _log_to_tensorboard(tb_dir: Path, fig, metrics: dict, step: int) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(tb_dir)) as writer:
        if fig is not None:
            writer.add_figure("eval/confusion_matrix", fig, global_step=step, close=False)
        for key, value in metrics.items():
            writer.add_scalar(f"eval/{key}", value, step)


def _print_metrics(result: dict) -> None:
    table = Table(show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key, value in result["metrics"].items():
        table.add_row(key, f"{value:.4f}")
    # the checkpoint's path whole on its own line, never broken mid-word
    show(f"eval on the {result['split']} split ({result['samples']} samples) of the epoch {result['epoch']} "
         "checkpoint:", str(result["checkpoint"]), table)


def _print_report(result: dict) -> None:
    table = Table(title="per class", title_justify="left")
    table.add_column("class", style="bold")
    for column in ("precision", "recall", "f1", "support"):
        table.add_column(column, justify="right")

    def row(name, r, **kw):
        table.add_row(name, f"{r['precision']:.4f}", f"{r['recall']:.4f}", f"{r['f1']:.4f}", str(r["support"]), **kw)

    for name, r in result["per_class"].items():
        row(name, r)
    table.add_section()
    for average, r in result["averages"].items():
        row(f"{average} avg", r, style="italic")
    show(table)


# -- task=predict ---------------------------------------------------------------------------------------
def _info_and_stats(state: dict, stored: DictConfig) -> tuple[DataInfo, torch.Tensor, torch.Tensor]:
    """Input shape, classes and the training normalisation, from the checkpoint when it has them."""
    if state.get("data_info") and state.get("data_stats"):
        info = DataInfo(**{**state["data_info"], "in_shape": tuple(state["data_info"]["in_shape"])})
        return info, state["data_stats"]["mean"], state["data_stats"]["std"]
    # an older checkpoint: derive them again from the stored data config (same seed, same split)
    data = build_data(stored.data, torch.device("cpu"), stored.seed)
    return data.info, data.mean, data.std


def resolve_inputs(spec: str) -> list[Path]:
    """The files `predict.inputs` names: one file, every image/.npy file of a folder, or a glob's matches."""
    spec = os.path.expanduser(str(spec))
    if glob.has_magic(spec):
        files = sorted(Path(f) for f in glob.glob(spec, recursive=True) if Path(f).is_file())
        if not files:
            raise DataError(f"predict.inputs={spec}: no files match this pattern")
        return files
    path = Path(spec)
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.suffix.lower() in (*IMAGE_SUFFIXES, ".npy"))
        if not files:
            raise DataError(f"predict.inputs={spec}: the folder holds no PNG, JPEG or .npy files")
        return files
    if not path.is_file():
        raise DataError(f"predict.inputs={spec}: no such file or folder")
    return [path]


def load_image(path: Path, in_shape: tuple) -> torch.Tensor:
    """A PNG/JPEG as a 1×C×H×W float tensor in [0, 1]: the model's channels (grey or RGB), resized to its size."""
    from PIL import Image

    if len(in_shape) != 3 or in_shape[0] not in (1, 3):
        raise DataError(f"{path}: this model takes inputs of shape {list(in_shape)}, not 1- or 3-channel images; "
                        "pass them as a .npy array")
    channels, height, width = in_shape
    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")  # decodes the whole file: errors show here
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise DataError(f"cannot read image {path}: not a valid PNG or JPEG ({reason})") from None
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR)  # antialiased when shrinking
    array = np.asarray(image).reshape(height, width, channels).transpose(2, 0, 1)  # H×W×C -> C×H×W
    return torch.from_numpy(array.copy()).unsqueeze(0).float().div(255.0)  # uint8 -> [0, 1], as in training


def load_array(path: Path, in_shape: tuple) -> torch.Tensor:
    """A .npy array of one input or N inputs (uint8 images are scaled to [0, 1] as in training)."""
    from dlrun.data import _to_float

    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"cannot read {path} as a .npy array ({str(e).strip()[:160]})") from None
    shape = tuple(in_shape)
    if array.shape == shape:
        array = array[None]
    elif len(shape) == 3 and shape[0] == 1 and array.ndim in (2, 3) and array.shape[-2:] == shape[1:]:
        array = array.reshape(-1, *shape)  # grey images without their channel axis: H×W or N×H×W
    if array.shape[1:] != shape:
        raise DataError(f"{path}: inputs of shape {list(array.shape)} do not fit the model, which takes "
                        f"{list(shape)} or N×{list(shape)}")
    if array.dtype.kind not in "uif":
        raise DataError(f"{path}: a .npy array of {array.dtype} values; the model needs numbers")
    return _to_float(array)


def load_inputs(spec: str, in_shape: tuple) -> tuple[list[str], torch.Tensor]:
    """Names (one per input) and the unnormalised inputs as one N×in_shape float tensor."""
    names, tensors = [], []
    for path in resolve_inputs(spec):
        suffix = path.suffix.lower()
        if suffix == ".npy":
            x = load_array(path, in_shape)
            names += [f"{path}[{i}]" for i in range(len(x))]
        elif suffix in IMAGE_SUFFIXES:
            x = load_image(path, in_shape)
            names.append(str(path))
        else:
            raise DataError(f"{path}: unsupported file type {suffix or '(none)'}; use PNG, JPEG or .npy")
        tensors.append(x)
    return names, torch.cat(tensors)


def run_predict(cfg: DictConfig, run_dir: Path) -> None:
    path = cfg.ckpt_path
    state = checkpoint.load(path)
    stored = stored_config(state, path)
    info, mean, std = _info_and_stats(state, stored)
    names, x = load_inputs(cfg.predict.inputs, info.in_shape)  # before building: fail fast on bad inputs
    x = (x - mean) / std  # the training split's statistics, as build_data normalised the training data
    device, amp_dtype = _runtime(cfg)
    model, _ = _restore_model(stored, info, state, path, device)
    outputs = _forward(model, x.split(stored.data.eval_batch_size), device, amp_dtype)

    csv_path = run_dir / "predictions.csv"
    if info.task == "regression":
        values = to_target_units(outputs, info)
        header = ["input"] + [f"output_{j}" for j in range(values.shape[1])]
        rows = [[name, *(f"{v:.6g}" for v in vals.tolist())] for name, vals in zip(names, values)]
        shown = [[name, ", ".join(vals)] for name, *vals in rows]
    else:
        probs = probabilities(outputs)
        class_names = _class_names(info, probs.shape[1])
        k = min(cfg.predict.topk, probs.shape[1])
        top_p, top_i = top_classes(probs, k)
        header = ["input"] + [col for r in range(1, k + 1) for col in (f"top{r}", f"top{r}_prob")]
        rows = [[name, *(v for p, i in zip(ps.tolist(), idx.tolist()) for v in (class_names[i], f"{p:.6f}"))]
                for name, ps, idx in zip(names, top_p, top_i)]
        shown = [[row[0], "  ".join(f"{row[j]} {float(row[j + 1]):.3f}" for j in range(1, len(row), 2))] for row in rows]
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)

    folder, shown = _relative_to_common_folder(shown)  # the terminal shows file names, not long paths
    table = Table()
    table.add_column("input", overflow="fold")
    table.add_column("prediction" if info.task == "regression" else f"top-{k} (probability)")
    for row in shown[:MAX_ROWS_SHOWN]:
        table.add_row(*row)
    if len(shown) > MAX_ROWS_SHOWN:
        table.caption = f"{len(shown) - MAX_ROWS_SHOWN} more in {csv_path}"
    inputs = [f"inputs in {folder}:"] if folder else []
    show(f"predictions of the epoch {state.get('epoch')} checkpoint:", str(path), *inputs, table)
    log.info("wrote %d predictions to %s", len(rows), csv_path)
