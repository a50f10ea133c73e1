"""The weights: the seeded initial ones both trainers start from, the contract every weights file meets."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from mlp_lightning.core.column_choice import listing
from mlp_lightning.core.errors import WeightsError
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


def nonfinite_names(named: Mapping[str, Any], isfinite: Callable[[Any], Any] = np.isfinite) -> list[str]:
    """Names of the floating-point arrays in ``named`` that hold a NaN or an infinity.

    NumPy arrays by default; the Lightning side passes ``isfinite=torch.isfinite`` for tensors,
    so that a tensor is checked where it lives (on its GPU) rather than copied to NumPy.
    """
    return [name for name, array in named.items() if _is_float(array) and not bool(isfinite(array).all())]


def check_weights(
    weights: Mapping[str, Any],
    source: str,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
    *,
    context: str = "",
    dtype: Any = None,
    isfinite: Callable[[Any], Any] = np.isfinite,
    error: type[Exception] = WeightsError,
) -> None:
    """The MLP's weights contract, for every file that holds weights; ``error`` names ``source``.

    Exactly W1, b1, W2, b2; in ``shapes`` (when the run's hyperparameters are known, said in
    ``context``) or else in shapes that fit together; floating point (``dtype`` if given); finite.
    """
    missing = [name for name in PARAM_NAMES if name not in weights]
    extra = sorted(str(name) for name in set(weights) - set(PARAM_NAMES))
    if missing or extra:
        what = [f"lacks {', '.join(missing)}"] if missing else []
        what += [f"also holds {listing(extra)}"] if extra else []  # the file's names: escaped, bounded
        raise error(
            f"{source} is for another architecture: it {' and '.join(what)} "
            f"(the MLP's parameters are {', '.join(PARAM_NAMES)})"
        )
    for name in PARAM_NAMES:
        if not hasattr(weights[name], "shape"):
            raise error(f"{source}: {name} is a {type(weights[name]).__name__}, not an array")
    got = {name: tuple(weights[name].shape) for name in PARAM_NAMES}
    if shapes is None:
        if len(got["W1"]) != 2 or len(got["W2"]) != 2:
            raise error(
                f"{source} has shapes W1 {got['W1']}, b1 {got['b1']}, W2 {got['W2']}, b2 {got['b2']}; "
                "expected W1 (D, H), b1 (H,), W2 (H, C), b2 (C,)"
            )
        (dim, hidden_dim), num_classes = got["W1"], got["W2"][1]
        shapes, context = param_shapes(dim, hidden_dim, num_classes), f"to fit W1 {got['W1']}"
    for name in PARAM_NAMES:
        if got[name] != tuple(shapes[name]):
            raise error(
                f"{source}: {name} has shape {got[name]}, expected {tuple(shapes[name])} {context}".rstrip()
            )
    for name in PARAM_NAMES:
        if not _is_float(weights[name]):
            raise error(f"{source} must hold floating-point arrays; {name} is {weights[name].dtype}")
        if dtype is not None and weights[name].dtype != dtype:
            raise error(f"{source}: {name} is {weights[name].dtype}, expected {np.dtype(dtype)}")
    bad = nonfinite_names({name: weights[name] for name in PARAM_NAMES}, isfinite)
    if bad:
        raise error(f"{source} holds non-finite values in {', '.join(bad)}")


def _is_float(array: Any) -> bool:
    if hasattr(array, "is_floating_point"):  # a torch tensor
        return bool(array.is_floating_point())
    return hasattr(array, "dtype") and np.issubdtype(array.dtype, np.floating)
