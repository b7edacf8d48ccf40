"""A project folder of the user's: its configs before dlrun's own, its code for `_target_`, `dlrun init`, and the
extension examples of docs/extending.md (each one run)."""

from __future__ import annotations

import csv
import importlib
import re
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from conftest import CONF_DIR, make_cfg, run_dlrun
from dlrun.config.contracts import ContractError
from dlrun.errors import DlrunError
from dlrun.cli.project import PROJECT_ENV, project_argv, swap_targets
from dlrun.cli.project_log import composed_from, project_choices
from dlrun.cli.scaffold import ProjectExists, init_main, init_project
from dlrun.training.tasks import build_loop

DOCS = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
FAST = ["trainer=smoke", "trainer.max_epochs=1", "trainer.progress=none", "data.size=64", "callbacks=none"]
TINY_NET = '''\
import math
from torch import nn


class Tiny(nn.Module):
    def __init__(self, in_shape, num_classes):
        super().__init__()
        self.fc = nn.Linear(math.prod(in_shape), num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))
'''


@pytest.fixture
def project(tmp_path, monkeypatch):
    """An empty project folder as the working directory and first on sys.path; its modules forgotten after."""
    folder = tmp_path / "proj"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv(PROJECT_ENV, raising=False)
    monkeypatch.syspath_prepend(str(folder))
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        if getattr(sys.modules[name], "__file__", None) and str(folder) in str(sys.modules[name].__file__):
            del sys.modules[name]


def write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    importlib.invalidate_caches()


def fit(cfg, run_dir):
    loop = build_loop(cfg, run_dir)
    return loop, loop.fit()


def test_project_experiment_and_model_are_found_and_shadow_builtins(project):
    write(project, {"tiny_nets.py": TINY_NET,
                    "conf/model/lenet.yaml": "_target_: tiny_nets.Tiny\n",  # a built-in's name
                    "conf/model/y.yaml": "_target_: tiny_nets.Tiny\n",
                    "experiments/optimizers.yaml": "# @package _global_\nseed: 7\n",  # a built-in experiment's name
                    "experiments/x.yaml": "defaults:\n  - override /model: y\nseed: 3\n"})  # _global_ implied
    shadowed = make_cfg("model=lenet", "experiment=optimizers")
    assert shadowed.seed == 7 and shadowed.model._target_ == "tiny_nets.Tiny"
    assert "activation" not in shadowed.model  # the project's file replaced dlrun's lenet.yaml, not merged into it
    mine = make_cfg("experiment=x")
    assert mine.seed == 3 and mine.model._target_ == "tiny_nets.Tiny"
    used = project_choices(["model/lenet", "experiment/x", "data/synthetic", "model/lenet"], project)
    assert used == [f"model=lenet from {project}/conf/model/lenet.yaml (replaces dlrun's own)",
                    f"experiment=x from {project}/experiments/x.yaml"]


def test_the_log_names_nested_project_files_too(project):
    """callbacks/default pulls in callbacks/model_checkpoint: a project file of that name replaces dlrun's."""
    write(project, {"conf/callbacks/model_checkpoint.yaml": "model_checkpoint: null\n",
                    "conf/callbacks/mine.yaml": "mine:\n  _target_: dlrun.callbacks.Callback\n"})
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["callbacks=[default,mine]"], return_hydra_config=True)
        used = project_choices(composed_from(cfg), project)
    assert used == [f"callbacks=model_checkpoint from {project}/conf/callbacks/model_checkpoint.yaml (replaces dlrun's own)",
                    f"callbacks=mine from {project}/conf/callbacks/mine.yaml"]
    assert cfg.callbacks.model_checkpoint is None and "tensorboard" in cfg.callbacks


