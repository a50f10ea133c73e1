"""The nonlinear toy sets: two moons, concentric circles, interleaved spirals, in pure NumPy.

Each draws ``n_per_class`` points per class from the run's data stream, stacks the classes
in order and shuffles them with one permutation from the same stream, as the blobs do, so
the split and batch order that follow are the blobs' own. ``noise`` is the standard
deviation of the set's Gaussian noise (``SET_DEFAULTS`` in ``core/hparams.py``).
"""

from __future__ import annotations

import numpy as np

from mlp_lightning.core.seeds import data_rng

SPIRAL_SWEEP = 4.0  # radians each spiral arm turns through from the center out, as CS231n's


def make_moons(n_per_class: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's two interleaving half circles (angles drawn, not evenly spaced), plus noise."""
    rng = data_rng(seed)
    t = rng.uniform(0.0, np.pi, size=(2, n_per_class))  # (2, n)
    outer = np.stack([np.cos(t[0]), np.sin(t[0])], axis=1)  # (n, 2)
    inner = np.stack([1.0 - np.cos(t[1]), 0.5 - np.sin(t[1])], axis=1)
    return _noisy_shuffled(rng, [outer, inner], noise)


def make_circles(
    n_per_class: int, num_classes: int, noise: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """One ring per class, ring k of radius k + 1 (neighbours 1 apart for any count), plus noise."""
    rng = data_rng(seed)
    angle = rng.uniform(0.0, 2 * np.pi, size=(num_classes, n_per_class))  # (C, n)
    radius = np.arange(1, num_classes + 1, dtype=np.float64)[:, None]  # (C, 1)
    rings = [np.stack([r * np.cos(a), r * np.sin(a)], axis=1) for r, a in zip(radius, angle, strict=True)]
    return _noisy_shuffled(rng, rings, noise)


def make_spirals(
    n_per_class: int, num_classes: int, noise: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """CS231n's spiral: arm k starts at angle 2*pi*k/C and turns ``SPIRAL_SWEEP`` radians out to radius 1.

    The noise is on the angle (radians), as in CS231n, so arms stay apart near the center.
    """
    rng = data_rng(seed)
    r = rng.uniform(0.0, 1.0, size=(num_classes, n_per_class))  # (C, n)
    start = 2 * np.pi * np.arange(num_classes)[:, None] / num_classes  # (C, 1)
    theta = start + SPIRAL_SWEEP * r + noise * rng.standard_normal(r.shape)
    arms = [np.stack([ri * np.sin(ti), ri * np.cos(ti)], axis=1) for ri, ti in zip(r, theta, strict=True)]
    return _noisy_shuffled(rng, arms, 0.0)


def _noisy_shuffled(
    rng: np.random.Generator, classes: list[np.ndarray], noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """Stack the classes (each (n, 2) float64), add N(0, noise^2) per feature, shuffle: float32, int64."""
    X = np.concatenate(classes)  # (C*n, 2)
    if noise > 0:
        X = X + noise * rng.standard_normal(X.shape)
    y = np.repeat(np.arange(len(classes), dtype=np.int64), len(classes[0]))
    idx = rng.permutation(len(X))
    return X[idx].astype(np.float32), y[idx]
