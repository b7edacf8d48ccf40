"""`dlrun-compare DIR...`: one table of the runs found under folders (single runs and sweeps).

A run folder is any folder with a summary.json; its overrides come from Hydra's
`.hydra/overrides.yaml`. The sweep-end table and summary.csv are made by the same functions.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from dlrun import compare_views
from dlrun.metrics import mode_for

def find_runs(folders) -> list[Path]:
    runs = set()
    for folder in map(Path, folders):
        if (folder / "summary.json").is_file():
            runs.add(folder)
        runs.update(p.parent for p in folder.rglob("summary.json") if "failed-" not in p.parent.name)
    return sorted(runs)


def _overrides(run: Path) -> list[str]:
    path = run / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    items = yaml.safe_load(path.read_text()) or []
    return [o for o in items if not o.lstrip("+~").startswith("hydra.")]


def _monitor(run: Path, summary: dict) -> str:
    path = run / ".hydra" / "config.yaml"
    if path.is_file():
        monitor = (yaml.safe_load(path.read_text()) or {}).get("monitor")
        if monitor:
            return monitor
    best = summary.get("best") or {}
    return next((k for k in best if k != "epoch"), "val/acc")


def run_row(run: Path, root: Path | None = None) -> dict:
    summary = json.loads((run / "summary.json").read_text())
    monitor = _monitor(run, summary)
    best = summary.get("best") or {}
    if "landscape" in summary:  # task=landscape: steps, not epochs; the lowest loss reached is the result
        monitor, best = "landscape/loss", {"landscape/loss": summary["landscape"].get("best_loss")}
    row = {
        "run": str(run.relative_to(root)) if root and run != root and run.is_relative_to(root) else str(run),
        "overrides": " ".join(_overrides(run)),
        "status": summary.get("status"),
        "epochs": summary.get("epochs"),
        "best_epoch": best.get("epoch"),
        "monitor": monitor,
        f"best/{monitor}": best.get(monitor),
    }
    if "trial" in summary:  # a trial of an Optuna search (its params are in the overrides)
        row["trial"] = summary["trial"]
    row.update(summary.get("test") or {})
    if "landscape" in summary:
        ls = summary["landscape"]
        row.update({"steps": ls.get("steps"), "steps_to_eps": ls.get("steps_to_eps"),
                    "final_x": (ls.get("final") or {}).get("x"), "final_y": (ls.get("final") or {}).get("y")})
    else:
        row.update(_last_epoch_columns(run))
    row["time_s"] = summary.get("duration_s")
    row["error"] = summary.get("error") or ""
    return row


def _last_epoch_columns(run: Path) -> dict:
    """From the last line of metrics.jsonl: `gap` = train/acc - val/acc (overfitting), and the first and last
    layers' gradient norms when the gradient_norms callback logged them (the vanishing gradient)."""
    path = run / "metrics.jsonl"
    if not path.is_file():
        return {}
    lines = path.read_text().splitlines()
    try:
        last = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:  # a run killed mid-line
        return {}
    cols = {}
    if isinstance(last.get("train/acc"), (int, float)) and isinstance(last.get("val/acc"), (int, float)):
        cols["gap"] = last["train/acc"] - last["val/acc"]
    norms = [v for k, v in last.items() if k.startswith("grad_norm/")]
    if norms:
        cols["grad_norm/first"], cols["grad_norm/last"] = norms[0], norms[-1]
    return cols


def collect(folders) -> list[dict]:
    folders = [Path(f) for f in folders]
    root = folders[0] if len(folders) == 1 else None
    return [run_row(run, root) for run in find_runs(folders)]


def sort_rows(rows: list[dict], key: str | None = None) -> list[dict]:
    """By `key` (a column or override key; '-key' reverses), else by the monitored metric, best first;
    missing values last."""
    from dlrun.table import column_value

    if key is None:
        monitors = {r["monitor"] for r in rows}
        if len(monitors) != 1:
            return rows
        monitor = monitors.pop()
        key = f"best/{monitor}" if mode_for(monitor) == "min" else f"-best/{monitor}"
    reverse = key.startswith("-")
    key = key[1:] if reverse else key
    value = {id(r): column_value(r, key) for r in rows}
    present = [r for r in rows if isinstance(value[id(r)], (int, float))]
    missing = [r for r in rows if not isinstance(value[id(r)], (int, float))]
    if not present and missing and any(value[id(r)] is not None for r in rows):
        present, missing = sorted(missing, key=lambda r: str(value[id(r)])), []
        return present[::-1] if reverse else present
    return sorted(present, key=lambda r: value[id(r)], reverse=reverse) + missing