def test_a_folder_without_configs_composes_no_defaults_list_for_the_log(project, monkeypatch, caplog):
    """The project log composes Hydra's defaults list again (0.08 s of start-up) only where a project file can
    be in it: the folder has conf/ or experiments/."""
    from dlrun.cli import project_log

    calls = []
    monkeypatch.setattr(project_log, "composed_from", lambda config: calls.append(config) or ["model/y"])
    project_log.ProjectLog().on_job_start(config="cfg")
    assert calls == []
    write(project, {"conf/model/y.yaml": "_target_: tiny_nets.Tiny\n"})
    with caplog.at_level("INFO", logger="dlrun"):
        project_log.ProjectLog().on_job_start(config="cfg")
    assert calls == ["cfg"] and f"model=y from {project}/conf/model/y.yaml" in caplog.text


def test_help_lists_project_options_beside_builtin_ones(project):
    write(project, {"conf/model/y.yaml": "_target_: tiny_nets.Tiny\n", "experiments/x.yaml": "# @package _global_\n"})
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()  # what `dlrun --help` lists its groups from
        assert {"y", "lenet", "mlp"} <= set(loader.get_group_options("model"))
        assert {"x", "optimizers"} <= set(loader.get_group_options("experiment"))


def test_a_model_with_only_in_shape_and_num_classes_trains_as_a_project_option(project, tmp_path):
    write(project, {"tiny_nets.py": TINY_NET, "conf/model/y.yaml": "_target_: tiny_nets.Tiny\n"})
    loop, summary = fit(make_cfg("model=y", *FAST), tmp_path / "run")
    assert type(loop.model).__name__ == "Tiny" and summary["status"] == "completed"


def test_a_swapped_target_leaves_the_old_nodes_keys_behind():
    assert swap_targets(["model._target_=a.B", "model.width=3", "seed=1"]) == \
        ["~model", "++model._target_=a.B", "++model.width=3", "seed=1"]
    assert swap_targets(["+callbacks.mine._target_=a.B"]) == ["+callbacks.mine._target_=a.B"]  # a new node
    cfg = make_cfg(*swap_targets(["model._target_=torch.nn.Flatten", "model.start_dim=1", "optimizer._target_=torch.optim.SGD",
                                  "optimizer.lr=0.1"]))
    assert dict(cfg.model) == {"pretrained": None, "freeze": "none", "_target_": "torch.nn.Flatten", "start_dim": 1}
    assert dict(cfg.optimizer) == {"_target_": "torch.optim.SGD", "lr": 0.1, "_partial_": True}


def test_a_class_rejecting_a_key_is_named_with_its_file_and_arguments(project, tmp_path):
    write(project, {"tiny_nets.py": TINY_NET})
    cfg = make_cfg("++model._target_=tiny_nets.Tiny", *FAST)  # LeNet's keys stay: the class rejects `activation`
    with pytest.raises(ContractError) as e:
        build_loop(cfg, tmp_path / "run")
    assert re.search(r"model: tiny_nets.Tiny \(.*/proj/tiny_nets.py\) does not take model.\w+; "
                     r"it takes in_shape, num_classes", str(e.value))


def test_contract_violations_name_the_users_function_and_file(project, tmp_path):
    write(project, {"broken.py": "def arrays():\n    return 1, 2\n\n\ndef not_a_model(in_shape, num_classes):\n"
                                 "    return 'net'\n\n\nclass Plain:\n    pass\n"})
    file = re.escape(str(project / "broken.py"))
    for overrides, message in (
            (["+data.source._target_=broken.arrays"], rf"data.source: broken.arrays \({file}\) returned a tuple, "
                                                      r"not a dlrun.data.source.Source"),
            (["++model._target_=broken.not_a_model", "~model.activation", "~model.negative_slope", "~model.pool",
              "~model.dropout", "~model.batchnorm", "~model.padding"], rf"model: broken.not_a_model \({file}\) returned a str"),
            (["+callbacks.mine._target_=broken.Plain"], rf"callbacks.mine=broken.Plain \({file}\) is not allowed")):
        with pytest.raises(DlrunError, match=message):
            build_loop(make_cfg(*FAST, *overrides), tmp_path / "run")


def test_project_flag_and_env_name_the_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(PROJECT_ENV, raising=False)
    assert project_argv(["--project", str(tmp_path), "seed=1"]) == ["seed=1"]
    import os

    assert os.environ[PROJECT_ENV] == str(tmp_path.resolve())
    monkeypatch.setenv(PROJECT_ENV, str(tmp_path / "missing"))
    with pytest.raises(SystemExit) as e:
        project_argv([])
    assert e.value.code == 2


