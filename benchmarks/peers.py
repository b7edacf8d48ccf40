"""dlrun against the usual ways to train the same model: one table of epoch time, start-up time and memory.

The same model class (dlrun's LeNet-5 or ResNet-20, built from dlrun/conf/model/*.yaml), the same
Fashion-MNIST training/validation split, batch size, epochs and torch threads, through:

  bare          (b) a bare PyTorch loop over in-memory tensors: index-sliced batches (the limit)
  bare_cl       (b') the same with the model and inputs in channels_last (NHWC)
  dlrun         (a) `python -m dlrun` with its defaults: channels_last and fused Adam on a CPU, the rich
                progress bar (forced on through a pipe), metrics.jsonl, last/best checkpoints, TensorBoard
                (scalars every epoch, histograms and images every 5 epochs)
  dlrun_nchw    (a) the same with trainer.channels_last=false optimizer.fused=false: dlrun's own overhead over (b)
  dlrun_aug     (a) + data.augment=[crop,flip]
  dlrun_compile (a) + trainer.compile=true
  loader        (c) a bare loop over torchvision's FashionMNIST dataset + DataLoader + per-sample transforms
  lightning     (d) PyTorch Lightning with the model in a LightningModule and the DataLoader of (c)
  lightning_tensors  Lightning over in-memory tensors (TensorDataset + DataLoader)
  keras         (e) Keras 3 on the torch backend, the model in a TorchModuleWrapper, `fit` on in-memory arrays

Each run is a fresh process (start-up is part of what a user waits for); the variants alternate within
each repeat so that drift in machine load hits all of them. An epoch is everything from one epoch's start to
the next one's: a pass over the training split, a pass over the validation split and whatever the runner
does at an epoch's end (checkpoints, logs). With E epochs a run gives E-1 such intervals; the first pays
warm-up and compilation, so the table shows the median over repeats of the others, images per second
(training images / epoch time), the ratio to (b), start-up (process start to the end of the first
optimizer step) and peak resident memory.

    .venv/bin/pip install -e '.[bench]'      # lightning and keras
    .venv/bin/python benchmarks/peers.py --model lenet --epochs 3 --repeats 5 --threads 2
    .venv/bin/python benchmarks/peers.py --model resnet --limit 4000 --repeats 3 --variants bare,bare_cl,dlrun,loader,lightning,keras

`benchmarks/overhead.py` measures dlrun's loop against the bare loop inside one process instead.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ["bare", "bare_cl", "dlrun", "dlrun_nchw", "dlrun_aug", "dlrun_compile", "loader", "lightning",
            "lightning_tensors", "keras"]
DLRUN_EXTRA = {"dlrun": [], "dlrun_nchw": ["trainer.channels_last=false", "optimizer.fused=false"],
               "dlrun_aug": ["data.augment=[crop,flip]", "data.crop_padding=2"], "dlrun_compile": ["trainer.compile=true"]}
LABELS = {"bare": "(b) bare loop, in-memory tensors", "bare_cl": "(b') bare loop + channels_last",
          "dlrun": "(a) dlrun, defaults (rich bar, TensorBoard, checkpoints)",
          "dlrun_nchw": "(a) dlrun, channels_last and fused Adam off", "dlrun_aug": "(a) dlrun + crop,flip",
          "dlrun_compile": "(a) dlrun + trainer.compile", "loader": "(c) bare loop + DataLoader/transforms",
          "lightning": "(d) Lightning + DataLoader", "lightning_tensors": "Lightning over in-memory tensors",
          "keras": "(e) Keras 3 (torch) fit"}
SEED = 42  # dlrun's default seed: the same validation split everywhere


# -- what every child reports ---------------------------------------------------------------------------
class Clock:
    """Epoch starts and the end of the first optimizer step, written as JSON when the run ends."""

    def __init__(self, path: str):
        self.path, self.t0 = path, float(os.environ["BENCH_T0"])
        self.first_step, self.marks = None, []

    def step(self):
        if self.first_step is None:
            self.first_step = time.time()

    def mark(self):
        self.marks.append(time.perf_counter())

    def write(self, n_train: int):
        epochs = [b - a for a, b in zip(self.marks, self.marks[1:])]  # start to next start
        Path(self.path).write_text(json.dumps({
            "epochs": epochs, "startup_s": self.first_step - self.t0, "n_train": n_train,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


try:  # dlrun's side reports through a callback given on its command line
    from dlrun.callbacks import Callback
except ImportError:  # pragma: no cover
    Callback = object


class BenchTimer(Callback):
    order = -1000  # first: an epoch starts before any other callback's on_epoch_start

    def __init__(self, path: str):
        self.clock = Clock(path)

    def on_epoch_start(self, loop):
        self.clock.mark()

    def on_batch_end(self, loop, i, loss):
        self.clock.step()

    def on_train_end(self, loop):
        self.clock.write(loop.data.train.num_samples)


# -- shared pieces of the non-dlrun children --------------------------------------------------------------
def build_model(name: str):
    import importlib

    import yaml

    spec = yaml.safe_load((ROOT / "dlrun" / "conf" / "model" / f"{name}.yaml").read_text())
    module, cls = spec.pop("_target_").rsplit(".", 1)
    return getattr(importlib.import_module(module), cls)(in_shape=(1, 28, 28), num_classes=10, **spec)


def split(n: int, val_fraction: float = 0.1):
    """dlrun's seeded split (dlrun/data/__init__.py): the same indices on every side."""
    import torch

    order = torch.randperm(n, generator=torch.Generator().manual_seed(SEED))
    n_val = int(round(val_fraction * n))
    return order[n_val:], order[:n_val]


