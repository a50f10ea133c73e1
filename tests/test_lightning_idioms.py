"""MLPClassifier and BlobDataModule in a Trainer of a user's own: metrics under any validation schedule,
Trainer.predict, a user's ModelCheckpoint beside the run's, warning filters left as they were."""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import Logger

from mlp_lightning.cli import parse_fit_args
from mlp_lightning.core.hparams import HParams
from mlp_lightning.core.tensorboard_schema import TRAIN_ACC, TRAIN_LOSS, TRAIN_LOSS_STEP, VAL_LOSS
from mlp_lightning.lightning.datamodule import BlobDataModule
from mlp_lightning.lightning.lit_module import MLPClassifier
from mlp_lightning.lightning.train import fit
from tests.helpers import read_scalars

HP = HParams(n_per_class=40, batch_size=16, hidden_dim=8, max_epochs=4)  # 64 train points: 4 steps an epoch


class Recorded(Logger):
    """Every log_metrics call, as (step, {tag: value})."""

    name, version = "recorded", 0

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, dict[str, float]]] = []

    @property
    def experiment(self):
        return None

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics, step=None) -> None:
        self.calls.append((step, dict(metrics)))

    def points(self, tag: str) -> list[tuple[int, float]]:
        return [(step, m[tag]) for step, m in self.calls if tag in m]


def plain_fit(**trainer_flags) -> Recorded:
    logger = Recorded()
    L.seed_everything(HP.seed, verbose=False)
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_epochs=HP.max_epochs, logger=logger, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, **trainer_flags,
    )  # fmt: skip
    trainer.fit(MLPClassifier.from_hparams(HP), datamodule=BlobDataModule.from_hparams(HP))
    return logger


@pytest.fixture(scope="module")
def every_epoch() -> Recorded:
    return plain_fit()


EPOCH_END_STEPS = [3, 7, 11, 15]


@pytest.mark.parametrize(
    ("flags", "val_steps"),
    [
        ({"limit_val_batches": 0}, []),
        ({"check_val_every_n_epoch": 2}, [7, 15]),
        ({"val_check_interval": 0.5}, [1, 3, 5, 7, 9, 11, 13, 15]),
    ],
)
def test_train_metrics_are_logged_every_epoch_under_any_validation_schedule(every_epoch, flags, val_steps):
    logged = plain_fit(**flags)
    for tag in (TRAIN_LOSS, TRAIN_ACC):
        # the same values at the same steps as with validation after every epoch: nothing summed across epochs
        assert logged.points(tag) == every_epoch.points(tag), tag
        assert [step for step, _ in logged.points(tag)] == EPOCH_END_STEPS
    assert [step for step, _ in logged.points(VAL_LOSS)] == val_steps


def test_trainer_predict_gives_each_validation_point_its_class_probabilities():
    dm = BlobDataModule.from_hparams(HP)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    probs = torch.cat(trainer.predict(MLPClassifier.from_hparams(HP), datamodule=dm))
    assert probs.shape == (HP.n_val, HP.num_classes)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(HP.n_val))


def test_trainer_predict_on_points_scales_them_as_the_run_did():
    dm = BlobDataModule.from_hparams(HP)
    dm.setup("fit")
    dm.predict_on(dm.x_val.numpy()[:5])
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    module = MLPClassifier.from_hparams(HP)
    (probs,) = trainer.predict(module, datamodule=dm)
    torch.testing.assert_close(probs, torch.softmax(module.eval()(dm.x_val[:5]), dim=1))  # no dropout


def test_a_users_model_checkpoint_composes_with_the_runs_last_checkpoint(tmp_path, capsys):
    best = ModelCheckpoint(monitor=VAL_LOSS, mode="min")
    args = parse_fit_args(["--logdir", str(tmp_path), "--n_per_class", "40", "--max_epochs", "3"])
    assert fit(args, callbacks=[best]) == 0
    run_dir = tmp_path / "lightning" / "version_0"
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (
        Path(best.best_model_path).is_file() and Path(best.best_model_path).parent == run_dir / "checkpoints"
    )
    assert float(best.best_model_score) == min(v for _, v in read_scalars(run_dir)[VAL_LOSS])


def test_fit_leaves_the_callers_warning_filters_as_they_were(tmp_path):
    before = list(warnings.filters)
    assert fit(parse_fit_args(["--logdir", str(tmp_path), "--n_per_class", "20", "--max_epochs", "1"])) == 0
    assert warnings.filters == before


def test_per_step_loss_of_both_trainers_agrees_at_dropout_0(tmp_path):
    from tests.helpers import run_both

    argv = ["--max_epochs", "2", "--dropout", "0", "--log_every_n_steps", "3"]
    numpy_dir, lightning_dir = run_both(argv, tmp_path)
    twin, lit = read_scalars(numpy_dir), read_scalars(lightning_dir)
    assert set(twin) == set(lit)
    steps = [s for s, _ in lit[TRAIN_LOSS_STEP]]
    assert steps == [s for s, _ in twin[TRAIN_LOSS_STEP]] == [2, 5, 8, 11, 14, 17]
    diffs = [abs(a - b) for (_, a), (_, b) in zip(twin[TRAIN_LOSS_STEP], lit[TRAIN_LOSS_STEP], strict=True)]
    assert max(diffs) < 1e-6
    assert twin["epoch"] == lit["epoch"]  # beside each logged step and epoch, once per step
    assert np.all(np.diff([s for s, _ in lit["epoch"]]) > 0)
