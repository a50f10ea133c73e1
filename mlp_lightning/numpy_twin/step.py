"""The twin's per-step work: one training step (mask, forward, loss, backward, update), one evaluation
pass, the buffers they reuse and the float32 running means they feed.

Every (B, H) array a step needs lives in a ``Workspace`` allocated once per run, so
the loop's cost is the two big matmuls plus a few elementwise passes (see ``model``).
At ``--dropout 0`` no mask is drawn at all; evaluation computes no gate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mlp_lightning.core.data import eval_chunks
from mlp_lightning.core.dropout import keep_units
from mlp_lightning.core.errors import DivergenceError
from mlp_lightning.core.hparams import HParams
from mlp_lightning.core.weights import nonfinite_names
from mlp_lightning.numpy_twin import model as twin
from mlp_lightning.numpy_twin.model import Cache, Params

_f32 = np.float32


@dataclass
class RunningMean:
    """Batch-size-weighted mean loss and accuracy, in float32 like torchmetrics' states."""

    loss_sum: np.float32 = field(default_factory=lambda: _f32(0.0))
    weight: np.float32 = field(default_factory=lambda: _f32(0.0))
    correct: int = 0
    seen: int = 0

    def update(self, loss: np.float32, correct: int, batch: int) -> None:
        self.loss_sum += _f32(loss) * _f32(batch)
        self.weight += _f32(batch)
        self.correct += correct
        self.seen += batch

    def compute(self) -> tuple[float, float]:
        return float(self.loss_sum / self.weight), float(_f32(self.correct) / _f32(self.seen))


def evaluate(
    params: Params, X: np.ndarray, y: np.ndarray, buffers: Cache | None = None
) -> tuple[float, float]:
    """Loss and accuracy over the whole split, eval mode, in the shared evaluation chunks."""
    mean = RunningMean()
    for chunk in eval_chunks(len(X)):
        logits, _ = twin.forward(X[chunk], params, out=buffers)
        correct = int(np.count_nonzero(logits.argmax(axis=1) == y[chunk]))
        loss, _ = twin.cross_entropy(logits, y[chunk])
        mean.update(loss, correct, len(logits))
    return mean.compute()


def predict(params: Params, X: np.ndarray, buffers: Cache | None = None) -> np.ndarray:
    """The predicted class of each row of ``X`` (N,), eval mode, in the evaluation chunks."""
    classes = np.empty(len(X), dtype=np.intp)
    for chunk in eval_chunks(len(X)):
        logits, _ = twin.forward(X[chunk], params, out=buffers)
        classes[chunk] = logits.argmax(axis=1)
    return classes


def empty_cache(rows: int, D: int, H: int, dtype=np.float32, grad: bool = True) -> Cache:
    """Forward-pass buffers for up to ``rows`` points; ``grad=False``: eval only, no gate for backward."""
    gate = np.empty((rows, H), dtype) if grad else None
    return Cache(X=np.empty((0, D), dtype), h=np.empty((rows, H), dtype), gate=gate)


@dataclass
class Workspace:
    """Buffers reused by every step, so a training step allocates no (B, H) float array."""

    xb: np.ndarray  # (B, D)
    yb: np.ndarray  # (B,)
    keep: np.ndarray  # (B, H) bool
    cache: Cache
    grads: Params
    scratch: Params  # the update's temporaries, one per parameter

    @classmethod
    def allocate(cls, rows: int, params: Params, dtype=np.float32) -> Workspace:
        D, H = params["W1"].shape
        return cls(
            xb=np.empty((rows, D), dtype),
            yb=np.empty(rows, np.int64),
            keep=np.empty((rows, H), bool),
            cache=empty_cache(rows, D, H, dtype),
            grads={k: np.empty_like(v) for k, v in params.items()},
            scratch={k: np.empty_like(v) for k, v in params.items()},
        )


def train_step(
    params: Params, X: np.ndarray, y: np.ndarray, hp: HParams, ws: Workspace, epoch: int, points: np.ndarray
) -> tuple[np.float32, int]:
    """Forward with dropout, loss, backward, update; returns (loss, correct) of that forward pass.

    ``points`` (B,): the rows' global indices in the training split, which with ``epoch`` pick
    their dropout masks (``core.dropout.keep_units``, the run's stream; nothing drawn at p = 0).
    """
    B, p = X.shape[0], hp.dropout
    keep = keep_units(hp.seed, epoch, points, ws.keep.shape[1], p, out=ws.keep[:B]) if p > 0 else None
    logits, cache = twin.forward(X, params, keep, hp.dropout, out=ws.cache)
    correct = int(np.count_nonzero(logits.argmax(axis=1) == y))
    loss, dlogits = twin.cross_entropy(logits, y)
    twin.backward(dlogits, cache, params, grads=ws.grads)
    refuse_non_finite(loss, ws.grads)  # before the update, so the weights stay good
    twin.sgd_update(params, ws.grads, hp.lr, hp.weight_decay, scratch=ws.scratch)
    return loss, correct


def refuse_non_finite(loss: np.float32, grads: Params) -> None:
    """Raise DivergenceError naming the non-finite loss or gradients."""
    # one cheap sum first; the exact check runs only when it fails (or merely overflowed)
    if math.isfinite(loss) and math.isfinite(sum(float(g.sum()) for g in grads.values())):
        return
    bad = nonfinite_names(
        {"loss": np.asarray(loss), **{f"gradient of {name}": g for name, g in grads.items()}}
    )
    if bad:
        raise DivergenceError(f"non-finite {', '.join(bad)} (loss {float(loss):g})")
