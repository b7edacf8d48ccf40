"""The runs table (`dlrun-compare`, the sweep's end): fitted to the terminal, or whole for pipes and machines.

A row is a dict from `dlrun.results.compare.run_row`. On a terminal the table never splits a cell: columns are
taken by priority (run, the overrides that differ between runs, status, the monitored metric, test
metrics, time, then the rest) while they fit, long names are shortened in the middle, and numbers keep
a fixed precision. Piped or redirected, every column is printed at its full width; `csv`, `markdown`
and `json` are the machine formats.
"""

from __future__ import annotations

import csv
import io
import json
import math

from dlrun.run_folder.run_record import STATUS_STYLE

FORMATS = ("table", "csv", "markdown", "json")
# how narrow a shortened text column may get (its header still fits whole)
_MIN_SHRUNK = {"run": 12, "error": 16}
_MIN_SHRUNK_OVERRIDE = 8
_HIDDEN = ("monitor", "overrides")  # `monitor` names a column; `overrides` is shown as one column per key


# -- cells ------------------------------------------------------------------------------------------------
def cell(value, column: str = "") -> str:
    """A value as the table shows it: floats at a fixed precision (times to 0.1 s), nothing for None."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value).lower()
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if column.endswith("time_s"):
            return f"{value:.1f}"
        return f"{value:.3e}" if value and (abs(value) >= 1e5 or abs(value) < 1e-4) else f"{value:.4f}"
    return str(value)


def shorten_middle(text: str, width: int) -> str:
    """`0_model-resnet_optimizer-adam` -> `0_model-…mizer-adam`: both ends stay, the middle goes."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    head = width // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


# -- overrides as columns ------------------------------------------------------------------------------------
def _parse_override(item: str) -> tuple[str, str]:
    key, eq, value = item.partition("=")
    if key.startswith("~"):
        return key[1:], "(removed)"
    return key.lstrip("+"), value if eq else ""


def override_keys(rows: list[dict]) -> list[str]:
    """Every key any row overrides, in order of appearance."""
    keys = {}
    for r in rows:
        keys.update((k, None) for k, _ in map(_parse_override, (r.get("overrides") or "").split()))
    return list(keys)


def split_overrides(rows: list[dict]) -> tuple[list[str], list[str], list[dict]]:
    """(keys whose value differs between rows, most values first; overrides every row shares; each row's
    {key: value})."""
    per_row = [dict(_parse_override(o) for o in (r.get("overrides") or "").split()) for r in rows]
    distinct = {k: len({d.get(k) for d in per_row}) for k in override_keys(rows)}
    # the keys with the most values first: in a mixed comparison those are the ones swept
    differing = sorted((k for k, n in distinct.items() if n > 1), key=lambda k: -distinct[k])
    sets = [set((r.get("overrides") or "").split()) for r in rows]
    common = sorted(set.intersection(*sets)) if len(rows) > 1 else []
    return differing, common, per_row


# -- columns -------------------------------------------------------------------------------------------------
def common_folder(runs: list[str]) -> str:
    """The folder all runs are in (`multiruns/<stamp>/`), which the table says once, not on every row."""
    parts = [str(r).split("/")[:-1] for r in runs]
    if len(runs) < 2 or not all(parts):
        return ""
    common = []
    for names in zip(*parts):
        if len(set(names)) > 1:
            break
        common.append(names[0])
    return "/".join(common) + "/" if common else ""


def display_rows(rows: list[dict], among: list[dict] | None = None) -> tuple[list[dict], list[str], list[str]]:
    """Rows with one column per differing override key; (rows, those keys, the shared overrides). `among`: the
    runs `rows` were taken from (the best N of a sweep), which say what differs and what all share."""
    differing, common, per_row = split_overrides(among or rows)
    if among:
        per_row = [dict(map(_parse_override, (r.get("overrides") or "").split())) for r in rows]
    elif len(rows) == 1:  # one run: nothing differs, its overrides are what there is to see
        common = (rows[0].get("overrides") or "").split()
    shown = [{**{k: d.get(k, "") for k in differing}, **r} for r, d in zip(rows, per_row)]
    return shown, differing, common


