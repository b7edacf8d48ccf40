"""Start-up runs with Python's cyclic collector paused, the training with it on and start-up's objects frozen
(dlrun/training/gc_pause.py); whatever way the task ends, the collector is left as the caller had it."""

import gc

import pytest

from conftest import TINY, make_cfg
from dlrun.training.tasks import execute
from user_callbacks import CollectorState

STATE = ["callbacks=none", "+callbacks.state._target_=user_callbacks.CollectorState"]


@pytest.fixture
def collector():
    assert gc.isenabled() and gc.get_freeze_count() == 0  # what every test here starts from
    CollectorState.seen = {}
    yield
    gc.unfreeze()
    gc.enable()


def test_start_up_runs_paused_and_the_training_with_the_collector_on(collector, tmp_path):
    code, _ = execute(make_cfg(*TINY, "model=mlp", *STATE), tmp_path)
    assert code == 0
    assert CollectorState.seen["start-up"] == (False, 0)
    on, frozen = CollectorState.seen["training"]
    assert on and frozen > 10_000  # torch's modules and the run's objects, skipped by the training's collections
    assert gc.isenabled() and gc.get_freeze_count() == 0  # after the run: all collectable again


@pytest.mark.parametrize("mistake, code, trained", [
    (["optimizer.lr=-1"], 2, False),  # refused before anything is built
    (["~loss", "+loss._target_=user_components.NaNAfter", "+loss.steps=1"], 1, True),  # NaN in the training
])
def test_a_failed_task_leaves_the_collector_on_and_nothing_frozen(collector, tmp_path, mistake, code, trained):
    assert execute(make_cfg(*TINY, "model=mlp", *STATE, *mistake), tmp_path)[0] == code
    assert ("training" in CollectorState.seen) == trained
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_callers_own_disabled_collector_stays_disabled_and_nothing_is_frozen(collector, tmp_path):
    gc.disable()  # e.g. a script calling dlrun.run that manages collection itself
    code, _ = execute(make_cfg(*TINY, "model=mlp", *STATE), tmp_path)
    assert code == 0
    assert CollectorState.seen["training"] == (False, 0)
    assert not gc.isenabled() and gc.get_freeze_count() == 0
