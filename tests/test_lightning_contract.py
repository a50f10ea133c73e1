"""What the project relies on Lightning to do without a public promise: pinned here, so an upgrade that
changes it fails loudly in the suite rather than quietly in a user's run."""

from __future__ import annotations

import lightning as L
import torch
from torchmetrics import MeanMetric

from mlp_lightning.core.hparams import HParams
from mlp_lightning.lightning.datamodule import BlobDataModule
from mlp_lightning.lightning.lit_module import MLPClassifier


def test_lightning_sets_each_epoch_on_the_batch_order_through_the_loaders_sampler():
    hp = HParams(n_per_class=20, hidden_dim=8, max_epochs=3)
    trainer = L.Trainer(
        accelerator="cpu", max_epochs=hp.max_epochs, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(MLPClassifier.from_hparams(hp), datamodule=BlobDataModule.from_hparams(hp))
    # without set_epoch every epoch would reuse epoch 0's order and this would read 0
    assert trainer.train_dataloader.batch_sampler.epoch == hp.max_epochs - 1


def test_torchmetrics_disable_nan_strategy_still_drops_mean_weights():
    """torchmetrics#3434, why lightning/metrics.BatchMean exists: MeanMetric(nan_strategy="disable")
    replaces the weights with ones. When this fails, torchmetrics is fixed and BatchMean can go."""
    mean = MeanMetric(nan_strategy="disable")
    mean.update(torch.tensor(1.0), weight=5)
    mean.update(torch.tensor(2.0), weight=6)
    assert mean.compute() == torch.tensor(1.5)  # the unweighted mean; the weighted one is 17/11