def _relative_runs(shown: list[dict]) -> tuple[list[dict], str]:
    folder = common_folder([r.get("run", "") for r in shown])
    return [{**r, "run": str(r.get("run", ""))[len(folder):]} for r in shown] if folder else shown, folder


def priority_columns(rows: list[dict], override_keys: list[str]) -> list[str]:
    """Every column, most important first: run, differing overrides, status, monitored metric, tests, time, rest."""
    present = []
    for r in rows:
        present += [k for k in r if k not in present and k not in _HIDDEN]
    monitors = [f"best/{m}" for m in dict.fromkeys(r.get("monitor") for r in rows) if m]
    tests = [c for c in present if c.startswith("test/")]
    head = ["run", *override_keys, "status", *monitors, *tests, "time_s"]
    rest = [c for c in present if c not in head and c != "error"]
    tail = ["error"] if any(r.get("error") for r in rows) else []
    return [c for c in head if c in present or c in override_keys] + rest + tail


def column_value(row: dict, column: str):
    """A field of the row, or the value the row's overrides give `column` (an override key)."""
    if column in row:
        return row[column]
    return dict(_parse_override(o) for o in (row.get("overrides") or "").split()).get(column)


def resolve_columns(wanted: list[str], available: list[str]) -> tuple[list[str], list[str]]:
    """(the columns asked for, by exact name or a unique last part such as `lr`; the names not found)."""
    found, unknown = [], []
    for name in wanted:
        matches = [name] if name in available else [c for c in available if c.rsplit(".", 1)[-1] == name
                                                     or c.rsplit("/", 1)[-1] == name]
        (found.append(matches[0]) if len(matches) == 1 else unknown.append(name))
    return found, unknown


def _headers(columns: list[str], override_keys: list[str]) -> dict[str, str]:
    """Override keys by their last part when that is unique (`weight_decay`, not `optimizer.weight_decay`)."""
    last = [c.rsplit(".", 1)[-1] for c in columns]
    return {c: (short if c in override_keys and last.count(short) == 1 else c) for c, short in zip(columns, last)}


# -- fitting -------------------------------------------------------------------------------------------------
def _table_width(widths: list[int]) -> int:
    """The printed width of `_make_table` with these column widths: one space of padding each side,
    none at the outer edges, no rules between columns."""
    return sum(widths) + 2 * max(len(widths) - 1, 0)


def fit(columns: list[str], headers: dict, texts: dict, width: int | None, override_keys=(),
        strict: bool = False) -> tuple[list, dict]:
    """(the columns that fit `width`, their widths). `run` is always kept; text columns (run, overrides,
    error) may shrink down to a minimum, numbers and headers never. `strict` (columns a user chose): taken
    in their order."""
    natural = {c: max([len(headers[c]), *map(len, texts[c])]) for c in columns}
    if width is None:
        return columns, natural

    def minimum(c):
        floor = _MIN_SHRUNK.get(c, _MIN_SHRUNK_OVERRIDE if c in override_keys else None)
        return natural[c] if floor is None else min(natural[c], max(floor, len(headers[c])))

    # taken in this order while they fit (the run, its status and its result before the overrides, which can be
    # many), shown in the order of `columns`
    first = [] if strict else [c for c in columns if c in ("run", "status") or c.startswith("best/")]
    chosen = []
    for c in first + [c for c in columns if c not in first]:
        if c == "run" or _table_width([minimum(x) for x in chosen + [c]]) <= width:
            chosen.append(c)
    chosen = [c for c in columns if c in chosen]
    widths = {c: minimum(c) for c in chosen}
    spare = width - _table_width(list(widths.values()))
    for c in chosen:  # give the room left back to the shrunk columns, most important first
        grow = min(spare, natural[c] - widths[c])
        if grow > 0:
            widths[c] += grow
            spare -= grow
    if spare < 0 and "run" in widths:  # only `run` left and still too wide: cut it to the terminal
        widths["run"] = max(1, widths["run"] + spare)
    return chosen, widths


