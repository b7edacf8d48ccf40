"""`dlrun --help` lists the config groups from one repository, with the options Hydra's own listing gives."""

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.utils import create_config_search_path
from hydra.core.object_type import ObjectType

from dlrun.cli.help import list_groups_from_one_repository

QUERIES = [("model", ObjectType.CONFIG), ("experiment/cnn_zoo", ObjectType.CONFIG), ("", ObjectType.GROUP),
           ("hydra", ObjectType.GROUP)]


def test_group_options_are_unchanged_and_come_from_one_repository(monkeypatch):
    monkeypatch.setattr(ConfigLoaderImpl, "get_group_options", ConfigLoaderImpl.get_group_options)  # restored after
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path("pkg://dlrun.conf"))
    before = [loader.get_group_options(g, kind) for g, kind in QUERIES]
    built = []
    original = ConfigLoaderImpl._parse_overrides_and_create_caching_repo
    monkeypatch.setattr(ConfigLoaderImpl, "_parse_overrides_and_create_caching_repo",
                        lambda self, *a: built.append(a) or original(self, *a))
    list_groups_from_one_repository()
    after = [loader.get_group_options(g, kind) for g, kind in QUERIES]
    assert after == before and "lenet" in after[0] and "launcher" in after[3]
    assert len(built) == 1
