"""The GPU check in one command: the CUDA-only tests, then dlrun's epoch time against a bare loop on the GPU.

    python benchmarks/gpu_check.py [--data-root DIR]      # on a CUDA machine, under 8 minutes on one GPU

(a) `pytest -m cuda tests/test_cuda.py`: fp16 with GradScaler, bf16, channels_last under AMP, trainer.compile,
    a CUDA checkpoint resumed on the CPU and back, exact resume with trainer.deterministic=true, nccl DDP
    with one process.
(b) LeNet-5 and ResNet-20 on Fashion-MNIST at fp32, bf16 and fp16, data resident on the GPU: the epoch
    (train + validation + epoch-end work, start to next start, median after the first) of dlrun with its
    defaults (TensorBoard, checkpoints) against a bare loop with the same model, batches, fused Adam, memory
    format and autocast/GradScaler, alternated. One table at the end.

Without CUDA it says so and exits 0. `--device cpu --limit 512` runs part (b) on a CPU (the tests do).
The Fashion-MNIST files are found as dlrun finds them (data.root, /usr/share/datasets/fashion-mnist).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout: this tree's dlrun

from dlrun.callbacks.base import Callback  # noqa: E402  (light: no torch)

MODELS = {"lenet": ["model=lenet"], "resnet20": ["model=resnet", "model.depth=20"]}
PRECISIONS = ["32", "bf16", "16"]


class EpochClock(Callback):
    """Epoch starts and the end of training, the device synchronised first."""

    order = -1000

    def __init__(self, sync):
        self.sync, self.marks = sync, []

    def _mark(self, loop):
        self.sync()
        self.marks.append(time.perf_counter())

    on_epoch_start = on_train_end = _mark

    def epochs(self) -> list[float]:
        return [b - a for a, b in zip(self.marks, self.marks[1:])]


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from dlrun.config.schema import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "dlrun" / "conf"), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides)


def overrides(a, model: str, precision: str) -> list[str]:
    extra = [f"data.limit={a.limit}"] if a.limit else []
    return [*MODELS[model], "data=fashion_mnist", f"data.root={a.data_root}", f"data.batch_size={a.batch}",
            f"trainer.device={a.device}", f"trainer.precision={precision}", f"trainer.max_epochs={a.epochs}",
            "trainer.progress=none", *extra]


def dlrun_epochs(a, model: str, precision: str, run_dir: Path, sync) -> list[float]:
    from dlrun.callbacks.base import order_callbacks
    from dlrun.training.tasks import build_loop

    loop = build_loop(compose(overrides(a, model, precision)), run_dir)
    clock = EpochClock(sync)
    loop.callbacks = order_callbacks({**loop.callbacks, "clock": clock})
    summary = loop.fit()
    if summary["status"] != "completed":  # e.g. SIGTERM from a time limit: dlrun stops after the batch
        raise SystemExit(f"dlrun {model} {precision}: {summary['status']} {summary['error'] or ''}")
    return clock.epochs()


def bare_epochs(a, model: str, precision: str, sync) -> list[float]:
    """The same model, data, batches, optimizer kernel and memory format as dlrun's run, and nothing else."""
    import torch

    from dlrun.data import build_data
    from dlrun.training.device import autocast, autocast_dtype, select_device, use_channels_last
    from dlrun.models import build_model_and_loss
    from dlrun.nn.optimizers import build_optimizer

    cfg = compose(overrides(a, model, precision))
    torch.manual_seed(cfg.seed)
    device = select_device(cfg.trainer.device)
    amp = autocast_dtype(precision, device)
    data = build_data(cfg.data, device, cfg.seed)  # in-memory tensors on the device, as dlrun's
    net, _ = build_model_and_loss(cfg, data.info)
    net = net.to(device)
    if use_channels_last("auto", device, amp, net):
        net = net.to(memory_format=torch.channels_last)
        data.to_channels_last()
    opt = build_optimizer(cfg.optimizer, net)  # fused Adam, as configured
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y, xv, yv, bs = data.train.x, data.train.y, data.val.x, data.val.y, cfg.data.batch_size
    marks = []
    for _ in range(cfg.trainer.max_epochs):
        sync()
        marks.append(time.perf_counter())
        net.train()
        perm = torch.randperm(len(x), device=device)
        for i in range(0, len(x), bs):
            idx = perm[i : i + bs]
            if len(idx) < 2:  # batch norm cannot train on one sample (dlrun's loader skips it too)
                break
            with autocast(device, amp):
                loss = loss_fn(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        net.eval()
        correct = torch.zeros((), device=device)
        with torch.no_grad(), autocast(device, amp):
            for i in range(0, len(xv), 1024):
                correct += (net(xv[i : i + 1024]).argmax(1) == yv[i : i + 1024]).sum()
        correct.item()
    sync()
    marks.append(time.perf_counter())
    return [b - c for c, b in zip(marks, marks[1:])]


def run_tests(timeout: int) -> str:
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", str(ROOT / "tests" / "test_cuda.py"), "-q", "-rs",
           "-p", "no:cacheprovider"]
    print("$", " ".join(cmd), flush=True)
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"TIMED OUT after {timeout} s"
    print(p.stdout[-4000:], p.stderr[-2000:], sep="\n", flush=True)
    lines = [ln for ln in p.stdout.strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else "no output").strip("= ")


