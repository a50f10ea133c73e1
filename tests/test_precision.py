"""``--precision``: what the CPU accepts, what it refuses, and 64-true as the exact reference for the twin."""

from __future__ import annotations

import numpy as np
import pytest

from mlp_lightning.cli import parse_fit_args
from mlp_lightning.core.data import BatchOrder, load_splits
from mlp_lightning.core.hparams import HParams
from mlp_lightning.core.weights import PARAM_NAMES, init_weights


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--accelerator=cpu", "--precision=16-mixed"], "--precision 16-mixed"),
        (["--accelerator=cpu", "--precision=16"], "--precision 16"),
        (["--accelerator=cpu", "--strategy=fsdp"], "--strategy fsdp"),
    ],
)
def test_cpu_refuses_what_lightning_would_swap_or_reject_late(flags, named, tmp_path, capsys):
    logdir = tmp_path / "logs"
    with pytest.raises(SystemExit) as exit_info:
        parse_fit_args([*flags, f"--logdir={logdir}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"fit.py: error: {named} ")
    assert "bf16-mixed" in err or "ddp" in err  # says what to use instead
    assert not logdir.exists()


@pytest.mark.parametrize("precision", ["32-true", "64-true", "bf16-mixed", "bf16-true", "16-true"])
def test_cpu_accepts_the_precisions_it_can_train_in(precision):
    assert parse_fit_args(["--accelerator=cpu", f"--precision={precision}"]).trainer.precision == precision


def fit_in_process(hp: HParams, precision: str):
    """Train ``hp`` with Lightning at ``precision`` on the CPU; the module and what it saw."""
    import lightning as L
    import torch

    from mlp_lightning.lightning.datamodule import BlobDataModule
    from mlp_lightning.lightning.lit_module import MLPClassifier

    class Recording(MLPClassifier):
        seen: list[tuple[torch.dtype, torch.dtype, torch.dtype]] = []

        def training_step(self, batch, batch_idx):
            x = batch[0]
            # (batch, weights, a matmul): autocast acts on the matmul, not on what it is added to
            self.seen.append((x.dtype, self.model.W1.dtype, (x @ self.model.W1).dtype))
            return super().training_step(batch, batch_idx)

    model = Recording.from_hparams(hp)
    data = BlobDataModule.from_hparams(hp)
    trainer = L.Trainer(
        accelerator="cpu", devices=1, precision=precision, max_epochs=hp.max_epochs, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(model, datamodule=data)
    return model, trainer


def test_bf16_mixed_trains_on_cpu_with_bfloat16_matmuls_and_float32_weights():
    import torch

    hp = HParams(n_per_class=50, max_epochs=3)
    model, trainer = fit_in_process(hp, "bf16-mixed")
    assert set(model.seen) == {(torch.float32, torch.float32, torch.bfloat16)}
    losses = [float(trainer.callback_metrics[k]) for k in ("train/loss", "val/loss")]
    assert all(np.isfinite(losses)) and losses[1] < np.log(hp.num_classes)  # learned something


def test_64_true_trains_in_float64_and_matches_the_numpy_twin_in_float64():
    import torch

    from mlp_lightning.numpy_twin.step import Workspace, train_step

    # dropout 0: the two sides draw different masks; 2 epochs of 3 steps, the last one partial
    hp = HParams(n_per_class=70, batch_size=48, dropout=0.0, max_epochs=2)
    model, _ = fit_in_process(hp, "64-true")
    # Lightning casts the module and every batch: float64 data, weights and matmuls throughout
    assert set(model.seen) == {(torch.float64, torch.float64, torch.float64)}
    assert len(model.seen) == hp.max_epochs * len(BatchOrder(hp.n_train, hp.batch_size, hp.seed))

    Xtr, ytr, _, _ = load_splits(hp)
    Xtr = Xtr.astype(np.float64)
    params = {
        k: v.astype(np.float64)
        for k, v in init_weights(hp.dim, hp.hidden_dim, hp.num_classes, hp.seed).items()
    }
    ws = Workspace.allocate(hp.batch_size, params, np.float64)
    order = BatchOrder(hp.n_train, hp.batch_size, hp.seed)
    for epoch in range(hp.max_epochs):
        order.set_epoch(epoch)
        for idx in order:
            train_step(params, Xtr[idx], ytr[idx], hp, ws, epoch, idx)
    for name in PARAM_NAMES:
        lightning = getattr(model.model, name).detach().numpy()
        # float64 on both sides: what is left is the order of float64 sums, ~1e-16 relative
        np.testing.assert_allclose(lightning, params[name], rtol=1e-12, atol=1e-14)
