"""Python's cyclic garbage collector, paused while a run starts up.

Start-up creates about half a million objects that live as long as the run: torch's modules, and
torch._dynamo's, which the first optimizer's creation imports. Every collection triggered while they are
being created walks all of those made before it again; on a LeNet run that was 0.5-0.7 s of a 3.9-4.7 s
start-up (benchmarks/startup.py, docs/performance.md). So `tasks.execute` pauses the collector; once the
run is built (the end of `build_loop`) its objects are frozen (gc.freeze: collections skip them, the
training's included) and the collector resumes. When the task ends they are unfrozen, so that what one
job leaves behind can still be collected while the next job of an in-process sweep runs.

Tasks that build no training loop (eval, predict, summary, landscape: one bounded pass each) stay paused to
their end.
"""

from __future__ import annotations

import gc

_paused = False  # this module disabled the collector (a caller's own gc.disable() is left alone)
_frozen = False


def pause() -> None:
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume() -> None:
    """The run is built: freeze what start-up made and collect again."""
    global _paused, _frozen
    if _paused:
        gc.freeze()
        gc.enable()
        _paused, _frozen = False, True


def end() -> None:
    """The task is over (done, failed or interrupted): collection on, start-up's objects collectable again."""
    global _paused, _frozen
    if _paused:
        gc.enable()
        _paused = False
    if _frozen:
        gc.unfreeze()
        _frozen = False