def table(rows: list[dict], header: str) -> str:
    lines = [header, "", "| model | precision | dlrun epoch (s) | bare epoch (s) | dlrun / bare | dlrun img/s |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['model']} | {r['precision']} | - | - | {r['skipped']} | - |")
            continue
        lines.append(f"| {r['model']} | {r['precision']} | {r['dlrun']:.2f} | {r['bare']:.2f} | "
                     f"{r['dlrun'] / r['bare']:.2f}x | {r['n'] / r['dlrun']:,.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=str(ROOT / "data"))
    ap.add_argument("--device", default="cuda", help="cuda (the check), or cpu to try part (b) without a GPU")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--precisions", default=",".join(PRECISIONS))
    ap.add_argument("--epochs", type=int, default=3, help="at least 2: the first epoch is warm-up")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--limit", type=int, default=None, help="train on the first N images (data.limit)")
    ap.add_argument("--no-tests", action="store_true", help="skip part (a)")
    ap.add_argument("--test-timeout", type=int, default=300)
    a = ap.parse_args(argv)
    if a.epochs < 2:
        ap.error("--epochs must be at least 2")
    import torch

    if a.device == "cuda" and not torch.cuda.is_available():
        print(f"no CUDA device here (torch {torch.__version__}, built for CUDA {torch.version.cuda}): nothing to "
              "check; tests marked cuda skip on this machine")
        return 0
    started = time.perf_counter()
    sync = torch.cuda.synchronize if a.device.startswith("cuda") else (lambda: None)
    where = torch.cuda.get_device_name() if a.device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    tests = "not run" if a.no_tests or not a.device.startswith("cuda") else run_tests(a.test_timeout)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in a.models.split(","):
            for precision in a.precisions.split(","):
                row = {"model": model, "precision": precision}
                if precision == "16" and not a.device.startswith("cuda"):
                    rows.append({**row, "skipped": "fp16 needs CUDA"})
                    continue
                bare = bare_epochs(a, model, precision, sync)
                ours = dlrun_epochs(a, model, precision, Path(tmp) / f"{model}-{precision}", sync)
                n = compose(overrides(a, model, precision)).data.limit or 60000
                n_train = n - round(0.1 * n)
                row.update(dlrun=statistics.median(ours[1:]), bare=statistics.median(bare[1:]), n=n_train)
                rows.append(row)
                print(f"{model} {precision}: dlrun {' '.join(f'{e:.2f}' for e in ours)} s, "
                      f"bare {' '.join(f'{e:.2f}' for e in bare)} s", flush=True)
    header = (f"{where}, torch {torch.__version__}; batch {a.batch}, {a.epochs} epochs, median epoch after the first; "
              f"cuda tests: {tests}; whole check {time.perf_counter() - started:.0f} s")
    print(table(rows, header))
    return 0


if __name__ == "__main__":
    sys.exit(main())
