"""A class column's values as labels 0..C-1 and the classes' names: the one rule for .csv and .npz.

If every value is an integer number (``0``, ``3``, ``-1``, ``1.0``), the classes are the distinct
integers in numeric order, named by the integers as text (``"-1"``, ``"1"``): labels 0..C-1 map
to themselves, and a wine table's ``1, 2, 3`` become classes 0, 1, 2 named "1", "2", "3". A
non-integer number (``0.5``) or NaN/inf among numbers is refused. Otherwise (any value that is
not a number) the classes are the distinct values, stripped of surrounding whitespace, in Python's
``sorted`` order: iris's ``setosa, versicolor, virginica`` are classes 0, 1, 2.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mlp_lightning.core.columns import shown_name
from mlp_lightning.core.errors import ConfigError
from mlp_lightning.core.hparams import MAX_CLASSES  # a column with more distinct values is not a class column

ID_LIKE_ROWS = 20  # more rows than this, each with its own value: an id column, not classes


class RowNeeded(Exception):
    """A label is refused, but the caller read the column without row numbers: it must find them."""


def class_labels(
    values: np.ndarray, column: str, row: Callable[[int], str] | None = None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """``y`` (N,) int64 in 0..C-1 and the C class names, from a class column's values.

    ``values`` are numbers (an .npz's ``y``) or text (a CSV column, an .npz's unicode ``y``);
    ``column`` names the column in messages and ``row(i)`` the i-th value's row (None: raise
    ``RowNeeded`` where a row must be named).
    """
    if values.dtype.kind in "US":
        values = np.char.strip(values.astype(str))
        try:
            numbers = values.astype(np.float64)
        except ValueError:  # some value is not a number: the values are names
            return _checked(*np.unique(values, return_inverse=True), column)
    elif values.dtype.kind in "iub":
        numbers = values
    elif values.dtype.kind == "f":
        numbers = values.astype(np.float64)
    else:
        raise ConfigError(f"{column} must hold integer labels or class names, got dtype {values.dtype}")
    if numbers.dtype.kind == "f":
        fractional = np.flatnonzero(~np.isfinite(numbers) | (numbers != np.round(numbers)))
        if len(fractional):
            if row is None:
                raise RowNeeded
            i = fractional[0]
            raise ConfigError(
                f"{row(i)}: label {_number(numbers[i])} is not an integer: "
                "a class column holds integers or names"
            )
    classes, y = np.unique(numbers.astype(np.int64), return_inverse=True)
    return _checked(classes, y, column)


def _checked(classes: np.ndarray, y: np.ndarray, column: str) -> tuple[np.ndarray, tuple[str, ...]]:
    names = tuple(str(c) for c in classes.tolist())
    if len(names) < 2:
        raise ConfigError(f"{column} has one value ({shown_name(names[0])}): at least 2 classes are needed")
    if len(names) == len(y) > ID_LIKE_ROWS:
        raise ConfigError(
            f"{column} has a different value in every one of its {len(y)} rows: an id, not classes? "
            "name the class column with --target (and leave an id out with --drop)"
        )
    if len(names) > MAX_CLASSES:
        raise ConfigError(
            f"{column} has {len(names)} distinct values, more than the {MAX_CLASSES} classes allowed"
        )
    return y.reshape(-1).astype(np.int64), names


def _number(value: float) -> str:
    """A label as a file writes it: ``0.5``, ``nan``, ``inf``."""
    return repr(float(value))
