"""A job folder that a previous run of the same sweep left: skip it, resume it or retry it."""

from __future__ import annotations

import shutil
from pathlib import Path

_KEEP_ON_RETRY = {".hydra", "dlrun.log", "dlrun.lock"}  # the new attempt's config, the log that spans attempts, its lock


def prepare_job(run_dir: Path) -> tuple[str, object]:
    """What to do with a job folder a previous run of the same sweep may have left.

    ("skip", summary) when it completed, ("resume", last.pt) when it was interrupted or killed
    with a checkpoint, ("fresh", None) otherwise; a failed attempt is moved into failed-N/ first,
    so that no job folder is ever overwritten.
    """
    from dlrun.run_folder.run_record import DONE, INTERRUPTED, read_summary

    last = run_dir / "checkpoints" / "last.pt"
    summary = read_summary(run_dir)
    status = summary and summary.status
    if status in DONE:
        return "skip", summary.to_dict()
    if status in (None, INTERRUPTED) and last.is_file():
        return "resume", last
    leftovers = [p for p in run_dir.iterdir() if p.name not in _KEEP_ON_RETRY and not p.name.startswith("failed-")]
    if leftovers:
        n = 1 + sum(1 for p in run_dir.iterdir() if p.name.startswith("failed-"))
        archive = run_dir / f"failed-{n}"
        archive.mkdir()
        for p in leftovers:
            shutil.move(str(p), archive / p.name)
    return "fresh", None
