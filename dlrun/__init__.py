"""dlrun: a command-line deep-learning experiment runner (Hydra configs, one plain PyTorch loop).

"The notes" in comments and docstrings are the course's lecture notes (`notes/lecture-notes.txt`: the
perceptron to ResNet, and callbacks), which dlrun implements; docs/lessons.md maps each of their concepts
to its option and the test that checks it, and lists where dlrun's default differs from the notes' form.
"""

__version__ = "0.1.0"


def run(overrides=()) -> dict:
    """`dlrun OVERRIDES` from Python: returns the run's summary (see dlrun/api.py)."""
    from dlrun.api import run as _run

    return _run(overrides)


def sweep(overrides=()) -> list[dict]:
    """`dlrun -m OVERRIDES` from Python: the jobs' rows, best first (see dlrun/api.py)."""
    from dlrun.api import sweep as _sweep

    return _sweep(overrides)
