"""What a run leaves on disk: metrics.jsonl, summary.json, and atomic writes for both and for checkpoints."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable


def _jsonable(value: Any) -> Any:
    """Plain floats for JSON; NaN/Inf become null so every line stays valid JSON."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write through a temp file in the same folder, fsync, then rename: readers see old or new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the mode a plain open would
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: dict) -> None:
    atomic_write(path, lambda f: json.dump(obj, f, indent=2, default=_jsonable), mode="w")


def read_jsonl(path: Path) -> list[dict]:
    """All complete lines of a metrics file (a torn last line from a killed run is skipped)."""
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


class MetricsLog:
    """metrics.jsonl: one JSON object per line, flushed at once so a killed run keeps its epochs."""

    def __init__(self, path: Path, keep_epochs_before: int | None = None):
        self.path = Path(path)
        if keep_epochs_before is not None and self.path.exists():
            # resuming: keep the lines of epochs already in the checkpoint, drop later (lost) ones
            kept = [r for r in read_jsonl(self.path) if r.get("epoch", 0) <= keep_epochs_before]
            self._rewrite(kept)
        elif self.path.exists():
            self.path.unlink()

    def _rewrite(self, rows: Iterable[dict]) -> None:
        atomic_write(self.path, lambda f: f.writelines(json.dumps(r) + "\n" for r in rows), mode="w")

    def write(self, row: dict) -> None:
        line = json.dumps({k: _jsonable(v) for k, v in row.items()})
        with open(self.path, "a") as f:
            f.write(line + "\n")
