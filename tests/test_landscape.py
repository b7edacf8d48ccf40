"""task=landscape: autograd derivatives against closed forms, the notes' second-derivative test, optimizer
paths against closed-form iterates, the safe expression parser, and the run folder of a real `dlrun -m`."""

import json
import math
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import dlrun
from conftest import make_cfg, read_summary, run_dlrun
from dlrun.config.schema import build
from dlrun.training.validate import validate
from dlrun.errors import ConfigError
from dlrun.landscape.__main__ import main as overlay_main
from dlrun.landscape.critical import classify, critical_point, derivatives, find_critical_points
from dlrun.landscape.expr import parse
from dlrun.landscape.surfaces import get_surface
from dlrun.landscape.task import descend, run, steps_to_reach

POINTS = [(0.0, 0.0), (1.0, 1.0), (-1.5, 2.0), (0.3, -0.7), (2.0, -1.25)]


def closed_forms(name, x, y):
    """(gradient, Hessian) by hand."""
    if name == "bowl":  # x²/2 + 5y²
        return [x, 10 * y], [[1, 0], [0, 10]]
    if name == "saddle":  # x² − y²
        return [2 * x, -2 * y], [[2, 0], [0, -2]]
    # rosenbrock (1 − x)² + 100(y − x²)²
    return ([-2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)],
            [[2 - 400 * y + 1200 * x**2, -400 * x], [-400 * x, 200]])


@pytest.mark.parametrize("name", ["bowl", "saddle", "rosenbrock"])
def test_gradient_and_hessian_equal_the_closed_forms(name):
    f = get_surface(name).f
    xs, ys = zip(*POINTS)
    _, grad, hess = derivatives(f, torch.tensor(xs, dtype=torch.float64), torch.tensor(ys, dtype=torch.float64))
    for i, (x, y) in enumerate(POINTS):
        g, h = closed_forms(name, x, y)
        assert torch.allclose(grad[i], torch.tensor(g, dtype=grad.dtype), rtol=0, atol=1e-6), (x, y)
        assert torch.allclose(hess[i], torch.tensor(h, dtype=hess.dtype), rtol=0, atol=1e-6), (x, y)


def test_the_notes_worked_gradient():
    # the notes: f = 2x² + 4y has ∇f = [4x, 4] = [4, 4] at x = 1
    f = parse("2*x**2 + 4*y")
    _, grad, hess = derivatives(f, 1.0, 5.0)
    assert grad.tolist() == [4.0, 4.0]
    assert hess.tolist() == [[4.0, 0.0], [0.0, 0.0]]


def test_second_derivative_test_cases():
    assert classify(2, 0, 2) == "minimum"
    assert classify(-2, 0, -2) == "maximum"
    assert classify(2, 0, -2) == "saddle"
    assert classify(1, 2, 1) == "saddle"  # R, T > 0 but S² > RT
    assert classify(1, 1, 1) == "test fails"  # RT − S² = 0
    assert classify(0, 0, 0) == "test fails"


HIMMELBLAU_MINIMA = [(3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)]


def test_classifier_labels_saddle_minima_and_maximum():
    assert critical_point(get_surface("saddle").f, 0.0, 0.0).kind == "saddle"
    himmelblau = get_surface("himmelblau").f
    for x, y in HIMMELBLAU_MINIMA:
        c = critical_point(himmelblau, x, y)
        assert c.kind == "minimum" and c.R > 0 and c.D > 0
    top = critical_point(get_surface("custom", "-(x**2 + y**2)").f, 0.0, 0.0)
    assert (top.kind, top.R, top.S, top.T, top.D) == ("maximum", -2.0, 0.0, -2.0, 4.0)
    assert critical_point(parse("x**4 + y**4"), 0.0, 0.0).kind == "test fails"


def test_critical_points_found_from_a_grid_of_starts():
    found = find_critical_points(get_surface("himmelblau").f, [[-5, 5], [-5, 5]], n=15)
    kinds = [c.kind for c in found]
    assert (kinds.count("minimum"), kinds.count("maximum"), kinds.count("saddle")) == (4, 1, 4)
    minima = sorted((round(c.x, 5), round(c.y, 5)) for c in found if c.kind == "minimum")
    assert minima == sorted((round(x, 5), round(y, 5)) for x, y in HIMMELBLAU_MINIMA)
    (top,) = [c for c in found if c.kind == "maximum"]
    assert (round(top.x, 5), round(top.y, 5)) == (-0.27084, -0.92304)  # the known maximum, f = 181.617
    rosen = find_critical_points(get_surface("rosenbrock").f, [[-2, 2], [-1, 3]], n=9)
    assert [(round(c.x, 9), round(c.y, 9), c.kind) for c in rosen] == [(1.0, 1.0, "minimum")]


