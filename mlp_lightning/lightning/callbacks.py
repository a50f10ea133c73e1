"""Callbacks the project adds to Lightning's Trainer: summaries, HPARAMS session, divergence, threads."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import lightning as L
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import convert_inf
from lightning.pytorch.loggers import TensorBoardLogger

from mlp_lightning.core.errors import DivergenceError, RunInterrupted, WriteFailed
from mlp_lightning.core.hparams import HParams
from mlp_lightning.core.report import bar_metrics, epoch_description, epoch_line, should_report
from mlp_lightning.core.tensorboard_schema import (
    METRIC_TAGS,
    hparams_session_end,
    hparams_session_start,
)
from mlp_lightning.core.weights import nonfinite_names
from mlp_lightning.lightning.internals import batches_done_in_resumed_epoch
from mlp_lightning.runs.files import event_file_errors


def epoch_metrics(trainer: L.Trainer) -> dict[str, float]:
    """The metric tags logged so far, as their last values (val/* only once validation has run)."""
    logged = trainer.callback_metrics
    return {tag: float(logged[tag]) for tag in METRIC_TAGS if tag in logged}


class EpochSummary(L.Callback):
    """Prints the notebook-style summary line at epochs 1, 5, 10, ... and the last."""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if not trainer.is_global_zero or not should_report(epoch, trainer.max_epochs):
            return
        line = epoch_line(epoch, epoch_metrics(trainer))
        bar = trainer.progress_bar_callback
        if bar is not None and bar.is_enabled:
            bar.print(line)  # clears the bar, writes the line from its first column, redraws the bar
        else:
            print(line, flush=True)  # whole, before anything the run writes to stderr


class EpochProgressBar(TQDMProgressBar):
    """Lightning's bar, counting epochs from 1 as the summaries and messages do, and off unless ``enabled``;
    it shows what the twin's bar shows (``bar_metrics``).

    Lightning's own reads ``Epoch 0`` in the first epoch; in an epoch resumed part-way it
    keeps its placeholder ``Training: 50/?``, since Lightning calls no ``on_train_epoch_start``
    there. Disabled (off a terminal), it draws nothing but still keeps its description.
    """

    def __init__(self, refresh_rate: int, enabled: bool = True) -> None:
        super().__init__(refresh_rate=refresh_rate)
        if not enabled:
            self.disable()

    @property
    def train_description(self) -> str:
        return epoch_description(self.trainer.current_epoch + 1, self.trainer.max_epochs)

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, str]:
        # what the twin's bar shows: the metric tags, without Lightning's v_num
        return bar_metrics({tag: float(value) for tag, value in trainer.progress_bar_metrics.items()})

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        # an epoch resumed part-way (or before its end) gets no on_train_epoch_start: set it up here
        self._start_epoch(done=batches_done_in_resumed_epoch(trainer))

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._leave:  # as Lightning's own does
            self.train_progress_bar = self.init_train_tqdm()
        self._start_epoch(done=0)

    def _start_epoch(self, done: int) -> None:
        bar = self.train_progress_bar
        bar.set_description(self.train_description, refresh=False)
        bar.initial = 0  # before reset() redraws: a rate with n < initial comes out negative
        bar.reset(total=convert_inf(self.total_train_batches))
        if done:
            bar.n = bar.initial = done  # the rate counts the batches this process ran
            bar.refresh()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        # end the bars' lines, so that the message the run stops with starts on a line of its own
        for bar in (self._val_progress_bar, self._train_progress_bar):
            if bar is not None:
                bar.close()


class HParamsSession(L.Callback):
    """Writes the run's hyperparameters as an HPARAMS session, the same keys as the NumPy twin.

    Lightning's TensorBoardLogger writes the session only together with a metric
    (``hp_metric``), whose placeholder value hides other runs in that tab; here the
    session names the four metric tags instead, so the tab shows their last values.
    """

    def __init__(self, hparams: dict[str, int | float | str], run_name: str) -> None:
        self.hparams, self.run_name = hparams, run_name

    def _writer(self, trainer: L.Trainer):
        logger = trainer.logger
        # the SummaryWriter's public ``file_writer``, which takes raw Summary protos (None once closed)
        return logger.experiment.file_writer if isinstance(logger, TensorBoardLogger) else None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = self._writer(trainer) if trainer.is_global_zero else None
        if writer is not None:
            trainer.logger.log_hyperparams(self.hparams)  # hparams.yaml beside the events
            with event_file_errors(trainer.logger.log_dir):
                for summary in hparams_session_start(self.hparams, self.run_name):
                    writer.add_summary(summary)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._end(trainer, "STATUS_SUCCESS")

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, RunInterrupted):  # an interrupted run ends when it is resumed
            # the error that ended the run is the one reported, not a second one from here
            with contextlib.suppress(WriteFailed):
                self._end(trainer, "STATUS_FAILURE")

    def _end(self, trainer: L.Trainer, status: str) -> None:
        writer = self._writer(trainer) if trainer.is_global_zero else None
        if writer is not None:
            with event_file_errors(trainer.logger.log_dir):
                writer.add_summary(hparams_session_end(status))
                writer.flush()


TINY_STEP_MACS = 1 << 22  # multiply-adds in one training step's forward pass


def torch_threads(hp: HParams) -> int | None:
    """torch's intra-op thread count for this model: 1 when it is tiny, else None (torch's default).

    A step under ~4M multiply-adds (the seed config has 8k) is too small to split across
    cores. Measured on a 2-core box: one thread is as fast when the box is idle, while two
    run both this trainer and a plain loop up to 6x slower when another process holds a
    core (each op's threads wait for each other). Above ~8M two threads win. The rule reads
    only the hyperparameters, so a --seed gives the same numbers run after run.
    """
    step_macs = hp.batch_size * (hp.dim * hp.hidden_dim + hp.hidden_dim * hp.num_classes)
    return 1 if step_macs < TINY_STEP_MACS else None


@contextlib.contextmanager
def torch_thread_count(threads: int) -> Iterator[None]:
    """torch on ``threads`` intra-op threads inside the block, its own count again after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class TorchThreads(L.Callback):
    """Trains on ``threads`` intra-op threads (``torch_thread_count``) from ``setup`` to ``teardown``.

    Set at ``setup``, after Lightning's DDP strategy has picked a count of its own.
    """

    def __init__(self, threads: int) -> None:
        self.threads, self._pinned = threads, contextlib.ExitStack()

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._pinned.enter_context(torch_thread_count(self.threads))

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._pinned.close()


def all_finite(t: torch.Tensor) -> torch.Tensor:
    """Whether ``t`` holds no NaN and no infinity, as a 0-dim bool tensor on its device (no sync).

    From its smallest and largest value, which NaN and the infinities always reach (torch's
    ``aminmax`` propagates NaN): one reduction pass, where ``isfinite(t).all()`` writes a bool
    tensor the size of ``t`` first, ~10x slower on a 512 x 2048 weight here.
    """
    return torch.isfinite(torch.stack(torch.aminmax(t))).all()


AFTER_THE_STEP = " after the step"  # a weight that a step with finite inputs overflowed


class DivergenceGuard(L.Callback):
    """Stops the run before an optimizer step that a non-finite loss or gradient would poison.

    The loss, the gradients and the weights the step would update are checked together
    (the weights too, because a finite step can still overflow them). On the CPU that is
    one check per step, read at once: reading a value costs nothing there. On a GPU reading
    a value back waits for the card, once a step, so there the guard is ``deferred``: the
    checks stay on the card, a step that fails them is undone on the card (the weights go
    back to a copy taken before it, and so do those of every later step), and the verdict is
    read at the epoch's validation, its end and any checkpoint save. The run then stops
    naming the first bad step, as the immediate guard does, and no non-finite weight is ever
    applied or saved.
    """

    def __init__(self, deferred: bool | None = None) -> None:
        self.deferred = deferred  # None: decided by the device at fit start (deferred off the CPU)
        self._loss: torch.Tensor | None = None
        # deferred mode, all on the device: the weights before the step, this step's checks,
        # whether every step so far passed, and the first failing step with its checks and loss
        self._before: list[torch.Tensor] = []
        self._checks: tuple[list[str], torch.Tensor] | None = None
        self._healthy: torch.Tensor | None = None
        self._first_bad: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._names: list[str] = []  # what each entry of the checks is

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.deferred is None:
            self.deferred = pl_module.device.type != "cpu"
        self._healthy = torch.ones((), dtype=torch.bool, device=pl_module.device)

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        self._loss = loss.detach()

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        named = dict(pl_module.named_parameters())
        checks = {"loss": self._loss} if self._loss is not None else {}
        checks.update({f"gradient of {n}": p.grad for n, p in named.items() if p.grad is not None})
        checks.update({n: p.detach() for n, p in named.items()})
        finite = torch.stack([all_finite(t) for t in checks.values()])  # (checks,) bool
        if self.deferred:
            self._before = [p.detach().clone() for p in named.values()]
            self._checks = (list(checks), finite)
            return
        if bool(finite.all()):  # the one sync
            return
        bad = nonfinite_names(checks, torch.isfinite)
        epoch, step = trainer.current_epoch + 1, trainer.global_step + 1
        raise self._error(epoch, step, bad, self._loss, "stopped before the optimizer step", pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        if not self.deferred or self._checks is None:
            return
        names, finite = self._checks
        params = list(pl_module.parameters())
        after = torch.stack([all_finite(p.detach()) for p in params])  # the step's result
        names = names + [f"{n}{AFTER_THE_STEP}" for n, _ in pl_module.named_parameters()]
        finite = torch.cat([finite, after])
        passed = finite.all()
        first_failure = self._healthy & ~passed
        keep = self._healthy & passed  # a step is kept only if it and every one before it passed
        with torch.no_grad():
            for p, before in zip(params, self._before, strict=True):
                p.copy_(torch.where(keep, p, before))
        step = torch.full((), trainer.global_step, device=finite.device)  # already counts this step
        loss = self._loss if self._loss is not None else torch.zeros((), device=finite.device)
        if self._first_bad is None:
            self._first_bad = (step, finite, loss.float())
        else:
            old_step, old_finite, old_loss = self._first_bad
            self._first_bad = (
                torch.where(first_failure, step, old_step),
                torch.where(first_failure, finite, old_finite),
                torch.where(first_failure, loss.float(), old_loss),
            )
        self._healthy = keep
        self._names, self._checks, self._before = names, None, []

    # the points where the deferred verdict is read: before anything of the epoch is logged or saved
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._raise_if_diverged(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._raise_if_diverged(trainer, pl_module)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module, checkpoint) -> None:
        self._raise_if_diverged(trainer, pl_module)

    def _raise_if_diverged(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.deferred or self._healthy is None or bool(self._healthy):  # the one read per check point
            return
        step, finite, loss = self._first_bad
        bad = [name for name, ok in zip(self._names, finite.tolist(), strict=True) if not ok]
        bad = [name for name in bad if not name.endswith(AFTER_THE_STEP)] or bad  # the cause, if before
        later = trainer.global_step - int(step)  # steps taken after it, each undone as well
        outcome = "its update was undone on the device" + (f", as were the {later} after it" if later else "")
        raise self._error(
            trainer.current_epoch + 1, int(step), bad, loss if "loss" in bad else None, outcome, pl_module
        )

    @staticmethod
    def _error(epoch: int, step: int, bad: list[str], loss, outcome: str, pl_module) -> DivergenceError:
        loss_text = f" (loss {float(loss):g})" if loss is not None else ""
        return DivergenceError(
            f"training diverged at epoch {epoch}, step {step}: non-finite {', '.join(bad)}{loss_text}; "
            f"{outcome} (try a smaller --lr, now {pl_module.hparams.lr:g})"
        )
