"""A run's summary.json: its fields, its status values and how each status is shown, in one place.

summary.json is a contract (tools and tests read it): `RunSummary.to_dict` writes the same keys in the same
order as before, and whatever a writer adds beyond the common fields (`stopped_epoch`, `trial`, `landscape`,
`lr_find`, a callback's keys) rides along in `extra`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

FILE = "summary.json"

COMPLETED = "completed"
STOPPED_EARLY = "stopped_early"
PRUNED = "pruned"  # a search trial its pruner stopped
INTERRUPTED = "interrupted"  # Ctrl-C, SIGTERM, a time limit: last.pt holds where it was
FAILED = "failed"
STATUSES = (COMPLETED, STOPPED_EARLY, PRUNED, INTERRUPTED, FAILED)
FINISHED = (COMPLETED, STOPPED_EARLY)  # ended by itself: tested, and nothing left to train
DONE = (*FINISHED, PRUNED)  # a sweep that runs again skips these jobs

# the one status -> colour map (the run summary, tables, the sweep's job lines); the HTML report's classes
STATUS_STYLE = {COMPLETED: "green", STOPPED_EARLY: "green", PRUNED: "cyan", INTERRUPTED: "yellow", FAILED: "red"}
STATUS_CLASS = {COMPLETED: "ok", STOPPED_EARLY: "ok", PRUNED: "ok", INTERRUPTED: "warn", FAILED: "bad"}


@dataclass
class RunSummary:
    status: str
    epochs: int = 0
    best: dict | None = None
    test: dict = field(default_factory=dict)
    samples_per_s: float | None = None
    duration_s: float | None = None
    error: str | None = None
    run_dir: str | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict) -> "RunSummary":
        known = {k: data[k] for k in _FIELDS if k in data}
        return cls(**{"status": None, **known}, extra={k: v for k, v in data.items() if k not in _FIELDS})

    def to_dict(self) -> dict:
        out = {name: getattr(self, name) for name in _FIELDS}
        out.update(self.extra)
        return out

    def get(self, key: str, default=None):
        """A field or an extra key by name (`trial`, `landscape`, ...)."""
        if key != "extra" and key in self.__dataclass_fields__:
            return getattr(self, key)
        return self.extra.get(key, default)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


_FIELDS = tuple(f.name for f in fields(RunSummary) if f.name != "extra")  # summary.json's keys, in its order


def path_of(run_dir) -> Path:
    return Path(run_dir) / FILE


def read_summary(run_dir) -> RunSummary | None:
    """The run's summary, or None when it has none (yet) or it cannot be read."""
    try:
        return RunSummary.from_dict(json.loads(read_bytes(os.path.join(run_dir, FILE))))
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def read_bytes(path: str, tail: int | None = None) -> bytes:
    """A file's bytes (or its last `tail` bytes) through os.open: no pathlib and no Python file object, whose
    costs are most of reading a small file (dlrun-compare reads three per run, thousands of runs)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        start = max(0, size - tail) if tail else 0
        return os.pread(fd, size - start, start)
    finally:
        os.close(fd)


def write_summary(run_dir, summary: RunSummary | dict) -> None:
    """Atomically (a reader sees the old file or the new one)."""
    from dlrun.run_folder.records import write_json

    write_json(path_of(run_dir), summary.to_dict() if isinstance(summary, RunSummary) else summary)


def failed_summary(run_dir, error: str, **extra) -> RunSummary:
    """The record of a run that failed before (or outside) its loop."""
    return RunSummary(status=FAILED, duration_s=0.0, error=error, run_dir=str(run_dir), extra=extra)