def _optimizer(*overrides, start):
    cfg = make_cfg("task=landscape", *overrides)
    xy = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64))
    return build(cfg.optimizer, "optimizer")([xy]), xy


def test_gradient_descent_on_the_bowl_follows_the_closed_form_iterate():
    # gd on f = x²/2 + 5y²: x ← x − α·x, y ← y − α·10y, so x_t = (1 − α)^t x_0 and y_t = (1 − 10α)^t y_0
    alpha, x0, y0, steps = 0.15, -4.5, 1.5, 40
    optimizer, xy = _optimizer("landscape=bowl", "optimizer=gd", f"optimizer.lr={alpha}", start=[x0, y0])
    assert type(optimizer) is torch.optim.SGD and optimizer.param_groups[0]["momentum"] == 0
    path = descend(get_surface("bowl").f, optimizer, xy, steps)
    assert len(path["points"]) == steps + 1 and path["diverged_at"] is None
    for t, (x, y) in enumerate(path["points"]):
        assert x == pytest.approx((1 - alpha) ** t * x0, rel=1e-12, abs=1e-300)
        assert y == pytest.approx((1 - 10 * alpha) ** t * y0, rel=1e-12, abs=1e-300)
        assert path["losses"][t] == pytest.approx(0.5 * x**2 + 5 * y**2, rel=1e-12)
    # 1 − 10α = −0.5: y flips sign every step (the zig-zag across the steep direction)
    ys = [p[1] for p in path["points"][:5]]
    assert all(a * b < 0 for a, b in zip(ys, ys[1:]))


