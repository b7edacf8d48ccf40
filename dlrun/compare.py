"""`dlrun-compare DIR...`: one table of the runs found under folders (single runs and sweeps).

A run folder is any folder with a summary.json; its overrides come from Hydra's
`.hydra/overrides.yaml`. The sweep-end table and summary.csv are made by the same functions.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

import yaml

from dlrun.metrics import mode_for

BASE_COLUMNS = ["run", "overrides", "status", "epochs", "best_epoch"]


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
    """By `key` (a column; '-key' reverses), else by the monitored metric, best first; missing values last."""
    if key is None:
        monitors = {r["monitor"] for r in rows}
        if len(monitors) != 1:
            return rows
        monitor = monitors.pop()
        key = f"best/{monitor}" if mode_for(monitor) == "min" else f"-best/{monitor}"
    reverse = key.startswith("-")
    key = key.lstrip("-")
    present = [r for r in rows if isinstance(r.get(key), (int, float))]
    missing = [r for r in rows if not isinstance(r.get(key), (int, float))]
    if not present and missing and any(key in r for r in rows):
        present, missing = sorted(missing, key=lambda r: str(r.get(key))), []
        return present[::-1] if reverse else present
    return sorted(present, key=lambda r: r[key], reverse=reverse) + missing


def filter_rows(rows: list[dict], filters: list[str]) -> list[dict]:
    """`key=value` matches a column exactly, or an override `key=value` of the run."""
    for f in filters:
        key, _, value = f.partition("=")
        rows = [r for r in rows if str(r.get(key)) == value or f"{key}={value}" in r["overrides"].split()]
    return rows


def columns_of(rows: list[dict]) -> list[str]:
    cols = list(BASE_COLUMNS)
    for r in rows:
        cols += [k for k in r if k not in cols and k not in ("monitor", "error")]
    if any(r.get("error") for r in rows):
        cols.append("error")
    return cols


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def render(rows: list[dict], fmt: str = "table", title: str = "runs") -> str:
    cols = columns_of(rows)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()
    if fmt == "markdown":
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(_cell(r.get(c)) for c in cols) + " |" for r in rows]
        return "\n".join(lines) + "\n"
    buf = io.StringIO()
    from rich.console import Console

    Console(file=buf, width=200, force_terminal=False).print(rich_table(rows, title))
    return buf.getvalue()


def rich_table(rows: list[dict], title: str = "runs"):
    """The terminal table: overrides shared by every run go to the caption, each row shows what differs."""
    from rich.table import Table

    override_sets = [r["overrides"].split() for r in rows]
    common = set.intersection(*map(set, override_sets)) if len(rows) > 1 else set()
    table = Table(title=title, title_justify="left", caption=" ".join(sorted(common)) or None, caption_justify="left")
    cols = columns_of(rows)
    for c in cols:
        # folder names repeat the overrides: keep them short, wrap the overrides instead
        table.add_column(c, overflow="ellipsis" if c == "run" else "fold", max_width=12 if c == "run" else None,
                         min_width=24 if c == "overrides" else None, no_wrap=c == "run")
    style = {"completed": "green", "stopped_early": "green", "interrupted": "yellow", "failed": "red"}
    for r, overrides in zip(rows, override_sets):
        shown = {**r, "overrides": " ".join(o for o in overrides if o not in common)}
        table.add_row(*(_cell(shown.get(c)) for c in cols), style=style.get(r.get("status"), ""))
    return table


def write_csv(rows: list[dict], path: Path) -> None:
    from dlrun.records import atomic_write

    text = render(rows, "csv")
    atomic_write(Path(path), lambda f: f.write(text), mode="w")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="dlrun-compare", description="Compare dlrun runs found under folders.")
    ap.add_argument("folders", nargs="+", help="run folders, sweep folders, or any folder above them")
    ap.add_argument("--sort", help="column to sort by ('-col' for descending); default: the monitored metric")
    ap.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                    help="keep runs whose column or override KEY equals VALUE (repeatable)")
    ap.add_argument("--format", choices=["table", "csv", "markdown"], default="table")
    args = ap.parse_args(argv)
    missing = [f for f in args.folders if not Path(f).exists()]
    if missing:
        print(f"error: no such folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    rows = filter_rows(collect(args.folders), args.filter)
    if not rows:
        print("error: no dlrun runs (folders with summary.json) found", file=sys.stderr)
        return 2
    bad = args.sort and args.sort.lstrip("-") not in columns_of(rows)
    if bad:
        print(f"error: --sort {args.sort}: no such column; columns are {', '.join(columns_of(rows))}", file=sys.stderr)
        return 2
    rows = sort_rows(rows, args.sort)
    if args.format == "table":
        from dlrun.console import console

        console.print(rich_table(rows))
    else:
        sys.stdout.write(render(rows, args.format))
    return 0


if __name__ == "__main__":
    sys.exit(main())
