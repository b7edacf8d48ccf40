"""The one rich Console that log lines, progress bars and tables share (so bars are not torn by logs)."""

from __future__ import annotations

import logging
import sys

from rich.console import Console

console = Console(file=sys.stdout, highlight=False)
log = logging.getLogger("dlrun")


def show(*items, log_width: int = 120) -> None:
    """Print tables and lines on the console and put the same text into dlrun.log (every file handler of
    the dlrun logger), so the log holds all the terminal showed. A str is one line, printed whole."""
    import io

    buf = io.StringIO()
    plain = Console(file=buf, width=log_width, color_system=None, highlight=False)
    for item in items:
        kw = {"soft_wrap": True, "markup": False} if isinstance(item, str) else {}
        console.print(item, **kw)
        plain.print(item, **kw)
    text = "\n".join(line.rstrip() for line in buf.getvalue().splitlines())
    log.info("%s", text, extra={"console": False})


class ConsoleHandler(logging.Handler):
    """Logging handler that prints through the shared console; warnings and errors are coloured.
    A record with `console=False` (see `show`) is for the log file only: the console has it already.
    A record with `console_text` prints that shorter text here (fitted to the terminal)."""

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "console", True) is False:
            return
        try:
            msg = getattr(record, "console_text", None) or self.format(record)
            style = {logging.WARNING: "yellow", logging.ERROR: "bold red"}.get(record.levelno)
            console.print(msg, style=style, markup=False, soft_wrap=True)
        except Exception:  # a logging handler must never raise
            self.handleError(record)
