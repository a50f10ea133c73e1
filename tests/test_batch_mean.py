"""The epoch loss is the mean over samples: batches weighted by their size, as the twin's RunningMean."""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import MeanMetric

from mlp_lightning.lightning.metrics import BatchMean
from mlp_lightning.numpy_twin.step import RunningMean


def test_a_smaller_last_batch_counts_by_its_size():
    mean = BatchMean()
    mean.update(torch.tensor(1.0), 5)
    mean.update(torch.tensor(2.0), 6)
    assert mean.compute() == torch.tensor((5 * 1.0 + 6 * 2.0) / 11)


def test_batch_mean_is_bit_equal_to_torchmetrics_weighted_mean_and_to_the_twins_running_mean():
    rng = np.random.default_rng(0)
    losses = rng.uniform(0.01, 3.0, size=50).astype(np.float32)
    sizes = [64] * 49 + [17]
    ours, theirs, twin = BatchMean(), MeanMetric(nan_strategy="ignore"), RunningMean()
    for loss, size in zip(losses, sizes, strict=True):
        ours.update(torch.tensor(loss), size)
        theirs.update(torch.tensor(loss), weight=size)
        twin.update(loss, correct=0, batch=size)
    assert ours.mean_value == theirs.mean_value and ours.weight == theirs.weight
    assert ours.compute().item() == theirs.compute().item() == np.float32(twin.compute()[0])
