"""What `dlrun-compare` and a sweep's end show besides the table of runs: seeds grouped into mean ± std rows,
env.json fields as columns, report.html, and `--diff RUN_A RUN_B`."""

from __future__ import annotations

import sys
from pathlib import Path


def add_arguments(ap) -> None:
    ap.add_argument("--group-by", metavar="KEY[,KEY]", nargs="?", const="",
                    help="one row per configuration with each metric as mean ± std (n runs); the default when runs "
                         "differ only in seed; keys default to every override but seed")
    ap.add_argument("--no-group", action="store_true", help="one row per run, even when seeds repeat")
    ap.add_argument("--env", metavar="FIELD[,FIELD]",
                    help="env.json fields as columns (git_commit, git_dirty, device_name, torch, hostname, ...)")
    ap.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report of the runs to FILE")
    ap.add_argument("--diff", nargs=2, metavar=("RUN_A", "RUN_B"),
                    help="the config keys, metrics and env.json fields that differ between two runs")


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def diff(args) -> int:
    from dlrun.results.config_diff import diff_check, print_diff

    if problem := diff_check(args.diff):
        return _error(problem)
    print_diff(*args.diff)
    return 0


def _keys(text: str | None) -> list[str] | None:
    keys = [k.strip() for k in (text or "").split(",") if k.strip()]
    return keys or None


def add_env_columns(rows: list[dict], fields: list[str], root: Path | None) -> None:
    from dlrun.results.figures import run_path
    from dlrun.run_folder.provenance import read_env

    for row in rows:
        env = read_env(run_path(row, root))
        row.update({f"env/{f}": env.get(f) for f in fields})


def show(args, rows: list[dict]) -> bool:
    """Adds --env columns to `rows`, writes --html, prints the grouped table; True when that replaces the
    table of single runs."""
    from dlrun.results import aggregate

    root = Path(args.folders[0]) if len(args.folders) == 1 else None
    if args.env:
        from dlrun.run_folder.provenance import FIELDS

        unknown = [f for f in _keys(args.env) or [] if f not in FIELDS]
        if unknown:
            raise SystemExit(_error(f"--env {','.join(unknown)}: no such env.json field; fields are {', '.join(FIELDS)}"))
        add_env_columns(rows, _keys(args.env), root)
    by = _keys(args.group_by)
    if args.html:
        from dlrun.results.html_report import write_report

        write_report(Path(args.html), rows, "dlrun runs: " + " ".join(args.folders), root, by)
        print(f"wrote {args.html} ({len(rows)} runs)", file=sys.stderr)
    if args.no_group:
        return False
    groups = aggregate.group_rows(rows, by, root)
    if args.group_by is None and not aggregate.has_repeats(groups):
        return False
    if args.format == "table":
        from dlrun.console import console

        console.print(aggregate.rich_table(groups))
    else:
        sys.stdout.write(aggregate.render(groups, args.format))
    return True


def sweep_end(sweep_dir: Path, rows: list[dict], total: int | None = None) -> None:
    """After the sweep's table: the seed groups (when seeds repeat), then curves.png, metrics.png, report.html.
    `rows` may be the best of `total` jobs (a large sweep's report shows those)."""
    from dlrun.results import aggregate
    from dlrun.console import console
    from dlrun.results.html_report import write_sweep_report

    groups = aggregate.group_rows(rows, None, sweep_dir)
    if aggregate.has_repeats(groups) and len(groups) <= 50:  # more groups than that: report.html has them
        console.print(aggregate.rich_table(groups))
    if write_sweep_report(sweep_dir, rows, total):
        console.print(f"report.html, curves.png and metrics.png in {sweep_dir}", markup=False, highlight=False)