def _make_table(title, caption):
    from rich.table import Table

    # no rules: two spaces between columns leave room for one more column at 80
    return Table(title=title, caption=caption, title_justify="left", caption_justify="left", box=None,
                 header_style="bold underline", pad_edge=False, padding=(0, 1))


def runs_table(rows: list[dict], width: int | None = None, columns: list[str] | None = None, title: str | None = None,
               among: list[dict] | None = None):
    """A rich Table of `rows` no wider than `width` (None: every column, full width); `among`: see display_rows."""
    shown, override_keys, common = display_rows(rows, among)
    shown, folder = _relative_runs(shown)
    all_columns = priority_columns(shown, override_keys)
    strict, columns = bool(columns), columns or all_columns
    headers = _headers(columns, override_keys)
    texts = {c: [cell(column_value(r, c), c) for r in shown] for c in columns}
    chosen, widths = fit(columns, headers, texts, width, override_keys, strict)
    notes = [f"runs in {folder}"] if folder else []
    if common:
        notes.append("all runs: " + " ".join(common))
    left_out = [c for c in columns if c not in chosen]
    if left_out:
        notes.append(f"too wide to show: {', '.join(left_out)} (--columns chooses)")
    table = _make_table(title, "\n".join(notes) or None)
    for c in chosen:
        values = [v for v in (column_value(r, c) for r in shown) if v is not None]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        table.add_column(headers[c], justify="right" if numeric else "left", no_wrap=True, overflow="ellipsis",
                         width=widths[c])
    for r, row in zip(shown, zip(*(texts[c] for c in chosen)) if chosen else []):
        table.add_row(*(shorten_middle(t, widths[c]) for c, t in zip(chosen, row)),
                      style=STATUS_STYLE.get(r.get("status"), ""))
    return table


def print_table(console, rows: list[dict], columns: list[str] | None = None, title: str | None = None,
                among: list[dict] | None = None) -> None:
    """On a terminal: fitted to its width. Piped or redirected: every column whole, never cut at 80."""
    if console.is_terminal:
        console.print(runs_table(rows, console.width, columns, title, among))
        return
    from rich.console import Console

    table = runs_table(rows, None, columns, title, among)
    buf = io.StringIO()
    Console(file=buf, width=100_000, color_system=None, highlight=False).print(table)
    console.file.write("\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n")


# -- machine formats ------------------------------------------------------------------------------------------
def raw_columns(rows: list[dict]) -> list[str]:
    """summary.csv's columns: run, overrides, status, epochs, best epoch, then every other field."""
    cols = ["run", "overrides", "status", "epochs", "best_epoch"]
    for r in rows:
        cols += [k for k in r if k not in cols and k not in ("monitor", "error")]
    if any(r.get("error") for r in rows):
        cols.append("error")
    return cols


def render(rows: list[dict], fmt: str, columns: list[str] | None = None) -> str:
    """csv and json hold the raw values of every field (or of `columns`); markdown is the table's columns."""
    if fmt == "markdown":  # the table's columns; the overrides all runs share in a line below, as in the table
        shown, override_keys, common = display_rows(rows)
        cols = columns or priority_columns(shown, override_keys)
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(cell(column_value(r, c), c).replace("|", "\\|") for c in cols) + " |" for r in shown]
        if common and not columns:
            lines += ["", "All runs: " + " ".join(f"`{o}`" for o in common)]
        return "\n".join(lines) + "\n"
    if columns:  # an override key chosen as a column: its value per row
        shown = display_rows(rows)[0]
        rows = [{c: column_value(r, c) for c in columns} for r in shown]
    cols = columns or raw_columns(rows)
    if fmt == "json":
        return json.dumps([{c: r.get(c) for c in cols} for r in rows], indent=1) + "\n"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