OPTIMIZERS = sorted(p.stem for p in (Path(dlrun.__file__).parent / "conf" / "optimizer").glob("*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_config_runs_on_a_surface(name):
    optimizer, xy = _optimizer("landscape=bowl", f"optimizer={name}", start=[-4.5, 1.5])
    path = descend(get_surface("bowl").f, optimizer, xy, 30)
    assert path["diverged_at"] is None and path["losses"][-1] < path["losses"][0]


def test_lbfgs_gets_its_closure():
    optimizer, xy = _optimizer("landscape=rosenbrock", "optimizer=sgd", start=[-1.5, 2.0])
    lbfgs = torch.optim.LBFGS([xy], lr=1, max_iter=20, line_search_fn="strong_wolfe")
    path = descend(get_surface("rosenbrock").f, lbfgs, xy, 20)
    assert steps_to_reach(path["points"], [[1.0, 1.0]], 1e-3)[0] is not None


def test_divergence_stops_the_path():
    optimizer, xy = _optimizer("landscape=bowl", "optimizer=sgd", "optimizer.lr=5", start=[1.0, 1.0])
    path = descend(get_surface("bowl").f, optimizer, xy, 2000)
    assert path["diverged_at"] is not None and not math.isfinite(path["losses"][-1])


def test_steps_to_reach():
    points = [[2.0, 0.0], [1.0, 0.0], [0.005, 0.0], [0.0, 0.0]]
    assert steps_to_reach(points, [[5.0, 5.0], [0.0, 0.0]], 0.01) == (2, [0.0, 0.0])
    assert steps_to_reach(points, [[5.0, 5.0]], 0.01) == (None, None)
    assert steps_to_reach(points, [], 0.01) == (None, None)


def test_expression_parser_computes_with_torch():
    f = parse("sin(x)*cos(y) + exp(-x**2/2) - sqrt(abs(y)) + tanh(x) + log(1 + y**2) + pi*e - +x")
    x, y = torch.tensor([0.3, -1.2]), torch.tensor([2.0, 0.5])
    want = (torch.sin(x) * torch.cos(y) + torch.exp(-x**2 / 2) - torch.sqrt(torch.abs(y)) + torch.tanh(x)
            + torch.log(1 + y**2) + math.pi * math.e - x)
    assert torch.allclose(f(x, y), want)
    assert parse("3")(torch.zeros(2), torch.zeros(2)).shape == (2,)  # a constant still broadcasts


@pytest.mark.parametrize(
    "expr, says",
    [
        ("__import__('os')", "a call to __import__()"),
        ("__import__('os').system('true')", "attribute access"),
        ("x.real", "attribute access"),
        ("().__class__.__bases__", "attribute access"),
        ("open('f')", "a call to open()"),
        ("eval('1')", "a call to eval()"),
        ("x[0]", "subscripts"),
        ("(lambda: 1)()", "lambda"),
        ("[x for x in y]", "comprehensions"),
        ("sum(x for x in y)", "comprehensions"),
        ("z + 1", "the name 'z'"),
        ("'a' * 3", "the constant 'a'"),
        ("x if y else 1", "if-else"),
        ("x // 2", "the operator //"),
        ("~x", "the operator ~"),
        ("sin(x, y)", "exactly one positional argument"),
        ("x +", "it is not valid Python"),
    ],
)
def test_expression_parser_rejects_everything_else(expr, says):
    with pytest.raises(ConfigError) as e:
        get_surface("custom", expr)
    message = str(e.value)
    assert message.startswith("landscape.expr=") and says in message, message
    assert "sin, cos, exp, log, sqrt, abs, tanh" in message  # says what is allowed


@pytest.mark.slow
def test_config_errors_before_anything_runs(tmp_path):
    with pytest.raises(ConfigError, match=r"task=landscape needs landscape=NAME, one of bowl, bumpy, custom"):
        validate(make_cfg("task=landscape"))
    with pytest.raises(ConfigError, match=r"landscape.start"):
        validate(make_cfg("task=landscape", "landscape=bowl", "landscape.start=[1]"))
    with pytest.raises(ConfigError, match=r"landscape.bounds"):
        validate(make_cfg("task=landscape", "landscape=bowl", "landscape.bounds=[[1,0],[0,1]]"))
    with pytest.raises(ConfigError, match=r"task=train is not allowed: landscape=... is chosen: add task=landscape"):
        validate(make_cfg("landscape=bowl"))
    cfg = make_cfg("task=landscape", "landscape=custom")
    validate(cfg)
    with pytest.raises(ConfigError, match=r"landscape=custom needs landscape.expr"):
        run(cfg, tmp_path)
    assert not list(tmp_path.iterdir())  # refused before writing anything


@pytest.mark.slow
def test_custom_run_in_process(tmp_path):
    cfg = make_cfg("task=landscape", "landscape=custom", 'landscape.expr="-(x**2 + y**2)"', "optimizer=sgd",
                   "optimizer.lr=0.1", "landscape.steps=5", "landscape.start=[0.5,0.5]")
    validate(cfg)
    final = run(cfg, tmp_path)
    summary = read_summary(tmp_path)["landscape"]
    assert [c["kind"] for c in summary["critical_points"]] == ["maximum"]
    assert summary["minima"] == [] and summary["steps_to_eps"] is None
    assert final == pytest.approx(-2 * (0.5 * 1.2**5) ** 2)  # gradient descent climbs down: x_t = 1.2^t x_0
    # the overlay command on a run folder draws the surface with the path; on an empty folder it says so
    assert overlay_main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "landscape_custom.png").stat().st_size > 10_000
    assert overlay_main([str(tmp_path / "out")]) == 2


@pytest.mark.subprocess
def test_dlrun_multirun_writes_plots_summaries_and_the_overlay(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_dlrun("-m", "task=landscape", "landscape=rosenbrock", "optimizer=gd,momentum,adam", "optimizer.lr=0.001",
                     "landscape.steps=60", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Traceback" not in out and "critical points" in out and "minimum" in out
    jobs = sorted(p for p in sweep.iterdir() if (p / "summary.json").is_file())
    assert len(jobs) == 3
    labels = []
    for job in jobs:
        assert (job / "landscape.png").stat().st_size > 10_000
        summary = read_summary(job)
        assert summary["status"] == "completed" and summary["error"] is None and summary["steps"] == 60
        result = summary["landscape"]
        assert result["surface"] == "rosenbrock" and result["start"] == [-1.5, 2.0]
        assert [(c["x"], c["y"], c["kind"]) for c in result["critical_points"]] == [(1.0, 1.0, "minimum")]
        rows = [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows] == list(range(61))
        assert rows[0]["x"] == -1.5 and rows[0]["y"] == 2.0 and rows[0]["loss"] == pytest.approx(6.25 + 6.25)
        assert rows[-1]["loss"] == pytest.approx(result["final"]["loss"]) and rows[-1]["loss"] < rows[0]["loss"]
        acc = EventAccumulator(str(job))
        acc.Reload()
        assert [e.step for e in acc.Scalars("landscape/loss")] == list(range(61))
        assert "landscape/path" in acc.Tags()["images"]
        labels.append(json.loads((job / "path.json").read_text())["label"])
    assert labels == ["gd lr=0.001", "momentum lr=0.001", "adam lr=0.001"]
    assert (sweep / "landscape_rosenbrock.png").stat().st_size > 10_000  # all three paths, drawn by the last job
