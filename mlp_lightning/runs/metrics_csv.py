"""``metrics.csv``: a run's per-epoch scalars as a table, the same file from both trainers.

Columns ``epoch, step, train/loss, train/acc, val/loss, val/acc``, one row per epoch:
``epoch`` is 0-based and ``step`` is the step of that epoch's scalars, both as the event
file holds them (tensorboard_schema). The values are the event file's float32 values,
written as the shortest decimal that reads back as a float64 (what pandas and
TensorBoard's JSON give) to exactly the same number.

A new run writes the header; each epoch appends its row. A resume rewrites the file,
atomically, keeping only the rows of the epochs before the one it restarts: the rows a
hard-killed run wrote after its last checkpoint are written again, not twice.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from mlp_lightning.core.errors import WriteFailed
from mlp_lightning.core.tensorboard_schema import METRIC_TAGS
from mlp_lightning.runs.files import NEW_FILE_MODE, atomic_write_bytes
from mlp_lightning.runs.no_follow import open_own_file

COLUMNS = ("epoch", "step", *METRIC_TAGS)


def format_value(value: float) -> str:
    """``value`` as the event file stores it (float32), in digits that read back to it exactly."""
    return repr(float(np.float32(value)))


def read_rows(path: Path) -> list[dict[str, float]]:
    """The complete rows of ``path`` ({column: value}, ``epoch`` and ``step`` as ints); [] if none.

    A last line without its newline (a write cut short) is not a row.
    """
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_text().splitlines(keepends=True)
    complete = [line for line in lines if line.endswith("\n")]
    rows = []
    for record in csv.DictReader(complete):
        if set(record) != set(COLUMNS) or None in record.values():
            continue  # not this file's columns, or a short row
        row = {column: float(record[column]) for column in METRIC_TAGS}
        rows.append({"epoch": int(record["epoch"]), "step": int(record["step"]), **row})
    return rows


class MetricsCsv:
    """Writes one run's ``metrics.csv``: a fresh file, or a resumed run's rows up to ``first_epoch``."""

    def __init__(self, path: Path, first_epoch: int = 0) -> None:
        self.path = Path(path)
        kept = [row for row in read_rows(self.path) if row["epoch"] < first_epoch] if first_epoch else []
        text = "".join(self._line(row) for row in kept)
        atomic_write_bytes((",".join(COLUMNS) + "\n" + text).encode(), self.path)

    def append(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        """Add epoch ``epoch``'s (0-based) row: its step and the four metric tags' values."""
        line = self._line({"epoch": epoch, "step": step, **metrics}).encode()
        try:  # appended, not rewritten: a row cut short by a kill or a full disk is dropped on reading
            # a link swapped in during the run is refused, not written through (runs/no_follow.py)
            fd = open_own_file(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, NEW_FILE_MODE)
            with os.fdopen(fd, "wb") as f:
                f.write(line)
        except OSError as err:
            raise WriteFailed(self.path, err) from None

    @staticmethod
    def _line(row: dict[str, float]) -> str:
        values = [str(int(row["epoch"])), str(int(row["step"]))]
        values += [format_value(row[tag]) for tag in METRIC_TAGS]
        return ",".join(values) + "\n"
