"""report.html: a sweep's (or any set of runs') table, figures, overrides and statuses in ONE file that opens
offline: images are data URIs, the style is inline, nothing is fetched and no script is needed."""

from __future__ import annotations

import base64
import html
import logging
from datetime import datetime, timezone
from pathlib import Path

from dlrun.run_folder.run_record import STATUS_CLASS

log = logging.getLogger("dlrun")

MAX_JOB_FIGURES = 30  # beyond this many runs, each run's own curves are left out (the file stays small)

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;padding:1.5rem;color:#222;
     background:#fafafa;line-height:1.4}
main{max-width:1200px;margin:auto}
h1{font-size:1.4rem;margin:0 0 .3rem} h2{font-size:1.1rem;margin:1.6rem 0 .5rem;border-bottom:1px solid #ddd}
.meta{color:#666;font-size:.85rem}
.scroll{overflow-x:auto;background:#fff;border:1px solid #ddd;border-radius:4px}
table{border-collapse:collapse;font-size:.82rem;width:100%}
th,td{padding:.3rem .55rem;text-align:right;white-space:nowrap;border-bottom:1px solid #eee}
th{background:#f0f0f0;position:sticky;top:0} td.text,th.text{text-align:left;white-space:normal;min-width:12rem}
tr.ok td.status{color:#17803d} tr.warn td.status{color:#a66b00} tr.bad td.status{color:#c62828;font-weight:600}
td.error{color:#c62828;text-align:left;white-space:normal}
img{max-width:100%;height:auto;background:#fff;border:1px solid #ddd;border-radius:4px}
details{background:#fff;border:1px solid #ddd;border-radius:4px;margin:.4rem 0;padding:.4rem .7rem}
summary{cursor:pointer;font-family:ui-monospace,monospace;font-size:.85rem}
code,pre{font-family:ui-monospace,monospace;font-size:.8rem} pre{white-space:pre-wrap;margin:.3rem 0}
"""


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _img(png: bytes, alt: str) -> str:
    return f'<img src="{data_uri(png)}" alt="{html.escape(alt)}">'


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def _table(header: list[str], rows: list[list[str]], text_cols=(), classes: list[str] | None = None) -> str:
    """An HTML table from already formatted cells; `text_cols` are left-aligned and wrap."""
    def cls(c):
        return ' class="text"' if c in text_cols else ""

    out = ['<div class="scroll"><table><thead><tr>']
    out += [f"<th{cls(i)}>{html.escape(h)}</th>" for i, h in enumerate(header)]
    out.append("</tr></thead><tbody>")
    for r, row in enumerate(rows):
        tr_class = f' class="{classes[r]}"' if classes and classes[r] else ""
        cells = []
        for i, value in enumerate(row):
            col_class = ("text " if i in text_cols else "") + ("status" if header[i] == "status" else "")
            col_class += "error" if header[i] == "error" else ""
            attr = f' class="{col_class.strip()}"' if col_class.strip() else ""
            cells.append(f"<td{attr}>{html.escape(value)}</td>")
        out.append(f"<tr{tr_class}>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def runs_table(rows: list[dict]) -> str:
    from dlrun.results.compare import columns_of
    from dlrun.results.aggregate import differing

    cols = columns_of(rows)
    shown, _ = differing([r["overrides"] for r in rows])
    body = [[shown[i] if c == "overrides" else _cell(r.get(c)) for c in cols] for i, r in enumerate(rows)]
    text = {cols.index(c) for c in ("run", "overrides") if c in cols}
    return _table(cols, body, text, [STATUS_CLASS.get(r.get("status"), "") for r in rows])


def groups_table(groups: list[dict]) -> str:
    from dlrun.results.aggregate import table_cells

    header, body, _ = table_cells(groups)  # the shared overrides are in the page's header
    classes = ["ok" if all(STATUS_CLASS.get(r.get("status")) == "ok" for r in g["runs"]) else "warn" for g in groups]
    return _table(header, body, {0} | ({2} if "status" in header else set()), classes)


def _job_details(rows: list[dict], root: Path | None) -> str:
    from dlrun.results.figures import run_path
    from dlrun.run_folder.provenance import read_env

    parts = []
    for r in rows:
        path = run_path(r, root)
        summary = f"{r['run']} · {r.get('status')} · {r['overrides'] or '(defaults)'}"
        inner = [f"<pre>dlrun {html.escape(r['overrides'])}</pre>"]
        if r.get("error"):
            inner.append(f'<pre class="error">{html.escape(r["error"])}</pre>')
        env = read_env(path)
        if env:
            keys = ("git_commit", "git_dirty", "device_name", "torch", "hostname", "started_utc")
            inner.append("<pre>" + html.escape("  ".join(f"{k}={env.get(k)}" for k in keys if k in env)) + "</pre>")
        if len(rows) <= MAX_JOB_FIGURES:
            for name in ("curves.png", "confusion_matrix.png"):
                if (path / name).is_file():
                    inner.append(_img((path / name).read_bytes(), f"{r['run']} {name}"))
        parts.append(f"<details><summary>{html.escape(summary)}</summary>{''.join(inner)}</details>")
    return "".join(parts)


def build_report(rows: list[dict], groups: list[dict], figures: dict[str, bytes], title: str,
                 root: Path | None = None) -> str:
    """The whole page as a string: rows from compare.run_row, groups from aggregate.group_rows,
    figures as PNG bytes by name (curves, metrics, ...)."""
    from dlrun import __version__
    from dlrun.results.aggregate import has_repeats

    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r.get("status")] = statuses.get(r.get("status"), 0) + 1
    common = set.intersection(*(set(r["overrides"].split()) for r in rows)) if len(rows) > 1 else set()
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body><main>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">{len(rows)} runs: ' + ", ".join(f"{n} {s}" for s, n in statuses.items())
        + (f" · shared overrides: <code>{html.escape(' '.join(sorted(common)))}</code>" if common else "")
        + f" · made {now} by dlrun {__version__}</p>",
    ]
    if has_repeats(groups):
        parts += ["<h2>Configurations (mean ± std over seeds, n runs)</h2>", groups_table(groups)]
    titles = {"curves": "Validation curves", "metrics": "Best and test metric per configuration"}
    for name, png in figures.items():
        parts += [f"<h2>{html.escape(titles.get(name, name))}</h2>", _img(png, name)]
    parts += ["<h2>Runs</h2>", runs_table(rows), "<h2>Each run</h2>", _job_details(rows, root)]
    parts.append("</main></body></html>")
    return "\n".join(parts)


def write_report(path: Path, rows: list[dict], title: str, root: Path | None = None, by: list[str] | None = None,
                 figure_folder: Path | None = None) -> Path:
    """report.html for `rows`; with `figure_folder` the comparison figures are also saved there as
    curves.png and metrics.png (a sweep folder), otherwise they live only inside the page."""
    from dlrun.results.aggregate import group_rows
    from dlrun.results.figures import comparison_figures, png_bytes, save
    from dlrun.run_folder.records import atomic_write

    groups = group_rows(rows, by, root)
    pngs = {}
    for name, fig in comparison_figures(groups, root, title).items():
        if figure_folder is not None:
            pngs[name] = save(fig, Path(figure_folder) / f"{name}.png").read_bytes()
        else:
            pngs[name] = png_bytes(fig)
    if figure_folder is not None:  # what else the sweep drew (task=landscape's overlay, Optuna's plots)
        for png in sorted(Path(figure_folder).glob("*.png")):
            pngs.setdefault(png.stem, png.read_bytes())
    text = build_report(rows, groups, pngs, title, root)
    atomic_write(Path(path), lambda f: f.write(text), mode="w")
    return Path(path)


def write_sweep_report(sweep_dir: Path, rows: list[dict], total: int | None = None) -> Path | None:
    """curves.png, metrics.png and report.html in a finished sweep's folder (a failure is a warning); `rows` may
    be the best of `total` jobs."""
    title = f"sweep {sweep_dir}" + (f": the best {len(rows)} of {total} jobs (summary.csv has all)"
                                    if total and total > len(rows) else "")
    try:
        return write_report(sweep_dir / "report.html", rows, title, sweep_dir, figure_folder=sweep_dir)
    except Exception as e:  # noqa: BLE001 - the jobs' results are on disk; the report is a view of them
        log.warning("could not write the sweep report in %s: %s: %s", sweep_dir, type(e).__name__, e)
        return None
