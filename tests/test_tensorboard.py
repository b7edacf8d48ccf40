"""TensorBoard: the event files, read back with TensorBoard's own EventAccumulator, hold what the notes draw."""

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from dlrun.training.tasks import build_loop

FAST = ("trainer.num_threads=1",)


def events(run_dir):
    acc = EventAccumulator(str(run_dir), size_guidance={"images": 0, "histograms": 0, "scalars": 0})
    acc.Reload()
    return acc


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory):
    from conftest import TINY, make_cfg

    run_dir = tmp_path_factory.mktemp("tb_run")
    overrides = [*TINY, *FAST, "callbacks.tensorboard.log_graph=true", "optimizer=gd", "optimizer.lr=0.003",
                 "callbacks.tensorboard.histograms_every_n_epochs=1", "callbacks.tensorboard.images_every_n_epochs=1"]
    write_hydra_yaml(run_dir, overrides)  # what Hydra writes into a run folder: the choices and overrides
    loop = build_loop(make_cfg(*overrides), run_dir)
    summary = loop.fit()
    return run_dir, summary, events(run_dir)


def test_scalars_of_every_metric_lr_and_throughput(lenet_run):
    run_dir, summary, acc = lenet_run
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "lr", "samples_per_s", "time_s"} <= tags
    assert [e.step for e in acc.Scalars("val/acc")] == [1, 2]
    # the end of the run: the test metrics and the best monitored value, at the last epoch
    assert acc.Scalars("test/acc")[-1].value == pytest.approx(summary["test"]["test/acc"])
    assert acc.Scalars("best/val/acc")[-1].value == pytest.approx(summary["best"]["val/acc"])


def write_hydra_yaml(run_dir, overrides):
    from conftest import CONF_DIR
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from dlrun.config.schema import register_configs

    register_configs()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        choices = compose(config_name="config", overrides=overrides, return_hydra_config=True).hydra.runtime.choices
    (run_dir / ".hydra").mkdir()
    OmegaConf.save({"hydra": {"runtime": {"choices": choices}, "overrides": {"task": overrides}}},
                   run_dir / ".hydra" / "hydra.yaml")


def test_hparams_hold_the_choices_tuned_and_overridden_keys_and_the_real_final_metrics(lenet_run):
    run_dir, summary, acc = lenet_run
    content = acc.PluginTagToContent("hparams")
    # the run's experiment record (its columns and its only metrics, see the test below), its session
    assert set(content) == {"_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"}
    hp = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info.hparams
    # the group choices, not only what they set (gd and sgd both set torch.optim.SGD)
    assert hp["optimizer"].string_value == "gd" and hp["model"].string_value == "lenet"
    assert hp["data"].string_value == "synthetic" and hp["scheduler"].string_value == "cosine"
    assert hp["optimizer.lr"].number_value == pytest.approx(0.003)  # tuned and overridden
    # tuned keys, with their final values (optimizer=gd sets the batch to the whole training set)
    assert hp["data.batch_size"].number_value == 1e9 and hp["seed"].number_value == 42
    assert hp["data.shape"].string_value == "[1,16,16]"  # overridden on the command line
    assert hp["callbacks.tensorboard.log_graph"].WhichOneof("kind") == "bool_value"  # a boolean stays one
    assert hp["callbacks.tensorboard.log_graph"].bool_value is True
    # not the flattened config: no constant checkpoint settings, no _target_ paths
    assert not [k for k in hp if k.startswith("callbacks.model_checkpoint") or k.endswith("_target_")]
    # the HPARAMS tab shows these scalars' values: they are the run's results, not placeholders
    assert acc.Scalars("test/loss")[-1].value == pytest.approx(summary["test"]["test/loss"])


def test_histograms_of_weights_and_gradients(lenet_run):
    _, _, acc = lenet_run
    tags = set(acc.Tags()["histograms"])
    assert {"weights/conv1.weight", "grads/conv1.weight", "weights/fc3.bias", "grads/fc3.bias"} <= tags
    assert [e.step for e in acc.Histograms("grads/conv1.weight")] == [1, 2]
    grads = acc.Histograms("grads/conv1.weight")[-1].histogram_value
    assert grads.num == 6 * 1 * 5 * 5 and grads.max > grads.min  # real gradients, not zeros