def test_init_writes_a_project_and_refuses_to_overwrite(project, capsys):
    assert init_main([]) == 0
    for name in ("conf/model/my_model.yaml", "models.py", "conf/data/my_data.yaml", "my_data.py",
                 "experiments/my_experiment.yaml", "README.md", "data/my_data.npz"):
        assert (project / name).is_file(), name
    (project / "models.py").write_text("# mine\n")
    assert init_main([]) == 2
    assert "writes nothing over existing files" in capsys.readouterr().err
    assert (project / "models.py").read_text() == "# mine\n"
    with pytest.raises(ProjectExists):
        init_project(project)


def test_the_scaffold_trains_one_point_of_its_sweep(project, tmp_path):
    init_project(project)
    importlib.invalidate_caches()
    cfg = make_cfg("experiment=my_experiment", "trainer=smoke", "trainer.progress=none", "callbacks=none",
                   "model.hidden=16", "optimizer.lr=0.01")
    loop, summary = fit(cfg, tmp_path / "run")
    assert type(loop.model).__name__ == "MyModel" and list(loop.data.info.in_shape) == [8]
    assert loop.data.info.class_names == ["a", "b", "c"]
    assert summary["status"] == "completed" and summary["best"]["val/acc"] > 0.5  # three classes: chance is 1/3


def docs_examples() -> list[tuple[str, dict[str, str], list[str]]]:
    """(section, {file: text}, command overrides) for each section of docs/extending.md that has a command."""
    examples = []
    for section in re.split(r"^### ", DOCS.read_text(), flags=re.M)[1:]:
        title = section.splitlines()[0]
        blocks = re.findall(r"^```\w*\n(# file: (\S+)\n.*?)^```", section, flags=re.M | re.S)
        files = {name: text for text, name in blocks}
        commands = re.findall(r"^\$ dlrun (.*)$", section, flags=re.M)
        if commands:
            examples.append((title, files, commands[0].split()))
    return examples


# what each example's run must show: the user's component in the loop
CHECKS = {
    "Model": lambda loop: type(loop.model).__module__ == "my_nets" and loop.model.head.in_features == 64,
    "Data source": lambda loop: loop.data.info.class_names == ["same sign", "opposite sign"],
    "Loss": lambda loop: type(loop.loss_fn).__name__ == "FocalLoss" and loop.loss_fn.gamma == 1.0,
    "Optimizer": lambda loop: type(loop.optimizer).__name__ == "SignSGD" and loop.optimizer.defaults["lr"] == 0.005,
    "Scheduler": lambda loop: loop.optimizer.param_groups[0]["lr"] == pytest.approx(0.0005),  # halved once
    "Callback": lambda loop: (loop.run_dir / "best_so_far.jsonl").read_text().count("\n") == 1,
}


def test_every_extension_example_of_the_docs_runs(project, tmp_path):
    examples = docs_examples()
    assert [title for title, _, _ in examples] == list(CHECKS)
    for title, files, overrides in examples:
        assert files, title
        write(project, files)
        given = {o.split("=")[0] for o in overrides}
        cfg = make_cfg(*(o for o in FAST if o.split("=")[0] not in given), *overrides)
        loop, summary = fit(cfg, tmp_path / title.replace(" ", "_"))
        assert summary["status"] == "completed", (title, summary.get("error"))
        assert CHECKS[title](loop), title


@pytest.mark.subprocess
@pytest.mark.slow
def test_init_then_the_scaffold_sweep_runs_from_the_command_line(tmp_path):
    proc = run_dlrun("init", "proj", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # from another folder with --project: the project's code is found through dlrun, not python's own cwd entry
    proc = run_dlrun("--project", "proj", "experiment=my_experiment", "trainer=smoke", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "experiment=my_experiment from" in proc.stdout + proc.stderr
    [table] = (tmp_path / "outputs" / "experiments" / "my_experiment").glob("*/summary.csv")
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"completed"}
