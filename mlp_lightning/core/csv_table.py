"""A .csv file's features and class column, read by pandas' C reader; a bad file named row and column.

The first non-blank row is the header; its columns are chosen by name: ``--target`` the class
column (default: the last), ``--drop`` columns left out (an id). The separator is the first of
``,`` ``;`` and tab that occurs in the header outside quotes (a comma where none does); a
``;``-separated file's numbers may have a decimal comma (``1,5``), as spreadsheets write them where
the comma is the decimal mark. The fast
path reads the used columns with ``pandas.read_csv`` (features as float32, the class as a number
or as text): a million rows of twenty features take 0.6 s where ``np.loadtxt`` takes 4.5 s here,
which is what a table a user brings must cost (issue 22's 3-second budget). A byte scan checks
that every non-blank line has the header's number of separators (a file with quotes is checked
by the csv module instead: a quoted separator would miscount). Whatever the fast path
does not take, the slow path (the csv module, row by row) reads again to name the first bad row
and column. Rows count from the header's line, blank lines included; the file is never held whole.
"""

from __future__ import annotations

import contextlib
import csv
import re
from array import array
from pathlib import Path

import numpy as np

from mlp_lightning.core.class_labels import RowNeeded, class_labels
from mlp_lightning.core.column_choice import choose_columns, listing
from mlp_lightning.core.columns import shown_name
from mlp_lightning.core.errors import ConfigError
from mlp_lightning.core.quoted import quoted_text, short_text

SEPARATORS = (",", ";", "\t")
# A ';'-separated file is what a spreadsheet writes where the decimal mark is a comma (1,5): its
# numbers are read with a decimal point first, then with a decimal comma.
DECIMAL_MARKS = {",": (".",), "\t": (".",), ";": (".", ",")}
DECIMAL_COMMA = re.compile(r"\s*[+-]?(\d+,\d*|,\d+)([eE][+-]?\d+)?\s*")
MISSING = {"", "NA", "N/A", "NAN", "NULL", "NONE", "?", "-", "#N/A", "NIL", "MISSING"}  # upper-cased
CHUNK = 1 << 22  # bytes per read of the shape scan


def read_csv(
    path: Path, where: str, target: str, drop: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...], str]:
    """X (N, D) float32, y (N,) int64, the class names, the feature names and the class column's name."""
    line, names, sep = _header(path, where)
    features, label = choose_columns(names, target, drop, where)
    X, y, classes = _read(path, where, line, names, sep, features, label)
    return X, y, classes, tuple(names[j] for j in features), names[label]


def header_names(path: Path, where: str) -> list[str]:
    """The column names of the header row, without reading the rows below it."""
    return _header(path, where, need_class=False)[1]


def class_column_name(path: Path, where: str) -> str:
    """The name of the last column, the class column when no ``--target`` is given."""
    return _header(path, where)[1][-1]


def read_csv_by_name(
    path: Path, where: str, feature_names: tuple[str, ...], target: str
) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    """A model's new rows: X (N, D) float32 of the columns ``feature_names``, in that order, wherever they
    stand in the file; y (N,) and the file's class names if it has the column ``target``, else None, ().
    Other columns are not read."""
    line, names, sep = _header(path, where, need_class=False)
    at = {name: j for j, name in enumerate(names)}
    missing = [name for name in feature_names if name not in at]
    if missing:
        raise ConfigError(
            f"{where}: no column {listing(missing)}; the model reads its {len(feature_names)} features by "
            f"name: {listing(feature_names)}"
        )
    features, label = [at[name] for name in feature_names], at.get(target)
    return _read(path, where, line, names, sep, features, label)


def read_text_columns(path: Path, where: str, wanted: tuple[str, ...], rows: int) -> list[np.ndarray]:
    """The columns ``wanted`` of a .csv, by name, as text as written: (rows,) each, one per data row.

    For predictions that carry a row's id. ``rows`` is how many data rows the features were read
    from; the text columns must line up with them, row for row.
    """
    import pandas as pd

    if not wanted:
        return []
    line, names, sep = _header(path, where, need_class=False)
    at = {name: j for j, name in enumerate(names)}
    missing = [name for name in wanted if name not in at]
    if missing:
        raise ConfigError(f"{where}: no column {listing(missing)} to carry into the predictions")
    used = [at[name] for name in wanted]
    try:  # the features were read, so a refusal here is a row that pandas and the csv module split apart
        frame = pd.read_csv(path, dtype=str, **_read_options(sep, line, used))
    except ValueError as err:
        why = quoted_text(str(err), 200)
        raise ConfigError(f"{where}: columns {listing(wanted)} cannot be read: {why}") from None
    columns = [frame[j].to_numpy(dtype=object) for j in used]
    if any(len(column) != rows for column in columns):
        raise ConfigError(f"{where}: its columns {listing(wanted)} do not line up with its {rows} rows")
    return columns


