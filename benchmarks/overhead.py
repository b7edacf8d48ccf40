"""dlrun's loop versus a bare PyTorch loop: one LeNet epoch on Fashion-MNIST, same process.

Both sides train over the same in-memory tensors with the same model initialisation, batch size
and threads, validate every epoch and test at the end. dlrun's side is a whole
`Loop.fit()` with its default callbacks (last/best checkpoints, TensorBoard, metrics.jsonl,
summary.json, plain progress lines), so every cost a user pays is counted. Runs alternate
(bare, dlrun, bare, dlrun, ...) so that drift in machine load hits both. Printed: the median ratio of a
steady-state epoch (from 1- and 3-epoch runs) and of a whole 1-epoch run.

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

from dlrun.training.loop import score  # noqa: E402
from dlrun.training.tasks import build_loop  # noqa: E402


def bare_fit(model, data, lr: float, epochs: int, fused: bool) -> None:
    """The limit: nothing but forward, loss, backward, step over index-sliced batches, a validation pass
    per epoch, and one test pass at the end. Model, data layout and Adam's kernel are dlrun's own (NHWC and
    fused by default on a CPU), so the ratio is the loop's overhead alone."""
    opt = torch.optim.Adam(model.parameters(), lr=lr, fused=fused)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y, bs = data.train.x, data.train.y, data.train.batch_size
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        model.train()
        for i in range(0, len(x), bs):
            idx = perm[i : i + bs]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        score(model, data.val, loss_fn, x.device, None, "val")
    score(model, data.test, loss_fn, x.device, None, "test")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("overrides", nargs="*", default=[])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    base = ["trainer.progress=plain", f"trainer.num_threads={args.threads}", "scheduler=none", *args.overrides]

    def timed_pair(epochs: int, tmp: Path, r: int) -> tuple[float, float]:
        cfg = make_cfg(f"trainer.max_epochs={epochs}", *base)
        loop = build_loop(cfg, tmp / f"dlrun{r}_{epochs}")  # builds data + model (not timed)
        model = build_loop(cfg, tmp / f"bare{r}_{epochs}").model  # same seed -> same initial weights
        t0 = time.perf_counter()
        bare_fit(model, loop.data, cfg.optimizer.lr, epochs, bool(loop.optimizer.defaults.get("fused")))
        bare = time.perf_counter() - t0
        t0 = time.perf_counter()
        loop.fit()
        return bare, time.perf_counter() - t0

    runs = {1: [], 3: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for epochs in (1, 3):
                runs[epochs].append(timed_pair(epochs, Path(tmp), r))
            (b1, d1), (b3, d3) = runs[1][-1], runs[3][-1]
            print(f"round {r + 1}: 1 epoch bare {b1:.2f}s dlrun {d1:.2f}s | 3 epochs bare {b3:.2f}s dlrun {d3:.2f}s | "
                  f"epoch ratio {(d3 - d1) / (b3 - b1):.3f}", flush=True)
    med = statistics.median
    # an epoch in steady state: (3-epoch run - 1-epoch run) / 2 cancels the once-per-run work
    # (start of fit, test pass, TensorBoard's end-of-run confusion matrix and hparams)
    epoch_ratio = med([(d3 - d1) / (b3 - b1) for (b1, d1), (b3, d3) in zip(runs[1], runs[3])])
    run_ratio = med([d / b for b, d in runs[1]])
    print(f"{' '.join(base)} repeats={args.repeats}")
    print(f"median steady-state epoch ratio dlrun/bare: {epoch_ratio:.3f}")
    print(f"median whole 1-epoch run ratio dlrun/bare (incl. once-per-run work): {run_ratio:.3f}")


if __name__ == "__main__":
    main()
