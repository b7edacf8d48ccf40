"""The one-screen summary printed at the end of a run."""

from __future__ import annotations

from rich.table import Table

from dlrun.console import show
from dlrun.run_folder.run_record import STATUS_STYLE


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def print_run_end(summary: dict, extra: dict | None = None) -> None:
    table = Table(title="dlrun summary", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    status = summary["status"]
    table.add_row("status", f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]")
    table.add_row("epochs", str(summary["epochs"]))
    if summary.get("best"):
        best = summary["best"]
        table.add_row("best", f"epoch {best['epoch']}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in best.items() if k != "epoch"))
    for key, value in (summary.get("test") or {}).items():
        table.add_row(key, _fmt(value))
    if summary.get("samples_per_s"):
        table.add_row("throughput", f"{summary['samples_per_s']:,.0f} samples/s")
    table.add_row("time", f"{summary['duration_s']:.1f}s")
    for key, value in (extra or {}).items():
        table.add_row(key, str(value))
    if summary.get("error"):
        table.add_row("error", summary["error"])
    # the run folder whole, on a line of its own: the one thing a user copies
    show(table, "run folder:", str(summary["run_dir"]))
