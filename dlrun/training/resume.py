"""Resuming a run continues *that* run: its saved config, not the defaults of today's command line.

`trainer.resume=true hydra.run.dir=R` (or `ckpt_path=R/checkpoints/x.pt`) starts from R's
`.hydra/config.yaml` (or, for a checkpoint outside a run folder, the config stored in the
checkpoint). New overrides are taken only where they do not change what the run is
(`RESUMABLE`); any other change is refused with one line. Every resume is recorded in
`resumes.jsonl`; a finished run is never overwritten (see `archive_summary`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dlrun.errors import DlrunError
from dlrun.run_folder.run_record import read_summary

# keys a resume may change: how long and where the run trains, not what it learns
RESUMABLE = ("trainer.max_epochs", "trainer.device", "trainer.num_threads", "trainer.progress",
             "data.num_workers")
_IGNORED = ("trainer.resume", "ckpt_path")  # how the resume is asked for, not part of the run


class ResumeChangeError(DlrunError):
    """An override on resume that would make the folder describe two different runs."""

    def __init__(self, key: str, saved, new, source: Path, checkpoint: Path):
        super().__init__(
            f"{key}={_show(new)} would change the run being resumed (it was made with {key}={_show(saved)}, "
            f"see {source}); a resume may change only {', '.join(RESUMABLE)}. To train with other settings "
            f"from its weights, start a new run: model.pretrained={checkpoint}")


@dataclass
class SavedRun:
    """What a resume continues: the run's config, where it came from, and how it was first started."""

    config: DictConfig
    source: Path  # the file the config was read from
    run_dir: Path | None  # the run folder of the checkpoint, when it has one
    overrides: list[str] = field(default_factory=list)  # the first start's command-line overrides
    choices: dict = field(default_factory=dict)  # the first start's group choices (hydra.runtime.choices)


def _show(value) -> str:
    if isinstance(value, DictConfig):
        value = OmegaConf.to_container(value, resolve=False)
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def run_folder_of(checkpoint: Path) -> Path | None:
    """R for R/checkpoints/NAME.pt when R is a run folder (it holds .hydra/config.yaml)."""
    run_dir = Path(checkpoint).resolve().parent.parent
    return run_dir if (run_dir / ".hydra" / "config.yaml").is_file() else None


# modules renamed since a run may have been saved: its config still names them by their old path
MOVED_TARGETS = {"dlrun.callbacks.checkpoint.": "dlrun.callbacks.model_checkpoint."}


def _current_targets(cfg: DictConfig) -> DictConfig:
    text = OmegaConf.to_yaml(cfg)
    moved = text
    for old, new in MOVED_TARGETS.items():
        moved = moved.replace(f"_target_: {old}", f"_target_: {new}")
    return cfg if moved == text else OmegaConf.create(moved)  # the config as saved unless a target moved


def saved_run(checkpoint: Path, state: dict) -> SavedRun | None:
    """The run a checkpoint belongs to: its folder's .hydra files, else the config inside the checkpoint."""
    saved = _saved_run(checkpoint, state)
    if saved is not None:
        saved.config = _current_targets(saved.config)
    return saved


def _saved_run(checkpoint: Path, state: dict) -> SavedRun | None:
    run_dir = run_folder_of(checkpoint)
    if run_dir is not None:
        hydra_dir = run_dir / ".hydra"
        overrides = OmegaConf.load(hydra_dir / "overrides.yaml") if (hydra_dir / "overrides.yaml").is_file() else []
        choices = {}
        if (hydra_dir / "hydra.yaml").is_file():
            choices = OmegaConf.select(OmegaConf.load(hydra_dir / "hydra.yaml"), "hydra.runtime.choices") or {}
            choices = OmegaConf.to_container(choices) if choices else {}
        return SavedRun(OmegaConf.load(hydra_dir / "config.yaml"), hydra_dir / "config.yaml", run_dir,
                        list(overrides), choices)
    if state.get("config"):
        return SavedRun(OmegaConf.create(state["config"]), Path(checkpoint), None)
    return None


def _given_overrides() -> tuple[list[str], dict] | None:
    """(this command's overrides, its group choices) under Hydra; None when called from Python."""
    from hydra.core.hydra_config import HydraConfig

    from dlrun.config.schema import typed_overrides

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    return typed_overrides(hc), OmegaConf.to_container(hc.runtime.choices)


def _flat(node, prefix: str = "") -> dict:
    """Dotted keys to leaf values of a resolved config."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out or {prefix[:-1]: {}}
    return {prefix[:-1]: node}


def _resolved(cfg, key: str | None = None):
    node = cfg if key is None else OmegaConf.select(cfg, key, throw_on_missing=False)
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)
    return node


def _same(a, b) -> bool:
    return a == b or (isinstance(a, (int, float)) and isinstance(b, (int, float)) and float(a) == float(b))


def _whole_config_changes(cfg: DictConfig, saved: SavedRun) -> list[tuple[str, object, object]]:
    """Called from Python there is no command line: every key of the config is compared, after the keys a
    resume may change are set back to the saved run's (so that `${trainer.max_epochs}` compares equal)."""
    from dlrun.nn.regularizers import with_model_options

    # a checkpoint stores the config after the regularizer set model options
    new, old = (with_model_options(node.copy()) for node in (cfg, saved.config))
    for node in (new, old):
        OmegaConf.set_struct(node, False)
    changes = []
    for key in RESUMABLE + _IGNORED:
        value, before = OmegaConf.select(new, key), OmegaConf.select(old, key)
        if not _same(value, before):
            changes.append((key, before, value))
        OmegaConf.update(new, key, before, force_add=True)
    old, new = _flat(_resolved(old)), _flat(_resolved(new))
    for key in sorted(old.keys() | new.keys()):
        if not _same(old.get(key), new.get(key)):
            changes.append((key, old.get(key), new.get(key)))
    return changes


