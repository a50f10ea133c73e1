"""The LightningModule: loss, optimizer, the project's epoch metrics, per-step loss and predictions."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from mlp_lightning.core.hparams import HParams
from mlp_lightning.core.tensorboard_schema import TRAIN_LOSS_STEP
from mlp_lightning.core.weights import init_weights
from mlp_lightning.lightning.metrics import BatchMean
from mlp_lightning.lightning.model import TwoLayerMLP


class MLPClassifier(L.LightningModule):
    """Cross-entropy on the two-layer MLP; SGD with L2 weight decay on W1 and W2 only.

    A training batch is ``(x, y, keep)``, ``keep`` the run's packed dropout bits for its points
    (``BlobDataModule`` yields them: the NumPy twin's masks). A plain ``(x, y)`` batch, from
    someone else's loop, trains too: dropout then draws its masks from torch, at the same rate.
    """

    def __init__(
        self,
        dim: int = HParams.dim,
        hidden_dim: int = HParams.hidden_dim,
        num_classes: int = HParams.num_classes,
        dropout: float = HParams.dropout,
        lr: float = HParams().lr,  # the blobs' (a set's own is resolved in HParams)
        weight_decay: float = HParams.weight_decay,
        seed: int = HParams.seed,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = TwoLayerMLP(init_weights(dim, hidden_dim, num_classes, seed), dropout)
        # the epoch metrics accumulate per step with update() and are logged as objects: Lightning
        # computes and resets them at the epoch's end, whatever the validation schedule. No
        # per-step checks inside them (NaN scans, label validation): each is a device-to-host
        # sync on a GPU. A non-finite loss is DivergenceGuard's to report, and the labels are
        # the data module's own.
        self.train_loss = BatchMean()
        self.val_loss = BatchMean()
        self.train_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.val_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        # set by setup() under a Trainer: the hand-driven loops (parity tests, benchmarks) log nothing
        self._logging = self._logging_steps = False
        self._logged: set[str] = set()  # the stages whose metric objects this epoch's results hold

    @classmethod
    def from_hparams(cls, hp: HParams) -> MLPClassifier:
        """The module for the model and optimizer part of the shared hyperparameters."""
        return cls(
            dim=hp.dim, hidden_dim=hp.hidden_dim, num_classes=hp.num_classes, dropout=hp.dropout,
            lr=hp.lr, weight_decay=hp.weight_decay, seed=hp.seed,
        )  # fmt: skip

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(x, keep)

    def setup(self, stage: str) -> None:
        self._logging = True
        # the per-step loss only when the Trainer writes it: a self.log() costs ~10% of a seed-config step
        self._logging_steps = self.trainer.log_every_n_steps > 0

    def teardown(self, stage: str) -> None:
        self._logging = self._logging_steps = False

    def _common_step(self, batch: tuple[torch.Tensor, ...], stage: str) -> torch.Tensor:
        x, y, *keep = batch  # keep: the dropout bits of a training batch, where it brings them
        logits = self(x, *keep)
        loss = F.cross_entropy(logits, y)
        loss_metric, acc_metric = getattr(self, f"{stage}_loss"), getattr(self, f"{stage}_acc")
        loss_metric.update(loss.detach(), weight=y.shape[0])
        acc_metric.update(logits.detach(), y)
        if self._logging and stage not in self._logged:
            # the objects, once an epoch (a self.log() call costs more than this model's step): Lightning
            # keeps them and calls compute() and reset() at the epoch's end, whatever the schedule
            self.log(f"{stage}/loss", loss_metric, on_step=False, on_epoch=True, prog_bar=True)
            self.log(f"{stage}/acc", acc_metric, on_step=False, on_epoch=True, prog_bar=True)
            self._logged.add(stage)
        return loss

    def on_train_epoch_start(self) -> None:
        self._logged.discard("train")  # Lightning starts the epoch's results afresh

    def on_validation_epoch_start(self) -> None:
        self._logged.discard("val")

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        loss = self._common_step(batch, "train")
        if self._logging_steps:  # written at every Trainer(log_every_n_steps=N)th step, at its index
            self.log(TRAIN_LOSS_STEP, loss.detach(), on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._common_step(batch, "val")

    def predict_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        """The class probabilities (B, C) of a batch's points (its labels, if any, unused)."""
        return torch.softmax(self(batch[0]), dim=1)

    def configure_model(self) -> None:
        # Lightning 2.6 restores a resumed run's weights right after this hook but casts the
        # module to the run's precision only later, so a 64-true run's float64 weights would
        # be rounded through the float32 module. The Trainer calls this hook inside the
        # precision's init context, whose default dtype is the one the run trains in: cast to
        # it now, as the plugin would later (a no-op outside a Trainer and for 32-bit runs).
        self.model.to(torch.get_default_dtype())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        weights = [self.model.W1, self.model.W2]
        biases = [self.model.b1, self.model.b2]
        return torch.optim.SGD(
            [
                {"params": weights, "weight_decay": self.hparams.weight_decay},
                {"params": biases, "weight_decay": 0.0},
            ],
            lr=self.hparams.lr,
        )
