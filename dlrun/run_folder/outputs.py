"""Run and sweep folders are checked before Hydra creates them, so an unwritable place is one clear
line and exit code 2, not a traceback from inside Hydra."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from hydra.experimental.callback import Callback as HydraCallback

from dlrun.errors import EXIT_USAGE


def unwritable_reason(folder: Path) -> str | None:
    """Why `folder` cannot be created or written, or None when it can."""
    existing = Path(os.path.abspath(folder))
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:  # try for real: permission bits say nothing for root, or on /proc and read-only mounts
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".dlrun-probe-"))
    except OSError as e:
        return f"{existing} is not writable ({e.strerror})"
    return None


def _check(key: str, folder: str) -> None:
    reason = unwritable_reason(Path(folder))
    if reason:
        print(f"error: {key}={folder} cannot be used: {reason}; choose another with {key}=PATH", file=sys.stderr)
        sys.exit(EXIT_USAGE)


class OutputFolderCheck(HydraCallback):
    def on_run_start(self, config, **kwargs) -> None:
        _check("hydra.run.dir", config.hydra.run.dir)

    def on_multirun_start(self, config, **kwargs) -> None:
        _check("hydra.sweep.dir", config.hydra.sweep.dir)