def _read(
    path: Path, where: str, line: int, names: list[str], sep: str, features: list[int], label: int | None
) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    """X, y and the class names, on the fast path where it can; the slow path names a bad row."""
    column = f"column {label + 1} ({shown_name(names[label])})" if label is not None else ""
    try:
        X, labels = _fast(path, sep, line, len(names), features, label)
        if labels is None:
            return X, None, ()
        return X, *class_labels(labels, f"{where}: {column}")
    except (ValueError, RowNeeded):  # UnicodeDecodeError is a ValueError too
        X, labels, rows = _slow(path, where, sep, names, features, label)
        if labels is None:
            return X, None, ()
        return X, *class_labels(labels, f"{where}: {column}", lambda i: f"{where}: row {rows[i]}")


def _header(path: Path, where: str, need_class: bool = True) -> tuple[int, list[str], str]:
    """The header's line number, its column names (stripped) and the separator."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            lines = enumerate(f, start=1)
            number, text = next(((n, t) for n, t in lines if t.strip("\r\n")), (0, ""))
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not a text file (not UTF-8)") from None
    if not number:
        raise ConfigError(f"{where}: the file has no rows")
    unquoted = re.sub(r'"[^"]*"', "", text)
    sep = next((s for s in SEPARATORS if s in unquoted), ",")
    try:
        names = [name.strip() for name in next(csv.reader([text], delimiter=sep))]
    except csv.Error as err:
        raise _csv_error(err, where, number) from None
    if len(names) < (2 if need_class else 1):
        raise ConfigError(
            f"{where}: the header row has {len(names)} column(s); features and a class column are needed"
        )
    if all(_is_number(name) for name in names):
        raise ConfigError(f"{where}: row 1 holds numbers, not column names: a header row must come first")
    return number, names, sep


def _fast(
    path: Path, sep: str, line: int, width: int, features: list[int], label: int | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """pandas' C reader; a ValueError (or RowNeeded) wherever the slow path must look instead.

    One pass with each used column typed (features float32, the class float64), or, for text
    classes, a second with the class column as text.
    """
    import pandas as pd

    used = sorted([*features, *([] if label is None else [label])])
    usecols = None if len(used) == width else used
    # reading every column, the reader refuses a long row, and a short one leaves an empty cell that
    # fails below; reading some, it would take a ragged row as it comes: the byte scan finds it
    rows = None if usecols is None else _rows_if_regular(path, sep, width)
    if usecols is not None and (rows is None or rows < 2):  # a ragged row, or no data row: the slow path
        raise ValueError
    types = {j: np.float32 for j in features}
    classes = [{}] if label is None else [{label: np.float64}, {label: str}]  # a number, else text
    frame = None
    for decimal in DECIMAL_MARKS[sep]:
        for class_type in classes:
            # a value beyond float32's range becomes inf: refused below
            with contextlib.suppress(ValueError), np.errstate(over="ignore"):
                options = _read_options(sep, line, usecols, decimal)
                frame = pd.read_csv(path, dtype={**types, **class_type}, **options)
                break
        if frame is not None:
            break
    if frame is None:  # a bad cell: the slow path names it
        raise ValueError
    X = frame[features].to_numpy(np.float32)  # (N, D) in the features' order
    labels = None if label is None else frame[label].to_numpy()
    if labels is not None and labels.dtype == object:
        labels = labels.astype(str)  # (N,) text
    if len(X) == 0 or (rows is not None and len(X) != rows - 1) or not np.isfinite(X).all():
        raise ValueError
    if (
        labels is not None
        and labels.dtype.kind == "U"
        and (np.char.str_len(np.char.strip(labels)) == 0).any()
    ):
        raise ValueError  # an empty class cell
    return X, labels


def _read_options(sep: str, line: int, usecols: list[int] | None, decimal: str = ".") -> dict:
    """How ``pandas.read_csv`` reads the rows below the header (line ``line``): cells as written, blank
    lines skipped, as the byte scan and the slow path count them."""
    return dict(
        sep=sep, header=None, skiprows=line, usecols=usecols, quotechar='"', encoding="utf-8-sig",
        engine="c", na_filter=False, skip_blank_lines=True, decimal=decimal,
    )  # fmt: skip


def _rows_if_regular(path: Path, sep: str, width: int) -> int | None:
    """Non-blank lines, if each has ``width - 1`` separators; None if one has not."""
    count, rest = 0, b""
    with open(path, "rb") as f:
        while True:
            chunk = f.read(CHUNK)
            block = rest + chunk
            if chunk:  # whole lines only: the rest waits for the next chunk
                end = block.rfind(b"\n") + 1
                block, rest = block[:end], block[end:]
            elif block:  # the last line, without its newline
                block += b"\n"
            if b'"' in block:  # a quoted separator would miscount
                return _rows_by_csv(path, sep, width)
            lines = _separators_per_line(np.frombuffer(block, np.uint8), ord(sep))
            if (lines != width - 1).any():
                return None
            count += len(lines)
            if not chunk:
                return count


def _separators_per_line(data: np.ndarray, code: int) -> np.ndarray:
    """How many ``code`` bytes each non-blank line of ``data`` (whole lines, each ending in \\n) holds."""
    ends = np.flatnonzero(data == 10)
    starts = np.concatenate([[0], ends[:-1] + 1])
    lengths = ends - starts - (data[np.maximum(ends - 1, 0)] == 13)  # a '\\r\\n' line ending
    seps = np.diff(np.searchsorted(np.flatnonzero(data == code), ends), prepend=0)
    return seps[lengths > 0]


def _rows_by_csv(path: Path, sep: str, width: int) -> int | None:
    """As ``_rows_if_regular`` for a file with quotes: the csv module counts the fields."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            lengths = [len(row) for row in csv.reader(f, delimiter=sep) if row]
    except csv.Error:  # a cell past the csv module's limit: the slow path names its row
        return None
    return len(lengths) if all(n == width for n in lengths) else None


