"""Forward pass, cross-entropy, backward pass and SGD update of the two-layer MLP, made fast.

To read the math, read ``textbook.py``: the same four functions in CS231n style, the readable
reference and the test oracle. This module is its optimisation, held equal to it in float64
by ``tests/test_numpy_twin_textbook.py``.

Plain functions over arrays, in CS231n names. Every function keeps the dtype of its
inputs (float32 in training, float64 in the gradient checks) and writes into ``out``
buffers when given them, so the training loop allocates nothing per step.

The model: ``logits = dropout(relu(X @ W1 + b1)) @ W2 + b2``. ReLU and inverted
dropout are folded into one ``gate`` per hidden unit: ``1/(1-p)`` where the unit is
positive and kept, 0 elsewhere. Then ``h = z1 * gate`` and, going back,
``dz1 = dh * gate``: one multiply each way instead of two masks. The keep mask itself is the
run's, ``core.dropout.keep_units``: the same bits the Lightning model gets with its batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

Params = dict[str, np.ndarray]  # W1 (D, H), b1 (H,), W2 (H, C), b2 (C,)

# Chains of elementwise passes run over blocks of rows of about this size, so that
# what one pass writes is still in the core's cache when the next pass reads it.
BLOCK_BYTES = 1 << 18

# OpenBLAS runs a GEMM of m*n*k <= 2**18 on the calling thread and wakes its other
# threads above that. For the thin products with the C-wide second layer (h @ W2,
# dlogits @ W2.T, h.T @ dlogits) waking them costs more than the product, and when
# another process holds a core it cost 10-60 ms a call here: so those run in slices
# under this size, and only the two big GEMMs use every core.
SINGLE_THREAD_MNK = 1 << 18


def block_rows(row_bytes: int, mnk_per_row: int = 0) -> int:
    """Rows per block: about ``BLOCK_BYTES``, and a GEMM of ``mnk_per_row`` per row kept single-threaded."""
    rows = BLOCK_BYTES // max(row_bytes, 1)
    if mnk_per_row:
        rows = min(rows, SINGLE_THREAD_MNK // mnk_per_row)
    return max(1, rows)


def row_blocks(n_rows: int, row_bytes: int, mnk_per_row: int = 0) -> Iterator[slice]:
    """Slices of consecutive rows covering ``range(n_rows)``, ``block_rows`` rows each."""
    step = block_rows(row_bytes, mnk_per_row)
    return (slice(i, min(i + step, n_rows)) for i in range(0, n_rows, step))


@dataclass
class Cache:
    """What the backward pass needs from the forward pass."""

    X: np.ndarray  # (B, D)
    h: np.ndarray  # (B, H) hidden activations after ReLU and dropout
    gate: np.ndarray | None  # (B, H) dh -> dz1 factor: 1/(1-p) or 0; None: eval only, no backward


def forward(
    X: np.ndarray,
    params: Params,
    keep: np.ndarray | None = None,
    p: float = 0.0,
    out: Cache | None = None,
) -> tuple[np.ndarray, Cache]:
    """Logits (B, C) and the cache for ``backward``; ``keep`` (B, H) bool turns dropout on.

    ``out`` with ``gate=None`` is eval only: ReLU without the gate that ``backward`` needs.
    """
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    B, H = X.shape[0], W1.shape[1]
    if out is None:
        out = Cache(X=X, h=np.empty((B, H), dtype=X.dtype), gate=np.empty((B, H), dtype=X.dtype))
    h = out.h[:B]
    gate = out.gate[:B] if out.gate is not None else None
    if gate is None and keep is not None:
        raise ValueError("dropout needs a gate for backward: these buffers are eval only (gate=None)")
    np.matmul(X, W1, out=h)  # z1, (B, H)
    C = W2.shape[1]
    logits = np.empty((B, C), dtype=X.dtype)
    scale = X.dtype.type(1.0 / (1.0 - p))  # inverted dropout: E[h] is as in eval mode
    alive = np.empty((min(B, block_rows(h.strides[0], H * C)), H), bool) if keep is not None else None
    for rows in row_blocks(B, h.strides[0], H * C):  # each block: 3 passes without dropout, 5 with
        z = h[rows]
        z += b1
        if gate is None:
            np.maximum(z, 0, out=z)  # eval: ReLU alone
        elif keep is None:
            np.greater(z, 0, out=gate[rows])  # 1.0 where ReLU passes, else 0.0
            z *= gate[rows]  # z1 -> h in place
        else:
            a = alive[: len(z)]
            np.greater(z, 0, out=a)
            a &= keep[rows]  # ReLU passes it and dropout keeps it
            np.multiply(a, scale, out=gate[rows])
            z *= gate[rows]
        np.matmul(z, W2, out=logits[rows])  # while the block of h is in cache
    logits += b2
    return logits, Cache(X=X, h=h, gate=gate)


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[np.floating, np.ndarray]:
    """Mean cross-entropy of integer labels ``y`` (B,), and dL/dlogits (B, C).

    Log-sum-exp after subtracting the row max, so logits of +-1e4 give a finite loss
    and gradient. ``logits`` is overwritten with the gradient ``(softmax - onehot) / B``,
    which is built in place from the labels: no one-hot matrix.
    """
    B = logits.shape[0]
    rows = np.arange(B)
    logits -= logits.max(axis=1, keepdims=True)  # shifted: the largest is 0
    picked = logits[rows, y]  # (B,) shifted logit of the true class
    np.exp(logits, out=logits)  # (B, C), each in (0, 1]
    total = logits.sum(axis=1)  # (B,) >= 1, so its log is finite
    loss = np.mean(np.log(total) - picked)
    logits /= total[:, None]  # softmax
    inv_B = logits.dtype.type(1.0) / logits.dtype.type(B)
    logits *= inv_B  # as torch: d(mean)/d(logit) = softmax / B ...
    logits[rows, y] -= inv_B  # ... minus 1/B at the true class
    return loss, logits


def backward(dlogits: np.ndarray, cache: Cache, params: Params, grads: Params | None = None) -> Params:
    """Gradients of the loss for W1, b1, W2, b2 (into ``grads`` when given), from dL/dlogits (B, C)."""
    W2 = params["W2"]
    if grads is None:
        grads = {name: np.empty_like(value) for name, value in params.items()}
    B = dlogits.shape[0]
    h, C = cache.h[:B], W2.shape[1]
    for units in row_blocks(len(W2), 0, B * C):  # (H, C) in slices of hidden units
        np.matmul(h[:, units].T, dlogits, out=grads["W2"][units])
    np.sum(dlogits, axis=0, out=grads["b2"])  # (C,)
    dz1 = h  # dh and then dz1 (B, H) reuse h, which is spent
    for rows in row_blocks(B, dz1.strides[0], len(W2) * C):
        np.matmul(dlogits[rows], W2.T, out=dz1[rows])  # dh
        dz1[rows] *= cache.gate[rows]  # back through dropout and ReLU, in place
    np.matmul(cache.X.T, dz1, out=grads["W1"])  # (D, H)
    np.sum(dz1, axis=0, out=grads["b1"])  # (H,)
    return grads


def sgd_update(
    params: Params, grads: Params, lr: float, weight_decay: float, scratch: Params | None = None
) -> None:
    """One step of ``torch.optim.SGD`` with L2 decay on W1 and W2 only, in place.

    As torch: ``d = grad + weight_decay * W``, then ``W -= lr * d`` (``grads`` becomes ``d``).
    """
    for name, W in params.items():
        decay = weight_decay if name in ("W1", "W2") else 0.0
        scratch_W = scratch[name] if scratch is not None else np.empty_like(W)
        for rows in row_blocks(len(W), W.strides[0]):
            w, dw, tmp = W[rows], grads[name][rows], scratch_W[rows]
            if decay:
                np.multiply(w, W.dtype.type(decay), out=tmp)
                dw += tmp
            np.multiply(dw, W.dtype.type(lr), out=tmp)
            w -= tmp
