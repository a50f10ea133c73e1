"""Forward pass, cross-entropy, backward pass and SGD update of the two-layer MLP.

Plain functions over arrays, in CS231n names. Every function keeps the dtype of its
inputs (float32 in training, float64 in the gradient checks) and writes into ``out``
buffers when given them, so the training loop allocates nothing per step.

The model: ``logits = dropout(relu(X @ W1 + b1)) @ W2 + b2``. ReLU and inverted
dropout are folded into one ``gate`` per hidden unit: ``1/(1-p)`` where the unit is
positive and kept, 0 elsewhere. Then ``h = z1 * gate`` and, going back,
``dz1 = dh * gate``: one multiply each way instead of two masks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

Params = dict[str, np.ndarray]  # W1 (D, H), b1 (H,), W2 (H, C), b2 (C,)

# Chains of elementwise passes run over blocks of rows of about this size, so that
# what one pass writes is still in the core's cache when the next pass reads it.
BLOCK_BYTES = 1 << 18


def row_blocks(n_rows: int, row_bytes: int) -> Iterator[slice]:
    """Slices of consecutive rows, about ``BLOCK_BYTES`` each, covering ``range(n_rows)``."""
    step = max(1, BLOCK_BYTES // max(row_bytes, 1))
    return (slice(i, min(i + step, n_rows)) for i in range(0, n_rows, step))


@dataclass
class Cache:
    """What the backward pass needs from the forward pass."""

    X: np.ndarray  # (B, D)
    h: np.ndarray  # (B, H) hidden activations after ReLU and dropout
    gate: np.ndarray  # (B, H) dh -> dz1 factor: 1/(1-p) or 0


def dropout_threshold(p: float) -> np.uint32:
    """A unit is kept where a uniform 32-bit draw is >= this: probability 1 - p, exact to 2**-32."""
    return np.uint32(min(round(p * 2.0**32), 2**32 - 1))


def draw_keep(rng: np.random.Generator, p: float, shape: tuple[int, int], out: np.ndarray) -> np.ndarray:
    """Dropout's keep mask (bool, ``shape``) from raw 32-bit draws, into ``out``.

    Raw bits and one integer comparison cost about half of ``rng.random`` plus a
    float comparison, and the mask is a pure function of the generator's state.
    """
    n = shape[0] * shape[1]
    bits = rng.bit_generator.random_raw((n + 1) // 2).view(np.uint32)[:n].reshape(shape)
    return np.greater_equal(bits, dropout_threshold(p), out=out)


def forward(
    X: np.ndarray,
    params: Params,
    keep: np.ndarray | None = None,
    p: float = 0.0,
    out: Cache | None = None,
) -> tuple[np.ndarray, Cache]:
    """Logits (B, C) and the cache for ``backward``; ``keep`` (B, H) bool turns dropout on."""
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    B, H = X.shape[0], W1.shape[1]
    h = out.h[:B] if out is not None else np.empty((B, H), dtype=X.dtype)
    gate = out.gate[:B] if out is not None else np.empty((B, H), dtype=X.dtype)
    np.matmul(X, W1, out=h)  # z1, (B, H)
    scale = X.dtype.type(1.0 / (1.0 - p))  # inverted dropout: E[h] is as in eval mode
    for rows in row_blocks(B, h.strides[0]):
        z, g = h[rows], gate[rows]
        z += b1
        alive = np.greater(z, 0)  # bool: ReLU passes it
        if keep is not None:
            alive &= keep[rows]
        np.copyto(g, alive)  # 1.0 or 0.0
        if keep is not None:
            g *= scale
        z *= g  # z1 -> h in place
    logits = h @ W2  # (B, C)
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
    np.matmul(cache.h.T, dlogits, out=grads["W2"])  # (H, C)
    np.sum(dlogits, axis=0, out=grads["b2"])  # (C,)
    dz1 = cache.h[:B]  # dh and then dz1 (B, H) reuse h, which is spent
    for rows in row_blocks(B, dz1.strides[0]):
        np.matmul(dlogits[rows], W2.T, out=dz1[rows])  # dh
        dz1[rows] *= cache.gate[rows]  # back through dropout and ReLU
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
