"""What a Lightning run records beside its scalars: the same as the twin's, from the same definitions.

- the CUSTOM SCALARS layout (through the SummaryWriter's ``add_custom_scalars``);
- the command line and configuration as TEXT, at the step the run starts from;
- for 2-D data, the decision-boundary image at the epochs the console reports, at
  those epochs' scalar step, drawn from this model's own predictions;
- ``metrics.csv``, a row per epoch (a resume keeps the rows before the epoch it restarts).

The text and the image go through the SummaryWriter's public ``file_writer`` as the
summaries ``tensorboard_schema`` builds, so both trainers write the same bytes under
the same tags: torch's ``add_text`` would rename the tag ``<tag>/text_summary``, and
its ``add_image`` re-encodes through PIL. Global rank 0 writes everything.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.strategies import FSDPStrategy

from mlp_lightning.core.boundary_image import IMAGE_SIZE, BoundaryImage
from mlp_lightning.core.report import should_report
from mlp_lightning.core.tensorboard_schema import (
    TRAIN_ACC,
    TRAIN_LOSS,
    custom_scalars_layout,
    epoch_end_step,
    image_summary,
    text_summary,
)
from mlp_lightning.lightning.callbacks import epoch_metrics
from mlp_lightning.runs.metrics_csv import MetricsCsv


def model_predict(
    pl_module: L.LightningModule, points: np.ndarray, forward_context: Callable = contextlib.nullcontext
) -> np.ndarray:
    """The class ``pl_module`` predicts for each of ``points`` (N, D), in eval mode.

    Eval mode draws no dropout mask, so the training's random stream is left as it was;
    ``forward_context`` is the run's precision (``trainer.precision_plugin.forward_context``).
    """
    weight = pl_module.model.W1
    x = torch.from_numpy(points).to(weight.device, weight.dtype)
    was_training = pl_module.training
    pl_module.eval()
    try:
        with torch.no_grad(), forward_context():
            return pl_module(x).argmax(dim=1).cpu().numpy()
    finally:
        pl_module.train(was_training)


class RunRecord(L.Callback):
    """Writes the layout, the run's ``text``, the boundary images and ``metrics_csv`` (see the module).

    ``boundary`` is the validation split's image, or None (data that is not 2-D): no images.
    ``first_epoch`` is where a resumed run restarts (0 for a new run); ``per_step``: the layout
    gets the per-step loss chart.
    """

    def __init__(
        self,
        text: str,
        metrics_csv: Path,
        first_epoch: int,
        boundary: BoundaryImage | None,
        per_step: bool = False,
    ) -> None:
        self.text, self.metrics_csv, self.first_epoch = text, metrics_csv, first_epoch
        self.boundary, self.per_step = boundary, per_step
        self._table: MetricsCsv | None = None

    @staticmethod
    def _experiment(trainer: L.Trainer):
        """The run's SummaryWriter on global rank 0; None elsewhere or without a TensorBoard logger."""
        logger = trainer.logger
        return logger.experiment if trainer.is_global_zero and isinstance(logger, TensorBoardLogger) else None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if isinstance(trainer.strategy, FSDPStrategy) and trainer.world_size > 1:
            self.boundary = None  # rank 0 alone holds a shard of the weights, not the model: no images
        if not trainer.is_global_zero:
            return
        self._table = MetricsCsv(self.metrics_csv, self.first_epoch)
        experiment = self._experiment(trainer)
        if experiment is not None:
            experiment.add_custom_scalars(custom_scalars_layout(self.per_step))
            experiment.file_writer.add_summary(text_summary(self.text), trainer.global_step)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # validation has run: the epoch's four metrics are in callback_metrics. Read on every rank:
        # the first read computes the train metrics, which sums them over the ranks (a collective)
        metrics = epoch_metrics(trainer)
        if not trainer.is_global_zero:
            return
        epoch = trainer.current_epoch
        step = epoch_end_step(epoch, trainer.num_training_batches)
        if trainer.logger is not None:
            # Lightning logs the epoch's train metrics after this hook, and so after the epoch's
            # checkpoint: written now, a kill between the two cannot lose them (RunLogger keeps one)
            trainer.logger.log_metrics({tag: metrics[tag] for tag in (TRAIN_LOSS, TRAIN_ACC)}, step)
            trainer.logger.save()
        self._table.append(epoch, step, metrics)
        experiment = self._experiment(trainer)
        if experiment is None or self.boundary is None or not should_report(epoch + 1, trainer.max_epochs):
            return
        context = trainer.precision_plugin.forward_context
        png = self.boundary.png(lambda points: model_predict(pl_module, points, context))
        experiment.file_writer.add_summary(image_summary(png, IMAGE_SIZE, IMAGE_SIZE), step)
