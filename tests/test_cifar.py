"""CIFAR-10/100 from python-pickle batch files the tests write, and the discovery error naming both ways."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from conftest import make_cfg
from dlrun.data import build_data
from dlrun.data import cifar
from dlrun.errors import DataError


def write_cifar(folder, name="cifar10", n_train=(6, 6, 6, 6, 6), n_test=10, seed=0):
    """Tiny files in torchvision's layout: rows of 1024 red, 1024 green, 1024 blue bytes, pickled dicts."""
    rng = np.random.default_rng(seed)
    _, sub, train_files, test_file, meta_file, label_key, names_key = cifar.DATASETS[name]
    k = cifar.NUM_CLASSES[name]
    folder = folder / sub
    folder.mkdir(parents=True)
    written = {}
    for fname, n in [*zip(train_files, n_train), (test_file, n_test)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, k, n).tolist()
        with open(folder / fname, "wb") as f:
            pickle.dump({b"data": data, label_key: labels, b"batch_label": fname.encode()}, f)
        written[fname] = (data, labels)
    with open(folder / meta_file, "wb") as f:
        pickle.dump({names_key: [f"class{i}".encode() for i in range(k)]}, f)
    return written


def test_cifar10_batches_are_read_in_order_with_channels_first(tmp_path):
    written = write_cifar(tmp_path)
    src = cifar.load("cifar10", tmp_path)
    assert src.train_x.shape == (30, 3, 32, 32) and src.train_x.dtype == np.uint8
    assert src.test_x.shape == (10, 3, 32, 32) and src.class_names[3] == "class3"
    first, labels = written["data_batch_1"]
    # row layout: the first 1024 bytes are the red plane, row-major
    assert np.array_equal(src.train_x[0, 0], first[0, :1024].reshape(32, 32))
    assert np.array_equal(src.train_x[0, 2, 31], first[0, 3072 - 32 :])
    assert src.train_y[:6].tolist() == labels
    assert src.train_y[6:12].tolist() == written["data_batch_2"][1]


def test_cifar100_fine_labels_and_the_pipeline(tmp_path):
    write_cifar(tmp_path, "cifar100", n_train=(40,), n_test=8)
    cfg = make_cfg("data=cifar100", f"data.root={tmp_path}", "data.val_fraction=0.25", "data.augment=[crop,flip]")
    data = build_data(cfg.data, torch.device("cpu"), seed=0)
    assert data.info.in_shape == (3, 32, 32) and data.info.num_classes == 100
    assert data.train.num_samples == 30 and data.val.num_samples == 10 and data.test.num_samples == 8
    assert data.mean.shape == (1, 3, 1, 1)  # per-channel statistics
    x, y = next(data.train.batches())
    assert x.shape[1:] == (3, 32, 32) and y.dtype == torch.int64


def test_missing_files_name_both_ways(tmp_path, monkeypatch):
    def offline(name, root):
        raise OSError("network unreachable")

    monkeypatch.setattr(cifar, "_download", offline)
    with pytest.raises(DataError) as e:
        cifar.load("cifar10", tmp_path / "nowhere")
    msg = str(e.value)
    assert "cifar-10-batches-py" in msg and "download" in msg and "network unreachable" in msg
    assert msg.index("(1)") < msg.index("(2)")


def test_a_broken_batch_file_is_a_data_error(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="data_batch_3"):
        cifar.load("cifar10", tmp_path)


@pytest.mark.subprocess
def test_cli_error_is_one_line(tmp_path):
    from conftest import run_dlrun

    # an unreachable proxy makes torchvision's download fail fast, whatever the machine's network
    r = run_dlrun("data=cifar10", f"data.root={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}",
                  env={"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
                       "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9"})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if "error:" in ln]
    assert len(lines) == 1 and "cifar10 not found" in lines[0]