def _command_line_changes(cfg: DictConfig, saved: SavedRun, overrides: list[str], choices: dict):
    """Under Hydra only what the command line says counts: a default it did not name is the saved run's."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    changes = []
    for o in OverridesParser.create().parse_overrides(overrides):
        key = o.key_or_group
        if key.startswith("hydra") or o.package:
            continue
        if key in choices and key in saved.choices:  # a config group: compare the choice, e.g. optimizer=sgd
            if choices[key] != saved.choices[key]:
                changes.append((key, saved.choices[key], choices[key]))
            continue
        old, new = _resolved(saved.config, key), (None if o.is_delete() else _resolved(cfg, key))
        if not _same(old, new):
            changes.append((key, old, new))
    return changes


def restore_config(cfg: DictConfig, saved: SavedRun, checkpoint: Path) -> tuple[DictConfig, dict]:
    """The run's config with the allowed new values of this command; ({key: [old, new]} taken).

    A change of any other key is refused (ResumeChangeError). From the command line the base is the
    saved config; from Python the given config is the run's (it was just compared key by key).
    """
    from dlrun.config.schema import DlrunConfig

    given = _given_overrides()
    changes = _whole_config_changes(cfg, saved) if given is None else _command_line_changes(cfg, saved, *given)
    taken = {}
    for key, old, new in changes:
        if key in _IGNORED:
            continue
        if key not in RESUMABLE:
            raise ResumeChangeError(key, old, new, saved.source, checkpoint)
        taken[key] = [old, new]
    if given is None:
        return cfg, taken
    run_cfg = OmegaConf.merge(OmegaConf.structured(DlrunConfig), saved.config)
    for key in _IGNORED:
        OmegaConf.update(run_cfg, key, OmegaConf.select(cfg, key))
    for key, (_, new) in taken.items():
        OmegaConf.update(run_cfg, key, new)
    OmegaConf.set_struct(run_cfg, True)
    return run_cfg, taken


def record_resume(run_dir: Path, checkpoint: Path, state: dict, taken: dict) -> None:
    """One line per resume in resumes.jsonl: when, from where, and what the command changed."""
    given = _given_overrides()
    row = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "checkpoint": str(checkpoint),
           "from_epoch": state.get("epoch"), "from_batch": state.get("batch_in_epoch", 0),
           "overrides": given[0] if given else None, "changed": taken}
    with open(Path(run_dir) / "resumes.jsonl", "a") as f:
        f.write(json.dumps(row, default=str) + "\n")


def write_run_config(run_dir: Path, run_cfg: DictConfig, saved: SavedRun) -> None:
    """A run continued in a new folder: its .hydra files describe the run it continues, not the defaults."""
    from dlrun.run_folder.records import atomic_write

    hydra_dir = Path(run_dir) / ".hydra"
    if not hydra_dir.is_dir():
        return
    given = _given_overrides()
    overrides = saved.overrides + [o for o in (given[0] if given else []) if o not in saved.overrides]
    atomic_write(hydra_dir / "config.yaml", lambda f: f.write(OmegaConf.to_yaml(run_cfg)), mode="w")
    atomic_write(hydra_dir / "overrides.yaml", lambda f: f.write(OmegaConf.to_yaml(overrides)), mode="w")


def check_schedule(cfg, state: dict, path: Path) -> None:
    """More epochs on resume stretch a schedule planned over max_epochs; one-cycle's total steps are fixed
    in its saved state, so it cannot be stretched (cosine can: checkpoint._load_schedule re-plans it)."""
    total = (state.get("scheduler") or {}).get("total_steps")
    if total is not None and "OneCycleLR" in str(cfg.scheduler.get("_target_")) and total != cfg.trainer.max_epochs:
        raise DlrunError(
            f"scheduler=onecycle of {path} was planned for {total} epochs and cannot be stretched to "
            f"trainer.max_epochs={cfg.trainer.max_epochs}; to train on from its weights, start a new run: "
            f"model.pretrained={path}")


def archive_summary(run_dir: Path) -> Path | None:
    """A finished run trained further: keep its first summary as summary.prev-N.json."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        return None
    n = 1 + sum(1 for _ in Path(run_dir).glob("summary.prev-*.json"))
    target = path.with_name(f"summary.prev-{n}.json")
    path.rename(target)
    return target


def finished_summary(run_dir: Path) -> dict | None:
    """summary.json of a run that ended by itself (completed or stopped early), else None."""
    summary = read_summary(run_dir)
    return summary.to_dict() if summary is not None and summary.finished else None
