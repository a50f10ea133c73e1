"""The epoch's mean loss, weighted by batch size, with nothing read back from the device per step.

torchmetrics' ``MeanMetric`` scans every update for NaNs (``nans.any()``, a host sync on a GPU)
unless ``nan_strategy="disable"``, and that setting, in torchmetrics 1.9, also replaces the
weights with ones (torchmetrics#3434): the last, smaller batch would count as much as a full one.
``BatchMean`` keeps MeanMetric's states (``mean_value``, ``weight``: float32 sums, so checkpoints
and the twin's ``RunningMean`` stay bit-exact) and its ``compute``/``merge_state``/DDP sync, and
only its ``update`` adds ``loss * batch_size`` and ``batch_size`` without a scan. A non-finite loss
is DivergenceGuard's to report.
"""

from __future__ import annotations

import torch
from torchmetrics import MeanMetric


class BatchMean(MeanMetric):
    """The mean of per-batch means, each weighted by its batch size."""

    def __init__(self) -> None:
        super().__init__(nan_strategy="disable")

    def update(self, value: torch.Tensor, weight: int) -> None:  # value: () the batch's mean
        value = value.to(self.dtype)
        # the same float32 products and sums as MeanMetric's own path when no value is NaN
        self.mean_value += value * torch.as_tensor(weight, dtype=self.dtype, device=value.device)
        self.weight += weight
