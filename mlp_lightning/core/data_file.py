"""A user's own points, ``--data PATH``: read, checked and fingerprinted, in NumPy.

Two formats: an ``.npz`` holding ``X`` (N, D) numbers and ``y`` (N,) class labels (integers, or
text as a unicode array), read without pickles, and optionally ``feature_names`` (D,) text; or a
``.csv`` whose first row is a header, read by ``core/csv_table.py``: the class column is the last
one or ``--target NAME``, ``--drop NAME...`` leaves columns out. Either way the classes follow
``core/class_labels.py``: integers in numeric order, else names in sorted order, so labels
0..C-1 map to themselves. Whatever is wrong raises ``ConfigError`` naming the file and, where it
applies, the row and column, so the command line refuses it before anything is written. The
sha256 of the file's bytes (read in a stream) is recorded with the run; a resume or an evaluation
refuses a file that has changed since.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlp_lightning.core.archive_check import DATA_ARCHIVE_MAX_BYTES, npz_headers
from mlp_lightning.core.class_labels import class_labels
from mlp_lightning.core.csv_table import class_column_name, read_csv, read_csv_by_name
from mlp_lightning.core.errors import ConfigError
from mlp_lightning.core.quoted import quoted, short_text

SUFFIXES = (".npz", ".csv")
NPZ_ARRAYS = ("X", "y", "feature_names")  # what is read of an .npz; other arrays are left unread
_WHAT = "a --data file's X, y and feature_names"
_LAST: dict[tuple, DataFile] = {}  # the last file read, by path, columns, size and modification time


@dataclass(frozen=True)
class DataFile:
    path: Path  # absolute
    X: np.ndarray  # (N, D) float32, in the file's order
    y: np.ndarray  # (N,) int64 in 0..C-1
    sha256: str
    class_names: tuple[str, ...] = ()  # (C,) class y == c is class_names[c]
    feature_names: tuple[str, ...] = ()  # (D,)
    target_name: str = "y"  # the class column's name (an .npz's is y)

    @property
    def num_classes(self) -> int:
        return int(self.y.max()) + 1


def read_data_file(
    path: str | Path, target: str = "", drop: tuple[str, ...] = (), expected_sha256: str | None = None
) -> DataFile:
    """The file's points, checked; with ``expected_sha256``, refused unless its bytes are unchanged.

    ``target`` names a .csv's class column ("" : the last), ``drop`` columns to leave out.
    """
    path = Path(path).absolute()
    where = f"--data {str(path)!r}"
    csv = path.suffix.lower() == ".csv"
    if path.suffix.lower() not in SUFFIXES:
        raise ConfigError(f"{where}: must be a .npz (X, y) or .csv (header row, class last) file")
    if not path.is_file():
        raise ConfigError(f"{where}: no such file")
    for flag, value in (("--target", target), ("--drop", drop)):
        if value and not csv:
            raise ConfigError(f"{where}: {flag} names a .csv's columns; a .npz holds X and y")
    stat = path.stat()
    if stat.st_size == 0:
        raise ConfigError(f"{where}: the file is empty (0 bytes)")
    # the command line reads the file to check the flags, the trainer again for its points: once. The
    # command line records the class column by name (``DataFile.target_name``): the key resolves "" so
    # the two reads meet
    target = (target or class_column_name(path, where)) if csv else target
    key = (path, target, tuple(drop), stat.st_size, stat.st_mtime_ns)
    points = _LAST.get(key)
    sha256 = points.sha256 if points is not None else _sha256(path)
    if expected_sha256 is not None and sha256 != expected_sha256:
        raise ConfigError(
            f"{where}: the file has changed since the run used it (sha256 {sha256[:12]}..., "
            f"the run recorded {expected_sha256[:12]}...); restore it or train a new run"
        )
    if points is None:
        X, y, classes, features, label = (
            read_csv(path, where, target, tuple(drop)) if csv else (*_read_npz(path, where), "y")
        )
        X.flags.writeable = y.flags.writeable = False  # shared by the next read of the same file
        points = DataFile(path, X, y, sha256, classes, features, label)
        _LAST.clear()
        _LAST[key] = points
    return points


def read_new_rows(
    path: str | Path, feature_names: tuple[str, ...], target: str
) -> tuple[Path, np.ndarray, np.ndarray | None, tuple[str, ...]]:
    """Rows to predict: the absolute path, X (N, D) float32, y (N,) and the file's class names, or None, ().

    A .csv's features are read by name (``feature_names``, in that order), its class column
    ``target`` only if it has one; an .npz's X by position, its y if it holds one.
    """
    path = Path(path).absolute()
    where = f"--data {str(path)!r}"
    if path.suffix.lower() not in SUFFIXES:
        raise ConfigError(f"{where}: must be a .npz (X, y) or .csv (header row, one column a feature) file")
    if not path.is_file():
        raise ConfigError(f"{where}: no such file")
    if path.stat().st_size == 0:
        raise ConfigError(f"{where}: the file is empty (0 bytes)")
    if path.suffix.lower() == ".csv":
        return path, *read_csv_by_name(path, where, feature_names, target)
    X, y, classes, _ = _read_npz(path, where, need_y=False)
    return path, X, y, classes


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()  # in a stream: never the whole file


def _read_npz(
    path: Path, where: str, need_y: bool = True
) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...], tuple[str, ...]]:
    if not zipfile.is_zipfile(path):
        raise ConfigError(f"{where}: not a .npz archive (truncated, or another format)")
    try:
        with zipfile.ZipFile(path) as archive:  # its directory and headers, before an array is inflated
            npz_headers(archive, where, ConfigError, NPZ_ARRAYS, _WHAT, DATA_ARCHIVE_MAX_BYTES, True, True)
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in ("X", "y") if k not in archive.files and (k == "X" or need_y)]
            if missing:
                held = quoted(sorted(archive.files), 200)  # the member names: the sender's text
                raise ConfigError(f"{where}: no array {' or '.join(missing)} (it holds {held})")
            X, has_y = archive["X"], "y" in archive.files
            y = archive["y"] if has_y else np.zeros(len(X), np.int64)  # shapes checked below, then dropped
            names = archive["feature_names"] if "feature_names" in archive.files else None
    except ConfigError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile) as err:  # object arrays need pickles: refused
        raise ConfigError(f"{where}: cannot read the arrays ({short_text(err)})") from None
    if X.ndim != 2:
        raise ConfigError(f"{where}: X must be 2-D (points, features), got shape {X.shape}")
    if y.ndim != 1 or len(y) != len(X):
        raise ConfigError(
            f"{where}: y must be 1-D with one label per row of X {X.shape}, got shape {y.shape}"
        )
    if X.dtype.kind not in "iuf":
        raise ConfigError(f"{where}: X must hold real numbers, got dtype {X.dtype}")
    if y.dtype.kind not in "iufU":
        raise ConfigError(f"{where}: y must hold integer labels or class names (text), got dtype {y.dtype}")
    if len(X) == 0:
        raise ConfigError(f"{where}: no points (0 rows)")
    if X.shape[1] == 0:
        raise ConfigError(f"{where}: no features (0 columns)")
    if names is not None and (names.dtype.kind != "U" or names.shape != (X.shape[1],)):
        raise ConfigError(
            f"{where}: feature_names must be {X.shape[1]} texts, one per column of X, "
            f"got dtype {names.dtype} shape {names.shape}"
        )
    with np.errstate(over="ignore"):  # beyond float32's range becomes inf: refused below
        X32 = X.astype(np.float32)
    bad = np.argwhere(~np.isfinite(X32))
    if len(bad):
        i, j = bad[0]
        raise ConfigError(
            f"{where}: row {i} (0-based), column {j + 1}: "
            f"feature {_show(X[i, j])} is not a finite float32 number"
        )
    features = tuple(names.tolist()) if names is not None else tuple(f"x{j + 1}" for j in range(X.shape[1]))
    if not need_y and not has_y:
        return X32, None, (), features
    y, classes = class_labels(y, f"{where}: y", lambda i: f"{where}: row {i} (0-based)")
    return X32, y, classes, features


def _show(value: np.generic) -> str:
    """A value as the file would write it: ``-1``, ``0.5``, ``nan``, ``1e+300``."""
    return repr(int(value)) if isinstance(value, np.integer) else repr(float(value))
