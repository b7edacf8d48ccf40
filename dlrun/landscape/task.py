"""`dlrun task=landscape landscape=NAME`: the run's own `optimizer=` on a 2-D surface f(x, y).

The two coordinates are one parameter tensor `xy`, handed to the optimizer exactly as a network's
parameters are (`build(cfg.optimizer, "optimizer")([xy])`), so every optimizer config works here.
A run writes, in its folder:

  path.json        the path (points, losses) with the surface, critical points and minima: what overlays read
  landscape.png    the contour plot with the path, the critical points and the known minima
  metrics.jsonl    one row per step: {"step", "loss", "x", "y", "grad_norm", "lr"} (step 0 = the start)
  summary.json     status, duration, error, and "landscape": final point and value, steps to reach a minimum,
                   critical points with their second-derivative test
  events.out.*     TensorBoard: the loss, x, y per step as scalars and the plot as an image

In a multirun (`-m optimizer=gd,momentum,adam`) every job also redraws `landscape_<surface>.png` in the
sweep folder from all job folders finished so far, so after the last job it overlays all their paths.
`python -m dlrun.landscape FOLDER...` draws the same overlay from any run or sweep folders.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from dlrun.config.schema import is_number, require
from dlrun.errors import DlrunError
from dlrun.landscape.critical import DTYPE, find_critical_points
from dlrun.landscape.surfaces import get_surface

log = logging.getLogger("dlrun")

PATH_FILE = "path.json"
PLOT_FILE = "landscape.png"
TB_POINTS = 1000  # TensorBoard shows at most 1000 points of a curve anyway; every step is in metrics.jsonl
MAX_ROWS = 12  # critical points printed (a bumpy surface has dozens; summary.json has them all)


class DivergedError(DlrunError):
    """The optimizer left the surface (the loss became inf or nan): a finding, but the run failed."""

    exit_code = 1


def _takes_closure(optimizer) -> bool:
    """True for optimizers such as L-BFGS whose step() needs a closure that re-evaluates the loss."""
    param = inspect.signature(optimizer.step).parameters.get("closure")
    return param is not None and param.default is inspect.Parameter.empty


def descend(f, optimizer, xy: torch.Tensor, steps: int, on_step=None) -> dict:
    """Take up to `steps` optimizer steps on f(xy[0], xy[1]); the path has the start and every point reached.

    Returns {"points": [k+1, 2], "losses": [k+1], "grad_norms": [k+1], "diverged_at": step or None}.
    Stops early when the loss or the point stops being finite.
    """

    def closure():
        optimizer.zero_grad()
        loss = f(xy[0], xy[1])
        loss.backward()
        return loss

    needs_closure = _takes_closure(optimizer)
    points, losses, grad_norms, diverged_at = [], [], [], None
    for step in range(steps + 1):
        loss = closure()
        point, value = xy.detach().tolist(), loss.item()
        grad_norm = xy.grad.norm().item()
        points.append(point)
        losses.append(value)
        grad_norms.append(grad_norm)
        if on_step is not None:
            on_step(step, point, value, grad_norm)
        if not (math.isfinite(value) and all(map(math.isfinite, point))):
            diverged_at = step
            break
        if step == steps:
            break
        if needs_closure:
            optimizer.step(closure)
        else:
            optimizer.step()  # the gradient of this point, from closure() above
    return {"points": points, "losses": losses, "grad_norms": grad_norms, "diverged_at": diverged_at}


def steps_to_reach(points, minima, eps: float):
    """(first step within eps of a minimum, that minimum) or (None, None)."""
    if not minima:
        return None, None
    p = np.asarray(points, dtype=float)
    dist = np.stack([np.linalg.norm(p - np.asarray(m, dtype=float), axis=1) for m in minima], axis=1)
    close = np.nonzero((dist < eps).any(axis=1))[0]
    if len(close) == 0:
        return None, None
    step = int(close[0])
    return step, list(map(float, minima[int(np.argmin(dist[step]))]))


def _optimizer_label(cfg: DictConfig, optimizer) -> str:
    """`gd lr=0.001`: the optimizer option chosen on the command line (or its class) and its learning rate."""
    from hydra.core.hydra_config import HydraConfig

    name = None
    if HydraConfig.initialized():
        name = HydraConfig.get().runtime.choices.get("optimizer")
    name = name or type(optimizer).__name__
    lr = optimizer.param_groups[0].get("lr")
    return f"{name} lr={lr:g}" if isinstance(lr, (int, float)) else name


def _sweep_dir() -> Path | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return Path(HydraConfig.get().sweep.dir)
    return None


def _surface_key(record: dict) -> tuple:
    return record["surface"], record.get("expr"), json.dumps(record["bounds"])


def _legend(record: dict, with_start: bool = False) -> str:
    """`momentum lr=0.01: a minimum in 1125 steps` (or the final value when no minimum was reached)."""
    label = record["label"]
    if with_start:  # paths of one plot that start at different points
        label += f" from ({record['start'][0]:g}, {record['start'][1]:g})"
    if record.get("steps_to_eps") is not None:
        return f"{label}: a minimum in {record['steps_to_eps']} steps"
    return f"{label}: f = {record['losses'][-1]:.3g} after {len(record['losses']) - 1} steps"


def overlay(*folders, out_dir=None) -> list[Path]:
    """Draw the paths of all landscape runs under `folders` into one plot per surface.

    Writes `landscape_<surface>.png` into `out_dir` (default: the first folder) and returns the files.
    Used by every job of a multirun on its sweep folder, and by `python -m dlrun.landscape FOLDER...`.
    """
    from dlrun.landscape.plot import landscape_figure
    from dlrun.results.plots import plt
    from dlrun.run_folder.records import atomic_write

    records = []
    for folder in map(Path, folders):
        files = [folder / PATH_FILE] if (folder / PATH_FILE).is_file() else sorted(folder.rglob(PATH_FILE))
        for file in files:
            if any(part.startswith("failed-") for part in file.parts):
                continue
            try:
                record = json.loads(file.read_text())
                _surface_key(record), record["points"], record["label"]
            except (OSError, ValueError, KeyError, TypeError) as e:
                log.warning("skipped %s: not a landscape path (%s)", file, e)
                continue
            records.append(record)
    groups: dict[tuple, list[dict]] = {}
    for record in records:
        groups.setdefault(_surface_key(record), []).append(record)
    out_dir = Path(out_dir or folders[0])
    written: list[Path] = []
    for (surface_name, _, _), group in groups.items():
        first = group[0]
        surface = get_surface(first["surface"], first.get("expr"))
        title = f"{surface_name}: f = {first['formula']}"
        one_start = len({json.dumps(r["start"]) for r in group}) == 1
        if one_start:
            title += f", start ({first['start'][0]:g}, {first['start'][1]:g})"
        fig = landscape_figure(surface.f, first["bounds"], [(_legend(r, not one_start), r["points"]) for r in group],
                               critical=first["critical_points"], minima=first["minima"], title=title)
        n = 1 + sum(p.stem.split("_", 1)[1].split("_")[0] == surface_name for p in written)
        path = out_dir / (f"landscape_{surface_name}.png" if n == 1 else f"landscape_{surface_name}_{n}.png")
        out_dir.mkdir(parents=True, exist_ok=True)
        # atomic: parallel jobs of a sweep (joblib launcher) may redraw the same overlay at once
        atomic_write(path, lambda f: fig.savefig(f, format="png"))
        plt.close(fig)
        written.append(path)
    return written


def _fmt(v: float) -> str:
    return "0" if abs(v) < 1e-12 else f"{v:.5g}"  # Newton leaves ~1e-17 where the answer is 0


def _print_tables(record: dict, result: dict) -> None:
    from rich.table import Table

    from dlrun.console import show

    table = Table(title=f"landscape {record['surface']}: f = {record['formula']}", show_header=False,
                  title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    final = result["final"]
    if result["steps_to_eps"] is not None:
        m = result["reached_minimum"]
        reached = f"{result['steps_to_eps']} (the minimum ({m[0]:.6g}, {m[1]:.6g}))"
    elif not result["minima"]:
        reached = "no minimum known"
    else:
        reached = "[yellow]not reached[/]"
    table.add_row("optimizer", record["label"])
    table.add_row("start", f"({result['start'][0]:.6g}, {result['start'][1]:.6g})")
    table.add_row("steps", str(result["steps"]))
    table.add_row(f"steps to within {result['eps']:g} of a minimum", reached)
    table.add_row("final point", f"({final['x']:.6g}, {final['y']:.6g})")
    table.add_row("final f", f"{final['loss']:.6g}")
    table.add_row("final |∇f|", f"{final['grad_norm']:.3g}")
    show(table)

    points = result["critical_points"]
    crit = Table(title="critical points (Newton's method from a grid of starts; R = f_xx, S = f_xy, T = f_yy)",
                 title_justify="left")
    for column in ("x", "y", "f", "R", "S", "T", "RT − S²", "kind"):
        crit.add_column(column, justify="right")
    style = {"minimum": "green", "maximum": "red", "saddle": "yellow", "test fails": "dim"}
    shown = points[:MAX_ROWS]
    for c in shown:
        crit.add_row(*(_fmt(c[k]) for k in ("x", "y", "value", "R", "S", "T", "D")),
                     f"[{style[c['kind']]}]{c['kind']}[/]")
    if len(points) > len(shown):
        kinds = {k: sum(c["kind"] == k for c in points) for k in style}
        crit.caption = (f"{len(points) - len(shown)} more (lowest f first); in all "
                        + ", ".join(f"{n} {k}" for k, n in kinds.items() if n) + "; all in summary.json")
    if not points:
        crit.caption = "none found in the box"
    show(crit)


def _pair(v) -> bool:
    return isinstance(v, (list, tuple)) and len(v) == 2 and all(map(is_number, v))


def check_config(lc: DictConfig) -> None:
    """The keys of dlrun/conf/landscape/*.yaml, before anything runs (dlrun/config/schema.py validate calls it);
    the surface name and landscape.expr are checked when the surface is built."""
    lc = OmegaConf.to_container(lc, resolve=True)
    require(_pair(lc.get("start")), "landscape.start", lc.get("start"), "[x, y], two numbers")
    steps = lc.get("steps")
    require(isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1, "landscape.steps", steps,
            "an integer >= 1")
    require(is_number(lc.get("eps")) and lc["eps"] > 0, "landscape.eps", lc.get("eps"), "a number > 0")
    minima = lc.get("minima")
    require(minima is None or (isinstance(minima, list) and all(map(_pair, minima))), "landscape.minima", minima,
            "null (the minima found) or a list of [x, y] points")
    bounds = lc.get("bounds")
    require(isinstance(bounds, list) and len(bounds) == 2 and all(_pair(b) and b[0] < b[1] for b in bounds),
            "landscape.bounds", bounds, "[[x_min, x_max], [y_min, y_max]] with min < max")
    grid = lc.get("critical_grid")
    require(isinstance(grid, int) and not isinstance(grid, bool) and 1 <= grid <= 100, "landscape.critical_grid",
            grid, "an integer in [1, 100] (Newton starts per axis)")
    expr = lc.get("expr")
    require(expr is None or isinstance(expr, str), "landscape.expr", expr,
            "a quoted expression such as \"x**2 - y**2\"")


def run(cfg: DictConfig, run_dir: Path):
    """The task function (dlrun/training/tasks.py TASKS["landscape"]); returns the final loss (what a search minimises)."""
    from torch.utils.tensorboard import SummaryWriter

    from dlrun.config.schema import build
    from dlrun.landscape.plot import landscape_figure
    from dlrun.results.plots import plt, save_figure
    from dlrun.run_folder.records import MetricsLog, write_json
    from dlrun.run_folder.run_record import COMPLETED, FAILED, RunSummary, write_summary

    started = time.time()
    run_dir = Path(run_dir)
    lc = cfg.landscape
    surface = get_surface(lc.surface, lc.get("expr"))  # a bad expr fails here, before anything is written
    bounds = OmegaConf.to_container(lc.bounds)
    start = [float(v) for v in lc.start]

    xy = torch.nn.Parameter(torch.tensor(start, dtype=DTYPE))
    optimizer = build(cfg.optimizer, "optimizer")([xy])
    label = _optimizer_label(cfg, optimizer)

    critical = [c.as_dict() for c in find_critical_points(surface.f, bounds, n=lc.critical_grid)]
    minima = (OmegaConf.to_container(lc.minima) if lc.minima is not None
              else [[c["x"], c["y"]] for c in critical if c["kind"] == "minimum"])

    metrics = MetricsLog(run_dir / "metrics.jsonl")
    writer = SummaryWriter(str(run_dir))  # in the run folder: TensorBoard names the run by it
    tb_every = max(1, lc.steps // TB_POINTS)

    def on_step(step, point, loss, grad_norm):
        metrics.write({"step": step, "loss": loss, "x": point[0], "y": point[1], "grad_norm": grad_norm,
                       "lr": optimizer.param_groups[0].get("lr")})
        if math.isfinite(loss) and (step % tb_every == 0 or step == lc.steps):
            writer.add_scalar("landscape/loss", loss, step)

    log.info("landscape %s, optimizer %s, start %s, %d steps, run folder %s", surface.name, label, start, lc.steps,
             run_dir)
    path = descend(surface.f, optimizer, xy, lc.steps, on_step)
    steps_taken = len(path["points"]) - 1
    reached_step, reached_min = steps_to_reach(path["points"], minima, lc.eps)

    record = {"surface": surface.name, "expr": lc.get("expr"), "formula": surface.formula, "bounds": bounds,
              "label": label, "start": start, "eps": lc.eps, "steps_to_eps": reached_step, "points": path["points"],
              "losses": path["losses"], "minima": minima, "critical_points": critical}
    write_json(run_dir / PATH_FILE, record)

    title = f"{surface.name}: f = {surface.formula}\n{label}, {steps_taken} steps"
    fig = landscape_figure(surface.f, bounds, [(_legend(record), path["points"])], critical, minima, title)
    save_figure(fig, run_dir / PLOT_FILE)
    image = plt.imread(run_dir / PLOT_FILE)[..., :3]  # the PNG's pixels: no second rendering for TensorBoard
    writer.add_image("landscape/path", image, global_step=steps_taken, dataformats="HWC")
    writer.close()

    overlays = []
    if (sweep_dir := _sweep_dir()) is not None:
        overlays = overlay(sweep_dir)

    error = None
    if path["diverged_at"] is not None:
        error = (f"the loss became {path['losses'][-1]} at step {path['diverged_at']} (the optimizer diverged, or left "
                 "the surface's domain); try a lower optimizer.lr")
    result = {
        "optimizer": label, "start": start, "steps": steps_taken, "eps": lc.eps,
        "final": {"x": path["points"][-1][0], "y": path["points"][-1][1], "loss": path["losses"][-1],
                  "grad_norm": path["grad_norms"][-1]},
        "best_loss": float(np.nanmin(path["losses"])) if any(map(math.isfinite, path["losses"])) else None,
        "steps_to_eps": reached_step, "reached_minimum": reached_min, "minima": minima,
        "critical_points": critical,
    }
    summary = RunSummary(status=FAILED if error else COMPLETED, duration_s=time.time() - started, error=error,
                         run_dir=str(run_dir), extra={"steps": steps_taken, "landscape": {
                             "surface": surface.name, "formula": surface.formula, **result}})
    summary = summary.to_dict()
    write_summary(run_dir, {k: summary[k] for k in ("status", "epochs", "steps")} | summary)  # steps after epochs
    _print_tables(record, result)
    log.info("plot %s%s", run_dir / PLOT_FILE, "".join(f"; overlay of the sweep so far {p}" for p in overlays))
    if error:
        raise DivergedError(error)
    return result["final"]["loss"]