def test_images_inputs_filters_feature_maps_confusion_matrix(lenet_run):
    _, _, acc = lenet_run
    tags = set(acc.Tags()["images"])
    assert {"inputs/train", "filters/conv1", "feature_maps/input", "feature_maps/conv1",
            "feature_maps/conv2", "confusion_matrix/test"} <= tags
    # feature maps of the 1x16x16 test image after the first 5x5 conv: 6 maps of 12x12, enlarged x3 to 36,
    # tiled 3 per row with 2-pixel padding
    fm = acc.Images("feature_maps/conv1")[-1]
    assert (fm.width, fm.height) == (3 * 36 + 4 * 2, 2 * 36 + 3 * 2)
    # second conv: 16 maps of 2x2 (enlarged x16 to 32), 4 x 4
    fm2 = acc.Images("feature_maps/conv2")[-1]
    assert (fm2.width, fm2.height) == (4 * 32 + 5 * 2, 4 * 32 + 5 * 2)
    # six first-layer kernels of 5x5, enlarged x8 to 40
    filt = acc.Images("filters/conv1")[-1]
    assert (filt.width, filt.height) == (3 * 40 + 4 * 2, 2 * 40 + 3 * 2)
    # inputs as the model sees them: the first training batch (default batch size 128 > 64 shown), 8 x 8 tiles
    inputs = acc.Images("inputs/train")[-1]
    assert (inputs.width, inputs.height) == (8 * 32 + 9 * 2, 8 * 32 + 9 * 2)
    assert [e.step for e in acc.Images("inputs/train")] == [1, 2]
    assert [e.step for e in acc.Images("confusion_matrix/test")] == [2]
    assert acc.Images("confusion_matrix/test")[0].encoded_image_string[:4] == b"\x89PNG"


def test_model_graph_on_request(lenet_run):
    _, _, acc = lenet_run
    assert acc.Tags()["graph"] and any("Conv" in n.op or "conv" in n.op.lower() for n in acc.Graph().node)


def test_vector_data_gets_scalars_and_a_confusion_matrix_but_no_image_grids(tmp_path):
    from conftest import make_cfg

    cfg = make_cfg("data=synthetic", "data.size=128", "data.shape=[8]", "data.num_classes=3", "model=mlp",
                   "trainer.max_epochs=1", "trainer.progress=none", *FAST)
    build_loop(cfg, tmp_path).fit()
    acc = events(tmp_path)
    assert set(acc.Tags()["images"]) == {"confusion_matrix/test"}
    assert "train/loss" in acc.Tags()["scalars"]


def test_an_interrupted_run_writes_no_hparams(tiny_cfg, tmp_path):
    from dlrun.callbacks.base import Callback

    class Interrupt(Callback):
        def on_batch_end(self, loop, i, loss):
            loop.request_stop("interrupted")

    loop = build_loop(tiny_cfg(*FAST), tmp_path)
    loop.callbacks["interrupt"] = Interrupt()
    assert loop.fit()["status"] == "interrupted"
    acc = events(tmp_path)
    assert not acc.Tags()["scalars"]  # no epoch finished
    with pytest.raises(KeyError):
        acc.PluginTagToContent("hparams")


def test_hparams_metrics_are_only_best_and_test_and_the_overridden_keys_come_first(lenet_run):
    from tensorboard.plugins.hparams import api_pb2

    run_dir, summary, acc = lenet_run
    content = acc.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {m.name.tag for m in experiment.metric_infos} == {"test/loss", "test/acc", "best/val/acc"}
    assert len(acc.Tags()["scalars"]) > 3  # the epochs' scalars are there, not among the metrics
    infos = {h.name: h for h in experiment.hparam_infos}
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert set(infos) == set(start.hparams)
    # a single run: its command-line overrides tell it apart (TensorBoard lists and checks them first)
    assert infos["optimizer"].differs and infos["optimizer.lr"].differs and infos["data.shape"].differs
    assert not infos["model"].differs and not infos["seed"].differs
    assert infos["callbacks.tensorboard.log_graph"].type == api_pb2.DATA_TYPE_BOOL
    assert infos["optimizer.lr"].type == api_pb2.DATA_TYPE_FLOAT64 and infos["model"].type == api_pb2.DATA_TYPE_STRING
    # the trial id says what was chosen first, then the folder (`--logdir <run folder>` would show `.`)
    assert start.group_name.startswith("synthetic size=256 shape=[1,16,16]")
    assert start.group_name.endswith(f" · {run_dir.name}") and " gd lr=0.003 " in start.group_name


def test_a_sweep_jobs_trial_id_starts_with_its_number_and_swept_values(tmp_path, monkeypatch):
    import json

    from dlrun.callbacks.tensorboard import run_label
    from dlrun.config.job import SHARED_ENV

    monkeypatch.setenv(SHARED_ENV, json.dumps(["data=digits", "trainer.max_epochs=2"]))
    jobs = [tmp_path / "sweep" / f"{i}_optimizer-{o}" for i, o in enumerate(("gd", "sgd", "adam", "adagrad"))]
    labels = [run_label(d, ["data=digits", f"optimizer={d.name.split('-')[1]}", "optimizer.lr=0.01",
                            "trainer.max_epochs=2"], job=True) for d in jobs]
    assert labels[3] == "3 adagrad lr=0.01 · sweep/3_optimizer-adagrad"
    # told apart within TensorBoard's ~16 visible characters
    assert len({label[:16] for label in labels}) == 4
    assert run_label(tmp_path / "2026-11-30_12-00-00-1-ab", [], job=False) == "2026-11-30_12-00-00-1-ab"