def tensors(limit: int | None):
    """Normalised in-memory tensors of the training and validation split."""
    import torch

    from dlrun.data.idx import read_idx
    from dlrun.data.mnist import locate

    # the IDX files decoded on every start, as a script does (dlrun's own loader keeps a decoded cache)
    files = locate("fashion_mnist", ROOT / "data")
    x = torch.from_numpy(read_idx(files["train_x"]).copy()).float().div_(255).unsqueeze(1)
    y = torch.from_numpy(read_idx(files["train_y"]).astype("int64"))
    if limit:
        x, y = x[:limit], y[:limit]
    tr, va = split(len(x))
    mean, std = x[tr].mean(), x[tr].std()
    x = (x - mean) / std
    return x[tr], y[tr], x[va], y[va], float(mean), float(std)


def torchvision_sets(limit: int | None, cache: Path):
    """The tutorial way: torchvision's FashionMNIST (PIL images) with ToTensor + Normalize per sample."""
    import torch
    from torchvision import datasets, transforms

    raw = cache / "FashionMNIST" / "raw"
    if not (raw / "train-images-idx3-ubyte").exists():  # Debian's gzip files: torchvision reads them unpacked
        raw.mkdir(parents=True, exist_ok=True)
        for gz in Path("/usr/share/datasets/fashion-mnist").glob("*.gz"):
            with gzip.open(gz) as src, open(raw / gz.stem, "wb") as dst:
                shutil.copyfileobj(src, dst)
    ds = datasets.FashionMNIST(str(cache), train=True, download=False)
    n = limit or len(ds)
    tr, va = split(n)
    x = ds.data[:n].float().div(255)[tr]
    mean, std = float(x.mean()), float(x.std())
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((mean,), (std,))])
    ds = datasets.FashionMNIST(str(cache), train=True, download=False, transform=tf)
    return torch.utils.data.Subset(ds, tr.tolist()), torch.utils.data.Subset(ds, va.tolist())


