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


def test_lightnings_own_launcher_keeps_the_processes_it_starts_in_procs():
    """lightning/internals.launched_processes reads it: RankWatch needs rank 0's children."""
    from lightning.fabric.plugins.environments import LightningEnvironment
    from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

    launcher = _SubprocessScriptLauncher(LightningEnvironment(), num_processes=2, num_nodes=1)
    assert launcher.procs == []  # appended to by _call_children_scripts, one Popen per extra process


def test_a_resumed_epoch_reports_its_batches_done_through_the_fit_loops_progress():
    """lightning/internals.batches_done_in_resumed_epoch: the progress bar's count in a resumed epoch."""
    from mlp_lightning.lightning.internals import batches_done_in_resumed_epoch

    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    assert batches_done_in_resumed_epoch(trainer) == 0  # a fresh loop: no restart stage
    assert trainer.fit_loop.epoch_loop.batch_progress.current.processed == 0
