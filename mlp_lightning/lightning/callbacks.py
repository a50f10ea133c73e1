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
from mlp_lightning.core.report import epoch_description, epoch_line, should_report
from mlp_lightning.core.tensorboard_schema import (
    METRIC_TAGS,
    hparams_session_end,
    hparams_session_start,
)
from mlp_lightning.core.weights import nonfinite_names
from mlp_lightning.runs.files import event_file_errors


def epoch_metrics(trainer: L.Trainer) -> dict[str, float]:
    return {tag: float(trainer.callback_metrics[tag]) for tag in METRIC_TAGS}


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
    """Lightning's bar, counting epochs from 1 as the summaries and messages do, and off unless ``enabled``.

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

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        # an epoch resumed part-way (or before its end) gets no on_train_epoch_start: set it up here
        loop = trainer.fit_loop
        part_done = loop.restarted_mid_epoch or loop.restarted_on_epoch_end
        self._start_epoch(done=loop.epoch_loop.batch_progress.current.processed if part_done else 0)

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


class DivergenceGuard(L.Callback):
    """Stops the run before an optimizer step that a non-finite loss or gradient would poison.

    One device sync per step: the loss, the gradients and the weights the step would
    update are checked together. The weights too, because a finite step can still
    overflow them; the next step then refuses to go on from there.
    """

    def __init__(self) -> None:
        self._loss: torch.Tensor | None = None

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        self._loss = loss.detach()

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        named = dict(pl_module.named_parameters())
        checks = {"loss": self._loss} if self._loss is not None else {}
        checks.update({f"gradient of {n}": p.grad for n, p in named.items() if p.grad is not None})
        checks.update({n: p.detach() for n, p in named.items()})
        if bool(torch.stack([torch.isfinite(t).all() for t in checks.values()]).all()):  # the one sync
            return
        bad = nonfinite_names(checks, torch.isfinite)
        loss = f" (loss {float(self._loss):g})" if self._loss is not None else ""
        raise DivergenceError(
            f"training diverged at epoch {trainer.current_epoch + 1}, step {trainer.global_step + 1}: "
            f"non-finite {', '.join(bad)}{loss}; stopped before the optimizer step "
            f"(try a smaller --lr, now {pl_module.hparams.lr:g})"
        )
