"""The runs table (sweep end, dlrun-compare) read as a user reads it: in consoles of 80 and 120 columns,
piped, and in the machine formats. Run folders are written by hand (summary.json, .hydra/): no training."""

import csv
import io
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from dlrun.results.compare import collect, main, sort_rows
from dlrun.results.table import print_table, shorten_middle

ROOT = Path(__file__).resolve().parents[1]
JOBS = [  # optimizer, model, best val/acc, test/acc, test/loss, time
    ("sgd", "mlp", 0.9608, 0.9219, 0.8979, 5.12),
    ("adagrad", "lenet", 0.8549, 0.8412, 0.5726, 10.07),
    ("adam", "mlp", 0.9722, 0.9688, 0.3091, 7.31),
    ("adam", "lenet", 0.2549, 0.2812, 1.3354, 2.84),
]
SHARED = ["data=digits", "trainer.max_epochs=2", "data.batch_size=32"]


def make_sweep(root: Path) -> Path:
    sweep = root / "multiruns" / "2026-11-30_18-45-51-123456-abcd"
    for i, (opt, model, best, acc, loss, time_s) in enumerate(JOBS):
        run = sweep / f"{i}_model-{model}_optimizer-{opt}_and_a_long_tail_{i}"
        (run / ".hydra").mkdir(parents=True)
        overrides = [*SHARED, f"optimizer={opt}", f"model={model}"]
        (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"monitor": "val/acc"}))
        (run / "summary.json").write_text(json.dumps({
            "status": "completed", "epochs": 2, "best": {"epoch": 2, "val/acc": best},
            "test": {"test/loss": loss, "test/acc": acc}, "samples_per_s": 1234.5, "duration_s": time_s,
            "error": None}))
        (run / "metrics.jsonl").write_text(json.dumps({"epoch": 2, "train/acc": best + 0.01, "val/acc": best}) + "\n")
    return sweep


@pytest.fixture
def sweep(tmp_path):
    return make_sweep(tmp_path)


def terminal(width: int) -> Console:
    return Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None, highlight=False)


def shown(console: Console) -> list[str]:
    return console.file.getvalue().splitlines()


@pytest.mark.parametrize("width", [80, 120])
def test_the_table_fits_the_terminal_without_splitting_a_cell(sweep, width):
    rows = sort_rows(collect([sweep]))
    console = terminal(width)
    print_table(console, rows, title="sweep of 4 jobs")
    lines = shown(console)
    assert max(map(len, lines)) <= width
    header = next(line for line in lines if line.lstrip().startswith("run"))
    # the priority columns, each header whole
    assert re.findall(r"\S+", header)[:7] == ["run", "optimizer", "model", "status", "best/val/acc", "test/loss",
                                              "test/acc"]
    body = [line for line in lines if "completed" in line]
    assert len(body) == 4  # one line per run: no cell wrapped onto a second line
    for line, (opt, model, best, acc, loss, _) in zip(body, sorted(JOBS, key=lambda j: -j[2])):
        # numbers at a fixed precision and whole
        assert re.search(rf"\b{opt}\s+{model}\s+completed\s+{best:.4f}\s+{loss:.4f}\s+{acc:.4f}\b", line), line
    # overrides every run shares go under the table once
    assert "all runs: data.batch_size=32 data=digits trainer.max_epochs=2" in " ".join(lines)
    if width == 80:  # long run names are shortened in the middle: the number and the tail stay
        assert re.match(r"^2_model-\S*…\S*tail_2 ", body[0]), body[0]
        assert "too wide to show: " in " ".join(lines)  # what did not fit is named, not dropped in silence
    else:
        assert "time_s" in header


def test_many_differing_overrides_never_push_out_the_status_and_the_result(sweep):
    for i, run in enumerate(sorted(sweep.iterdir())):
        path = run / ".hydra" / "overrides.yaml"
        more = [f"optimizer.weight_decay=0.000{i}", f"model.hidden=[{i}00,{i}0]", f"seed={i}", f"data.size={i}000"]
        path.write_text(yaml.safe_dump(yaml.safe_load(path.read_text()) + more))
    console = terminal(80)
    print_table(console, sort_rows(collect([sweep])))
    lines = shown(console)
    header = next(line for line in lines if line.startswith("run"))
    assert max(map(len, lines)) <= 80
    assert {"status", "best/val/acc"} <= set(header.split())
    overrides = set(header.split()) & {"optimizer", "model", "weight_decay", "hidden", "seed", "size"}
    left_out = " ".join(lines).split("too wide to show:")[1]
    assert overrides and all(key in left_out for key in {"optimizer", "model", "seed"} - overrides)


