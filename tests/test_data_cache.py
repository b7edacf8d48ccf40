"""The decoded-dataset cache: a second load reads .npy arrays, a changed source is decoded again."""

import os

import numpy as np
import pytest

from dlrun.data import cache, idx, mnist


def test_second_load_reads_the_cache_not_the_gzip(tmp_path, monkeypatch):
    from conftest import write_fashion_mnist as write_fake_mnist

    write_fake_mnist(tmp_path / "FashionMNIST" / "raw", gz=True)  # the gzip files a second load must not decode
    first = mnist.load("fashion_mnist", tmp_path)
    cached = sorted(p.name for p in (tmp_path / "cache" / "fashion_mnist").glob("*.npy"))
    assert len(cached) == 4 and cached[0].startswith("t10k-images-idx3-ubyte-")
    monkeypatch.setattr(cache, "read_idx", lambda p: pytest.fail(f"decoded {p} again"))
    second = mnist.load("fashion_mnist", tmp_path)
    assert np.array_equal(first.train_x, second.train_x) and np.array_equal(first.test_y, second.test_y)


def test_a_changed_source_replaces_its_cached_array(tmp_path):
    src, cache_dir = tmp_path / "a-idx1-ubyte.gz", tmp_path / "cache"
    idx.write_idx(src, np.arange(5))
    assert cache.read_idx_cached(src, cache_dir).tolist() == [0, 1, 2, 3, 4]
    idx.write_idx(src, np.arange(7))  # new size
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # and a new mtime, even on coarse clocks
    assert cache.read_idx_cached(src, cache_dir).tolist() == list(range(7))
    assert [p.name for p in cache_dir.iterdir()] == [cache.cache_path(src, cache_dir).name]  # the stale one went


def test_same_size_new_mtime_is_decoded_again(tmp_path):
    src, cache_dir = tmp_path / "a-idx1-ubyte.gz", tmp_path / "cache"
    idx.write_idx(src, np.zeros(4))
    cache.read_idx_cached(src, cache_dir)
    idx.write_idx(src, np.ones(4))  # same size
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert cache.read_idx_cached(src, cache_dir).tolist() == [1, 1, 1, 1]


def test_a_corrupt_cache_file_is_decoded_again_and_an_unwritable_root_still_loads(tmp_path):
    src = tmp_path / "a-idx1-ubyte.gz"
    idx.write_idx(src, np.arange(3))
    path = cache.cache_path(src, tmp_path / "cache")
    path.parent.mkdir()
    path.write_bytes(b"not numpy")
    assert cache.read_idx_cached(src, tmp_path / "cache").tolist() == [0, 1, 2]
    assert np.load(path).tolist() == [0, 1, 2]
    blocker = tmp_path / "file"
    blocker.write_text("")  # a cache folder that cannot be made
    assert cache.read_idx_cached(src, blocker / "cache").tolist() == [0, 1, 2]
