"""Decoded gzip IDX files kept as .npy under data.root, so that a second run reads arrays instead of gunzipping.

Decoding Fashion-MNIST's 26 MB of gzip takes a few tenths of a second on every start; `np.load` of the
decoded 55 MB takes a few hundredths. A cached array is named after its source's size and modification
time, so a changed source never serves a stale array; an unwritable root just means no cache.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from dlrun.data.idx import read_idx

log = logging.getLogger("dlrun")


def cache_path(source: Path, cache_dir: Path) -> Path:
    """`<stem>-<size>-<mtime_ns>.npy`: the key is the source file as it is now."""
    st = source.stat()
    return cache_dir / f"{source.name.removesuffix('.gz')}-{st.st_size}-{st.st_mtime_ns}.npy"


def read_idx_cached(source: Path, cache_dir: Path) -> np.ndarray:
    """The IDX array of `source`; a gzipped source is decoded once and then read from `cache_dir`."""
    source = Path(source)
    if source.suffix != ".gz":  # plain IDX files are already a memory copy away from an array
        return read_idx(source)
    path = cache_path(source, cache_dir)
    if path.is_file():
        try:
            return np.load(path)
        except (OSError, ValueError) as e:  # a truncated or foreign file: decode again and replace it
            log.debug("ignoring unreadable cache %s: %s", path, e)
    array = read_idx(source)
    _write(path, array)
    return array


def _write(path: Path, array: np.ndarray) -> None:
    """Atomically (temp file + rename), dropping the arrays of older versions of the same source."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
        stem = path.name.rsplit("-", 2)[0]
        for old in path.parent.glob(f"{stem}-*-*.npy"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError as e:  # read-only root, full disk: run without a cache
        log.debug("no dataset cache in %s: %s", path.parent, e)
        if "tmp" in locals():
            Path(tmp).unlink(missing_ok=True)