def test_piped_output_is_not_cut_to_80_columns(sweep):
    rows = sort_rows(collect([sweep]))
    piped = Console(file=io.StringIO(), width=80)  # what rich assumes for a pipe
    assert not piped.is_terminal
    print_table(piped, rows)
    lines = shown(piped)
    assert max(map(len, lines)) > 80
    assert any("0_model-mlp_optimizer-sgd_and_a_long_tail_0" in line for line in lines)  # whole run names
    header = next(line for line in lines if line.startswith("run"))
    assert {"time_s", "epochs", "best_epoch", "gap"} <= set(header.split())


def test_shorten_middle_keeps_both_ends():
    assert shorten_middle("0_model-resnet_optimizer-adam", 15) == "0_model…er-adam"
    assert len(shorten_middle("x" * 50, 12)) == 12
    assert shorten_middle("short", 12) == "short"


def test_default_order_is_best_first_by_the_monitors_mode(sweep, tmp_path):
    rows = sort_rows(collect([sweep]))
    assert [r["best/val/acc"] for r in rows] == sorted((j[2] for j in JOBS), reverse=True)  # acc: max first
    for run in sweep.iterdir():  # the same runs monitored by a loss: lowest first
        (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"monitor": "val/loss"}))
        summary = json.loads((run / "summary.json").read_text())
        summary["best"] = {"epoch": 2, "val/loss": summary["test"]["test/loss"]}
        (run / "summary.json").write_text(json.dumps(summary))
    rows = sort_rows(collect([sweep]))
    assert [r["best/val/loss"] for r in rows] == sorted(j[4] for j in JOBS)


def run_compare(capsys, *argv) -> tuple[int, str, str]:
    """`dlrun-compare ARGV` in-process, its output piped (not a terminal)."""
    import dlrun.console

    table = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dlrun.console, "console", Console(file=table, width=80))
        code = main(list(argv))
    out, err = capsys.readouterr()
    return code, table.getvalue() + out, err


def test_sort_descending_as_written_and_ascending(sweep, capsys):
    code, out, _ = run_compare(capsys, str(sweep), "--sort", "-test/acc", "--format", "csv")
    assert code == 0
    accs = [float(r["test/acc"]) for r in csv.DictReader(out.splitlines())]
    assert accs == sorted(accs, reverse=True) and len(accs) == 4
    code, out, _ = run_compare(capsys, str(sweep), "--sort", "test/acc", "--format", "csv")
    assert [float(r["test/acc"]) for r in csv.DictReader(out.splitlines())] == sorted(accs)
    # an override key sorts too
    code, out, _ = run_compare(capsys, str(sweep), "--sort=optimizer", "--format", "json")
    assert [r["overrides"].split()[-2] for r in json.loads(out)] == ["optimizer=adagrad", "optimizer=adam",
                                                                     "optimizer=adam", "optimizer=sgd"]


def test_columns_formats_and_mistakes(sweep, capsys):
    code, out, _ = run_compare(capsys, str(sweep), "--columns", "run,optimizer,test/acc", "--format", "json")
    data = json.loads(out)
    assert code == 0 and list(data[0]) == ["run", "optimizer", "test/acc"] and data[0]["test/acc"] == 0.9688
    code, out, _ = run_compare(capsys, str(sweep), "--columns", "optimizer,test/acc", "--format", "markdown")
    assert out.splitlines()[0] == "| optimizer | test/acc |" and "| adam | 0.9688 |" in out
    code, out, _ = run_compare(capsys, str(sweep), "--columns", "optimizer,test/acc")  # piped table: whole
    assert code == 0 and re.search(r"adam\s+0\.9688", out) and "run" not in out.split()
    code, _, err = run_compare(capsys, str(sweep), "--columns", "nope")
    assert code == 2 and err.startswith("error: --columns nope: no such column") and "Traceback" not in err
    code, _, err = run_compare(capsys, str(sweep), "--sort", "-nope")
    assert code == 2 and err.startswith("error: --sort nope: no such column")


def readme_compare_commands() -> list[str]:
    """Every `dlrun-compare` command in the README's and docs' code blocks."""
    commands = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        blocks = re.findall(r"```(?:bash|sh|console)?\n(.*?)```", page.read_text(), flags=re.S)
        commands += [re.split(r" # | > | \| ", line)[0].strip() for b in blocks for line in b.splitlines()
                     if line.strip().startswith("dlrun-compare ")]
    return commands


def test_the_documented_dlrun_compare_commands_run_as_written(tmp_path, capsys, monkeypatch):
    make_sweep(tmp_path / "outputs")
    commands = readme_compare_commands()
    assert commands
    monkeypatch.chdir(tmp_path)
    run_a, run_b = sorted(str(p.parent.relative_to(tmp_path)) for p in tmp_path.rglob("summary.json"))[:2]
    for command in commands:
        argv = [a.replace("<sweep>", "outputs").replace("DIR", "outputs").replace("RUN_A", run_a).replace("RUN_B", run_b)
                for a in shlex.split(command)[1:]]
        code, out, err = run_compare(capsys, *argv)
        assert code == 0, f"{command}: {err}"
        assert out.strip() and "Traceback" not in out + err

