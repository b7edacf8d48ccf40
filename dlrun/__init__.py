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


def __getattr__(name: str):
    # `dlrun.sweep([...])`: the name is also the module dlrun/sweep.py, which is made callable there
    if name == "sweep":
        import importlib

        return importlib.import_module("dlrun.sweep")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
