"""The two-layer MLP as in a textbook (CS231n's two-layer net): the readable reference and test oracle.

    z1 = X @ W1 + b1                                      # (B, H)
    h = relu(z1) * mask, mask = keep / (1 - p)            # (B, H) inverted dropout; mask = 1 in eval
    logits = h @ W2 + b2                                  # (B, C)
    loss = mean over rows of log(sum(exp(logits))) - logits[y]
    dlogits = (softmax(logits) - onehot(y)) / B           # (B, C)
    W -= lr * (dW + weight_decay * W)                     # torch.optim.SGD, decay on W1 and W2 only

``model.py`` computes the same numbers fast (row blocks, ReLU and dropout folded into one gate,
preallocated buffers); ``tests/test_numpy_twin_textbook.py`` holds it equal to this module.
Here every array is new and nothing is overwritten but the weights, in ``sgd_update``.
"""

from __future__ import annotations

import numpy as np

from mlp_lightning.core.weights import PARAM_NAMES


def forward(X: np.ndarray, params: dict, keep: np.ndarray | None = None, p: float = 0.0) -> tuple:
    """Logits (B, C) and the cache for ``backward``; ``keep`` (B, H) bool: the units dropout keeps."""
    W1, b1, W2, b2 = (params[name] for name in PARAM_NAMES)
    z1 = X @ W1 + b1  # (B, H)
    # inverted dropout: kept units scaled by 1/(1-p), so E[h] is as in eval mode (keep None: all 1)
    mask = np.ones_like(z1) if keep is None else (keep / (1.0 - p)).astype(X.dtype)  # (B, H)
    h = np.maximum(z1, 0) * mask  # (B, H) ReLU, then dropout
    logits = h @ W2 + b2  # (B, C)
    return logits, (X, z1, mask, h)


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple:
    """Mean cross-entropy of integer labels ``y`` (B,), and dlogits (B, C)."""
    B = logits.shape[0]
    rows = np.arange(B)
    shifted = logits - logits.max(axis=1, keepdims=True)  # (B, C) largest 0, so exp cannot overflow
    exp = np.exp(shifted)  # (B, C)
    total = exp.sum(axis=1, keepdims=True)  # (B, 1) >= 1, so its log is finite
    loss = np.mean(np.log(total[:, 0]) - shifted[rows, y])  # log-sum-exp minus the true class's logit
    probs = exp / total  # (B, C) softmax
    onehot = np.zeros_like(probs)  # (B, C)
    onehot[rows, y] = 1
    dlogits = (probs - onehot) / B  # (B, C)
    return loss, dlogits


def backward(dlogits: np.ndarray, cache: tuple, params: dict) -> dict:
    """Gradients of the loss for W1, b1, W2, b2 from dlogits (B, C) and the forward's cache."""
    X, z1, mask, h = cache
    dW2 = h.T @ dlogits  # (H, C)
    db2 = dlogits.sum(axis=0)  # (C,)
    dh = dlogits @ params["W2"].T  # (B, H)
    dz1 = dh * mask * (z1 > 0)  # (B, H) back through dropout, then ReLU
    dW1 = X.T @ dz1  # (D, H)
    db1 = dz1.sum(axis=0)  # (H,)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


def sgd_update(params: dict, grads: dict, lr: float, weight_decay: float) -> None:
    """One step of ``torch.optim.SGD`` (no momentum) with L2 decay on W1 and W2, not the biases; in place."""
    for name in PARAM_NAMES:
        decay = weight_decay if name in ("W1", "W2") else 0.0
        d = grads[name] + decay * params[name]  # as torch: the decay joins the gradient
        params[name] -= lr * d
