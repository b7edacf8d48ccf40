"""`dlrun-compare DIR...`: one table of the runs found under folders (single runs and sweeps).

A run folder is any folder with a summary.json; its overrides come from Hydra's
`.hydra/overrides.yaml`. The sweep-end table and summary.csv are made by the same functions.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

import yaml

from dlrun.results import compare_views
from dlrun.run_folder.metric_mode import mode_for
from dlrun.run_folder.run_record import read_bytes, read_summary

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's C parser: ~10x the pure-Python one

_NO_RUNS_INSIDE = {"checkpoints", "tb", ".hydra"}  # a run's own folders: never walked into


def find_runs(folders) -> list[Path]:
    """Every run folder (one with a summary.json) at or under `folders`; a retried job's failed-N/ archives and
    a run's checkpoints/, tb/ and .hydra/ are not walked (os.scandir: one call per folder, no stat per file)."""
    runs = set()
    stack = [os.fspath(f) for f in folders]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for e in entries:
            if e.name == "summary.json" and e.is_file():
                runs.add(folder)
            elif e.name not in _NO_RUNS_INSIDE and not e.name.startswith("failed-") and e.is_dir():
                stack.append(e.path)
    return [Path(r) for r in sorted(runs)]


def _read(path: str) -> str | None:
    try:
        return read_bytes(path).decode()
    except (OSError, UnicodeDecodeError):
        return None


def _overrides(run: str) -> list[str]:
    """.hydra/overrides.yaml: Hydra writes one `- key=value` line per override, which is read as it is; YAML's
    parser (libyaml's where present) only for a quoted or folded item."""
    text = _read(os.path.join(run, ".hydra", "overrides.yaml"))
    if not text:
        return []
    lines = text.splitlines()
    if all(line.startswith("- ") and line[2:3] not in ("'", '"', "") for line in lines):
        items = [line[2:] for line in lines]
    else:
        items = yaml.load(text, Loader=_YAML_LOADER) or []
    return [o for o in items if not o.lstrip("+~").startswith("hydra.")]


_MONITOR_LINE = re.compile(r"^monitor:[ \t]*(.*?)[ \t]*$", re.MULTILINE)


def _monitor(run: str, best: dict) -> str:
    """The metric best/ holds (the loop records the monitored one); for a run without one yet, the config's
    top-level `monitor:` line, read without parsing the whole config."""
    monitor = next((k for k in best if k != "epoch"), None)
    if monitor:
        return monitor
    found = _MONITOR_LINE.search(_read(os.path.join(run, ".hydra", "config.yaml")) or "")
    value = found and (yaml.load(found.group(1), Loader=_YAML_LOADER) if found.group(1)[:1] in "'\"" else found.group(1))
    return str(value) if value and value != "null" else "val/acc"


