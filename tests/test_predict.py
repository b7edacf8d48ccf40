"""task=predict: image files and .npy arrays, prepared as in training, classified by a checkpoint."""

import csv
import math

import numpy as np
import pytest
import torch
from PIL import Image

import dlrun.data
from conftest import make_cfg, read_summary, register_source, run_dlrun
from dlrun.run_folder import checkpoint
from dlrun.training.validate import validate
from dlrun.data.source import Source
from dlrun.errors import CheckpointError, ConfigError, DataError
from dlrun.training.evaluate import _info_and_stats, load_inputs, run_predict, stored_config
from dlrun.training.tasks import train


def from_config(cfg, seed):
    """Dark (0..85) versus bright (170..255) 1×16×16 uint8 images: data.name=toy_brightness in these tests."""
    rng = np.random.default_rng(seed)

    def sample(n):
        y = rng.integers(0, 2, n)
        dark, bright = rng.integers(0, 86, (n, 1, 16, 16)), rng.integers(170, 256, (n, 1, 16, 16))
        return np.where(y[:, None, None, None] == 1, bright, dark).astype(np.uint8), y.astype(np.int64)

    train_x, train_y = sample(cfg.size)
    test_x, test_y = sample(64)
    return Source(train_x, train_y, test_x, test_y, ["dark", "bright"])


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("train")
    with pytest.MonkeyPatch.context() as mp:
        register_source(mp, "toy_brightness", from_config)
        train(make_cfg("data=synthetic", "data.name=toy_brightness", "data.size=256", "model=mlp", "model.hidden=[16]",
                       "trainer.max_epochs=2", "trainer.progress=none", "optimizer.lr=0.01"), run_dir)
    assert read_summary(run_dir)["test"]["test/acc"] == 1.0  # the two classes are trivially apart
    return run_dir / "checkpoints" / "last.pt"


def predict_cfg(ckpt, inputs, *more):
    return make_cfg("task=predict", f"ckpt_path={ckpt}", f"predict.inputs={inputs}", "trainer.progress=none", *more)


def predict(ckpt, inputs, run_dir, *more) -> list[dict]:
    cfg = predict_cfg(ckpt, inputs, *more)
    validate(cfg)
    run_predict(cfg, run_dir)
    with open(run_dir / "predictions.csv") as f:
        return list(csv.DictReader(f))


def rgb_image(value: int, size: int = 40) -> Image.Image:
    """A size×size RGB image of one grey level with a little colour texture."""
    rng = np.random.default_rng(value)
    return Image.fromarray(np.clip(value + rng.integers(-20, 21, (size, size, 3)), 0, 255).astype(np.uint8))


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i, value in enumerate((30, 60, 210, 240)):
        name = "bright" if value > 128 else "dark"
        rgb_image(value).save(folder / f"{name}_{i}.png")  # RGB, 40×40: converted and resized
    rgb_image(220).save(folder / "bright_jpeg.jpg")
    rgb_image(25).save(folder / "dark_jpeg.jpeg")
    return folder


def test_png_and_jpeg_files_get_the_expected_top1(ckpt, images, tmp_path):
    rows = predict(ckpt, images, tmp_path)  # a folder: all its images
    assert len(rows) == 6
    for row in rows:
        expected = "bright" if "bright" in row["input"] else "dark"
        assert row["top1"] == expected, row
        assert float(row["top1_prob"]) > 0.5 and row["top2"] != expected
        assert float(row["top1_prob"]) + float(row["top2_prob"]) == pytest.approx(1.0, abs=1e-5)
    globbed = predict(ckpt, images / "dark_*.png", tmp_path, "predict.topk=1")
    assert [r["top1"] for r in globbed] == ["dark", "dark"] and "top2" not in globbed[0]


def test_images_are_prepared_exactly_as_the_training_data(ckpt, tmp_path, monkeypatch):
    """A test-split image written as PNG, read back and normalised, equals the tensor the model was tested on."""
    register_source(monkeypatch, "toy_brightness", from_config)
    state = checkpoint.load(ckpt)
    stored = stored_config(state, ckpt)
    data = dlrun.data.build_data(stored.data, torch.device("cpu"), stored.seed)
    info, mean, std = _info_and_stats(state, stored)
    assert torch.equal(mean, data.mean) and torch.equal(std, data.std) and info == data.info
    raw = from_config(stored.data, stored.seed).test_x[:5]
    for i, image in enumerate(raw):
        Image.fromarray(image[0]).save(tmp_path / f"{i}.png")  # grey, 16×16: no resize
    _, x = load_inputs(str(tmp_path / "*.png"), info.in_shape)
    assert torch.allclose((x - mean) / std, data.test.x[:5], atol=1e-6)


