"""Lightning's overhead in process: the same MLPClassifier driven by Trainer.fit and by a hand loop.

The method of Lightning's ``tests/parity_pytorch/test_basic_parity.py``: both sides
start from the same seeds, their per-epoch losses are compared, and each side's
first run is dropped as warm-up. The hand loop does the work the module asks the
Trainer for (training steps, SGD, the validation pass and the epoch's metrics), so
the difference is what Lightning's loops, hooks and logging cost.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field

import lightning as L
import torch

from benchmarks.progress import progress
from mlp_lightning.core.hparams import HParams
from mlp_lightning.core.tensorboard_schema import TRAIN_LOSS
from mlp_lightning.lightning.callbacks import torch_threads
from mlp_lightning.lightning.datamodule import BlobDataModule
from mlp_lightning.lightning.launch import quiet_lightning
from mlp_lightning.lightning.lit_module import MLPClassifier


@dataclass
class FitTiming:
    """Wall time of a whole fit, the training part of each epoch, and each epoch's train loss."""

    wall_s: float
    train_epoch_s: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)


def build(hp: HParams, device: str = "cpu") -> tuple[MLPClassifier, BlobDataModule]:
    L.seed_everything(hp.seed, verbose=False)
    dm = BlobDataModule.from_hparams(hp)
    module = MLPClassifier.from_hparams(hp)
    return module.to(device), dm


class _EpochClock(L.Callback):
    """Training time of each epoch: from its start to the end of its last training batch."""

    def __init__(self, timing: FitTiming, sync) -> None:
        self.timing, self.sync = timing, sync

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.sync()
        self.start = self.last = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == trainer.num_training_batches - 1:
            self.sync()
            self.last = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.timing.train_epoch_s.append(self.last - self.start)
        self.timing.train_loss.append(float(trainer.callback_metrics[TRAIN_LOSS]))


def epoch_clock(timing: FitTiming, sync) -> L.Callback:
    """A callback that appends each epoch's training time and train loss to ``timing``."""
    return _EpochClock(timing, sync)


def sync_for(device: str):
    return torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)


def trainer_fit(hp: HParams, device: str = "cpu", validate: bool = True) -> FitTiming:
    """``Trainer.fit`` with the parity test's settings: no logger, checkpoint or progress bar."""
    module, dm = build(hp, device)
    timing = FitTiming(wall_s=0.0)
    trainer = L.Trainer(
        accelerator="cuda" if device.startswith("cuda") else "cpu",
        devices=1,
        max_epochs=hp.max_epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=None if validate else 0,
        callbacks=[_EpochClock(timing, sync_for(device))],
    )
    gc.collect()
    start = time.perf_counter()
    with quiet_lightning():
        trainer.fit(module, datamodule=dm)
    sync_for(device)()
    timing.wall_s = time.perf_counter() - start
    return timing


def hand_loop(hp: HParams, device: str = "cpu", validate: bool = True) -> FitTiming:
    """The same module, data and optimizer, driven by plain Python loops."""
    module, dm = build(hp, device)
    dm.setup("fit")
    sync = sync_for(device)
    x_tr, y_tr = dm.x_train.to(device), dm.y_train.to(device)
    x_va, y_va = dm.x_val.to(device), dm.y_val.to(device)
    timing = FitTiming(wall_s=0.0)
    gc.collect()
    start = time.perf_counter()
    optimizer = module.configure_optimizers()
    from mlp_lightning.core.data import BatchOrder, eval_chunks
    from mlp_lightning.lightning.datamodule import TensorBatches

    order = BatchOrder(len(x_tr), hp.batch_size, hp.seed)
    # the dropout bits the data module ships with each batch, as Trainer.fit gets them
    train_batches = TensorBatches(x_tr, y_tr, order, dm.train_dataloader().keep_bits)
    val_batches = TensorBatches(x_va, y_va, eval_chunks(len(x_va)))
    for epoch in range(hp.max_epochs):
        sync()
        epoch_start = time.perf_counter()
        module.train()
        order.set_epoch(epoch)
        for i, batch in enumerate(train_batches):
            loss = module.training_step(batch, i)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        sync()
        timing.train_epoch_s.append(time.perf_counter() - epoch_start)
        if validate:
            module.eval()
            with torch.no_grad():
                for i, batch in enumerate(val_batches):
                    module.validation_step(batch, i)
            module.val_loss.reset()
            module.val_acc.reset()
        timing.train_loss.append(float(module.train_loss.compute()))
        module.train_loss.reset()
        module.train_acc.reset()
    sync()
    timing.wall_s = time.perf_counter() - start
    return timing


def compare(hp: HParams, repeats: int, device: str = "cpu", per_epoch: bool = False) -> dict:
    """Hand loop and Trainer.fit alternated ``repeats + 1`` times; the first pair is warm-up.

    Returns the kept wall times of each side, the largest per-epoch train-loss
    difference between the two, which must be ~0: they compute the same thing, and the
    torch threads both ran on (fit.py's rule for this model, the same for both sides).
    With ``per_epoch`` (large configs) the kept times are the training epochs after each
    run's first, so neither the data set-up nor the warm-up epoch counts as overhead, and
    ``repeats`` pairs suffice.
    """
    hand, lit, max_diff = [], [], 0.0
    before = torch.get_num_threads()
    torch.set_num_threads(torch_threads(hp) or before)
    try:
        threads = torch.get_num_threads()
        pairs = repeats if per_epoch else repeats + 1
        for i in range(pairs):
            h, t = hand_loop(hp, device), trainer_fit(hp, device)
            progress(
                f"pair {i + 1}/{pairs}: hand-written loop {h.wall_s:.2f} s, Trainer.fit {t.wall_s:.2f} s"
            )
            max_diff = max(max_diff, *(abs(a - b) for a, b in zip(h.train_loss, t.train_loss, strict=True)))
            if per_epoch:
                hand.extend(h.train_epoch_s[1:])
                lit.extend(t.train_epoch_s[1:])
            elif i > 0:
                hand.append(h.wall_s)
                lit.append(t.wall_s)
    finally:
        torch.set_num_threads(before)
    return {"hand_s": hand, "trainer_s": lit, "max_loss_diff": max_diff, "torch_threads": threads}
