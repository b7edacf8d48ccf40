"""Start-up to the first optimizer step, dlrun against a bare script, broken into phases.

Each run is a fresh process that stops right after its first optimizer step. The variants alternate within
each repeat (and the order flips every other repeat), so drift in machine load hits all of them alike:

  bare        a bare PyTorch script: import torch, gunzip and decode the IDX files, normalise, LeNet-5,
              Adam, one step (what benchmarks/peers.py's bare loop does before its first step)
  dlrun       `python -m dlrun` with its defaults (TensorBoard, checkpoints, progress bar) on LeNet-5,
              its decoded-dataset cache warm (the second and later runs of a user)
  dlrun_cold  the same with the cache removed before each run (a user's first run)
  tree:PATH   (--tree PATH) dlrun from another checkout, e.g. the main branch, to measure a change

Phases (seconds, medians over the repeats): interpreter (process start to the first line), import
(hydra + dlrun.cli.main; torch for bare), compose (Hydra composes the config), torch (import torch and the
dlrun modules that need it), setup (seed, device, until the data starts loading), data (load, split,
normalise, place), model (build, initialise, move), optimizer (its first creation imports torch._dynamo
in every PyTorch program), fit start (callbacks built, their on_fit_start: the TensorBoard writer),
first step (forward, backward, step of batch 1).

    .venv/bin/python benchmarks/startup.py --repeats 5 [--tree /path/to/other/checkout]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHASES = ["interpreter", "import", "compose", "torch", "setup", "data", "model", "optimizer", "fit start",
          "first step"]
SYSTEM_DATA = Path("/usr/share/datasets/fashion-mnist")


# -- children ---------------------------------------------------------------------------------------------
class Marks:
    def __init__(self, out: str):
        self.out, self.t = out, [("start", float(os.environ["BENCH_T0"])), ("interpreter", time.time())]

    def __call__(self, name: str) -> None:
        self.t.append((name, time.time()))

    def write(self) -> None:
        """Phase durations: each mark ends the phase of its name."""
        phases = {}
        for (_, a), (name, b) in zip(self.t, self.t[1:]):
            phases[name] = phases.get(name, 0.0) + b - a
        Path(self.out).write_text(json.dumps(phases))


def child_bare(a, mark: Marks) -> None:
    import torch

    mark("import")
    from dlrun.data.idx import read_idx  # numpy's frombuffer on the gunzipped bytes: what a script writes
    from dlrun.data.mnist import locate

    torch.set_num_threads(a.threads)
    torch.manual_seed(42)
    files = locate("fashion_mnist", SYSTEM_DATA)
    x = torch.from_numpy(read_idx(files["train_x"]).copy()).float().div_(255).unsqueeze(1)
    y = torch.from_numpy(read_idx(files["train_y"]).astype("int64"))
    read_idx(files["test_x"]), read_idx(files["test_y"])  # peers' bare loop loads the test split too
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(42))
    tr = order[6000:]
    mean, std = x[tr].mean(), x[tr].std()
    xt, yt = (x[tr] - mean) / std, y[tr]
    mark("data")
    from dlrun.models.lenet import LeNet5

    model = LeNet5((1, 28, 28), 10)
    mark("model")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    mark("optimizer")
    perm = torch.randperm(len(xt))[: a.batch]
    loss = loss_fn(model(xt[perm]), yt[perm])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    mark("first step")
    mark.write()


try:
    from dlrun.callbacks.base import Callback
except ImportError:  # pragma: no cover
    Callback = object


class FirstStep(Callback):
    """Added to dlrun's command line: marks the fit's first epoch start and first optimizer step, then ends."""

    order = -1000
    marks: Marks | None = None

    def on_epoch_start(self, loop):
        self.marks("fit start")

    def on_batch_end(self, loop, i, loss):
        self.marks("first step")
        self.marks.write()
        os._exit(0)  # the run's end is not start-up


def _timed(mark: Marks, module, name: str, before: str, after: str) -> None:
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        mark(before)
        try:
            return original(*args, **kwargs)
        finally:
            mark(after)

    setattr(module, name, wrapper)


def child_dlrun(a, mark: Marks) -> None:
    import dlrun.cli.main
    import dlrun.training.tasks

    mark("import")
    import startup  # Hydra instantiates the callback from this module, not from __main__

    startup.FirstStep.marks = mark
    execute = dlrun.training.tasks.execute

    def instrumented(cfg, run_dir, reraise=False):
        mark("compose")
        try:  # execute's first step, taken here so that torch's import is timed as a run has it (collector paused)
            from dlrun.training import gc_pause

            gc_pause.pause()
        except ImportError:  # a checkout from before it (--tree)
            pass
        import torch  # noqa: F401  (build_loop's first line; timed here as its own phase)

        import dlrun.data
        import dlrun.training.loop
        import dlrun.nn.optimizers

        mark("torch")
        _timed(mark, dlrun.data, "build_data", "setup", "data")
        _timed(mark, dlrun.nn.optimizers, "build_optimizer", "model", "optimizer")  # model: data end to here
        return execute(cfg, run_dir, reraise)

    dlrun.training.tasks.execute = instrumented
    sys.argv = ["dlrun", *a.overrides]
    dlrun.cli.main.main()


# -- the parent -------------------------------------------------------------------------------------------
def command(variant: str, a, out: Path, workdir: Path, data_root: Path) -> tuple[list[str], dict]:
    tree = variant.split(":", 1)[1] if variant.startswith("tree:") else str(ROOT)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "BENCH_T0": repr(time.time()),
           "PYTHONPATH": os.pathsep.join([tree, str(Path(__file__).parent)])}
    cmd = [sys.executable, __file__, "--child", "bare" if variant == "bare" else "dlrun", "--json", str(out),
           "--threads", str(a.threads), "--batch", str(a.batch)]
    if variant != "bare":
        cmd += ["--", f"data.root={data_root}", f"data.batch_size={a.batch}", f"trainer.num_threads={a.threads}",
                f"hydra.run.dir={workdir}", "+callbacks.first_step._target_=startup.FirstStep", *a.extra]
    return cmd, env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--variants", default="bare,dlrun,dlrun_cold")
    ap.add_argument("--tree", action="append", default=[], help="another checkout to time as well (repeatable)")
    ap.add_argument("--out", default=None, help="write the raw runs and the table here (JSON)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help=argparse.SUPPRESS)
    ap.add_argument("overrides", nargs="*", help=argparse.SUPPRESS)
    a, extra = ap.parse_known_args()
    if a.child:
        a.overrides = a.overrides + extra
        mark = Marks(a.json)
        return child_bare(a, mark) if a.child == "bare" else child_dlrun(a, mark)
    from peers import run_child  # this folder is on the path when run as a script

    a.extra = a.overrides + extra  # further dlrun overrides, e.g. callbacks=none
    if not SYSTEM_DATA.is_dir():
        sys.exit(f"error: {SYSTEM_DATA} is missing: apt-get install dataset-fashion-mnist")
    variants = a.variants.split(",") + [f"tree:{t}" for t in a.tree]
    runs = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        data_root = Path(tmp) / "data"
        for r in range(a.repeats):
            for v in (variants if r % 2 == 0 else variants[::-1]):
                if v == "dlrun_cold":
                    shutil.rmtree(data_root / "cache", ignore_errors=True)
                out, workdir = Path(tmp) / f"{r}-{variants.index(v)}.json", Path(tmp) / f"run{r}-{variants.index(v)}"
                cmd, env = command(v, a, out, workdir, data_root)
                phases = run_child(cmd, env, out, f"round {r + 1} {v}")
                if phases is None:
                    continue
                runs[v].append(phases)
                print(f"round {r + 1} {v:12s} total {sum(phases.values()):.2f}s  " +
                      " ".join(f"{k}={phases[k]:.2f}" for k in PHASES if k in phases), flush=True)
                shutil.rmtree(workdir, ignore_errors=True)
    table = summarise(runs, a.repeats)
    print(table)
    if a.out:
        Path(a.out).write_text(json.dumps({"args": vars(a), "runs": runs, "table": table}, indent=1))


def summarise(runs: dict, repeats: int) -> str:
    med = lambda xs: statistics.median(xs) if xs else float("nan")
    names = [v for v in runs if runs[v]]
    lines = [f"start-up to the first optimizer step, seconds (medians of {repeats} alternated fresh processes)", "",
             "| phase | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for phase in PHASES:
        cells = [med([r[phase] for r in runs[v] if phase in r]) if any(phase in r for r in runs[v]) else None
                 for v in names]
        lines.append(f"| {phase} | " + " | ".join("-" if c is None else f"{c:.2f}" for c in cells) + " |")
    totals = {v: [sum(r.values()) for r in runs[v]] for v in names}
    lines.append("| **total** | " + " | ".join(f"**{med(totals[v]):.2f}**" for v in names) + " |")
    if "bare" in totals:  # the ratio per round (runs of one round saw the same load), then its median
        ratios = lambda v: [t / b for t, b in zip(totals[v], totals["bare"])]
        lines.append("| / bare | " + " | ".join(f"{med(ratios(v)):.2f}x" for v in names) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
