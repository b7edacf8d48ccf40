"""Hydra plugins that make a dlrun project folder a config source (see dlrun/cli/project.py).

Hydra imports every module under the `hydra_plugins` namespace and registers the plugin classes it finds:
the search-path plugin puts the project before dlrun's own configs; the config source reads the project's
`conf/GROUP/*.yaml` and `experiments/*.yaml` (the experiment group) under the scheme `dlrun-project://`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

from hydra.core.config_search_path import ConfigSearchPath, SearchPathQuery
from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigLoadError, ConfigResult, ConfigSource
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import OmegaConf

from dlrun.cli.project import SCHEME, active_project, config_candidates


class DlrunProjectSearchPath(SearchPathPlugin):
    """The project folder first, for dlrun's app only (other Hydra apps in the environment are left alone)."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        main = [e for e in search_path.get_path() if e.provider == "main"]
        if not main or not main[0].path.replace("/", ".").endswith("dlrun.conf"):
            return
        root = active_project()
        if root is not None:
            search_path.prepend("dlrun-project", f"{SCHEME}://{root}", anchor=SearchPathQuery(provider="main"))


class DlrunProjectConfigSource(ConfigSource):
    """A project folder seen as a Hydra config root: GROUP/NAME maps to conf/GROUP/NAME, experiment/NAME to
    experiments/NAME (or conf/experiment/NAME). Root-level configs are not served: dlrun's config.yaml stays."""

    @staticmethod
    def scheme() -> str:
        return SCHEME

    def _paths(self, config_path: str) -> List[Path]:
        if not config_path.strip("/"):
            return []
        return config_candidates(Path(self.path), config_path)

    def load_config(self, config_path: str) -> ConfigResult:
        name = self._normalize_file_name(config_path)
        path = next((p for p in self._paths(name) if p.is_file()), None)
        if path is None:
            raise ConfigLoadError(f"Config not found : {config_path} in project {self.path}")
        with open(path, encoding="utf-8") as f:
            header = ConfigSource._get_header_dict(f.read(512))
            if name.startswith("experiment/"):  # an experiment sets keys anywhere: `# @package _global_` is implied
                header["package"] = header.get("package") or "_global_"
            f.seek(0)
            cfg = OmegaConf.load(f)
        return ConfigResult(config=cfg, path=f"{self.scheme()}://{self.path}", provider=self.provider, header=header)

    def available(self) -> bool:
        return self.is_group("")

    def is_group(self, config_path: str) -> bool:
        if not config_path.strip("/"):
            return any((Path(self.path) / d).is_dir() for d in ("conf", "experiments"))
        return any(p.is_dir() for p in self._paths(config_path))

    def is_config(self, config_path: str) -> bool:
        if "/" not in config_path.strip("/"):
            return False
        return any(p.is_file() for p in self._paths(self._normalize_file_name(config_path)))

    def list(self, config_path: str, results_filter: Optional[ObjectType]) -> List[str]:
        files: List[str] = []
        if not config_path.strip("/"):  # the root: the project's groups
            folders = [Path(self.path) / "conf"]
            names = {"experiment"} if (Path(self.path) / "experiments").is_dir() else set()
            names |= {d.name for d in folders[0].iterdir() if d.is_dir()} if folders[0].is_dir() else set()
            return sorted(names) if results_filter in (None, ObjectType.GROUP) else []
        for folder in self._paths(config_path):
            if folder.is_dir():
                for file in os.listdir(folder):
                    self._list_add_result(files=files, file_path=os.path.join(config_path, file), file_name=file,
                                          results_filter=results_filter)
        return sorted(set(files))
