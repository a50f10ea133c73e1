"""What a model's inputs and outputs are: its features' names and scaling, its classes' names.

A run on a user's table learns from standardized features (``--standardize``, on by default
for ``--data``): each feature minus its mean, divided by its standard deviation, both taken
from the training split only, so nothing of the validation split leaks into training. A
constant feature is centred and left unscaled (its deviation is 0). The statistics are
float32, and ``scaled`` applies them in float32 with two exactly rounded operations, so
NumPy and torch, and both trainers, see the very same inputs.

These facts travel with every model a run writes (the twin's ``weights.npz``, the Lightning
checkpoint, ``export_weights.py``'s files) as four arrays, so a saved model scores new rows
as it scored its validation split, with either backend or with four lines of NumPy:
``feature_mean`` (D,), ``feature_scale`` (D,), ``feature_names`` (D,) and ``class_names``
(C,). A model saved before they existed reads as unscaled, with features ``x1..xD`` and
classes ``0..C-1``. No torch here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mlp_lightning.core.errors import WeightsError

FEATURE_MEAN, FEATURE_SCALE = "feature_mean", "feature_scale"
FEATURE_NAMES, CLASS_NAMES = "feature_names", "class_names"
COLUMN_ARRAYS = (FEATURE_MEAN, FEATURE_SCALE, FEATURE_NAMES, CLASS_NAMES)
# a Lightning checkpoint's entry for them, as plain lists (torch.load(weights_only=True) reads those)
COLUMNS_KEY = "mlp_lightning_columns"
# a name longer than this is cut in what the project prints (a table's header is someone else's text)
SHOWN_NAME_CHARS = 40


@dataclass(frozen=True, eq=False)
class Columns:
    feature_names: tuple[str, ...]  # (D,) the table's feature columns, in the model's input order
    class_names: tuple[str, ...]  # (C,) class k's name: the run's label k
    mean: np.ndarray  # (D,) float32, subtracted from each feature (zeros: not standardized)
    scale: np.ndarray  # (D,) float32, then divided by (ones: not standardized)

    @property
    def dim(self) -> int:
        return len(self.feature_names)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def standardized(self) -> bool:
        return bool(np.any(self.mean != 0) or np.any(self.scale != 1))

    def scaled(self, X: np.ndarray) -> np.ndarray:
        """``X`` (N, D) as the model takes it: float32, standardized where the run was."""
        X = np.asarray(X, dtype=np.float32)
        if not self.standardized:
            return X
        return (X - self.mean) / self.scale  # (N, D) float32, each operation rounded once

    def as_arrays(self) -> dict[str, np.ndarray]:
        """The four arrays a weights file holds beside W1, b1, W2, b2 (text as unicode, no pickles)."""
        return {
            FEATURE_MEAN: np.asarray(self.mean, dtype=np.float32),
            FEATURE_SCALE: np.asarray(self.scale, dtype=np.float32),
            FEATURE_NAMES: _text_array(self.feature_names),
            CLASS_NAMES: _text_array(self.class_names),
        }

    def same_as(self, other: Columns) -> bool:
        return (
            self.feature_names == other.feature_names
            and self.class_names == other.class_names
            and np.array_equal(self.mean, other.mean)
            and np.array_equal(self.scale, other.scale)
        )


def plain_columns(dim: int, num_classes: int, class_names: Sequence[str] = ()) -> Columns:
    """Unscaled features ``x1..xD``; classes named ``class_names``, or ``0..C-1`` (as ``HParams.classes``)."""
    names = tuple(class_names) if class_names else tuple(str(k) for k in range(num_classes))
    return Columns(
        feature_names=tuple(f"x{j + 1}" for j in range(dim)),
        class_names=names,
        mean=np.zeros(dim, dtype=np.float32),
        scale=np.ones(dim, dtype=np.float32),
    )


def standardization(X_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each feature's mean and standard deviation over the training points, as float32 (D,), (D,).

    Accumulated in float64 (a million float32 values sum exactly enough); a feature whose
    deviation is 0 in float32 is constant: its scale is 1, so it is centred and left as it is.
    """
    mean = X_train.mean(axis=0, dtype=np.float64)  # (D,)
    std = X_train.std(axis=0, dtype=np.float64)  # (D,) population deviation, as scikit-learn's scaler
    scale = std.astype(np.float32)
    scale[scale == 0] = 1.0
    return mean.astype(np.float32), scale