def filter_rows(rows: list[dict], filters: list[str]) -> list[dict]:
    """`key=value` matches a column exactly, or an override `key=value` of the run."""
    for f in filters:
        key, _, value = f.partition("=")
        rows = [r for r in rows if str(r.get(key)) == value or f"{key}={value}" in r["overrides"].split()]
    return rows


def columns_of(rows: list[dict]) -> list[str]:
    from dlrun.table import raw_columns

    return raw_columns(rows)


def render(rows: list[dict], fmt: str = "csv", columns: list[str] | None = None) -> str:
    """csv | markdown | json text of the rows (the terminal table: dlrun.table.print_table)."""
    from dlrun.table import render as render_rows

    return render_rows(rows, fmt, columns)


def write_csv(rows: list[dict], path: Path) -> None:
    from dlrun.records import atomic_write

    text = render(rows, "csv")
    atomic_write(Path(path), lambda f: f.write(text), mode="w")


def _dash_values(argv: list[str], options=("--sort",)) -> list[str]:
    """`--sort -test/acc` as written: argparse would take `-test/acc` for an option."""
    out = []
    for arg in argv:
        if out and out[-1] in options and arg.startswith("-") and not arg.startswith("--"):
            arg = f"{out.pop()}={arg}"
        out.append(arg)
    return out


def main(argv=None) -> int:
    from dlrun.table import FORMATS, display_rows, override_keys, print_table, priority_columns, resolve_columns

    ap = argparse.ArgumentParser(prog="dlrun-compare", description="Compare dlrun runs found under folders.")
    ap.add_argument("folders", nargs="*", help="run folders, sweep folders, or any folder above them")
    ap.add_argument("--sort", help="column to sort by, ascending ('-COLUMN': descending); default: the monitored "
                                   "metric, best first")
    ap.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                    help="keep runs whose column or override KEY equals VALUE (repeatable)")
    ap.add_argument("--columns", metavar="A,B,C", help="the columns to show, in this order (default: by priority, "
                                                       "as many as the terminal fits)")
    ap.add_argument("--format", choices=FORMATS, default="table")
    compare_views.add_arguments(ap)  # --group-by/--no-group, --env, --html, --diff
    args = ap.parse_args(_dash_values(list(sys.argv[1:] if argv is None else argv)))
    if args.diff or not args.folders:
        return compare_views.diff(args) if args.diff else ap.error("give at least one folder (or --diff RUN_A RUN_B)")
    missing = [f for f in args.folders if not Path(f).exists()]
    if missing:
        print(f"error: no such folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    rows = filter_rows(collect(args.folders), args.filter)
    if not rows:
        print("error: no dlrun runs (folders with summary.json) found", file=sys.stderr)
        return 2
    shown, differing, _ = display_rows(rows)
    available = list(dict.fromkeys(priority_columns(shown, differing) + columns_of(rows) + override_keys(rows)))
    columns, unknown = resolve_columns(args.columns.split(","), available) if args.columns else (None, [])
    sort, bad = (resolve_columns([args.sort.lstrip("-")], available) if args.sort else ([None], []))
    if unknown or bad:
        option = "--columns" if unknown else "--sort"
        print(f"error: {option} {', '.join(unknown or bad)}: no such column; columns are {', '.join(available)}",
              file=sys.stderr)
        return 2
    rows = sort_rows(rows, sort[0] and ("-" if args.sort.startswith("-") else "") + sort[0])
    if compare_views.show(args, rows):  # seeds grouped into mean ± std rows
        return 0
    if args.format == "table":
        from dlrun.console import console

        print_table(console, rows, columns)
    else:
        sys.stdout.write(render(rows, args.format, columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
