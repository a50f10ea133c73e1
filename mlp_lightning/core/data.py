"""The run's points (blobs, a toy set or a --data file) and the order batches are drawn in, in NumPy.

Both trainers take their data and batch order from here (``load_splits``), so they see
the same points in the same order. No torch: the NumPy twin imports this module.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator

import numpy as np

from mlp_lightning.core.columns import Columns, plain_columns, standardization
from mlp_lightning.core.data_file import read_data_file
from mlp_lightning.core.datasets import make_circles, make_moons, make_spirals
from mlp_lightning.core.hparams import train_size
from mlp_lightning.core.seeds import batch_order_rng, data_rng

# evaluation runs in order, in chunks of this many points (memory, not results, decides it)
EVAL_CHUNK = 4096


def class_centers(num_classes: int, offset: float) -> np.ndarray:
    """Per-class center, the same value in every feature: (2k - (C-1)) * offset.

    For two classes that is -offset and +offset, the reference notebook's blobs.
    For more, the centers are evenly spaced along the diagonal, neighbours
    2 * offset * sqrt(dim) apart, exactly as far as the two-class centers are.
    """
    k = np.arange(num_classes)
    return (2 * k - (num_classes - 1)) * float(offset)  # (C,)


# rows drawn per call while making blobs: bounds the float64 temporaries (~8 MB)
_DRAW_VALUES = 1 << 20


def make_blobs(
    n_per_class: int, dim: int, offset: float, num_classes: int, seed: int, scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs (standard deviation ``scale``), shuffled: X (N, dim) float32, y (N,) int64.

    With num_classes=2 this makes the same RNG calls in the same order as the
    notebook's ``make_blobs(n_per_class, dim, offset, seed)`` and returns its arrays
    bit for bit.
    """
    # The notebook draws every blob in float64, stacks them, casts, draws a
    # permutation and gathers X[idx]: at a large config that holds ~5 copies of the
    # data at once. Same numbers with one float32 copy: draw the blobs on a copy of
    # the generator only to reach the permutation, then replay the draws in chunks
    # and write each row straight into its shuffled place. (Normals drawn in chunks
    # continue the same stream as one big draw.)
    rng = data_rng(seed)
    n_total = n_per_class * num_classes
    ahead = copy.deepcopy(rng)
    for _ in _draw_blobs(ahead, n_per_class, dim, offset, num_classes, scale):
        pass
    idx = ahead.permutation(n_total)  # shuffled position i holds stacked row idx[i]
    where = np.empty(n_total, dtype=np.int64)
    where[idx] = np.arange(n_total)  # stacked row j goes to shuffled position where[j]

    X = np.empty((n_total, dim), dtype=np.float32)
    for rows, draws in _draw_blobs(rng, n_per_class, dim, offset, num_classes, scale):
        X[where[rows]] = draws  # float64 -> float32 rounds as the notebook's astype does
    y = np.repeat(np.arange(num_classes, dtype=np.int64), n_per_class)[idx]
    return X, y


