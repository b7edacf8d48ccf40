"""summary.json through the one run record: the file on disk keeps its keys, order and values."""

import json

from dlrun.run_folder import run_record
from dlrun.run_folder.run_record import RunSummary, read_summary, write_summary


def test_a_loop_summary_round_trips_with_its_keys_in_order(tmp_path):
    on_disk = {"status": "stopped_early", "epochs": 3, "best": {"epoch": 2, "val/acc": 0.8},
               "test": {"test/loss": 0.5, "test/acc": 0.79}, "samples_per_s": 1000.0, "duration_s": 2.5,
               "error": None, "run_dir": str(tmp_path), "stopped_epoch": 3, "trial": 4}
    (tmp_path / "summary.json").write_text(json.dumps(on_disk))
    summary = read_summary(tmp_path)
    assert summary.status == run_record.STOPPED_EARLY and summary.finished
    assert summary.get("trial") == 4 and summary.get("epochs") == 3
    assert list(summary.to_dict().items()) == list(on_disk.items())
    write_summary(tmp_path / "copy", summary)
    assert json.loads((tmp_path / "copy" / "summary.json").read_text()) == on_disk


def test_a_missing_or_torn_summary_reads_as_none(tmp_path):
    assert read_summary(tmp_path) is None
    (tmp_path / "summary.json").write_text('{"status": "comp')
    assert read_summary(tmp_path) is None


def test_every_status_has_a_style_and_a_report_class():
    assert set(run_record.STATUS_STYLE) == set(run_record.STATUSES) == set(run_record.STATUS_CLASS)
    assert RunSummary(status=run_record.FAILED).to_dict()["test"] == {}
