"""The run's one resumable checkpoint, ``<run>/checkpoints/last.ckpt``: when it is saved, what it holds.

Saved only at batch boundaries, where a resume continues exactly:
- every ``--checkpoint_every_n_steps`` optimizer steps, and after the last epoch;
- when SIGINT/SIGTERM arrived; the run then stops by raising ``RunInterrupted``.
A boundary that ends an epoch is taken after the epoch's validation, at
``on_train_epoch_end``: a checkpoint taken after the last batch but before
validation would be resumed by Lightning 2.6 as a finished epoch, without its
validation metrics.

Lightning saves the weights, optimizer, loop counters and the training loader's
position (``BatchOrder`` counts the batches handed out; the loader has a length, so
Lightning fetches without prefetching and that count is the batches trained on).
It does not save the torchmetrics sums of an epoch in progress (the module logs the metric
objects, and Lightning's result collection holds only references to them): the ``mlp_lightning``
section carries them (one entry per process), the run's hyperparameters and Lightning flags as
plain values, the device type it ran on, and the complete epochs, so that a resume reads the
run's progress in the project's own words rather than in Lightning's loop schema. No RNG state:
the dropout masks are a pure function of (seed, epoch, point) and come with the batches
(``core.dropout``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from torchmetrics import Metric

from mlp_lightning.core.columns import COLUMNS_KEY, columns_to_stored
from mlp_lightning.core.errors import DivergenceError, RunInterrupted, WriteFailed
from mlp_lightning.core.weights import nonfinite_names
from mlp_lightning.lightning.checkpoint_io import (
    FORMAT_VERSION,
    PROJECT_KEY,
    SafeCheckpointIO,
    checkpoint_epochs_done,
)
from mlp_lightning.lightning.rank_state import gather_rank_states, own_rank_state
from mlp_lightning.runs.interrupt import StopRequest


def metric_states(module: torch.nn.Module) -> dict[str, dict[str, Any]]:
    """The accumulated state of every torchmetrics metric in ``module`` (an epoch in progress)."""
    return {
        name: {"states": _detach(m.metric_state)}
        for name, m in module.named_modules()
        if isinstance(m, Metric)
    }


def load_metric_states(module: torch.nn.Module, saved: dict[str, dict[str, Any]]) -> None:
    """Give each metric back its saved sums through torchmetrics' public ``reset`` and ``merge_state``.

    The metrics' states are sums, so merging a saved state into a freshly reset metric
    (zeros) restores it exactly.
    """
    metrics = {name: m for name, m in module.named_modules() if isinstance(m, Metric)}
    for name, entry in saved.items():
        metric = metrics[name]
        metric.reset()
        metric.merge_state({key: _to(value, metric.device) for key, value in entry["states"].items()})


def _to(value: Any, device: torch.device) -> Any:
    return value.to(device) if torch.is_tensor(value) else [v.to(device) for v in value]


def _detach(states: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v.detach().cpu().clone() if torch.is_tensor(v) else [t.detach().cpu().clone() for t in v]
        for k, v in states.items()
    }


def rank_state(trainer: L.Trainer, pl_module: L.LightningModule, epoch_ended: bool) -> dict[str, Any]:
    """What this process alone holds: its metric sums (of its own shard).

    At an epoch's end the sums are the finished epoch's, which Lightning computes and resets right
    after this save: the epoch a resume starts begins with none.
    """
    return {"metrics": {} if epoch_ended else metric_states(pl_module)}


class RunCheckpoint(L.Callback):
    """Saves ``path`` at the boundaries listed above; turns a stop request into a saved stop."""

    def __init__(
        self,
        path: Path,
        hparams: dict[str, Any],
        every_n_steps: int,
        stop: StopRequest,
        trainer_flags: dict[str, Any] | None = None,
    ) -> None:
        self.path, self.hparams, self.every_n_steps, self.stop = Path(path), hparams, every_n_steps, stop
        self.trainer_flags = trainer_flags or {}  # a bare --resume trains with them again
        self.saved_at: tuple[int, int] | None = None  # (epochs done, global step) at the last save
        self.stopped = False  # True once a stop request has been honoured
        self._to_restore: dict[str, Any] | None = None
        self._epochs_done = 0  # complete epochs at the save in progress
        self._pending_stop: RunInterrupted | None = None  # a stop saved at an epoch's end

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning installed its own SIGTERM handler just before this hook; ours decides
        self.stop.install()
        if self._to_restore is not None:
            own = own_rank_state(self._to_restore, trainer)  # under DDP each rank has its own
            load_metric_states(pl_module, own["metrics"])  # a format-1 checkpoint's RNGs: unused
            self._to_restore = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if trainer.is_last_batch:
            return  # the epoch's last boundary comes after its validation
        self._boundary(trainer, epochs_done=trainer.current_epoch, end_of_run=False)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epochs_done = trainer.current_epoch + 1
        try:
            self._boundary(trainer, epochs_done=epochs_done, end_of_run=epochs_done >= trainer.max_epochs)
        except RunInterrupted as stop:
            # Lightning logs the epoch's train metrics after this hook: stop once they are written
            self._pending_stop = stop

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._raise_pending_stop()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._raise_pending_stop()  # a user's callback (EarlyStopping) ended the run first

    def _raise_pending_stop(self) -> None:
        if self._pending_stop is not None:
            stop, self._pending_stop = self._pending_stop, None
            raise stop

    def _boundary(self, trainer: L.Trainer, epochs_done: int, end_of_run: bool) -> None:
        due = self.every_n_steps > 0 and (
            trainer.global_step - (self.saved_at[1] if self.saved_at else 0) >= self.every_n_steps
        )
        # a signal may reach one process of a multi-process run: all of them stop together
        stop = trainer.strategy.reduce_boolean_decision(self.stop.requested, all=False)
        if due or end_of_run or stop:
            self.save(trainer, epochs_done)
        if stop and not end_of_run:
            self.stopped = True
            raise RunInterrupted(self.stop.name or "a stop request")

    def save(self, trainer: L.Trainer, epochs_done: int) -> None:
        # checked on every rank, before the collective save, so no rank waits on one that failed
        bad = nonfinite_names(dict(trainer.lightning_module.named_parameters()), torch.isfinite)
        if bad:
            raise DivergenceError(
                f"training diverged by epoch {trainer.current_epoch + 1}, step {trainer.global_step}: "
                f"non-finite {', '.join(bad)}; not saved over the last good checkpoint"
            )
        # every rank must call it, rank 0 writes; weights_only=False: the whole training state
        self._epochs_done = epochs_done  # on_save_checkpoint records it
        trainer.save_checkpoint(self.path, weights_only=False)
        self._raise_if_not_written(trainer)
        self.saved_at = (epochs_done, trainer.global_step)

    def _raise_if_not_written(self, trainer: L.Trainer) -> None:
        """End every rank with WriteFailed if rank 0's write was refused (the old checkpoint stays)."""
        io = trainer.strategy.checkpoint_io
        failed = io.failed if isinstance(io, SafeCheckpointIO) else None
        if trainer.strategy.reduce_boolean_decision(failed is not None, all=False):
            io.failed = None
            raise failed or WriteFailed(self.path, OSError(0, "global rank 0 could not write it"))

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        # also for a user's ModelCheckpoint saving at an epoch's end, after this callback's own save
        epoch_ended = self._epochs_done > trainer.current_epoch
        checkpoint[PROJECT_KEY] = {
            "format": FORMAT_VERSION,
            "hparams": dict(self.hparams),
            "trainer": dict(self.trainer_flags),
            "device": trainer.strategy.root_device.type,
            # the run's progress in the project's own words, not Lightning's loop schema
            "epochs_done": self._epochs_done,
            # each process's own metric sums: under DDP every rank sums its own shard
            "ranks": gather_rank_states(trainer, rank_state(trainer, pl_module, epoch_ended)),
            "stopped_by": self.stop.name,
        }
        columns = getattr(trainer.datamodule, "columns", None)  # the model's feature and class names, scaling
        if columns is not None:
            checkpoint[COLUMNS_KEY] = columns_to_stored(columns)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        self._to_restore = checkpoint[PROJECT_KEY]
        self.saved_at = (checkpoint_epochs_done(checkpoint), checkpoint["global_step"])
