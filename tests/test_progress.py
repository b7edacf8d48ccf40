"""Progress lines and bar: the run's elapsed time and ETA, within the terminal's width."""

import io
import re
from types import SimpleNamespace

import pytest
from rich.console import Console

from dlrun.callbacks.progress import clock, epoch_line, fit_parts
from dlrun.training.tasks import build_loop

LOOP = SimpleNamespace(max_epochs=10)
METRICS = {"epoch": 3, "step": 1407, "train/loss": 0.43211, "train/acc": 0.85123, "val/loss": 0.45678,
           "val/acc": 0.84, "lr": 0.001, "samples_per_s": 6007.3, "time_s": 0.81}


def test_the_whole_epoch_line_has_elapsed_time_and_run_eta():
    line = epoch_line(LOOP, METRICS, elapsed=12.2, eta=3725)
    assert line == ("epoch 3/10 train/loss=0.4321 train/acc=0.8512 val/loss=0.4568 val/acc=0.8400 lr=0.001 "
                    "6,007 samples/s 0.8s elapsed 0:12 run eta 1:02:05")


@pytest.mark.parametrize("width", [40, 60, 80, 100, 120])
def test_epoch_lines_fit_the_terminal_with_shorter_labels_first(width):
    line = epoch_line(LOOP, METRICS, elapsed=12.2, eta=3725, width=width)
    assert len(line) <= width
    assert line.startswith("epoch 3/10 ") and "val/acc=0.8400" in line and "eta 1:02:05" in line
    assert not re.search(r"\w/\s|\s/\w", line)  # no part cut in two
    if width >= 120:  # shorter labels, nothing left out
        assert line == "epoch 3/10 loss=0.4321 acc=0.8512 val/loss=0.4568 val/acc=0.8400 lr=0.001 6,007/s 0.8s " \
                       "elapsed 0:12 eta 1:02:05"


def test_fit_parts_drops_the_least_important_first():
    parts = [("a-long", "a", 0), ("b-long", "b", 2), ("c-long", "c", 1)]
    assert fit_parts(parts, 20) == "a-long b-long c-long"
    assert fit_parts(parts, 5) == "a b c"
    assert fit_parts(parts, 3) == "a c"
    assert fit_parts(parts, 1) == "a"  # priority 0 stays
    assert clock(59.6) == "1:00" and clock(3600 * 2 + 61) == "2:01:01"


def test_the_rich_bar_fits_80_columns_and_shows_elapsed_and_run_eta(tiny_cfg, tmp_path, monkeypatch):
    import dlrun.console
    from dlrun.callbacks.progress import RichProgress

    terminal = Console(file=io.StringIO(), width=80, force_terminal=True, color_system=None)
    monkeypatch.setattr(dlrun.console, "console", terminal)
    monkeypatch.setattr(RichProgress, "REFRESH_SECONDS", 0.0)  # draw after every batch
    loop = build_loop(tiny_cfg("trainer.num_threads=1", "callbacks=none", "trainer.progress=rich",
                               "data.batch_size=64"), tmp_path)
    loop.fit()
    screens = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "\n", terminal.file.getvalue())  # cursor moves end a line
    lines = [line for line in re.split(r"[\r\n]", screens) if line.strip()]
    bars = [line for line in lines if "━" in line]
    assert bars and max(map(len, lines)) <= 80
    assert all(re.search(r"^epoch [12]/2 .*\d+/\d+ loss .* elapsed \d+:\d\d run eta (\d+:\d\d|-)$", b) for b in bars)
    assert any(re.search(r"run eta \d+:\d\d$", b) for b in bars)