# -- the children -----------------------------------------------------------------------------------------
def run_bare(a, clock, channels_last: bool = False):
    import torch

    xt, yt, xv, yv, _, _ = tensors(a.limit)
    model = build_model(a.model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        xt, xv = (x.contiguous(memory_format=torch.channels_last) for x in (xt, xv))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    for _ in range(a.epochs):
        clock.mark()
        model.train()
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), a.batch):
            idx = perm[i : i + a.batch]
            loss = loss_fn(model(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            clock.step()
        model.eval()
        with torch.no_grad():
            for i in range(0, len(xv), 1024):
                loss_fn(model(xv[i : i + 1024]), yv[i : i + 1024])
    return len(xt)


def run_loader(a, clock):
    import torch
    from torch.utils.data import DataLoader

    train, val = torchvision_sets(a.limit, Path(a.cache))
    train_dl = DataLoader(train, batch_size=a.batch, shuffle=True, num_workers=a.workers)
    val_dl = DataLoader(val, batch_size=1024, num_workers=a.workers)
    model = build_model(a.model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    for _ in range(a.epochs):
        clock.mark()
        model.train()
        for x, y in train_dl:
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            clock.step()
        model.eval()
        with torch.no_grad():
            for x, y in val_dl:
                loss_fn(model(x), y)
    return len(train)


def run_lightning(a, clock, in_memory: bool = False):
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    if in_memory:
        xt, yt, xv, yv, _, _ = tensors(a.limit)
        train, val = TensorDataset(xt, yt), TensorDataset(xv, yv)
    else:
        train, val = torchvision_sets(a.limit, Path(a.cache))

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = build_model(a.model)
            self.loss_fn = torch.nn.CrossEntropyLoss()

        def training_step(self, batch, i):
            x, y = batch
            loss = self.loss_fn(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, i):
            x, y = batch
            out = self.net(x)
            self.log("val_loss", self.loss_fn(out, y))
            self.log("val_acc", (out.argmax(1) == y).float().mean())

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    class Timer(L.Callback):
        def on_train_epoch_start(self, trainer, module):
            clock.mark()

        def on_train_batch_end(self, trainer, module, outputs, batch, i):
            clock.step()

    trainer = L.Trainer(max_epochs=a.epochs, accelerator="cpu", devices=1, callbacks=[Timer()],
                        default_root_dir=a.workdir)
    trainer.fit(Module(), DataLoader(train, batch_size=a.batch, shuffle=True, num_workers=a.workers),
                DataLoader(val, batch_size=1024, num_workers=a.workers))
    return len(train)


def run_keras(a, clock):
    import keras

    xt, yt, xv, yv, _, _ = tensors(a.limit)

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            clock.mark()

        def on_train_batch_end(self, batch, logs=None):
            clock.step()

    model = keras.Sequential([keras.Input(shape=(1, 28, 28)), keras.layers.TorchModuleWrapper(build_model(a.model))])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(xt.numpy(), yt.numpy(), batch_size=a.batch, epochs=a.epochs, validation_data=(xv.numpy(), yv.numpy()),
              validation_batch_size=1024, callbacks=[Timer()], verbose=2)
    return len(xt)


def child(a) -> None:
    import torch

    torch.set_num_threads(a.threads)
    torch.manual_seed(SEED)
    clock = Clock(a.json)
    run = {"bare": run_bare, "bare_cl": lambda a, c: run_bare(a, c, channels_last=True), "loader": run_loader,
           "lightning": run_lightning, "lightning_tensors": lambda a, c: run_lightning(a, c, in_memory=True),
           "keras": run_keras}[a.child]
    n = run(a, clock)
    clock.write(n)


# -- the parent -------------------------------------------------------------------------------------------
def command(variant: str, a, out: Path, workdir: Path) -> tuple[list[str], dict]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "KERAS_BACKEND": "torch",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    if variant.startswith("dlrun"):
        env["TTY_COMPATIBLE"] = "1"  # rich draws its progress bar into the pipe as on a terminal
        cmd = [sys.executable, "-m", "dlrun", f"model={a.model}", "data=fashion_mnist",
               f"data.root={ROOT / 'data'}", f"data.batch_size={a.batch}", f"trainer.max_epochs={a.epochs}",
               f"trainer.num_threads={a.threads}", "trainer.progress=rich", f"hydra.run.dir={workdir}",
               "+callbacks.bench._target_=peers.BenchTimer", f"+callbacks.bench.path={out}", *DLRUN_EXTRA[variant]]
        if a.limit:
            cmd.append(f"data.limit={a.limit}")
        return cmd, env
    cmd = [sys.executable, __file__, "--child", variant, "--json", str(out), "--model", a.model, "--epochs",
           str(a.epochs), "--batch", str(a.batch), "--threads", str(a.threads), "--workers", str(a.workers),
           "--cache", a.cache, "--workdir", str(workdir)]
    if a.limit:
        cmd += ["--limit", str(a.limit)]
    return cmd, env


def run_child(cmd: list[str], env: dict, out: Path, label: str) -> dict | None:
    """One fresh child process; the JSON it wrote to `out`, or None after printing why it failed."""
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0 or not out.exists():
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        print(f"{label}: FAILED (exit {p.returncode}): {' | '.join(tail)}", flush=True)
        return None
    return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="lenet", help="a dlrun/conf/model name: lenet, resnet (depth 20)")
    ap.add_argument("--epochs", type=int, default=3, help="at least 3: the first epoch is warm-up")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers of (c) and (d)")
    ap.add_argument("--limit", type=int, default=None, help="use the first N training images (dlrun's data.limit)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--cache", default=str(ROOT / "data" / "torchvision"))
    ap.add_argument("--out", default=None, help="write the raw runs and the table here (JSON)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a)
    if a.epochs < 3:  # epoch 1 is warm-up and the last epoch has no next start: nothing would be timed
        ap.error("--epochs must be at least 3")

    variants = a.variants.split(",")
    runs = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            for v in (variants if r % 2 == 0 else variants[::-1]):  # alternate the order as well
                out, workdir = Path(tmp) / f"{v}{r}.json", Path(tmp) / f"{v}{r}"
                cmd, env = command(v, a, out, workdir)
                env["BENCH_T0"] = repr(time.time())
                res = run_child(cmd, env, out, f"round {r + 1} {v}")
                if res is None:
                    continue
                runs[v].append(res)
                print(f"round {r + 1} {v:14s} epochs {' '.join(f'{e:.2f}s' for e in res['epochs'])}  "
                      f"start-up {res['startup_s']:.2f}s  peak {res['peak_mb']:.0f} MB", flush=True)
    table = summarise(runs, a)
    print(table)
    if a.out:
        Path(a.out).write_text(json.dumps({"args": vars(a), "runs": runs, "table": table}, indent=1))


def summarise(runs: dict, a) -> str:
    med = lambda xs: statistics.median(xs) if xs else float("nan")
    rows = {v: {"epoch": med([e for r in rs for e in r["epochs"][1:]]), "startup": med([r["startup_s"] for r in rs]),
                "peak": med([r["peak_mb"] for r in rs]), "n": rs[0]["n_train"] if rs else 0, "k": len(rs)}
            for v, rs in runs.items()}
    base = rows.get("bare", {}).get("epoch", float("nan"))
    lines = [f"model={a.model} batch={a.batch} epochs={a.epochs} threads={a.threads} limit={a.limit} "
             f"(medians of {a.repeats} alternated runs; epoch = start to next start after the first, train + validation + epoch-end work)", "",
             "| variant | epoch (s) | train img/s | epoch / (b) | start-up to 1st step (s) | peak RSS (MB) |",
             "|---|---:|---:|---:|---:|---:|"]
    for v, s in rows.items():
        lines.append(f"| {LABELS.get(v, v)} | {s['epoch']:.2f} | {s['n'] / s['epoch']:,.0f} | {s['epoch'] / base:.2f}x "
                     f"| {s['startup']:.2f} | {s['peak']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