def run_row(run: Path, root: Path | None = None, monitor: str | None = None) -> dict | None:
    """One row of the table; None when the run's summary.json cannot be read (a run being written). Reads the
    run's summary.json, overrides.yaml and the last line of its metrics.jsonl (a sweep's job passes the
    monitor its config names)."""
    record = read_summary(run)
    if record is None:
        return None
    summary = record.to_dict()
    best = summary.get("best") or {}
    run = os.fspath(run)
    monitor = monitor or _monitor(run, best)
    if "landscape" in summary:  # task=landscape: steps, not epochs; the lowest loss reached is the result
        monitor, best = "landscape/loss", {"landscape/loss": summary["landscape"].get("best_loss")}
    prefix = None if root is None else "" if os.fspath(root) == "." else os.fspath(root) + os.sep
    row = {
        "run": run[len(prefix):] if prefix is not None and run.startswith(prefix) and run != root else run,
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


def _last_epoch_columns(run: str) -> dict:
    """From the last line of metrics.jsonl: `gap` = train/acc - val/acc (overfitting), and the first and last
    layers' gradient norms when the gradient_norms callback logged them (the vanishing gradient)."""
    try:
        last = json.loads(_last_line(os.path.join(run, "metrics.jsonl")) or "{}")
    except (OSError, json.JSONDecodeError):  # no metrics, or a run killed mid-line
        return {}
    cols = {}
    if isinstance(last.get("train/acc"), (int, float)) and isinstance(last.get("val/acc"), (int, float)):
        cols["gap"] = last["train/acc"] - last["val/acc"]
    norms = [v for k, v in last.items() if k.startswith("grad_norm/")]
    if norms:
        cols["grad_norm/first"], cols["grad_norm/last"] = norms[0], norms[-1]
    return cols


def _last_line(path: str, block: int = 8192) -> str:
    """The file's last line, read from its end (a long run's metrics.jsonl has thousands)."""
    while True:
        data = read_bytes(path, block)
        lines = data.rstrip(b"\n").split(b"\n")
        if len(lines) > 1 or len(data) < block:
            return lines[-1].decode()
        block *= 4


def collect(folders) -> list[dict]:
    folders = [Path(f) for f in folders]
    root = folders[0] if len(folders) == 1 else None
    rows = (run_row(run, root) for run in find_runs(folders))
    return [r for r in rows if r is not None]


def sort_rows(rows: list[dict], key: str | None = None) -> list[dict]:
    """By `key` (a column or override key; '-key' reverses), else by the monitored metric, best first;
    missing values last."""
    from dlrun.results.table import column_value

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
    from dlrun.results.table import raw_columns

    return raw_columns(rows)


def render(rows: list[dict], fmt: str = "csv", columns: list[str] | None = None) -> str:
    """csv | markdown | json text of the rows (the terminal table: dlrun.results.table.print_table)."""
    from dlrun.results.table import render as render_rows

    return render_rows(rows, fmt, columns)


def write_csv(rows: list[dict], path: Path) -> None:
    from dlrun.run_folder.records import atomic_write

    text = render(rows, "csv")
    atomic_write(Path(path), lambda f: f.write(text), mode="w")


TERMINAL_TOP = 50  # rows dlrun-compare shows at a terminal without --top: a 10,000-job sweep would scroll away


def print_top(console, rows: list[dict], top: int, columns: list[str] | None = None, title: str | None = None,
              full_table: Path | None = None, sorted_by: str | None = None) -> None:
    """The table of `rows` (sorted, best first); beyond `top` rows (0: no limit) only the best `top`, then the
    counts by status, the best run's overrides, and where every row is. `sorted_by`: the column the rows
    were sorted on, when not the monitor (`--sort`)."""
    from dlrun.results.table import cell, print_table, split_overrides

    if not top or len(rows) <= top:
        print_table(console, rows, columns, title)
        return
    monitors = {r["monitor"] for r in rows}
    by = f" by best/{next(iter(monitors))}" if len(monitors) == 1 else ""
    head = f"the first {top} of {len(rows)} sorted by {sorted_by}" if sorted_by else f"the best {top} of {len(rows)}{by}"
    print_table(console, rows[:top], columns, f"{title + ': ' if title else ''}{head}", among=rows)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.get("status")] = counts.get(r.get("status"), 0) + 1
    best, (differing, _, _) = rows[0], split_overrides(rows)
    metric = f"best/{best['monitor']}"
    setting = " ".join(o for o in (best.get("overrides") or "").split() if o.lstrip("+~").split("=")[0] in differing)
    lines = ["by status: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: -kv[1])),
             f"{'first' if sorted_by else 'best'}: {best['run']} {metric}={cell(best.get(metric), metric)} {setting}".rstrip(),
             f"every row: {full_table}" if full_table else "every row: --top 0 (or --format csv)"]
    console.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)


def _dash_values(argv: list[str], options=("--sort",)) -> list[str]:
    """`--sort -test/acc` as written: argparse would take `-test/acc` for an option."""
    out = []
    for arg in argv:
        if out and out[-1] in options and arg.startswith("-") and not arg.startswith("--"):
            arg = f"{out.pop()}={arg}"
        out.append(arg)
    return out


def main(argv=None) -> int:
    from dlrun.results.table import FORMATS, display_rows, override_keys, priority_columns, resolve_columns

    ap = argparse.ArgumentParser(prog="dlrun-compare", description="Compare dlrun runs found under folders.")
    ap.add_argument("folders", nargs="*", help="run folders, sweep folders, or any folder above them")
    ap.add_argument("--sort", help="column to sort by, ascending ('-COLUMN': descending); default: the monitored "
                                   "metric, best first")
    ap.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                    help="keep runs whose column or override KEY equals VALUE (repeatable)")
    ap.add_argument("--columns", metavar="A,B,C", help="the columns to show, in this order (default: by priority, "
                                                       "as many as the terminal fits)")
    ap.add_argument("--format", choices=FORMATS, default="table")
    ap.add_argument("--top", type=int, default=None, metavar="N",
                    help="only the best N rows (by --sort, else the monitored metric), then the counts by status "
                         f"and the best run; 0: every row. Default: {TERMINAL_TOP} at a terminal, every row into a "
                         "pipe or file")
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
    sort_key = sort[0] and ("-" if args.sort.startswith("-") else "") + sort[0]  # None: by the monitor
    rows = sort_rows(rows, sort_key)
    if args.top is not None and args.top < 0:
        print(f"error: --top {args.top}: give a number of rows >= 0 (0: every row)", file=sys.stderr)
        return 2
    if compare_views.show(args, rows):  # seeds grouped into mean ± std rows
        return 0
    if args.format == "table":
        from dlrun.console import console

        top = args.top if args.top is not None else (TERMINAL_TOP if console.is_terminal else 0)
        print_top(console, rows, top, columns, sorted_by=sort_key)
    else:
        sys.stdout.write(render(rows[:args.top] if args.top else rows, args.format, columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
