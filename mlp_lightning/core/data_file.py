"""A user's own points, ``--data PATH``: read, checked and fingerprinted, in NumPy.

Two formats: an ``.npz`` holding ``X`` (N, D) numbers and ``y`` (N,) integer labels, read
without pickles; or a ``.csv`` whose first row is a header and whose last column is the
integer label. Labels must be 0..C-1 with every class present. Whatever is wrong raises
``ConfigError`` naming the file and, where it applies, the row and column, so the command
line refuses it before anything is written. The sha256 of the file's bytes is recorded
with the run; a resume or an evaluation refuses a file that has changed since.
"""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlp_lightning.core.errors import ConfigError

SUFFIXES = (".npz", ".csv")


@dataclass(frozen=True)
class DataFile:
    path: Path  # absolute
    X: np.ndarray  # (N, D) float32, in the file's order
    y: np.ndarray  # (N,) int64
    sha256: str
    feature_names: tuple[str, ...] = ()  # (D,)
    class_names: tuple[str, ...] = ()  # (C,) label k's name

    @property
    def num_classes(self) -> int:
        return int(self.y.max()) + 1


def read_data_file(path: str | Path, expected_sha256: str | None = None) -> DataFile:
    """The file's points, checked; with ``expected_sha256``, refused unless its bytes are unchanged."""
    path = Path(path).absolute()
    where = f"--data {str(path)!r}"
    if path.suffix.lower() not in SUFFIXES:
        raise ConfigError(f"{where}: must be a .npz (X, y) or .csv (header row, label last) file")
    if not path.is_file():
        raise ConfigError(f"{where}: no such file")
    raw = path.read_bytes()
    if not raw:
        raise ConfigError(f"{where}: the file is empty (0 bytes)")
    sha256 = hashlib.sha256(raw).hexdigest()
    if expected_sha256 is not None and sha256 != expected_sha256:
        raise ConfigError(
            f"{where}: the file has changed since the run used it (sha256 {sha256[:12]}..., "
            f"the run recorded {expected_sha256[:12]}...); restore it or train a new run"
        )
    X, y = (_read_npz if path.suffix.lower() == ".npz" else _read_csv)(raw, where)
    X, y = _check_points(X, y, where, csv_rows=path.suffix.lower() == ".csv")
    features = tuple(f"x{j + 1}" for j in range(X.shape[1]))
    if path.suffix.lower() == ".csv":
        features = tuple(next(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))[:-1])
    classes = tuple(str(k) for k in range(int(y.max()) + 1))
    return DataFile(path=path, X=X, y=y, sha256=sha256, feature_names=features, class_names=classes)


def _read_npz(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    if not zipfile.is_zipfile(io.BytesIO(raw)):
        raise ConfigError(f"{where}: not a .npz archive (truncated, or another format)")
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            missing = [k for k in ("X", "y") if k not in archive.files]
            if missing:
                raise ConfigError(
                    f"{where}: no array {' or '.join(missing)} (it holds {sorted(archive.files)})"
                )
            X, y = archive["X"], archive["y"]
    except (ValueError, OSError, zipfile.BadZipFile) as err:  # object arrays need pickles: refused
        raise ConfigError(f"{where}: cannot read the arrays ({err})") from None
    if X.ndim != 2:
        raise ConfigError(f"{where}: X must be 2-D (points, features), got shape {X.shape}")
    if y.ndim != 1 or len(y) != len(X):
        raise ConfigError(
            f"{where}: y must be 1-D with one label per row of X {X.shape}, got shape {y.shape}"
        )
    if X.dtype.kind not in "iuf":
        raise ConfigError(f"{where}: X must hold real numbers, got dtype {X.dtype}")
    if y.dtype.kind not in "iuf":
        raise ConfigError(f"{where}: y must hold integer labels, got dtype {y.dtype}")
    return X, y


def _read_csv(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not a text file (not UTF-8)") from None
    rows = [(n, row) for n, row in enumerate(csv.reader(io.StringIO(text)), start=1) if row]
    if not rows:
        raise ConfigError(f"{where}: the file has no rows")
    (_, header), data = rows[0], rows[1:]
    if len(header) < 2:
        raise ConfigError(
            f"{where}: the header row has {len(header)} column(s); features then a label are needed"
        )
    if all(_is_number(cell) for cell in header):
        raise ConfigError(f"{where}: row 1 holds numbers, not column names: a header row must come first")
    if not data:
        raise ConfigError(f"{where}: no data rows below the header")
    values = np.empty((len(data), len(header)), dtype=np.float64)
    for i, (line, row) in enumerate(data):
        if len(row) != len(header):
            raise ConfigError(f"{where}: row {line} has {len(row)} columns, the header has {len(header)}")
        for j, cell in enumerate(row):
            try:
                values[i, j] = float(cell)
            except ValueError:
                raise ConfigError(
                    f"{where}: row {line}, column {j + 1} ({header[j]!r}): {cell!r} is not a number"
                ) from None
    return values[:, :-1], values[:, -1]


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _check_points(X: np.ndarray, y: np.ndarray, where: str, csv_rows: bool) -> tuple[np.ndarray, np.ndarray]:
    """Finite features, labels 0..C-1 with every class present; names the first bad row and column."""

    def row(i: int) -> str:  # a CSV's rows count from its header, line 1
        return f"row {i + 2}" if csv_rows else f"row {i} (0-based)"

    if len(X) == 0:
        raise ConfigError(f"{where}: no points (0 rows)")
    if X.shape[1] == 0:
        raise ConfigError(f"{where}: no features (0 columns)")
    with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf: refused below
        X32 = X.astype(np.float32)
    bad = np.argwhere(~np.isfinite(X32))
    if len(bad):
        i, j = bad[0]
        raise ConfigError(
            f"{where}: {row(i)}, column {j + 1}: feature {_show(X[i, j])} is not a finite float32 number"
        )
    fractional = np.flatnonzero((y != np.round(y)) | ~np.isfinite(y)) if y.dtype.kind == "f" else []
    if len(fractional):
        raise ConfigError(f"{where}: {row(fractional[0])}: label {_show(y[fractional[0]])} is not an integer")
    negative = np.flatnonzero(y < 0)
    if len(negative):
        raise ConfigError(
            f"{where}: {row(negative[0])}: label {_show(y[negative[0]])} is negative; labels are 0..C-1"
        )
    labels = y.astype(np.int64)
    counts = np.bincount(labels)
    if len(counts) < 2:
        raise ConfigError(f"{where}: every point has label 0; at least 2 classes (labels 0 and 1) are needed")
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        raise ConfigError(
            f"{where}: class {empty[0]} has no points; labels must be 0..C-1 with every class present "
            f"(the largest label is {len(counts) - 1})"
        )
    return X32, labels


def _show(value: np.generic) -> str:
    """A value as the file would write it: ``-1``, ``0.5``, ``nan``, ``1e+300``."""
    return repr(int(value)) if isinstance(value, np.integer) else repr(float(value))
