"""Runs that differ only in their seed, as one row: each metric's mean ± std (sample std, ddof=1) over n runs.

Rows are `dlrun.results.compare.run_row` dicts. A group is keyed by the overrides of its runs (every key but `seed`),
or by the keys the user names (`dlrun-compare --group-by optimizer,model`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from dlrun.run_folder.metric_mode import mode_for

IGNORED_KEY = "seed"
_NOT_AGGREGATED = {"run", "overrides", "status", "monitor", "error"}


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float | None  # None with a single value: a sample std needs two
    n: int

    def __str__(self) -> str:
        return self.text()

    def text(self, runs: int | None = None) -> str:
        """`mean ± std (n)`; the (n) left out when it equals `runs`, the group's number of runs."""
        shown = f"{self.mean:.4f}" if self.std is None else f"{self.mean:.4f} ± {self.std:.4f}"
        return shown if self.n == runs else f"{shown} ({self.n})"


def stat(values: list[float]) -> Stat | None:
    values = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)
              and math.isfinite(v)]
    if not values:
        return None
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return Stat(mean, std, n)


def override_key(override: str) -> str:
    return override.lstrip("+~").partition("=")[0]


def overrides_of(row: dict) -> list[str]:
    return row["overrides"].split()


def _config_value(row: dict, key: str, root: Path | None):
    """A key's value from the run's .hydra/config.yaml, for runs that did not override it."""
    import yaml

    for base in ([root] if root else []) + [Path(".")]:
        path = base / row["run"] / ".hydra" / "config.yaml"
        if path.is_file():
            node = yaml.safe_load(path.read_text()) or {}
            for part in key.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            return node
    return None


def group_label(row: dict, by: list[str] | None, root: Path | None = None) -> str:
    """What identifies the row's configuration: its overrides but the seed, or `key=value` for each `by` key."""
    if by is None:
        return " ".join(sorted(o for o in overrides_of(row) if override_key(o) != IGNORED_KEY))
    given = {override_key(o): o.lstrip("+~") for o in overrides_of(row)}
    return " ".join(given.get(k) or f"{k}={_config_value(row, k, root)}" for k in by)


def group_rows(rows: list[dict], by: list[str] | None = None, root: Path | None = None) -> list[dict]:
    """One dict per configuration: `config`, `n`, `status`, `monitor`, `runs` and a Stat per numeric column,
    best mean of the monitored metric first."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(group_label(row, by, root), []).append(row)
    out = []
    for label, members in groups.items():
        statuses: dict[str, int] = {}
        for r in members:
            statuses[r.get("status")] = statuses.get(r.get("status"), 0) + 1
        group = {"config": label or "(defaults)", "n": len(members),
                 "status": ", ".join(f"{n} {s}" for s, n in statuses.items()),
                 "monitor": members[0].get("monitor"), "runs": members}
        for col in columns_to_aggregate(members):
            group[col] = stat([r.get(col) for r in members])
        out.append(group)
    return sort_groups(out)


def columns_to_aggregate(rows: list[dict]) -> list[str]:
    cols: list[str] = []
    for r in rows:
        cols += [k for k, v in r.items() if k not in cols and k not in _NOT_AGGREGATED
                 and isinstance(v, (int, float)) and not isinstance(v, bool)]
    return cols


def sort_groups(groups: list[dict]) -> list[dict]:
    monitors = {g["monitor"] for g in groups}
    if len(monitors) != 1:
        return groups
    monitor = monitors.pop()
    col, sign = f"best/{monitor}", 1 if mode_for(monitor or "") == "min" else -1
    present = [g for g in groups if isinstance(g.get(col), Stat)]
    missing = [g for g in groups if not isinstance(g.get(col), Stat)]
    return sorted(present, key=lambda g: sign * g[col].mean) + missing


def has_repeats(groups: list[dict]) -> bool:
    return any(g["n"] > 1 for g in groups)


def stat_columns(groups: list[dict], main_only: bool = False) -> list[str]:
    """The aggregated columns; `main_only`: those that fit a terminal (best/…, the main test metric, time_s)."""
    cols: list[str] = []
    for g in groups:
        cols += [k for k, v in g.items() if k not in cols and isinstance(v, Stat)]
    if main_only:
        from dlrun.results.figures import main_test_metric

        monitor = next((g["monitor"] for g in groups if g.get("monitor")), "val/acc")
        test = main_test_metric(monitor, cols)
        cols = [c for c in cols if c.startswith("best/") or c in (test, "time_s")]
    return cols


def all_ok(groups: list[dict]) -> bool:
    from dlrun.run_folder.run_record import FINISHED

    return all(r.get("status") in FINISHED for g in groups for r in g["runs"])


def differing(configs: list[str]) -> tuple[list[str], str]:
    """Each space-separated override list without the overrides all share, and the shared ones (a caption)."""
    sets = [c.split() for c in configs]
    common = set.intersection(*map(set, sets)) if len(sets) > 1 else set()
    labels = [" ".join(o for o in s if o not in common) or "(defaults)" for s in sets]
    return labels, " ".join(sorted(common))


def table_cells(groups: list[dict], main_only: bool = False) -> tuple[list[str], list[list[str]], str]:
    """(header, rows, caption) of the grouped table, shared by the terminal and report.html."""
    cols = stat_columns(groups, main_only)
    ok = all_ok(groups)
    labels, common = differing([g["config"] for g in groups])
    header = ["config", "n"] + ([] if ok else ["status"]) + cols
    rows = [[label, str(g["n"])] + ([] if ok else [g["status"]]) + [g[c].text(g["n"]) if g.get(c) else "" for c in cols]
            for label, g in zip(labels, groups)]
    return header, rows, common


def flat_records(groups: list[dict]) -> list[dict]:
    """CSV/markdown form: `COL_mean`, `COL_std`, one per metric."""
    out = []
    for g in groups:
        rec = {"config": g["config"], "n": g["n"], "status": g["status"]}
        for col in stat_columns(groups):
            s = g.get(col)
            rec[f"{col}_mean"] = s.mean if s else None
            rec[f"{col}_std"] = s.std if s else None
        out.append(rec)
    return out


def rich_table(groups: list[dict], title: str = "configurations: mean ± std over their runs (n)"):
    from rich.table import Table

    header, rows, common = table_cells(groups, main_only=True)
    table = Table(title=title, title_justify="left", caption=common or None, caption_justify="left")
    widest = max((len(o) for row in rows for o in row[0].split()), default=8)
    for c in header:  # an override is not broken across lines
        table.add_column(c, justify="left" if c in ("config", "status") else "right",
                         overflow="fold", min_width=min(widest, 30) if c == "config" else None)
    for row in rows:
        table.add_row(*row)
    return table


def render(groups: list[dict], fmt: str) -> str:
    """csv or markdown text of the groups."""
    import csv
    import io

    recs = flat_records(groups)
    cols = list(recs[0]) if recs else ["config", "n", "status"]
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=cols)
        writer.writeheader()
        writer.writerows(recs)
        return buf.getvalue()
    cell = lambda v: f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v))  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in recs]
    return "\n".join(lines) + "\n"
