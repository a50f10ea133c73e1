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

from mlp_lightning.core.column_choice import listing
from mlp_lightning.core.columns import Columns
from mlp_lightning.core.csv_table import header_names, read_text_columns
from mlp_lightning.core.data_file import read_data_file, read_new_rows
from mlp_lightning.core.errors import ConfigError
from mlp_lightning.core.hparams import HParams
from mlp_lightning.runs.files import atomic_write_text


def rows_of_file(
    path: str | Path, columns: Columns, hp: HParams | None, target: str | None = None
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Every row of ``path`` for the model: X (N, D) by feature name, y (N,) by class name or None, and
    which rows, in words.

    The class column is ``target``, else the run's own (``hp.target``); without either, the rows
    are predicted, not scored. A model of unnamed features (``x1..xD``: a generated set, an .npz)
    reads a .csv by position, its class column the last one, as training does.
    """
    target = target if target is not None else (hp.target if hp is not None else "")
    generic = columns.feature_names == tuple(f"x{j + 1}" for j in range(columns.dim))
    if generic and _csv_without_columns(path, columns.feature_names):
        points = read_data_file(path, target=target)
        found, X, y, names = points.path, points.X, points.y, points.class_names
    else:
        found, X, y, names = read_new_rows(path, columns.feature_names, target)
    where = f"--data {str(found)!r}"
    if y is not None:
        y = _labels_by_name(y, names, columns, where)
    return X, y, f"all {len(X)} rows of {found}"


def _csv_without_columns(path: str | Path, names: tuple[str, ...]) -> bool:
    """Whether ``path`` is a .csv whose header lacks one of ``names`` (read from its header row alone)."""
    path = Path(path).absolute()
    if path.suffix.lower() != ".csv" or not path.is_file():
        return False  # read_new_rows names what is wrong with it
    return not set(names) <= set(header_names(path, f"--data {str(path)!r}"))


def _labels_by_name(y: np.ndarray, names: tuple[str, ...], columns: Columns, where: str) -> np.ndarray:
    """The file's labels (indices into its own ``names``) as indices into the model's classes."""
    index = {name: k for k, name in enumerate(columns.class_names)}
    unknown = [name for name in names if name not in index]
    if unknown:
        raise ConfigError(
            f"{where} has class(es) {listing(unknown)} the model does not know: the file's classes are "
            f"{listing(names)}, the run's {listing(columns.class_names)}"
        )
    return np.array([index[name] for name in names], dtype=np.int64)[y]


def carried_columns(
    path: str | Path, keep: tuple[str, ...] | None, hp: HParams | None, rows: int
) -> tuple[tuple[str, np.ndarray], ...]:
    """The columns of a .csv that its predictions carry, as written: (name, (rows,) text) pairs.

    ``keep`` names them; by default they are the columns the run left out with ``--drop`` that the
    file has, since a column one drops is most often the row's id, and predictions without it
    could only be matched to their rows by position.
    """
    path = Path(path).absolute()
    where = f"--data {str(path)!r}"
    if path.suffix.lower() != ".csv":
        if keep:
            raise ConfigError(f"--keep {listing(keep)}: names columns of a .csv; {where} is not one")
        return ()
    if keep is None:
        present = set(header_names(path, where))
        keep = tuple(name for name in (hp.drop if hp is not None else ()) if name in present)
    return tuple(zip(keep, read_text_columns(path, where, keep, rows), strict=True))


def write_predictions(
    probs: np.ndarray,
    y: np.ndarray | None,
    class_names: tuple[str, ...],
    path: str | Path,
    carried: tuple[tuple[str, np.ndarray], ...] = (),
) -> Path:
    """One CSV row per point, in order: the ``carried`` columns (an id), its label (if known), the
    predicted class, each class's probability.

    ``probs`` (N, C); ``y`` (N,) or None. Classes are written by name; the probability columns
    are ``p_<name>``.
    """
    names = np.array(class_names, dtype=object)
    header = ["predicted", *(f"p_{name}" for name in class_names)]
    columns = [names[probs.argmax(axis=1)], *(probs[:, k] for k in range(probs.shape[1]))]
    if y is not None:
        header, columns = ["label", *header], [names[y], *columns]
    if clash := [name for name, _ in carried if name in header]:
        raise ConfigError(f"--keep {listing(clash)}: the predictions have a column of that name already")
    header, columns = [name for name, _ in carried] + header, [column for _, column in carried] + columns
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")  # quotes a name holding a comma or a quote
    writer.writerow(header)
    writer.writerows(zip(*(_cells(c) for c in columns), strict=True))
    atomic_write_text(buffer.getvalue(), Path(path))  # a refused write leaves no half file
    return Path(path)


def _cells(column: np.ndarray) -> list[str]:
    return [repr(float(v)) for v in column] if column.dtype.kind == "f" else [str(v) for v in column]
