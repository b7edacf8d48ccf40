"""`dlrun --help` from the YAML folders alone (dlrun/cli/help.py): the groups Hydra would list, the defaults,
the project's options, without importing Hydra or torch; with overrides it is Hydra's composed help."""

import subprocess
import sys

import pytest
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.utils import create_config_search_path
from hydra.core.object_type import ObjectType

from conftest import run_dlrun
from dlrun.cli.help import config_groups, default_choices, plain_help, wants_plain_help


def _hydra_groups(loader, parent=""):
    groups = {}
    for name in loader.get_group_options(parent, ObjectType.GROUP):
        group = f"{parent}/{name}" if parent else name
        if group == "hydra":
            continue
        options = loader.get_group_options(group, ObjectType.CONFIG)
        if options:
            groups[group] = sorted(options)
        groups.update(_hydra_groups(loader, group))
    return groups


def test_the_groups_and_options_are_those_hydras_search_path_lists():
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path("pkg://dlrun.conf"))
    assert config_groups(None) == _hydra_groups(loader)
    assert {"model", "data", "optimizer", "experiment/cnn_zoo"} <= set(config_groups(None))


def test_the_defaults_are_the_root_configs_choices():
    chosen = default_choices()
    assert chosen["model"] == "lenet" and chosen["data"] == "fashion_mnist" and chosen["scheduler"] == "cosine"
    assert "experiment" not in chosen and not any(k.startswith("override") for k in chosen)  # null, hydra's own


def test_a_projects_options_sit_beside_dlruns_own(tmp_path):
    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "tiny.yaml").write_text("_target_: nets.Tiny\n")
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "mine.yaml").write_text("# @package _global_\n")
    groups = config_groups(tmp_path)
    assert {"tiny", "lenet"} <= set(groups["model"]) and {"mine", "optimizers"} <= set(groups["experiment"])
    text = plain_help(tmp_path)
    assert all(len(line) <= 80 for line in text.splitlines()), [line for line in text.splitlines() if len(line) > 80]


def test_only_a_help_without_overrides_is_answered_from_the_folders():
    assert wants_plain_help(["--help"]) and wants_plain_help(["-h"]) and wants_plain_help(["-m", "--help"])
    assert not wants_plain_help(["model=mlp", "--help"]) and not wants_plain_help(["-m", "model=mlp"])


@pytest.mark.subprocess
def test_plain_help_imports_neither_hydra_nor_torch_and_help_with_overrides_composes_them():
    code = ("import sys; sys.argv = ['dlrun', '--help']\n"
            "from dlrun.cli.main import main\nmain()\n"
            "print(sorted(m for m in ('hydra', 'torch', 'omegaconf') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert out.rstrip().endswith("[]") and "== Defaults" in out and "model=lenet" in out
    composed = run_dlrun("model=mlp", "--help")
    assert composed.returncode == 0 and "== Default config ==" in composed.stdout
    assert "hidden:" in composed.stdout  # the MLP's own keys: the override was composed


def test_hydra_reads_the_mode_without_composing_only_when_the_command_line_settles_it():
    from dlrun.cli.main import mode_is_run

    assert mode_is_run(["model=mlp", "trainer.max_epochs=2"], project_active=False)
    assert not mode_is_run(["experiment=init"], project_active=False)  # presets set hydra.mode=MULTIRUN
    assert not mode_is_run(["+experiment=mine"], project_active=False)
    assert not mode_is_run(["hparams_search=mlp"], project_active=False)
    assert not mode_is_run(["hydra.mode=MULTIRUN"], project_active=False)
    assert not mode_is_run(["-m", "model=mlp"], project_active=False)
    assert not mode_is_run(["model=mlp"], project_active=True)  # a project's configs could set it


@pytest.mark.subprocess
def test_a_plain_run_composes_its_config_once_and_a_preset_still_sweeps(tmp_path):
    code = ("import sys\nfrom hydra._internal.hydra import Hydra\ncalls = []\noriginal = Hydra.compose_config\n"
            "Hydra.compose_config = lambda self, *a, **k: calls.append(1) or original(self, *a, **k)\n"
            "sys.argv = ['dlrun', 'trainer=smoke', 'data.size=64', 'trainer.max_epochs=1', 'callbacks=none']\n"
            "from dlrun.cli.main import main\nmain()\nprint('COMPOSED', len(calls))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "COMPOSED 1" in out.stdout, out.stdout[-1500:] + out.stderr[-1500:]
    hydra_yaml = next((tmp_path / "outputs" / "runs").iterdir()) / ".hydra" / "hydra.yaml"
    assert "\n  mode: RUN\n" in hydra_yaml.read_text()
    # a preset that sets hydra.mode=MULTIRUN still sweeps without -m: its mode is read by composing
    swept = run_dlrun("experiment=losses_regression", "trainer.max_epochs=2", "trainer.progress=none",
                      "hydra.sweep.dir=sw", cwd=tmp_path)
    assert swept.returncode == 0 and len(list((tmp_path / "sw").glob("*_loss-*"))) == 4, swept.stderr[-1500:]


def test_the_mode_shortcut_is_decided_again_for_each_command(monkeypatch):
    from hydra._internal.hydra import Hydra

    from dlrun.cli.main import _skip_mode_compose

    def hydras_own(self, config_name, overrides):
        return "composed"

    monkeypatch.setattr(Hydra, "get_mode", hydras_own)  # restored after the test
    _skip_mode_compose(True)
    assert Hydra.get_mode(None, "config", []) is None
    _skip_mode_compose(False)  # the next command in the same process, e.g. a preset: Hydra's own runs
    assert Hydra.get_mode(None, "config", []) == "composed"
    assert Hydra.get_mode.__wrapped__ is hydras_own  # one wrapper, not a chain
