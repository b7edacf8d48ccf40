"""Sweeps at scale: the job manifest under concurrent writers, a sweep's end built from it, `--top`, and the end
table of a sweep of many jobs (synthetic run folders, no training)."""

import io
import json
import multiprocessing
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from sweep_scale import make_sweep  # noqa: E402  (the benchmark's synthetic run folders)

from dlrun.results import compare

from dlrun.sweeps import sweep  # noqa: E402

CONFIG = "seed: 0\nmonitor: val/acc\ntrainer:\n  max_epochs: 10\n"


def _append_many(folder: str, writer: int, n: int) -> None:
    for i in range(n):  # a long line: a torn or interleaved write would break its JSON
        sweep.append_record(Path(folder), {"event": "end", "job": f"{writer}-{i}", "row": {"pad": "x" * 3000}})


def test_the_manifest_keeps_every_line_whole_under_concurrent_writers(tmp_path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(str(tmp_path), w, 150)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    lines = (tmp_path / sweep.JOBS).read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line parses: none torn or interleaved
    assert len(records) == 600 and {r["job"] for r in records} == {f"{w}-{i}" for w in range(4) for i in range(150)}


def test_a_job_end_reads_only_its_own_folder(tmp_path, monkeypatch):
    runs = make_sweep(tmp_path, 30, CONFIG)
    monkeypatch.setattr(compare, "find_runs", lambda *a: pytest.fail("a job's end walked the sweep"))
    row = sweep.record_job(tmp_path, runs[7], "val/acc")
    (line,) = (tmp_path / sweep.JOBS).read_text().splitlines()
    assert json.loads(line)["row"] == row and row["run"] == runs[7].name
    written = (runs[7] / ".hydra" / "overrides.yaml").read_text().splitlines()
    assert row["overrides"].split() == [line.removeprefix("- ") for line in written] and written[-1] == "- seed=7"


def test_the_sweep_end_reads_the_manifest_and_only_the_jobs_it_lacks(tmp_path, monkeypatch):
    runs = make_sweep(tmp_path, 12, CONFIG)
    for run in runs[:10]:
        sweep.record_job(tmp_path, run, "val/acc")
    sweep.record_job(tmp_path, runs[3], "val/acc")  # job 3 ran again (a rerun of the sweep): its later line wins
    (tmp_path / sweep.JOBS).open("a").write('{"event": "end", "job": "torn')  # a writer killed mid-line
    read = []
    real = compare.run_row
    monkeypatch.setattr(compare, "run_row", lambda run, *a, **k: read.append(run.name) or real(run, *a, **k))
    rows = sweep.sweep_rows(tmp_path)
    assert sorted(read) == sorted(r.name for r in runs[10:])  # the two jobs killed before their line
    assert [r["run"] for r in rows] == [r.name for r in runs]  # in job order, each once


@pytest.fixture
def output(monkeypatch):
    """What dlrun's console prints, piped (not a terminal)."""
    import dlrun.console

    text = io.StringIO()
    monkeypatch.setattr(dlrun.console, "console", Console(file=text, width=200))
    return text


def test_the_end_of_a_large_sweep_shows_the_best_rows_counts_and_where_the_rest_is(tmp_path, output, monkeypatch):
    runs = make_sweep(tmp_path, 150, CONFIG)
    for run in runs:
        sweep.record_job(tmp_path, run, "val/acc")
    monkeypatch.setattr(sweep, "REPORT_ROWS", 20)
    sweep.SweepReport(top=10).on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    out = output.getvalue()
    rows = compare.sort_rows(compare.collect([tmp_path]))
    assert "the best 10 of 150 by best/val/acc" in out
    shown = [line.split()[0] for line in out[:out.index("by status:")].splitlines()[2:]]
    assert shown == [r["run"] for r in rows[:10]]
    failed = sum(r["status"] == "failed" for r in rows)
    assert f"by status: {150 - failed} completed, {failed} failed" in out
    assert f"best: {rows[0]['run']} best/val/acc=" in out and str(tmp_path / "summary.csv") in out.replace("\n", "")
    assert len((tmp_path / "summary.csv").read_text().splitlines()) == 151
    assert len(json.loads((tmp_path / "sweep.json").read_text())["jobs"]) == 150
    assert "the best 20 of 150 jobs" in (tmp_path / "report.html").read_text()


def test_compare_top_shows_the_best_n_and_the_counts(tmp_path, capsys, output):
    make_sweep(tmp_path, 25, CONFIG)
    rows = compare.sort_rows(compare.collect([tmp_path]))
    for r in rows[:3]:  # the best three share an optimizer; the other runs do not all have it
        path = tmp_path / r["run"] / ".hydra" / "overrides.yaml"
        path.write_text(path.read_text().replace("optimizer=sgd", "optimizer=adam"))
    rows = compare.sort_rows(compare.collect([tmp_path]))
    assert compare.main([str(tmp_path), "--top", "3", "--no-group"]) == 0
    out = output.getvalue()
    assert "the best 3 of 25" in out and "every row: --top 0" in out
    # what the 25 runs share, not what the 3 shown happen to share (no override is common to all 25)
    assert "all runs:" not in out and "adam" in out.split("by status:")[0]
    assert f"best: {rows[0]['run']} best/val/acc=" in out
    shown = [line.split()[0] for line in out[:out.index("by status:")].splitlines()[2:]]
    assert shown == [r["run"] for r in rows[:3]]
    assert compare.main([str(tmp_path), "--top", "4", "--format", "csv", "--no-group"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == [r["run"] for r in rows[:4]]
    assert compare.main([str(tmp_path), "--top", "-1"]) == 2
    assert capsys.readouterr().err.strip() == "error: --top -1: give a number of rows >= 0 (0: every row)"


def test_compare_at_a_terminal_shows_the_best_rows_unless_asked_for_every_row(tmp_path, output, monkeypatch):
    make_sweep(tmp_path, 60, CONFIG)
    assert compare.main([str(tmp_path), "--no-group"]) == 0
    assert "the best" not in output.getvalue()  # into a pipe or a file: every row
    monkeypatch.setattr(Console, "is_terminal", property(lambda self: True))
    assert compare.main([str(tmp_path), "--no-group"]) == 0
    assert f"the best {compare.TERMINAL_TOP} of 60" in output.getvalue() and "every row: --top 0" in output.getvalue()
    output.seek(0)
    output.truncate()
    assert compare.main([str(tmp_path), "--no-group", "--top", "0"]) == 0
    assert "the best" not in output.getvalue()


def test_a_finished_job_keeps_only_its_folders_and_number():
    from hydra.core.utils import JobReturn

    hydra_cfg = OmegaConf.create({"hydra": {"runtime": {"output_dir": "/s/3_seed-3"}, "sweep": {"dir": "/s"},
                                            "job": {"num": 3, "id": "3", "name": "dlrun"}, "launcher": {"n_jobs": 2}}})
    ret = JobReturn(cfg=OmegaConf.create({"model": {"name": "mlp"}}), hydra_cfg=hydra_cfg)
    sweep.release(ret)
    assert ret.cfg is None and not isinstance(ret.hydra_cfg, type(hydra_cfg))  # no OmegaConf node left per job
    assert (ret.hydra_cfg.hydra.runtime.output_dir, ret.hydra_cfg.hydra.sweep.dir, ret.hydra_cfg.hydra.job.num) \
        == ("/s/3_seed-3", "/s", 3)


def test_overrides_are_read_as_hydra_wrote_them_quoted_or_plain(tmp_path):
    from omegaconf import OmegaConf

    plain = ["optimizer.lr=0.1", "model.layers=[64,32]", "+tag='a'", "hydra.job.chdir=false"]
    run = make_sweep(tmp_path, 1, CONFIG)[0]
    (run / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(plain))  # as Hydra saves them
    assert compare.run_row(run)["overrides"].split() == plain[:3]
    quoted = [*plain[:3], "data.name=x: y"]  # YAML quotes this one: the whole file goes through the parser
    (run / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(quoted))
    assert compare.run_row(run)["overrides"] == " ".join(quoted)


def test_compare_top_with_sort_says_what_it_sorted_by(tmp_path, output):
    make_sweep(tmp_path, 6, CONFIG)
    assert compare.main([str(tmp_path), "--top", "2", "--sort", "time_s", "--no-group"]) == 0
    out = output.getvalue()
    assert "the first 2 of 6 sorted by time_s" in out and "the best 2" not in out and "\nbest:" not in out
    by_time = sorted(compare.collect([tmp_path]), key=lambda r: r["time_s"])
    shown = [line.split()[0] for line in out[:out.index("by status:")].splitlines()[2:]]
    assert shown == [r["run"] for r in by_time[:2]]