def _slow(
    path: Path, where: str, sep: str, names: list[str], features: list[int], label: int | None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """X, the class column's text and each row's number, read row by row; raises at the first bad cell."""
    X, labels, rows = array("f"), [], []  # X row-major, as float32: a C cast, as numpy's astype
    seen_header, number = False, 0
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            for number, row in enumerate(csv.reader(f, delimiter=sep), start=1):  # noqa: B007 (read below)
                if not row:
                    continue
                if not seen_header:
                    seen_header = True
                    continue
                if len(row) != len(names):
                    raise ConfigError(
                        f"{where}: row {number} has {len(row)} columns, the header has {len(names)}"
                    )
                first = not rows  # the first data row: text there means a column of text
                X.extend(_feature(row[j], number, j, names, where, sep, first) for j in features)
                rows.append(number)
                if label is None:
                    continue
                if not row[label].strip():
                    raise ConfigError(
                        f"{where}: row {number}, column {label + 1} ({shown_name(names[label])}): empty cell"
                    )
                labels.append(row[label])
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not a text file (not UTF-8)") from None
    except csv.Error as err:  # the row after the last one read
        raise _csv_error(err, where, number + 1) from None
    if not X:
        raise ConfigError(f"{where}: no data rows below the header")
    labels = np.array(labels) if label is not None else None
    return np.frombuffer(X, np.float32).reshape(len(rows), len(features)), labels, np.array(rows)


def _feature(
    cell: str, number: int, j: int, names: list[str], where: str, sep: str, row_is_first: bool = False
) -> float:
    at = f"{where}: row {number}, column {j + 1} ({shown_name(names[j])})"
    if not cell.strip():
        raise ConfigError(f"{at}: empty cell")
    if sep == ";" and DECIMAL_COMMA.fullmatch(cell):
        cell = cell.replace(",", ".")
    try:
        value = float(cell)
    except ValueError:
        hint = f" (columns separated by {sep!r})" if sep != "," else ""
        if cell.strip().upper() in MISSING:
            hint += "; a missing value: rows are not filled in, so fill it or leave the row out"
            row_is_first = False
        if row_is_first:  # text from the first row on: a column of names or ids, not a feature
            hint += f"; a feature holds numbers: leave a text column out with --drop {quoted_text(names[j])}"
        raise ConfigError(f"{at}: {shown_name(cell)} is not a number{hint}") from None
    with np.errstate(over="ignore"):  # beyond float32's range is inf: refused
        if not np.isfinite(np.float32(value)):
            raise ConfigError(f"{at}: feature {quoted_text(cell.strip(), 40)} is not a finite float32 number")
    return value


def _csv_error(err: csv.Error, where: str, row: int) -> ConfigError:
    """The csv module's refusal (a cell past its size limit, ...) as one line naming the row."""
    why = short_text(err)
    if why.startswith("field larger than field limit"):
        why = f"a cell longer than {csv.field_size_limit()} characters: not a table of numbers and names"
    return ConfigError(f"{where}: row {row}: {why}")


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