def _draw_blobs(
    rng: np.random.Generator, n_per_class: int, dim: int, offset: float, num_classes: int, scale: float
) -> Iterator[tuple[slice, np.ndarray]]:
    """Yields (stacked rows, float64 draws) for every class in order, in bounded chunks."""
    chunk = max(1, _DRAW_VALUES // max(dim, 1))
    for k, center in enumerate(class_centers(num_classes, offset)):
        for start in range(0, n_per_class, chunk):
            stop = min(start + chunk, n_per_class)
            # the notebook passes a Python float loc; keep that type so the draws match
            draws = rng.normal(loc=float(center), scale=float(scale), size=(stop - start, dim))
            yield slice(k * n_per_class + start, k * n_per_class + stop), draws


def split_train_val(
    X: np.ndarray, y: np.ndarray, val_fraction: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The first (1 - val_fraction) of the shuffled points train, the rest validate (views)."""
    n_train = train_size(len(X), val_fraction)
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def make_points(hp) -> tuple[np.ndarray, np.ndarray]:
    """All of a run's points, shuffled by its seed: X (N, dim) float32, y (N,) int64, as drawn or read.

    A --data file is read again and refused (ConfigError) if its bytes changed since the run began.
    """
    return _points(hp)[:2]


def _points(hp) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """X, y and the feature names (a file's own columns; ``x1..xD`` for a generated set)."""
    if hp.data:
        points = read_data_file(hp.data, hp.target, hp.drop, expected_sha256=hp.data_sha256)
        idx = data_rng(hp.seed).permutation(len(points.X))  # shuffled once, like the generated sets
        return points.X[idx], points.y[idx], points.feature_names
    features = tuple(f"x{j + 1}" for j in range(hp.dim))
    if hp.dataset == "moons":
        return (*make_moons(hp.n_per_class, hp.noise, hp.seed), features)
    if hp.dataset == "circles":
        return (*make_circles(hp.n_per_class, hp.num_classes, hp.noise, hp.seed), features)
    if hp.dataset == "spirals":
        return (*make_spirals(hp.n_per_class, hp.num_classes, hp.noise, hp.seed), features)
    return (*make_blobs(hp.n_per_class, hp.dim, hp.offset, hp.num_classes, hp.seed, hp.noise), features)


def load_run_data(hp) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Columns]:
    """Xtr, ytr, Xva, yva as the model takes them, and the run's ``Columns`` (names, scaling).

    With ``--standardize`` every point is scaled by the training split's statistics
    (``core/columns.py``), once, here: both trainers, evaluate.py and the boundary images
    take the scaled points from this one place.
    """
    X, y, feature_names = _points(hp)
    columns = plain_columns(hp.dim, hp.num_classes, hp.class_names)
    columns = dataclasses.replace(columns, feature_names=feature_names)
    if hp.standardize:
        mean, scale = standardization(X[: train_size(len(X), hp.val_fraction)])
        columns = dataclasses.replace(columns, mean=mean, scale=scale)
        np.subtract(X, mean, out=X)  # in place: X is this call's own array, and may be large
        np.divide(X, scale, out=X)
    return (*split_train_val(X, y, hp.val_fraction), columns)


def load_splits(hp) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Xtr, ytr, Xva, yva for an ``HParams``, as the model takes them (``load_run_data``)."""
    return load_run_data(hp)[:4]


def eval_chunks(n: int) -> list[slice]:
    """The in-order slices evaluation walks through, the same for both trainers."""
    return [slice(i, min(i + EVAL_CHUNK, n)) for i in range(0, n, EVAL_CHUNK)]


def shard(start: int, stop: int, rank: int, world_size: int) -> slice:
    """Rank ``rank``'s contiguous part of ``[start, stop)`` cut into ``world_size`` parts.

    Part sizes differ by at most one and are all >= 1 when ``stop - start >= world_size``:
    no rank is left empty and no point is repeated (DistributedSampler would pad).
    """
    n = stop - start
    return slice(start + n * rank // world_size, start + n * (rank + 1) // world_size)


class BatchOrder:
    """Which training points form each batch: a pure function of (seed, epoch).

    Iterating yields index arrays, one per batch. Under several processes each rank
    takes its own disjoint slice of every global batch of ``batch_size * world_size``
    points, so the ranks together cover the epoch once. The epoch's last global batch
    (the remainder) is cut into near-equal parts, one per rank; a remainder smaller
    than ``world_size`` joins the batch before it, so no rank ever gets an empty
    batch. With one process this is the plain ``ceil(n / batch_size)`` batches.
    ``set_epoch`` picks the epoch (Lightning calls it on a loader's ``sampler``); ``state_dict`` /
    ``load_state_dict`` record how far into the epoch iteration has gone, so an
    interrupted epoch can resume at the next unseen batch.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        if n < world_size:
            raise ValueError(f"{n} training points cannot give each of {world_size} processes a batch")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.batches_done = 0  # batches of `epoch` already handed out

    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.world_size

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.global_batch_size)
        return full + (rest >= self.world_size)  # a smaller rest joins batch full - 1

    def set_epoch(self, epoch: int) -> None:
        """Pick the epoch to iterate; a new epoch starts at its first batch."""
        if epoch != self.epoch:
            self.epoch, self.batches_done = epoch, 0

    def permutation(self, epoch: int) -> np.ndarray:
        return batch_order_rng(self.seed, epoch).permutation(self.n)  # (n,) int64

    def batch_indices(self, perm: np.ndarray, i: int) -> np.ndarray:
        """This rank's indices of global batch ``i`` of the epoch ``perm`` belongs to."""
        start = i * self.global_batch_size
        # the last global batch takes whatever is left; full ones split into batch_size each
        stop = self.n if i == len(self) - 1 else start + self.global_batch_size
        return perm[shard(start, stop, self.rank, self.world_size)]

    def __iter__(self) -> Iterator[np.ndarray]:
        perm = self.permutation(self.epoch)
        # a finished epoch iterated again starts over, like any re-iterable loader
        start = self.batches_done if self.batches_done < len(self) else 0
        for i in range(start, len(self)):
            self.batches_done = i + 1
            yield self.batch_indices(perm, i)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batches_done": self.batches_done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.batches_done = int(state["epoch"]), int(state["batches_done"])
