"""The initial weights, drawn once in NumPy so both trainers start from the same ones."""

from __future__ import annotations

import numpy as np

from mlp_lightning.core.seeds import init_weights_rng

PARAM_NAMES = ("W1", "b1", "W2", "b2")
INIT_STD = 0.02


def param_shapes(dim: int, hidden_dim: int, num_classes: int) -> dict[str, tuple[int, ...]]:
    return {
        "W1": (dim, hidden_dim),
        "b1": (hidden_dim,),
        "W2": (hidden_dim, num_classes),
        "b2": (num_classes,),
    }


def init_weights(dim: int, hidden_dim: int, num_classes: int, seed: int) -> dict[str, np.ndarray]:
    """W1, W2 ~ N(0, 0.02) and zero biases, float32, from the ``--seed``'s init stream."""
    rng = init_weights_rng(seed)
    shapes = param_shapes(dim, hidden_dim, num_classes)
    return {
        "W1": rng.normal(0.0, INIT_STD, size=shapes["W1"]).astype(np.float32),
        "b1": np.zeros(shapes["b1"], dtype=np.float32),
        "W2": rng.normal(0.0, INIT_STD, size=shapes["W2"]).astype(np.float32),
        "b2": np.zeros(shapes["b2"], dtype=np.float32),
    }
