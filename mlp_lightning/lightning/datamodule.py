"""The run's points (blobs, a toy set or a --data file) as a LightningDataModule, with an in-memory loader."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence

import lightning as L
import numpy as np
import torch

from mlp_lightning.core.data import BatchOrder, eval_chunks, load_run_data, shard
from mlp_lightning.core.dropout import keep_packed
from mlp_lightning.core.errors import ConfigError
from mlp_lightning.core.hparams import HParams, data_names, generated_set_names

# the hyperparameters that decide the points and their split, and the batches
DATA_HPARAMS = (*data_names(), "batch_size")
# and those that decide the dropout bits each training batch brings (its points' keep masks)
MASK_HPARAMS = ("hidden_dim", "dropout")


def check_world_size(n_train: int, n_val: int, world_size: int) -> None:
    """Raise ConfigError when a split has fewer points than processes: each needs one of both."""
    for split, n in (("training", n_train), ("validation", n_val)):
        if n < world_size:
            raise ConfigError(
                f"--n_per_class, --num_classes and --val_fraction give {n} {split} point(s), fewer than "
                f"the {world_size} processes (--devices x --num_nodes); each process needs at least one: "
                "use more points or fewer processes"
            )


class TensorBatches:
    """Yields ``(x, y)`` batches gathered from tensors held in memory, ``(x, y, keep)`` with ``keep_bits``.

    A DataLoader over a per-sample TensorDataset collates every batch from single
    rows, which costs more than this model's training step. Here a batch is one
    ``index_select`` on tensors that already sit on the training device, so there is
    no per-batch collation or host-to-device copy. ``batch_sampler`` yields index
    arrays (or slices). It is also exposed as ``sampler``, where Lightning looks for
    ``set_epoch`` at each epoch start; Lightning saves and restores the position
    through ``state_dict``/``load_state_dict`` in checkpoints.

    ``keep_bits(epoch, points)``: the dropout bits of a batch's points (global indices), drawn
    on the host here, as the batch is fetched, and sent to the device with it: the step finds
    them there and never waits on the host for them.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None,
        batch_sampler: Sequence | BatchOrder,
        keep_bits: Callable[[int, np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.x, self.y, self.batch_sampler, self.keep_bits = x, y, batch_sampler, keep_bits
        # A reach into Lightning's internals (the others: lightning/internals.py): Lightning sets each
        # epoch on a loader through its ``sampler`` attribute (``lightning.fabric.utilities.data.
        # _set_sampler_epoch``, checked against Lightning 2.6); tests/test_lightning_contract.py
        # fails loudly if that stops.
        self.sampler = batch_sampler

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        for idx in self.batch_sampler:
            if self.y is None:  # points to predict: ``(x,)``
                yield (self.x[idx],)
            elif isinstance(idx, slice):
                yield self.x[idx], self.y[idx]
            else:
                index = torch.from_numpy(idx).to(self.x.device, non_blocking=True)
                batch = self.x.index_select(0, index), self.y.index_select(0, index)
                if self.keep_bits is not None:  # BatchOrder's epoch: the one Lightning set
                    bits = self.keep_bits(self.batch_sampler.epoch, idx)  # (B, ceil(H / 8)) uint8
                    batch += (torch.from_numpy(bits).to(self.x.device, non_blocking=True),)
                yield batch

    def state_dict(self) -> dict:
        return self.batch_sampler.state_dict() if hasattr(self.batch_sampler, "state_dict") else {}

    def load_state_dict(self, state: dict) -> None:
        if state and hasattr(self.batch_sampler, "load_state_dict"):
            self.batch_sampler.load_state_dict(state)


class BlobDataModule(L.LightningDataModule):
    """The run's points (``core.data.load_splits``), split; train reshuffled by ``(seed, epoch)``.

    With ``dropout > 0`` a training batch is ``(x, y, keep)``: ``keep`` holds its points' dropout
    bits for a hidden layer of ``hidden_dim`` units (``core.dropout.keep_packed``), which
    ``MLPClassifier`` of the same ``hidden_dim``, ``dropout`` and ``seed`` applies.
    """

    def __init__(
        self,
        n_per_class: int = HParams.n_per_class,
        dim: int = HParams.dim,
        offset: float = HParams.offset,
        num_classes: int = HParams.num_classes,
        val_fraction: float = HParams.val_fraction,
        batch_size: int = HParams.batch_size,
        seed: int = HParams.seed,
        dataset: str = HParams.dataset,
        noise: float | None = None,
        data: str = HParams.data,
        target: str = HParams.target,
        drop: Sequence[str] = HParams.drop,
        data_sha256: str = HParams.data_sha256,
        data_points: int = HParams.data_points,
        standardize: bool | None = None,
        class_names: Sequence[str] = HParams.class_names,
        hidden_dim: int = HParams.hidden_dim,
        dropout: float = HParams.dropout,
    ) -> None:
        super().__init__()
        # a --data run records no flag that only shapes a generated set (HParams.as_dict): it did not apply
        unused = [name for name in generated_set_names() if name != "dataset"] if data else None
        self.save_hyperparameters(ignore=unused)
        self.x_predict: torch.Tensor | None = None  # predict_on's points; None: the validation split

    @classmethod
    def from_hparams(cls, hp: HParams) -> BlobDataModule:
        """The data module for the data part of the shared hyperparameters."""
        # tuples (drop, class_names) as lists: hparams saved as YAML stay plain
        plain = {name: getattr(hp, name) for name in (*DATA_HPARAMS, *MASK_HPARAMS)}
        return cls(**{name: list(v) if isinstance(v, tuple) else v for name, v in plain.items()})

    def setup(self, stage: str | None = None) -> None:
        hp = HParams(**{name: self.hparams[name] for name in DATA_HPARAMS if name in self.hparams})
        Xtr, ytr, Xva, yva, self.columns = load_run_data(hp)  # columns: names and scaling, for the checkpoint
        self.x_train, self.y_train = torch.from_numpy(Xtr), torch.from_numpy(ytr)
        self.x_val, self.y_val = torch.from_numpy(Xva), torch.from_numpy(yva)

    def predict_on(self, X: np.ndarray) -> None:
        """Predict ``X`` (N, D), raw features (a --data file's rows), scaled as the run's training data."""
        if not hasattr(self, "columns"):
            self.setup("predict")  # the run's scaling comes with its data
        self.x_predict = torch.from_numpy(self.columns.scaled(X))

    def _device(self) -> torch.device:
        # the whole data set moves to the device once, not batch by batch
        return self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        # Our loaders yield batches already on the device: returning them as they are skips
        # Lightning's generic walk over the batch (~20 us a step, a few % of a seed-config
        # step). Anything else takes the generic path; precision plugins cast batches apart.
        if isinstance(batch, tuple) and all(
            isinstance(t, torch.Tensor) and t.device == device for t in batch
        ):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def train_dataloader(self) -> TensorBatches:
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        order = BatchOrder(len(self.x_train), self.hparams.batch_size, self.hparams.seed, rank, world)
        device = self._device()
        keep_bits = None
        if self.hparams.dropout > 0:  # at 0 nothing is drawn, and batches stay (x, y)
            hp = self.hparams
            keep_bits = functools.partial(keep_packed, hp.seed, units=hp.hidden_dim, p=hp.dropout)
        return TensorBatches(self.x_train.to(device), self.y_train.to(device), order, keep_bits)

    def val_dataloader(self) -> TensorBatches:
        # Each rank evaluates its own contiguous part of the split, no point twice: the
        # metrics sum their states over the ranks at compute(). Lightning injects a
        # DistributedSampler only into torch DataLoaders, so it leaves this loader alone.
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        n_val = len(self.x_val)
        check_world_size(len(self.x_train), n_val, world)  # fit.py checks before training starts
        part = shard(0, n_val, rank, world)
        device = self._device()
        x, y = self.x_val[part].to(device), self.y_val[part].to(device)
        return TensorBatches(x, y, eval_chunks(len(x)))

    def predict_dataloader(self) -> TensorBatches:
        """``(x,)`` batches of ``predict_on``'s points (else the validation split's), in evaluation chunks."""
        x = (self.x_predict if self.x_predict is not None else self.x_val).to(self._device())
        return TensorBatches(x, None, eval_chunks(len(x)))
