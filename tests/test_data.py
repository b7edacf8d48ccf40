"""IDX reading, discovery order and its error, the in-memory loader."""

import numpy as np
import pytest
import torch

from conftest import write_fashion_mnist
from dlrun.data import idx, mnist
from dlrun.data.loader import TensorLoader
from dlrun.errors import DataError


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    idx.write_idx(path, a)
    assert np.array_equal(idx.read_idx(path), a)


def test_truncated_idx_is_a_clear_error(tmp_path):
    path = tmp_path / "a.idx"
    idx.write_idx(path, np.zeros((4, 5), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(DataError, match="truncated"):
        idx.read_idx(path)


def test_root_is_searched_first(tmp_path, monkeypatch):
    write_fashion_mnist(tmp_path / "FashionMNIST" / "raw", gz=True)
    monkeypatch.setattr(mnist, "_download", lambda *a: pytest.fail("must not download"))
    src = mnist.load("fashion_mnist", tmp_path)
    assert src.train_x.shape == (20, 1, 28, 28) and src.test_y.shape == (10,) and src.class_names[1] == "Trouser"


def test_system_folder_is_second(tmp_path, monkeypatch):
    write_fashion_mnist(tmp_path / "system", gz=True)
    monkeypatch.setitem(mnist.DATASETS, "fashion_mnist", ("FashionMNIST", str(tmp_path / "system"), mnist.DATASETS["fashion_mnist"][2]))
    monkeypatch.setattr(mnist, "_download", lambda *a: pytest.fail("must not download"))
    assert mnist.load("fashion_mnist", tmp_path / "empty").train_x.shape == (20, 1, 28, 28)


def test_missing_everywhere_names_all_three_ways(tmp_path, monkeypatch):
    monkeypatch.setitem(mnist.DATASETS, "fashion_mnist", ("FashionMNIST", str(tmp_path / "nowhere"), mnist.DATASETS["fashion_mnist"][2]))

    def offline(*a):
        raise OSError("network unreachable")

    monkeypatch.setattr(mnist, "_download", offline)
    with pytest.raises(DataError) as e:
        mnist.load("fashion_mnist", tmp_path / "empty")
    msg = str(e.value)
    assert "FashionMNIST/raw" in msg and "apt-get install dataset-fashion-mnist" in msg and "network unreachable" in msg


def test_loader_shuffles_by_seed_and_epoch_and_resumes_mid_epoch():
    x, y = torch.arange(11).float()[:, None], torch.arange(11)
    loader = TensorLoader(x, y, batch_size=3, shuffle=True, seed=1)
    assert len(loader) == 4
    epoch0 = [b[1].tolist() for b in loader]
    assert sorted(sum(epoch0, [])) == list(range(11))
    assert [b[1].tolist() for b in loader] == epoch0  # same epoch, same order
    loader.set_epoch(1)
    epoch1 = [b[1].tolist() for b in loader]
    assert epoch1 != epoch0
    assert [b[1].tolist() for b in loader.batches(start=2)] == epoch1[2:]


def test_split_and_normalisation_use_training_statistics(tiny_cfg):
    from dlrun.data import build_data

    data = build_data(tiny_cfg().data, torch.device("cpu"), seed=0)
    assert data.train.num_samples + data.val.num_samples == 256
    assert abs(data.train.x.mean().item()) < 1e-4 and abs(data.train.x.std().item() - 1) < 1e-3
    assert data.info.in_shape == (1, 16, 16) and data.info.num_classes == 4


def test_training_skips_a_last_batch_of_one_sample_only():
    x, y = torch.arange(9).float()[:, None], torch.arange(9)
    train = TensorLoader(x, y, batch_size=4, shuffle=True)
    assert len(train) == 2 and [len(b[1]) for b in train] == [4, 4]  # 9 = 4 + 4 + 1: the 1 is skipped
    assert [len(b[1]) for b in TensorLoader(x, y, batch_size=4)] == [4, 4, 1]  # evaluation sees every sample
    assert [len(b[1]) for b in TensorLoader(x[:1], y[:1], batch_size=4, shuffle=True)] == [1]
    assert len(TensorLoader(x[:6], y[:6], batch_size=4, shuffle=True)) == 2


def test_batch_norm_with_batches_of_one_is_a_config_error(tiny_cfg, tmp_path):
    from dlrun.errors import ConfigError
    from dlrun.training.tasks import build_loop

    with pytest.raises(ConfigError, match="data.batch_size=1 .*batch norm"):
        build_loop(tiny_cfg("model=mlp", "model.batchnorm=true", "data.batch_size=1"), tmp_path)
