"""dlrun's loop versus a bare PyTorch loop: one LeNet epoch on Fashion-MNIST, same process.

Both sides train one epoch over the same in-memory tensors with the same model initialisation,
batch size and threads, then evaluate the validation and test splits. dlrun's side is a whole
`Loop.fit()` with its default callbacks (last/best checkpoints, TensorBoard, metrics.jsonl,
summary.json, plain progress lines), so every cost a user pays is counted. Runs alternate
(bare, dlrun, bare, dlrun, ...) so that drift in machine load hits both; the median ratio is printed.

    .venv/bin/python benchmarks/overhead.py [--repeats 5] [--threads 2] [overrides ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import make_cfg  # noqa: E402  (the same compose helper the tests use)

from dlrun.loop import evaluate  # noqa: E402
from dlrun.tasks import build_loop  # noqa: E402


def bare_epoch(model, data, lr: float) -> None:
    """The limit: nothing but forward, loss, backward, step over index-sliced batches, then eval."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y, bs = data.train.x, data.train.y, data.train.batch_size
    perm = torch.randperm(len(x))
    model.train()
    for i in range(0, len(x), bs):
        idx = perm[i : i + bs]
        loss = loss_fn(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    for split, name in ((data.val, "val"), (data.test, "test")):
        evaluate(model, split, loss_fn, x.device, None, name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("overrides", nargs="*", default=[])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    overrides = ["trainer.max_epochs=1", "trainer.progress=plain", f"trainer.num_threads={args.threads}", *args.overrides]
    cfg = make_cfg(*overrides)

    bare_times, dlrun_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            loop = build_loop(cfg, Path(tmp) / f"dlrun{r}")  # builds data + model (not timed)
            model = build_loop(cfg, Path(tmp) / f"bare{r}").model  # same seed -> same initial weights
            t0 = time.perf_counter()
            bare_epoch(model, loop.data, cfg.optimizer.lr)
            bare_times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            loop.fit()
            dlrun_times.append(time.perf_counter() - t0)
            print(f"round {r + 1}: bare {bare_times[-1]:.2f}s  dlrun {dlrun_times[-1]:.2f}s  "
                  f"ratio {dlrun_times[-1] / bare_times[-1]:.3f}", flush=True)
    ratios = [d / b for d, b in zip(dlrun_times, bare_times)]
    print(f"model={cfg.model._target_.split('.')[-1]} data={cfg.data.name} batch={cfg.data.batch_size} "
          f"threads={args.threads} repeats={args.repeats}")
    print(f"median epoch: bare {statistics.median(bare_times):.2f}s, dlrun {statistics.median(dlrun_times):.2f}s")
    print(f"median ratio dlrun/bare: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
