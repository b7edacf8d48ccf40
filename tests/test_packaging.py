"""The configs travel with the package: a wheel (`pip install .`, not editable) holds every YAML."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import dlrun

pytestmark = pytest.mark.subprocess

ROOT = Path(dlrun.__file__).resolve().parents[1]


def test_wheel_contains_every_config(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                           "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    [wheel] = tmp_path.glob("dlrun-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    # the Optuna sweeper plugin, where Hydra's plugin scan finds it (a namespace package: no __init__.py)
    assert "hydra_plugins/dlrun_optuna_sweeper/sweeper.py" in names and "hydra_plugins/__init__.py" not in names
    configs = {str(p.relative_to(ROOT)) for p in (ROOT / "dlrun" / "conf").rglob("*.yaml")}
    assert len(configs) > 50
    assert configs <= names, sorted(configs - names)
    assert "dlrun/conf/config.yaml" in names and "dlrun/cli/main.py" in names
    assert "hydra_plugins/dlrun_project/__init__.py" in names  # a project folder as a config source (Hydra plugin)
