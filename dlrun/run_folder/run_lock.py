"""One process per run folder: a second `dlrun` resuming the same folder is refused, not interleaved.

The lock is `fcntl.flock` on `<run>/dlrun.lock`: the kernel drops it when its process ends, however
it ends, so a lock file left by a killed run is never mistaken for a live one (stale-safe).
"""

from __future__ import annotations

import fcntl
import os
import socket
from contextlib import contextmanager
from pathlib import Path

from dlrun.errors import DlrunError

LOCK_NAME = "dlrun.lock"


class RunFolderBusy(DlrunError):
    """Another live process holds the run folder; nothing of that run is touched."""


@contextmanager
def run_lock(run_dir: Path):
    """Hold the run folder for the duration of the block; RunFolderBusy when another process holds it."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    while True:
        f = open(path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise RunFolderBusy(f"{run_dir} is in use by {holder}: wait for it to end (or stop it), then "
                                "run the command again") from None
        try:  # the holder before us may have removed the file between our open and our lock: lock the new one
            same = os.fstat(f.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        f.close()
    f.seek(0)
    f.truncate()
    f.write(f"dlrun pid {os.getpid()} on {socket.gethostname()}\n")
    f.flush()
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)  # before unlocking, so that no one locks a file that is going away
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()