def test_npy_arrays_with_or_without_the_channel_axis(ckpt, tmp_path):
    grey = np.stack([np.full((16, 16), v, dtype=np.uint8) for v in (10, 250, 40)])  # N×H×W uint8
    np.save(tmp_path / "batch.npy", grey)
    rows = predict(ckpt, tmp_path / "batch.npy", tmp_path)
    assert [r["top1"] for r in rows] == ["dark", "bright", "dark"]
    assert rows[1]["input"].endswith("batch.npy[1]")
    np.save(tmp_path / "one.npy", np.full((1, 16, 16), 0.9, dtype=np.float32))  # floats are taken as they are
    assert [r["top1"] for r in predict(ckpt, tmp_path / "one.npy", tmp_path)] == ["bright"]


def test_older_checkpoint_without_stats_derives_them_from_the_stored_data_config(ckpt, images, tmp_path, monkeypatch):
    register_source(monkeypatch, "toy_brightness", from_config)
    state = torch.load(ckpt, weights_only=True)
    del state["data_info"], state["data_stats"]
    torch.save(state, tmp_path / "old.pt")
    assert predict(tmp_path / "old.pt", images, tmp_path) == predict(ckpt, images, tmp_path)


@pytest.mark.subprocess
def test_predict_command_needs_no_dataset(ckpt, images, tmp_path):
    # a subprocess knows no toy_brightness source: shape, classes and statistics come from the checkpoint
    run_dir = tmp_path / "run"
    proc = run_dlrun("task=predict", f"ckpt_path={ckpt}", f"predict.inputs={images}/*.png", f"hydra.run.dir={run_dir}")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "bright_2.png" in out and "dark_0.png" in out
    assert str(ckpt) in proc.stdout.splitlines()  # whole, on its own line
    assert "bright_2.png" in (run_dir / "dlrun.log").read_text()
    assert len((run_dir / "predictions.csv").read_text().splitlines()) == 1 + 4


def test_probabilities_and_their_order_agree_with_the_predicted_class():
    from dlrun.training.evaluate import probabilities, top_classes
    from dlrun.training.metrics import predict_classes

    single = torch.tensor([[0.0], [2.0], [-1.0]])  # one output (bce logit, perceptron step): class 1 if > 0
    probs = probabilities(single)
    assert torch.allclose(probs[1], torch.tensor([1 - 0.880797, 0.880797]), atol=1e-6)
    _, order = top_classes(probs, 2)
    assert order[:, 0].tolist() == predict_classes(single).tolist() == [0, 1, 0]  # the 0.5/0.5 tie included
    several = torch.tensor([[1.0, 3.0, 3.0], [0.0, 0.0, -1.0]])
    p, order = top_classes(probabilities(several), 2)
    assert order.tolist() == [[1, 2], [0, 1]] and order[:, 0].tolist() == predict_classes(several).tolist()
    e = math.e  # softmax by hand: e^3 / (e + 2e^3) twice, and 1 / (2 + e^-1) twice
    assert torch.allclose(p.sum(1), torch.tensor([2 * e**3 / (e + 2 * e**3), 2 / (2 + 1 / e)]), atol=1e-6)


# -- errors ---------------------------------------------------------------------------------------------
def test_missing_file(ckpt, tmp_path):
    with pytest.raises(DataError, match="no such file"):
        predict(ckpt, tmp_path / "nope.png", tmp_path)


def test_glob_that_matches_nothing(ckpt, tmp_path):
    with pytest.raises(DataError, match="no files match"):
        predict(ckpt, tmp_path / "*.png", tmp_path)


def test_unsupported_file_type(ckpt, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="unsupported file type .txt"):
        predict(ckpt, tmp_path / "notes.txt", tmp_path)


def test_wrong_shape(ckpt, tmp_path):
    np.save(tmp_path / "features.npy", np.zeros((3, 5), dtype=np.float32))
    with pytest.raises(DataError, match=r"inputs of shape \[3, 5\] do not fit the model, which takes \[1, 16, 16\]"):
        predict(ckpt, tmp_path / "features.npy", tmp_path)


@pytest.mark.slow
def test_checkpoint_without_stored_config(ckpt, images, tmp_path):
    torch.save({"model": torch.load(ckpt, weights_only=True)["model"]}, tmp_path / "bare.pt")
    with pytest.raises(CheckpointError, match="holds no stored config"):
        predict(tmp_path / "bare.pt", images, tmp_path)


def test_inputs_are_required():
    with pytest.raises(ConfigError, match="predict.inputs=None.*needs predict.inputs=PATH"):
        validate(make_cfg("task=predict", "ckpt_path=x.pt"))


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n this is not really a picture", b""])
def test_unreadable_image(ckpt, tmp_path, content):
    (tmp_path / "broken.png").write_bytes(content)
    with pytest.raises(DataError, match="cannot read image .*broken.png") as e:
        predict(ckpt, tmp_path / "broken.png", tmp_path)
    assert "\n" not in str(e.value) and DataError.exit_code == 2  # one line, exit 2 (tasks.run_task prints it)


def test_truncated_image(ckpt, images, tmp_path):
    data = (images / "dark_0.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cannot read image .*cut.png"):
        predict(ckpt, tmp_path / "cut.png", tmp_path)
