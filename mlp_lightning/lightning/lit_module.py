"""The LightningModule: loss, optimizer and the project's per-epoch metrics."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from mlp_lightning.core.hparams import HParams
from mlp_lightning.core.tensorboard_schema import TRAIN_ACC, TRAIN_LOSS, VAL_ACC, VAL_LOSS
from mlp_lightning.core.weights import init_weights
from mlp_lightning.lightning.metrics import BatchMean
from mlp_lightning.lightning.model import TwoLayerMLP


class MLPClassifier(L.LightningModule):
    """Cross-entropy on the two-layer MLP; SGD with L2 weight decay on W1 and W2 only."""

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
        # metrics accumulate per step with update() and are computed once per epoch:
        # per-step logging would cost more than this model's step. No per-step checks inside
        # them either (NaN scans, label validation): each is a device-to-host sync on a GPU. A
        # non-finite loss is DivergenceGuard's to report, and the labels are the data module's own.
        self.train_loss = BatchMean()
        self.val_loss = BatchMean()
        self.train_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.val_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)

    @classmethod
    def from_hparams(cls, hp: HParams) -> MLPClassifier:
        """The module for the model and optimizer part of the shared hyperparameters."""
        return cls(
            dim=hp.dim, hidden_dim=hp.hidden_dim, num_classes=hp.num_classes, dropout=hp.dropout,
            lr=hp.lr, weight_decay=hp.weight_decay, seed=hp.seed,
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _common_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        getattr(self, f"{stage}_loss").update(loss.detach(), weight=y.shape[0])
        getattr(self, f"{stage}_acc").update(logits.detach(), y)
        return loss

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._common_step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._common_step(batch, "val")

    def _compute(self, stage: str) -> dict[str, torch.Tensor]:
        loss_tag, acc_tag = (TRAIN_LOSS, TRAIN_ACC) if stage == "train" else (VAL_LOSS, VAL_ACC)
        loss, acc = getattr(self, f"{stage}_loss"), getattr(self, f"{stage}_acc")
        values = {loss_tag: loss.compute(), acc_tag: acc.compute()}
        loss.reset()
        acc.reset()
        return values

    def on_validation_epoch_end(self) -> None:
        # During fit, validation runs after the epoch's last training batch, so the
        # training metrics are complete here too: logging all four in one call puts
        # them (and Lightning's `epoch` scalar) once at the epoch's last step.
        metrics = self._compute("val")
        if self.trainer.state.fn == "fit" and not self.trainer.sanity_checking:
            metrics.update(self._compute("train"))
        self.log_dict(metrics, prog_bar=True)

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
