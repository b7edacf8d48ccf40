"""The package layout: a run's path, with imports pointing one way (down the layers below)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "dlrun"
# top to bottom: a package imports only from its own layer or the layers below it (lazy imports included)
LAYERS = [
    {"__init__", "__main__", "api", "cli"},  # the ways in: the command line, Python
    {"sweeps"},  # many runs: sweep bookkeeping, SLURM, search, the lessons' figures
    {"training"},  # one run: tasks, assembly, the loop, device, DDP, resume, evaluation
    {"callbacks", "data", "landscape", "models", "nn"},  # the components the config groups choose
    {"results"},  # how results are shown: tables, figures, reports
    {"run_folder"},  # what a run writes and reads back
    {"config"},  # the typed config and the Hydra job
    {"errors", "console"},  # shared by all
]
LAYER = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _package(path: Path) -> str:
    first = path.relative_to(ROOT).parts[0]
    return first[:-3] if first.endswith(".py") else first


def _imports(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, [node.module] if node.module != "dlrun" else [f"dlrun.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            yield node.lineno, [a.name for a in node.names]


def test_the_top_level_holds_the_packages_of_a_runs_path():
    modules = {p.stem for p in ROOT.glob("*.py")}
    assert modules == {"__init__", "__main__", "api", "errors", "console"}
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()} - {"conf"}
    assert packages == set(LAYER) - modules


def test_imports_point_down_the_layers():
    upward = []
    for path in sorted(ROOT.rglob("*.py")):
        if "conf" in path.relative_to(ROOT).parts:
            continue
        source = _package(path)
        for line, modules in _imports(ast.parse(path.read_text())):
            for module in modules:
                parts = module.split(".")
                if parts[0] != "dlrun" or len(parts) < 2 or parts[1] not in LAYER or parts[1] == source:
                    continue
                if LAYER[parts[1]] < LAYER[source]:
                    upward.append(f"{path.relative_to(ROOT.parent)}:{line} imports {module}")
    assert upward == []
