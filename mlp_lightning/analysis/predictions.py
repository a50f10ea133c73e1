"""New rows in, predictions out: a table read by the model's column names, predictions by class name.

A model trained on a table knows its features by name and its classes by name
(``core/columns.py``). A file of new rows is read by those names: the features in the
model's order wherever they stand in the file, extra columns ignored, the class column
optional (without it there is nothing to score, only to predict). Its labels are mapped
to the model's classes by name; a class the model never saw is refused, naming both sets.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from mlp_lightning.core.columns import Columns, shown_name
from mlp_lightning.core.data_file import read_data_file
from mlp_lightning.core.errors import ConfigError
from mlp_lightning.core.hparams import HParams
from mlp_lightning.runs.files import atomic_write_text

# at most this many names in a message: a table may have thousands of columns
SHOWN_NAMES = 8


def rows_of_file(
    path: str | Path, columns: Columns, hp: HParams | None
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Every row of ``path`` for the model: X (N, D) by feature name, y (N,) by class name or None, and
    which rows, in words."""
    points = read_data_file(path)
    where = f"--data {str(points.path)!r}"
    X = points.X  # an .npz's features have no names: they go by position (evaluate_model checks the count)
    if points.path.suffix.lower() == ".csv":
        X = X[:, _feature_order(points.feature_names, columns, where)]
    y = _labels_by_name(points.y, points.class_names, columns, where)
    return X, y, f"all {len(X)} rows of {points.path}"


def _feature_order(names: tuple[str, ...], columns: Columns, where: str) -> list[int]:
    """The file's column index of each of the model's features, in the model's order."""
    at = {name: j for j, name in enumerate(names)}
    missing = [name for name in columns.feature_names if name not in at]
    if not missing:
        return [at[name] for name in columns.feature_names]
    generic = columns.feature_names == tuple(f"x{j + 1}" for j in range(columns.dim))
    if generic and len(names) == columns.dim:  # a model of unnamed features (a generated set, an .npz)
        return list(range(columns.dim))
    raise ConfigError(
        f"{where} lacks the model's feature column(s) {listed(missing)} (the model reads "
        f"{columns.dim} features by name: {listed(columns.feature_names)})"
    )


def _labels_by_name(y: np.ndarray, names: tuple[str, ...], columns: Columns, where: str) -> np.ndarray:
    """The file's labels (indices into its own ``names``) as indices into the model's classes."""
    index = {name: k for k, name in enumerate(columns.class_names)}
    unknown = [name for name in names if name not in index]
    if unknown:
        raise ConfigError(
            f"{where} has class(es) {listed(unknown)} the model does not know: the file's classes are "
            f"{listed(names)}, the run's {listed(columns.class_names)}"
        )
    return np.array([index[name] for name in names], dtype=np.int64)[y]


def listed(names) -> str:
    """``'a', 'b', 'c'`` or ``'a', 'b', ... (120 in all)``: names escaped and cut, at most SHOWN_NAMES."""
    names = list(names)
    shown = ", ".join(shown_name(str(n)) for n in names[:SHOWN_NAMES])
    return shown if len(names) <= SHOWN_NAMES else f"{shown}, ... ({len(names)} in all)"


def write_predictions(
    probs: np.ndarray, y: np.ndarray | None, class_names: tuple[str, ...], path: str | Path
) -> Path:
    """One CSV row per point, in order: its label (if known), the predicted class, each class's probability.

    ``probs`` (N, C); ``y`` (N,) or None. Classes are written by name; the probability columns
    are ``p_<name>``.
    """
    names = np.array(class_names, dtype=object)
    header = ["predicted", *(f"p_{name}" for name in class_names)]
    columns = [names[probs.argmax(axis=1)], *(probs[:, k] for k in range(probs.shape[1]))]
    if y is not None:
        header, columns = ["label", *header], [names[y], *columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")  # quotes a name holding a comma or a quote
    writer.writerow(header)
    writer.writerows(zip(*(_cells(c) for c in columns), strict=True))
    atomic_write_text(buffer.getvalue(), Path(path))  # a refused write leaves no half file
    return Path(path)


def _cells(column: np.ndarray) -> list[str]:
    return [repr(float(v)) for v in column] if column.dtype.kind == "f" else [str(v) for v in column]
