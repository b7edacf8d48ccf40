"""The README's tour runs as written, and the README and docs/ keep their promises: at most 250 lines, every
link points at a page (and heading) that exists, no references to files outside the repository; the single
runs shown in docs/ compose and validate.

The tour runs in-process, in order, in one empty folder that holds tiny Fashion-MNIST and MNIST files (so
`dlrun` with no arguments finds its data) and a `shirt.png`; each command gets TINY_TAIL appended (the last
value of a key wins), and `<run>` is the newest run folder with a `best.pt`."""

from __future__ import annotations

import json
import logging
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from PIL import Image

from conftest import make_cfg, write_fashion_mnist
from dlrun.training.validate import validate

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
# appended to every dlrun command: one epoch, quiet, no TensorBoard pictures (half a second each)
TINY_TAIL = ["trainer.max_epochs=1", "trainer.progress=none", "callbacks.tensorboard.images_every_n_epochs=0",
             "callbacks.tensorboard.histograms_every_n_epochs=0"]
EXTRA = {"task=landscape": ["landscape.steps=50"]}  # a landscape run counts steps, not epochs
NOT_RUN = ("make ",)  # set-up commands of the README: they install, the test suite runs inside them
# pages other branches add; remove a name once its page is in docs/
PENDING = {"search.md", "slurm.md", "performance.md", "extending.md", "lessons.md", "results.md"}


def bash_lines(text: str) -> list[str]:
    """The command lines of the ```bash blocks (continuation lines joined, comments dropped)."""
    lines = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            if line.split("#")[0].strip():
                lines.append(line)
    return lines


def tour() -> list[list[str]]:
    commands = []
    for line in bash_lines(README.read_text()):
        if line.startswith(NOT_RUN):
            continue
        words = shlex.split(line, comments=True)
        assert words[0] in ("dlrun", "dlrun-compare"), f"the README runs {line!r}: teach tests/test_readme.py to run it"
        commands.append(words)
    return commands


def run_in_process(words: list[str], monkeypatch) -> int:
    """`dlrun ARGS` or `dlrun-compare ARGS` through their real entry points; the exit code."""
    from dlrun.cli import main as cli
    from dlrun.results import compare
    from dlrun.config import schema as config

    monkeypatch.setattr(sys, "argv", words)
    monkeypatch.setattr(config, "_STAMP", None)  # a process fixes its run stamp once: each command is a process
    try:
        code = cli.main() if words[0] == "dlrun" else compare.main(words[1:])
    except SystemExit as e:
        code = e.code
    finally:
        GlobalHydra.instance().clear()
    return code or 0


def summaries(folder: Path) -> set[Path]:
    return set(folder.glob("outputs/**/summary.json"))


@pytest.fixture
def tour_folder(tmp_path, monkeypatch):
    write_fashion_mnist(tmp_path / "data" / "FashionMNIST" / "raw", n_train=200, n_test=50, learnable=True)
    write_fashion_mnist(tmp_path / "data" / "MNIST" / "raw", n_train=200, n_test=50, learnable=True)
    Image.fromarray(np.full((40, 30), 200, dtype=np.uint8)).save(tmp_path / "shirt.png")
    monkeypatch.chdir(tmp_path)
    handlers, level = logging.root.handlers[:], logging.root.level  # Hydra sets up logging for each run
    yield tmp_path
    logging.root.handlers[:], logging.root.level = handlers, level


def test_the_tour_has_the_commands_a_newcomer_needs():
    commands = [" ".join(w) for w in tour()]
    assert "dlrun" in commands  # the default experiment, with no arguments
    for part in ("-m ", "dlrun-compare", "task=eval", "task=predict", "task=summary", "experiment="):
        assert any(part in c for c in commands), part


@pytest.mark.slow
def test_every_tour_command_runs_on_tiny_data(tour_folder, monkeypatch, capsys):
    for words in tour():
        args = [w.replace("<run>", newest_run_with_best(tour_folder)) for w in words]
        if args[0] == "dlrun":
            args += TINY_TAIL + [x for key, more in EXTRA.items() if key in args for x in more]
        before = summaries(tour_folder)
        code = run_in_process(args, monkeypatch)
        out = capsys.readouterr()
        shown = f"{' '.join(words)}\n{out.out[-2000:]}{out.err[-2000:]}"
        assert code == 0, shown
        assert "error:" not in out.out + out.err and "Traceback" not in out.err, shown
        for path in summaries(tour_folder) - before:  # every run the command made, every job of a sweep
            assert json.loads(path.read_text())["status"] in ("completed", "stopped_early"), (path, shown)
        if words == ["dlrun"]:
            assert len(summaries(tour_folder) - before) == 1, shown
    assert (tour_folder / "outputs" / "multiruns").is_dir()


def docs_commands() -> list[str]:
    """The single-run `dlrun` lines of docs/ that need no file of a run before them (no placeholders)."""
    lines = [line for page in PAGES[1:] for line in bash_lines(page.read_text())]
    return [line for line in lines if line.startswith("dlrun ") and " -m " not in f" {line} "
            and not re.search(r"<\w|\.\.\.|hydra/", line)]


@pytest.mark.slow
@pytest.mark.parametrize("line", docs_commands())
def test_docs_commands_compose_and_validate(line):
    """The runs docs/ shows are real options and keys (running them all would take hours): each composes,
    passes the checks that run before anything trains, and its key=value overrides land in the config."""
    overrides = shlex.split(line, comments=True)[1:]
    cfg = make_cfg(*overrides)
    validate(cfg)
    for key, _, text in (o.partition("=") for o in overrides):
        if "." in key and key[0] not in "+~" and not text.startswith(("[", "'", '"')):  # a plain key=value
            value = OmegaConf.select(cfg, key)
            assert str(value) == text or float(value) == float(text), (line, key, value)


def newest_run_with_best(folder: Path) -> str:
    runs = sorted((folder / "outputs" / "runs").glob("*/checkpoints/best.pt"), key=lambda p: p.stat().st_mtime)
    return runs[-1].parents[1].name if runs else "<run>"


def test_readme_is_a_tour_not_a_notebook():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    for page in PAGES:
        body = page.read_text()
        assert "DESIGN.md" not in body, page.name  # not in the repository
        assert not re.search(r"\bissue \d+", body), page.name
        assert not re.search(r"\b20\d\d-\d\d-\d\d\b.*UTC|\d\d:\d\d UTC", body), page.name  # no session dates


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_point_at_pages_and_headings_that_exist(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        if path.name in PENDING and not path.exists():
            continue
        assert path.exists(), f"{page.name}: {target}"
        if anchor and path.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", path.read_text(), flags=re.M)
            assert anchor in {slug(h) for h in headings}, f"{page.name}: {target}"
