"""The training step asks the device for nothing: no value read back to the host per step.

On a GPU every such read (``.item()``, ``bool(tensor)``, ``.tolist()``, ``.cpu()``) waits for the
card to finish; on the CPU they can be counted, which is what this test does.
"""

from __future__ import annotations

import functools

import lightning as L
import pytest
import torch

from mlp_lightning.cli import parse_fit_args
from mlp_lightning.core.hparams import HParams
from mlp_lightning.lightning import train as train_module
from mlp_lightning.lightning.callbacks import DivergenceGuard
from mlp_lightning.lightning.lit_module import MLPClassifier
from mlp_lightning.lightning.train import fit

READS_BACK = ("item", "__bool__", "tolist", "cpu", "numpy")


def count_reads_back(monkeypatch, only_when_active: bool = False) -> dict[str, int]:
    """Counts each read-back by name; with ``only_when_active``, only while ``counts["active"]`` is 1."""
    counts = dict.fromkeys(READS_BACK, 0)
    counts["active"] = 0 if only_when_active else 1
    for name in READS_BACK:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            counts[_name] += counts["active"]
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counts


def test_training_and_validation_steps_read_nothing_back_from_the_device(monkeypatch):
    hp = HParams(num_classes=3, hidden_dim=8, dim=4)
    module = MLPClassifier.from_hparams(hp)
    x, y = torch.randn(16, hp.dim), torch.randint(0, hp.num_classes, (16,))
    counts = count_reads_back(monkeypatch)
    for _ in range(3):
        module.training_step((x, y), 0).backward()
    with torch.no_grad():
        module.validation_step((x, y), 0)
    assert counts == {**dict.fromkeys(READS_BACK, 0), "active": 1}


def test_the_counter_sees_a_read_back(monkeypatch):
    counts = count_reads_back(monkeypatch)
    assert bool(torch.ones(1)) and torch.ones(1).item() == 1.0
    assert counts["__bool__"] == 1 and counts["item"] == 1


class MiddleBatches(L.Callback):
    """Counts read-backs only from the end of each epoch's first batch to the end of its second-to-last.

    It is the last callback, so the window holds whole steps: the module's, Lightning's loops and
    every project callback's per-batch hooks; the epoch's ends (validation, logging, saves) are outside.
    """

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts, self.windows = counts, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == 0:
            self.counts["active"] = 1
            self.windows += 1
        elif batch_idx == trainer.num_training_batches - 2:
            self.counts["active"] = 0


@pytest.mark.parametrize("deferred", [True, False], ids=["deferred-guard", "immediate-guard"])
def test_fit_reads_nothing_back_between_an_epochs_first_and_last_batch_with_the_gpus_guard(
    tmp_path, monkeypatch, deferred
):
    """The GPU path (the deferred divergence guard) on the CPU, where reads can be counted."""
    monkeypatch.setattr(
        train_module, "DivergenceGuard", functools.partial(DivergenceGuard, deferred=deferred)
    )
    counts = count_reads_back(monkeypatch, only_when_active=True)
    window = MiddleBatches(counts)
    flags = ["--accelerator", "cpu", "--n_per_class", "80", "--batch_size", "16", "--max_epochs", "2"]
    args = parse_fit_args(["--logdir", str(tmp_path), "--checkpoint_every_n_steps", "0", *flags])
    assert fit(args, callbacks=[window]) == 0
    assert window.windows == 2
    reads = {name: n for name, n in counts.items() if name != "active"}
    if deferred:
        assert reads == dict.fromkeys(READS_BACK, 0)
    else:  # the CPU's guard reads one verdict per step: the counter sees it inside a Trainer
        assert reads["__bool__"] >= 2 * 6


class NoSyncInMiddleBatches(L.Callback):
    """Any CUDA synchronisation is an error from the end of an epoch's first batch to its second-to-last."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == 0:
            torch.cuda.set_sync_debug_mode("error")
        elif batch_idx == trainer.num_training_batches - 2:
            torch.cuda.set_sync_debug_mode("default")

    def on_exception(self, trainer, pl_module, exception) -> None:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cuda_training_step_never_waits_for_the_card(tmp_path):
    """torch itself watches: any synchronising call in the middle batches raises."""
    flags = ["--accelerator", "gpu", "--devices", "1", "--n_per_class", "400", "--max_epochs", "2"]
    args = parse_fit_args(["--logdir", str(tmp_path), "--checkpoint_every_n_steps", "0", *flags])
    assert fit(args, callbacks=[NoSyncInMiddleBatches()]) == 0
