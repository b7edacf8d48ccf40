"""The one rich Console that log lines, progress bars and tables share (so bars are not torn by logs)."""

from __future__ import annotations

import logging
import sys

from rich.console import Console

console = Console(file=sys.stdout, highlight=False)
log = logging.getLogger("dlrun")


class ConsoleHandler(logging.Handler):
    """Logging handler that prints through the shared console; warnings and errors are coloured."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            style = {logging.WARNING: "yellow", logging.ERROR: "bold red"}.get(record.levelno)
            console.print(msg, style=style, markup=False, soft_wrap=True)
        except Exception:  # a logging handler must never raise
            self.handleError(record)
