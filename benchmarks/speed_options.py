"""What each speed option buys: one training epoch of the same model under each setting, one process.

The loop is the bare one of benchmarks/peers.py (index-sliced batches of in-memory tensors, Adam,
cross-entropy); only the setting changes:

  nchw          torch's defaults: NCHW tensors, Adam's for-loop step (the baseline, ratio 1.00)
  fused         Adam(fused=True): one kernel updates every parameter (dlrun/conf/optimizer/adam.yaml)
  channels_last model and inputs in NHWC (oneDNN's preferred layout on CPU)
  dlrun         channels_last + fused: what dlrun turns on by default on a CPU (dlrun/training/device.py)
  compile       torch.compile of the model, NCHW
  compile_cl    torch.compile of the model, NHWC

Each setting has its own model, optimizer and warm-up epoch (compilation happens there); then the settings
alternate for `--repeats` rounds and the median time per setting is divided by the baseline's median.
Random inputs of Fashion-MNIST's shape: the timing does not depend on the pixel values.

    .venv/bin/python benchmarks/speed_options.py --model lenet
    .venv/bin/python benchmarks/speed_options.py --model resnet --samples 6000 --settings nchw,channels_last,dlrun
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from peers import build_model

SETTINGS = ["nchw", "fused", "channels_last", "dlrun", "compile", "compile_cl"]


def make(setting: str, model_name: str, x: torch.Tensor):
    torch.manual_seed(0)
    model = build_model(model_name)
    nhwc = setting in ("channels_last", "dlrun", "compile_cl")
    if nhwc:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=setting in ("fused", "dlrun"))
    if setting.startswith("compile"):
        model.compile()
    return model, opt, x


def epoch(model, opt, x, y, n: int, batch: int) -> float:
    loss_fn = torch.nn.CrossEntropyLoss()
    perm = torch.randperm(len(x))[:n]
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        idx = perm[i : i + batch]
        loss = loss_fn(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="lenet", help="a dlrun/conf/model name: lenet, resnet (depth 20)")
    ap.add_argument("--samples", type=int, default=54000, help="training images per timed epoch")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--settings", default=",".join(SETTINGS))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    settings = a.settings.split(",")
    x, y = torch.randn(a.samples, 1, 28, 28), torch.randint(0, 10, (a.samples,))
    built = {s: make(s, a.model, x) for s in settings}
    for s in settings:  # warm-up: oneDNN primitive caches, torch.compile's compilation
        m, o, xs = built[s]
        print(f"warm-up {s:14s} {epoch(m, o, xs, y, min(a.samples, 8 * a.batch), a.batch):.2f}s", flush=True)
    times = {s: [] for s in settings}
    for r in range(a.repeats):
        for s in settings if r % 2 == 0 else settings[::-1]:
            m, o, xs = built[s]
            times[s].append(epoch(m, o, xs, y, a.samples, a.batch))
        print(f"round {r + 1}: " + "  ".join(f"{s} {times[s][-1]:.2f}s" for s in settings), flush=True)
    base = statistics.median(times[settings[0]])
    print(f"\nmodel={a.model} samples={a.samples} batch={a.batch} threads={a.threads} "
          f"(median of {a.repeats} alternated epochs; ratio to {settings[0]})\n")
    print("| setting | epoch (s) | img/s | ratio |\n|---|---:|---:|---:|")
    for s in settings:
        t = statistics.median(times[s])
        print(f"| {s} | {t:.2f} | {a.samples / t:,.0f} | {t / base:.2f}x |")


if __name__ == "__main__":
    main()
