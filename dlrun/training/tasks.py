"""Task dispatch (`task=train|summary|eval`) and the one place user mistakes become one-line errors.

Exit codes: see dlrun/errors.py and README.md. In a multirun a failing job is recorded and the
sweep goes on; in a single run the process exits with the code.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dlrun.config.schema import typed_overrides
from dlrun.training.validate import validate
from dlrun.errors import EXIT_FAILED, EXIT_INTERRUPTED, ConfigError, DlrunError
from dlrun.run_folder.run_lock import RunFolderBusy
from dlrun.run_folder.run_record import INTERRUPTED

log = logging.getLogger("dlrun")


def seed_everything(seed: int, deterministic: bool) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def build_loop(cfg: DictConfig, run_dir: Path, unfrozen: bool = False):
    """Everything a run needs, in dependency order: threads and seed, device, data, then what trains
    (dlrun/training/assembly.py), then the callbacks. `unfrozen`: see assemble()."""
    import torch

    from dlrun.training import distributed, gc_pause
    from dlrun.training.assembly import assemble
    from dlrun.callbacks.base import build_callbacks
    from dlrun.callbacks.progress import make_progress
    from dlrun.callbacks.unfreeze import Unfreeze
    from dlrun.config.schema import TrainerConfig
    from dlrun.data import build_data
    from dlrun.training.device import autocast_dtype, select_device
    from dlrun.training.loop import Loop
    from dlrun.config.job import threads_from_scheduler, threads_per_job

    t = cfg.trainer
    if threads := t.num_threads or threads_from_scheduler() or threads_per_job():
        torch.set_num_threads(threads)
    seed_everything(cfg.seed, t.deterministic)
    ddp = distributed.launched_by_torchrun()
    device = distributed.join(select_device(t.device)) if ddp else select_device(t.device)
    amp_dtype = autocast_dtype(str(t.precision), device)
    data = build_data(cfg.data, device, cfg.seed)
    if ddp:
        distributed.shard(data, cfg.data.name)
    run = assemble(cfg, data, device, amp_dtype, ddp=ddp, unfrozen=unfrozen)
    callbacks = build_callbacks(cfg.callbacks)
    if t.unfreeze_at_epoch:
        callbacks["unfreeze"] = Unfreeze(t.unfreeze_at_epoch)
    if (progress := make_progress(t.progress)) is not None:
        callbacks["progress"] = progress
    from dlrun.callbacks.optuna_trial import trial_callback

    if (trial := trial_callback()) is not None:  # a trial of an Optuna search: report each epoch, prune
        callbacks["optuna_trial"] = trial
    if not distributed.is_main():
        callbacks = distributed.quiet_rank(callbacks)
    settings = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TrainerConfig), t))  # plain attributes
    loop = Loop(settings=settings, monitor=cfg.monitor, tta=OmegaConf.select(cfg, "eval.tta", default="none"),
                run_config=run.cfg, run_dir=run_dir, model=run.model, loss_fn=run.loss_fn, optimizer=run.optimizer,
                scheduler=run.scheduler, data=data, device=device, amp_dtype=amp_dtype, callbacks=callbacks,
                penalty=run.penalty)
    gc_pause.resume()  # start-up is over: its objects frozen, the collector on for the training
    return loop


def train(cfg: DictConfig, run_dir: Path):
    from contextlib import nullcontext

    from dlrun.training import distributed
    from dlrun.run_folder.run_lock import run_lock

    a_rank = distributed.launched_by_torchrun()  # first: SLURM tasks learn their RANK here, before is_main()
    if cfg.trainer.devices > 1 and not a_rank:
        return _launch_ddp(cfg, run_dir)
    with run_lock(run_dir) if distributed.is_main() else nullcontext():  # one process per run folder
        return _train(cfg, run_dir)


def _train(cfg: DictConfig, run_dir: Path):
    from dlrun.run_folder import checkpoint
    from dlrun.training import distributed
    from dlrun.config.job import in_multirun
    from dlrun.run_folder.rerun import prepare_job
    from dlrun.results.report import print_run_end

    resume_path = cfg.ckpt_path
    if in_multirun() and not resume_path:  # the same sweep run again: skip, resume or retry the job
        action, found = prepare_job(run_dir)
        if action == "skip":
            log.info("job already %s in %s: skipped", found["status"], run_dir)
            return _objective(cfg, found)
        resume_path = found
    if cfg.trainer.resume and not resume_path:
        resume_path = run_dir / "checkpoints" / "last.pt"
        if not resume_path.is_file():
            raise ConfigError("trainer.resume", True, f"there is no {resume_path} to resume from")
    elif (run_dir / "metrics.jsonl").exists() and not resume_path:
        raise ConfigError("hydra.run.dir", run_dir, "already holds a run; add trainer.resume=true to continue it")
    state = checkpoint.load(resume_path) if resume_path else None  # before building: fail fast on a bad file
    if state is not None:
        cfg, finished = _continue_run(cfg, run_dir, Path(resume_path), state)
        if finished is not None:
            return _objective(cfg, finished)
    from dlrun.run_folder.provenance import write_env

    if distributed.is_main() and (state is None or not (run_dir / "env.json").exists()):  # a resume keeps the first start's provenance
        write_env(run_dir, cfg)

    # a run resumed after its frozen layers joined the optimizer: its saved optimizer holds their group
    unfrozen = bool(state and cfg.trainer.unfreeze_at_epoch and state.get("callbacks", {}).get("unfreeze", {}).get("done"))
    loop = build_loop(cfg, run_dir, unfrozen=unfrozen)
    if state is not None:
        checkpoint.restore(loop, state, resume_path)
        log.info("resumed from %s at epoch %d, step %d", resume_path, loop.epoch, loop.step)
    n_params = sum(p.numel() for p in loop.model.parameters())
    import torch

    # short lines: each fits an 80-column terminal (the run folder gets one of its own)
    log.info("model %s, %s parameters; data %s %s", type(checkpoint.unwrap(loop.model)).__name__, f"{n_params:,}",
             cfg.data.name, list(loop.data.info.in_shape))
    t = cfg.trainer
    log.info("%s, torch threads %d, precision %s; effective batch size %d", loop.device, torch.get_num_threads(),
             t.precision, cfg.data.batch_size * t.accumulate_grad_batches)
    if t.accumulate_grad_batches > 1:
        log.info("effective batch size = data.batch_size %d x trainer.accumulate_grad_batches %d",
                 cfg.data.batch_size, t.accumulate_grad_batches)
    log.info("run folder: %s", run_dir)
    try:
        summary = loop.fit()  # on an exception, torchrun ends the other ranks
    finally:  # curves.png and confusion_matrix.png, also of a failed run's epochs
        if distributed.is_main():
            from dlrun.results.figures import write_run_figures

            write_run_figures(run_dir, loop.test_confusion, loop.data.info.class_names)
    distributed.leave()  # DDP: leave the group cleanly (a gloo group left open can abort the exit)
    if distributed.is_main():
        print_run_end(summary)
    if summary["status"] == INTERRUPTED:
        raise SystemExit(EXIT_INTERRUPTED)
    return _objective(cfg, summary)


def _continue_run(cfg: DictConfig, run_dir: Path, path: Path, state: dict) -> tuple[DictConfig, dict | None]:
    """(the config of the run being continued, its summary when there is nothing left to do).

    The run's own saved config wins over this command's defaults; a finished run is left as it is
    unless more epochs are asked for, and then its first summary is kept (summary.prev-N.json).
    """
    from dlrun.training import distributed, resume
    from dlrun.results.report import print_run_end

    saved = resume.saved_run(path, state)
    taken = {}
    if saved is not None:
        cfg, taken = resume.restore_config(cfg, saved, path)
        validate(cfg)
        for key, (old, new) in taken.items():
            log.info("resume: %s=%s (was %s)", key, new, old)
        if distributed.is_main() and (saved.run_dir is None or saved.run_dir != run_dir.resolve()):
            resume.write_run_config(run_dir, cfg, saved)
    resume.check_schedule(cfg, state, path)
    finished = resume.finished_summary(run_dir)  # every DDP rank reads it: all stop here, or none
    if finished is not None:
        more_epochs = "trainer.max_epochs" in taken or saved is None
        if not more_epochs or cfg.trainer.max_epochs <= state["epoch"]:
            if distributed.is_main():
                log.info("%s already %s after %d epochs: nothing to do (trainer.max_epochs=N with N > %d trains it "
                         "further)", run_dir, finished["status"], state["epoch"], state["epoch"])
                print_run_end(finished)
            return cfg, finished
    if distributed.is_main():
        if finished is not None:
            log.info("the run's first summary is kept as %s", resume.archive_summary(run_dir))
        resume.record_resume(run_dir, path, state, taken)
    return cfg, None


def _launch_ddp(cfg: DictConfig, run_dir: Path) -> float:
    """`trainer.devices=N`: the same command as N processes (torch's elastic launcher), one run folder."""
    import json

    from hydra.core.hydra_config import HydraConfig

    from dlrun.training import distributed

    log.info("launching %d DDP processes (torch.distributed.run) into %s", cfg.trainer.devices, run_dir)
    code = distributed.launch(cfg.trainer.devices, typed_overrides(HydraConfig.get()), str(run_dir))
    summary_path = run_dir / "summary.json"
    if code != 0 or not summary_path.is_file():
        error = DlrunError(f"the {cfg.trainer.devices} DDP processes ended with exit code {code}; "
                           f"their message is above and in {run_dir / 'dlrun.log'}")
        error.exit_code = code or EXIT_FAILED
        raise error
    return _objective(cfg, json.loads(summary_path.read_text()))


def _objective(cfg: DictConfig, summary: dict) -> float:
    """What a hyperparameter search optimises: the best monitored value (NaN marks a failed trial)."""
    value = (summary.get("best") or {}).get(cfg.monitor)
    return float("nan") if value is None else value


def _task_function(name: str):
    import importlib

    from dlrun.config.schema import TASKS  # name -> "module:function", imported only when chosen

    module, func = TASKS[name].split(":")
    return getattr(importlib.import_module(module), func)


def _record_failure(run_dir: Path, error: str) -> None:
    """A run that failed before its loop wrote anything still gets a summary.json that says so."""
    from dlrun.run_folder.run_record import failed_summary, path_of, write_summary

    path = path_of(run_dir)
    if not path.exists():
        try:
            write_summary(run_dir, failed_summary(run_dir, error))
        except OSError as e:  # a full disk or a read-only folder: the error line above is what remains
            log.error("could not write %s: %s", path, e.strerror or e)


def run_task(cfg: DictConfig):
    """Hydra's task function: run, and turn the outcome into an exit code (a single run) or a value (a sweep)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    code, result = execute(cfg, Path(hc.runtime.output_dir))
    if hc.mode == RunMode.MULTIRUN:  # the sweep goes on; summary.json says why a job failed
        return result if code == 0 else float("nan")
    if code:
        sys.exit(code)
    return result


def execute(cfg: DictConfig, run_dir: Path, reraise: bool = False) -> tuple[int, object]:
    """(exit code, task result). User mistakes and failures become one `error:` line and a summary.json
    (and are raised again with `reraise`: dlrun.run)."""
    from dlrun.training import distributed, gc_pause

    gc_pause.pause()  # until the loop is built (build_loop): see dlrun/training/gc_pause.py
    try:
        validate(cfg)
        if cfg.task != "train" and distributed.is_main():  # train writes it once it knows it trains here (not a skipped sweep job)
            from dlrun.run_folder.provenance import write_env

            write_env(run_dir, cfg)  # env.json: versions, git commit, device, command line
        return 0, _task_function(cfg.task)(cfg, run_dir)
    except RunFolderBusy as e:  # the folder is another live process's: write nothing into it
        log.error("error: %s", e)
        code = e.exit_code
    except DlrunError as e:
        log.error("error: %s", e)
        _record_failure(run_dir, str(e))
        if reraise:
            raise
        code = e.exit_code
    except Exception as e:  # not a user mistake: a bug or an environment fault
        if os.environ.get("DLRUN_DEBUG"):
            raise
        message = f"{type(e).__name__}: {e}".strip().splitlines()[0]
        try:
            with open(run_dir / "dlrun.log", "a") as f:
                f.write(traceback.format_exc())
        except OSError:
            pass  # a full disk: the error line is still printed
        log.error("error: %s (traceback in %s; DLRUN_DEBUG=1 prints it)", message, run_dir / "dlrun.log")
        _record_failure(run_dir, message)
        if reraise:
            raise
        code = EXIT_FAILED
    finally:
        gc_pause.end()
    return code, None
