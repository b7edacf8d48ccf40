"""`dlrun-compare --diff RUN_A RUN_B`: the config keys whose values differ (dotted keys, both values), the
metric deltas (best, test, time, samples/s), and the env.json fields that differ."""

from __future__ import annotations

from pathlib import Path

ABSENT = "(absent)"


def flatten(node, prefix: str = "") -> dict:
    """{"optimizer.lr": 0.1, ...}; lists stay whole values (a list of layers is one setting)."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out if out or not prefix else {prefix[:-1]: {}}
    return {prefix[:-1]: node}


def run_config(run: Path) -> dict:
    import yaml

    path = Path(run) / ".hydra" / "config.yaml"
    return flatten(yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def diff_dicts(a: dict, b: dict) -> list[tuple[str, object, object]]:
    """(key, value in a, value in b) for every key whose values differ or that only one has, sorted by key."""
    return [(k, a.get(k, ABSENT), b.get(k, ABSENT)) for k in sorted(set(a) | set(b)) if a.get(k, ABSENT) != b.get(k, ABSENT)]


def metric_values(run: Path) -> dict:
    """best/<monitor>, test/*, epochs, time_s and samples/s of a run, from its summary.json."""
    from dlrun.run_folder.run_record import read_summary

    summary = read_summary(run)
    out = {f"best/{k}": v for k, v in (summary.best or {}).items() if k != "epoch"}
    out.update(summary.test or {})
    out.update({"epochs": summary.epochs, "time_s": summary.duration_s, "samples/s": summary.samples_per_s})
    return out


def metric_deltas(a: Path, b: Path) -> list[tuple[str, object, object, float | None]]:
    """(metric, value in a, value in b, b - a) for every metric either run has."""
    ma, mb = metric_values(a), metric_values(b)
    keys = list(ma) + [k for k in mb if k not in ma]
    num = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    return [(k, ma.get(k), mb.get(k), mb[k] - ma[k] if num(ma.get(k)) and num(mb.get(k)) else None) for k in keys]


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 1e4 or (value and abs(value) < 1e-3) else f"{value:.4f}"
    return ABSENT if value is None else str(value)


def _signed(value) -> str:
    return "" if value is None else ("+" if value > 0 else "") + _fmt(value)


def diff_check(paths: list[str]) -> str | None:
    """Why --diff cannot compare these paths (one clear line), or None."""
    for p in paths:
        if not (Path(p) / "summary.json").is_file():
            return f"--diff {p}: not a run folder (no summary.json)"
    return None


def print_diff(run_a: str, run_b: str) -> None:
    from rich.table import Table

    from dlrun.console import console
    from dlrun.run_folder.provenance import read_env

    a, b = Path(run_a), Path(run_b)
    console.print(f"A = {a}\nB = {b}", markup=False, highlight=False)
    config = diff_dicts(run_config(a), run_config(b))
    table = Table(title=f"config: {len(config)} keys differ", title_justify="left")
    for col in ("key", "A", "B"):
        table.add_column(col, overflow="fold")
    for key, va, vb in config:
        table.add_row(key, _fmt(va), _fmt(vb))
    console.print(table)
    metrics = Table(title="metrics", title_justify="left")
    for col in ("metric", "A", "B", "B - A"):
        metrics.add_column(col, justify="left" if col == "metric" else "right")
    for key, va, vb, delta in metric_deltas(a, b):
        metrics.add_row(key, _fmt(va), _fmt(vb), _signed(delta))
    console.print(metrics)
    env = diff_dicts(read_env(a), read_env(b))
    if env:
        table = Table(title="env.json: fields that differ", title_justify="left")
        for col in ("field", "A", "B"):
            table.add_column(col, overflow="fold")
        for key, va, vb in env:
            table.add_row(key, _fmt(va), _fmt(vb))
        console.print(table)
