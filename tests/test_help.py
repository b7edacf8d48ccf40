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
