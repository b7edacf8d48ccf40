"""The ONE training loop: fit = (train an epoch, validate) x epochs, then test once.

It knows nothing about particular models, losses or callbacks: it calls them through
`model(x)`, `loss_fn(output, y)`, `optimizer.step()` and the Callback hooks. Files it owns
are the run-folder contract: metrics.jsonl and summary.json (checkpoints and TensorBoard
are callbacks).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from dlrun.training import distributed
from dlrun.callbacks.base import order_callbacks
from dlrun.config.schema import TrainerConfig
from dlrun.models.common import eval_mode
from dlrun.training.device import autocast, grad_scaler
from dlrun.errors import DlrunError
from dlrun.run_folder.metric_mode import improved, mode_for
from dlrun.training.metrics import ConfusionCounts, EpochMetrics
from dlrun.run_folder.records import MetricsLog, RunWriteError, write_json
from dlrun.run_folder.run_record import COMPLETED, FAILED, INTERRUPTED, PRUNED, RunSummary, STOPPED_EARLY
from dlrun.training.tta import check as check_tta, forward as tta_forward

log = logging.getLogger("dlrun")


class NonFiniteLossError(DlrunError):
    exit_code = 1

    def __init__(self, value: float, step: int, epoch: int):
        self.step = step
        super().__init__(
            f"the training loss became {value} at step {step} (epoch {epoch}); try a lower optimizer.lr, "
            "trainer.precision=32, or trainer.gradient_clip_val=1.0"
        )


def score(model, loader, loss_fn, device, amp_dtype, prefix: str, target_std=None, tta: str = "none",
          confusion: ConfusionCounts | None = None, outputs: list | None = None) -> dict[str, float]:
    """Loss and accuracy (regression: MAE and RMSE in the targets' units) of `model` over a loader, in eval mode;
    `tta`: see dlrun/training/tta.py. In the same pass, `confusion` counts the predictions per class and `outputs`
    collects (output, target) CPU tensor pairs per batch."""
    acc = EpochMetrics(device, target_std)
    with eval_mode(model):
        for x, y in loader:
            with autocast(device, amp_dtype):
                out = tta_forward(model, x, tta)
                loss = loss_fn(out, y)
            acc.update(loss.float(), out, y)
            if confusion is not None:
                confusion.update(out, y)
            if outputs is not None:
                outputs.append((out.float().cpu(), y.cpu()))
    return acc.compute(prefix)


class Loop:
    """State of one run that callbacks read: model, optimizer, epoch (completed), step, history, best, and the
    settings they need (max_epochs, batches_per_epoch, gradient_scale).

    `settings`: the typed trainer group (dlrun.config.schema.TrainerConfig); `monitor`: the metric that picks the best
    epoch; `tta`: validation and test predictions (dlrun/training/tta.py); `run_config`: the run's whole config, kept
    only to be recorded (checkpoints store it, TensorBoard shows its hparams): the loop reads none of it.
    """

    def __init__(self, *, settings: TrainerConfig, monitor: str, run_dir: Path, model, loss_fn, optimizer, scheduler,
                 data, device, amp_dtype, callbacks: dict, penalty=None, tta: str = "none", run_config=None):
        self.settings, self.run_config, self.run_dir = settings, run_config, Path(run_dir)
        self.model, self.loss_fn, self.optimizer, self.scheduler = model, loss_fn, optimizer, scheduler
        self.data, self.device, self.amp_dtype = data, device, amp_dtype
        self.callbacks = order_callbacks(callbacks)
        self.penalty = penalty  # regularization: () -> weight penalty added to the training loss, or None
        self.scaler = grad_scaler(device, amp_dtype)
        self.monitor = monitor
        self.monitor_mode = mode_for(self.monitor)
        self.epoch = 0  # epochs completed
        self.step = 0  # optimizer steps taken
        self.batch_in_epoch = 0  # batches of the current epoch done (non-zero only mid-epoch)
        self.train_sums = EpochMetrics(device, data.info.target_std)
        self.history: list[dict] = []
        self.best: dict | None = None
        self.stop_reason: str | None = None  # "stopped_early" | "interrupted"
        self.resumed_from: str | None = None
        self.test_confusion = None  # counts[true, predicted] of the test split (classification), for the figure
        self.is_main = distributed.is_main()
        self.tta = tta
        check_tta(self.tta, data.info.in_shape)
        self.batches_per_epoch = min(len(data.train), settings.limit_train_batches or len(data.train))

    @property
    def max_epochs(self) -> int:
        return self.settings.max_epochs

    @property
    def gradient_scale(self) -> float:
        """What the gradients in `p.grad` are multiplied by at on_before_optimizer_step: AMP's loss scale
        (fp16), except when clipping has already unscaled them; 1.0 otherwise."""
        if self.scaler.is_enabled() and not self.settings.gradient_clip_val > 0:
            return self.scaler.get_scale()
        return 1.0

    # -- callbacks ---------------------------------------------------------------------------------
    def request_stop(self, reason: str = "stopped_early") -> None:
        """Ask the loop to stop after the current batch (interrupted) or epoch (stopped_early, pruned)."""
        if self.stop_reason != "interrupted":
            self.stop_reason = reason

    def _interrupted(self) -> bool:
        """Under DDP the processes agree, so that all stop at the same batch (none waits for the others)."""
        if distributed.world_size() > 1:
            flag = distributed.all_reduce_sum([float(self.stop_reason == "interrupted")], self.device)[0]
            if flag:
                self.stop_reason = "interrupted"
        return self.stop_reason == "interrupted"

    def _call(self, hook: str, *args) -> None:
        for cb in self.callbacks.values():
            getattr(cb, hook)(self, *args)

    # -- one epoch -----------------------------------------------------------------------------------
    def train_epoch(self) -> bool:
        """Train over the epoch's remaining batches; False when interrupted mid-epoch."""
        model, opt, loader = self.model, self.optimizer, self.data.train
        model.train()
        loader.set_epoch(self.epoch)
        accumulate, clip = self.settings.accumulate_grad_batches, self.settings.gradient_clip_val
        n_batches = self.batches_per_epoch
        for i, (x, y) in enumerate(loader.batches(start=self.batch_in_epoch), start=self.batch_in_epoch):
            with autocast(self.device, self.amp_dtype):
                out = model(x)
                loss = self.loss_fn(out, y)
            penalty = self.penalty() if self.penalty is not None else None
            objective = loss if penalty is None else loss + penalty
            if not torch.isfinite(objective):
                raise NonFiniteLossError(objective.item(), self.step + 1, self.epoch + 1)
            self.scaler.scale(objective * (getattr(loader, "batch_weight", 1.0) / accumulate)).backward()
            if (i + 1) % accumulate == 0 or i + 1 == n_batches:
                if clip > 0:
                    self.scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                self._call("on_before_optimizer_step")
                self.scaler.step(opt)
                self.scaler.update()
                opt.zero_grad(set_to_none=True)
                self.step += 1
            self.train_sums.update(loss.float(), out, y, penalty)
            self.batch_in_epoch = i + 1
            self._call("on_batch_end", i, loss)
            # stop on an optimizer step: gradients accumulated in between are not in a checkpoint
            if (i + 1) % accumulate == 0 and self._interrupted():
                return False
            if i + 1 >= n_batches:
                break
        return True

    def _end_epoch(self, train_time: float, samples_before: int) -> dict:
        """The epoch's row; `samples_before`: samples of this epoch trained before a resume (not in train_time)."""
        row = {"epoch": self.epoch, "step": self.step}
        row.update(self.train_sums.compute("train"))
        local = self.train_sums.count
        trained = (local - samples_before) * self.train_sums.global_count / max(local, 1)  # all ranks, this session
        if self.data.val is not None:
            row.update(score(self.model, self.data.val, self.loss_fn, self.device, self.amp_dtype, "val",
                             self.data.info.target_std, self.tta))
        row["lr"] = self.optimizer.param_groups[0]["lr"]
        row["samples_per_s"] = trained / max(train_time, 1e-9)
        self.train_sums = EpochMetrics(self.device, self.data.info.target_std)
        self.batch_in_epoch = 0
        value = row.get(self.monitor)
        if value is not None and improved(value, self.best and self.best[self.monitor], self.monitor_mode):
            self.best = {"epoch": self.epoch, self.monitor: value}
        return row

    # -- the whole run -------------------------------------------------------------------------------
    def fit(self) -> dict:
        metrics_log = None
        if self.is_main:  # under DDP only rank 0 writes files
            self.run_dir.mkdir(parents=True, exist_ok=True)
            metrics_log = MetricsLog(self.run_dir / "metrics.jsonl", history=self.history if self.resumed_from else None)
        started = time.perf_counter()
        status, error, test, throughput = COMPLETED, None, {}, []
        try:
            with _stop_on_signals(self):
                self._call("on_fit_start")
                while self.epoch < self.max_epochs and self.stop_reason is None:
                    if self.batch_in_epoch == 0:
                        self._call("on_epoch_start")
                    t0, samples_before = time.perf_counter(), self.train_sums.count
                    if not self.train_epoch():
                        break
                    self.epoch += 1
                    row = self._end_epoch(time.perf_counter() - t0, samples_before)
                    if self.scheduler is not None:
                        _step_scheduler(self.scheduler, row.get(self.monitor))
                    row["time_s"] = time.perf_counter() - t0
                    throughput.append(row["samples_per_s"])
                    self.history.append(row)
                    self._call("on_epoch_end", row)
                    if metrics_log is not None:  # after the callbacks: the keys they add (grad_norm/...) land too
                        metrics_log.write(row)
                if self.stop_reason not in (INTERRUPTED, PRUNED):  # a pruned trial stops at once: no test
                    self._call("on_train_end")
                    counts = ConfusionCounts(self.data.info.num_classes, self.device) \
                        if self.data.info.task == "classification" else None
                    test = score(self.model, self.data.test, self.loss_fn, self.device, self.amp_dtype, "test",
                                 self.data.info.target_std, self.tta, confusion=counts)
                    self.test_confusion = counts.compute() if counts is not None else None
            status = self.stop_reason if self.stop_reason in (INTERRUPTED, STOPPED_EARLY, PRUNED) else COMPLETED
        except KeyboardInterrupt:  # a second Ctrl-C, or a signal we could not hook
            status = INTERRUPTED
        except BaseException as e:
            status, error = FAILED, f"{type(e).__name__}: {e}"
            self._call("on_exception", e)
            raise
        finally:
            summary = RunSummary(
                status=status, epochs=self.epoch, best=self.best, test=test,
                samples_per_s=sum(throughput) / len(throughput) if throughput else None,
                duration_s=time.perf_counter() - started, error=error, run_dir=str(self.run_dir),
            ).to_dict()  # a dict: callbacks add their keys in on_fit_end
            if status == STOPPED_EARLY:
                summary["stopped_epoch"] = self.epoch
            try:
                self._call("on_fit_end", summary)
            finally:
                if self.is_main:
                    _write_summary(self.run_dir / "summary.json", summary, failing=error is not None)
        return summary


def _write_summary(path: Path, summary: dict, failing: bool) -> None:
    """summary.json; when it cannot be written while the run is already failing, the first error stays the one
    reported (a full disk fails both)."""
    try:
        write_json(path, summary)
    except OSError as e:
        if not failing:
            raise RunWriteError(path, e) from None
        log.error("could not write %s either: %s", path, e.strerror or e)


def _step_scheduler(scheduler, monitored: float | None) -> None:
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        if monitored is not None:
            scheduler.step(monitored)
    else:
        scheduler.step()


@contextmanager
def _stop_on_signals(loop: Loop):
    """SIGINT/SIGTERM ask the loop to stop after the current batch; a second SIGINT aborts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if loop.stop_reason == "interrupted" and signum == signal.SIGINT:
            raise KeyboardInterrupt
        loop.stop_reason = "interrupted"

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