def columns_from_arrays(arrays: Mapping[str, np.ndarray], source: str, dim: int, num_classes: int) -> Columns:
    """The Columns a weights file holds, checked against the model's (D, C); plain if it holds none.

    WeightsError names the file and the array that does not fit: all four or none, the scales
    finite and > 0, the names text of the model's sizes.
    """
    present = [name for name in COLUMN_ARRAYS if name in arrays]
    if not present:
        return plain_columns(dim, num_classes)
    if len(present) != len(COLUMN_ARRAYS):
        missing = [name for name in COLUMN_ARRAYS if name not in arrays]
        raise WeightsError(f"{source} holds {', '.join(present)} but not {', '.join(missing)}")
    for name, size in (
        (FEATURE_MEAN, dim),
        (FEATURE_SCALE, dim),
        (FEATURE_NAMES, dim),
        (CLASS_NAMES, num_classes),
    ):
        array = arrays[name]
        if not hasattr(array, "shape") or tuple(array.shape) != (size,):
            shape = getattr(array, "shape", type(array).__name__)
            raise WeightsError(
                f"{source}: {name} has shape {shape}, expected ({size},) for the model's weights"
            )
    mean, scale = (np.asarray(arrays[k]) for k in (FEATURE_MEAN, FEATURE_SCALE))
    if mean.dtype != np.float32 or scale.dtype != np.float32:
        raise WeightsError(f"{source}: {FEATURE_MEAN} and {FEATURE_SCALE} must be float32")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(scale)) and np.all(scale > 0)):
        raise WeightsError(f"{source}: {FEATURE_MEAN} must be finite and {FEATURE_SCALE} finite and > 0")
    names = {}
    for key in (FEATURE_NAMES, CLASS_NAMES):
        array = np.asarray(arrays[key])
        if array.dtype.kind != "U":
            raise WeightsError(f"{source}: {key} must be text (a unicode array), got dtype {array.dtype}")
        names[key] = tuple(str(v) for v in array)
    if len(set(names[CLASS_NAMES])) != num_classes:
        raise WeightsError(f"{source}: {CLASS_NAMES} repeats a name; each class needs its own")
    return Columns(names[FEATURE_NAMES], names[CLASS_NAMES], mean, scale)


def columns_to_stored(columns: Columns) -> dict[str, list]:
    """The Columns as plain lists: float32 values as Python floats, which hold them exactly."""
    return {name: array.tolist() for name, array in columns.as_arrays().items()}


def columns_from_stored(stored: Mapping[str, object]) -> dict[str, np.ndarray]:
    """``columns_to_stored``'s lists as arrays again, for ``columns_from_arrays`` to check.

    A list of anything but numbers (or of text, for the names) is kept as it is, for the
    check to name.
    """
    arrays: dict[str, np.ndarray] = {}
    for name in (n for n in COLUMN_ARRAYS if n in stored):
        value, numbers = stored[name], name in (FEATURE_MEAN, FEATURE_SCALE)
        if isinstance(value, list) and all(type(v) is (float if numbers else str) for v in value):
            arrays[name] = np.array(value, dtype=np.float32) if numbers else _text_array(value)
        else:
            arrays[name] = value  # for columns_from_arrays to name
    return arrays


def shown_name(name: str) -> str:
    """A column or class name as the project prints it: escaped, and cut if long."""
    text = repr(name[: SHOWN_NAME_CHARS + 1])
    return text if len(name) <= SHOWN_NAME_CHARS else text[:-1] + "...'"


def _text_array(names: Sequence[str]) -> np.ndarray:
    return np.array(list(names), dtype=str) if names else np.array([], dtype="<U1")
