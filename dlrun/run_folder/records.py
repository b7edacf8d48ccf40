"""What a run leaves on disk: metrics.jsonl, summary.json, and atomic writes for both and for checkpoints."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

from dlrun.errors import EXIT_FAILED, DlrunError


class RunWriteError(DlrunError):
    """A file of the run folder could not be written (a full disk, a lost mount): the run stops, and
    what was written before (checkpoints/last.pt, the earlier lines of metrics.jsonl) stays intact."""

    exit_code = EXIT_FAILED

    def __init__(self, path: Path, error: OSError):
        super().__init__(f"could not write {path}: {error.strerror or error}; the run stopped, and "
                         "checkpoints/last.pt holds its last complete checkpoint (trainer.resume=true continues it)")


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

    def __init__(self, path: Path, history: list[dict] | None = None):
        """A new run starts an empty file; a resumed one rewrites it from the checkpoint's history, which
        holds exactly the epochs the run continues from (whatever a kill or a full disk left in the file)."""
        self.path = Path(path)
        if history is not None:
            self._rewrite({k: _jsonable(v) for k, v in row.items()} for row in history)
        elif self.path.exists():
            self.path.unlink()

    def _rewrite(self, rows: Iterable[dict]) -> None:
        atomic_write(self.path, lambda f: f.writelines(json.dumps(r) + "\n" for r in rows), mode="w")

    def write(self, row: dict) -> None:
        line = json.dumps({k: _jsonable(v) for k, v in row.items()})
        try:
            with open(self.path, "a") as f:
                f.write(line + "\n")
        except OSError as e:
            raise RunWriteError(self.path, e) from None
