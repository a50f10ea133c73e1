"""metrics.csv: the event file's values exactly, one row per epoch, and a resume that never doubles a row."""

from __future__ import annotations

import csv
import stat

import numpy as np
import pytest

from mlp_lightning.cli import parse_numpy_args
from mlp_lightning.core.tensorboard_schema import METRIC_TAGS
from mlp_lightning.numpy_twin import train as twin_train
from mlp_lightning.runs.layout import METRICS_CSV
from mlp_lightning.runs.metrics_csv import COLUMNS, MetricsCsv, format_value, read_rows
from tests.helpers import metrics_csv_scalars, read_scalars

# 80 points -> 64 train -> 4 batches of 16 per epoch, 12 steps in all
SMALL = ("--n_per_class", "40", "--batch_size", "16", "--max_epochs", "3")


def metrics(seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    return {tag: float(v) for tag, v in zip(METRIC_TAGS, rng.random(len(METRIC_TAGS)), strict=True)}


def test_a_value_reads_back_as_the_float32_the_event_file_holds_exactly():
    values = np.random.default_rng(0).standard_normal(1000).astype(np.float64) * 10.0 ** np.arange(
        -20, 30, 0.05
    )
    for value in [*values, 0.1, 1 / 3, 0.0, np.inf, -np.inf]:
        held = np.float32(value)  # what a protobuf float field stores
        assert float(format_value(value)) == float(held)  # as a float64 reader (pandas, JSON) sees it
    assert np.isnan(float(format_value(np.nan)))


def test_the_file_has_the_documented_columns_one_row_per_epoch_and_is_readable_by_all(tmp_path):
    path = tmp_path / METRICS_CSV
    table = MetricsCsv(path)
    for epoch in range(3):
        table.append(epoch, 10 * epoch + 9, metrics(epoch))
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == COLUMNS == ("epoch", "step", "train/loss", "train/acc", "val/loss", "val/acc")
    assert [row[:2] for row in rows[1:]] == [["0", "9"], ["1", "19"], ["2", "29"]]
    assert [r[METRIC_TAGS[0]] for r in read_rows(path)] == [
        float(np.float32(metrics(e)[METRIC_TAGS[0]])) for e in range(3)
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_resume_keeps_the_rows_before_its_epoch_and_writes_the_later_ones_once(tmp_path):
    path = tmp_path / METRICS_CSV
    first = MetricsCsv(path)
    for epoch in range(4):  # a run killed after epoch 3's row, its last checkpoint inside epoch 2
        first.append(epoch, epoch, metrics(epoch))
    resumed = MetricsCsv(path, first_epoch=2)
    assert [row["epoch"] for row in read_rows(path)] == [0, 1]
    for epoch in range(2, 5):
        resumed.append(epoch, epoch, metrics(100 + epoch))
    rows = read_rows(path)
    assert [row["epoch"] for row in rows] == [0, 1, 2, 3, 4]
    assert rows[3][METRIC_TAGS[0]] == float(np.float32(metrics(103)[METRIC_TAGS[0]]))  # the new value


def test_a_row_cut_short_by_a_kill_is_not_read_and_a_resume_drops_it(tmp_path):
    path = tmp_path / METRICS_CSV
    MetricsCsv(path).append(0, 9, metrics(0))
    with open(path, "a") as f:
        f.write("1,19,0.5")  # the write a kill interrupted
    assert [row["epoch"] for row in read_rows(path)] == [0]
    MetricsCsv(path, first_epoch=1).append(1, 19, metrics(1))
    assert [row["epoch"] for row in read_rows(path)] == [0, 1]


def test_a_twin_killed_after_its_last_checkpoint_resumes_to_one_row_per_epoch(tmp_path, monkeypatch, capsys):
    """Hard kill in epoch 2 (step 10); the last checkpoint is step 5, in epoch 1, whose row was written."""
    reference = tmp_path / "reference"
    assert twin_train.fit(parse_numpy_args(["--logdir", str(reference), *SMALL])) == 0
    expected = read_scalars(reference / "numpy" / "version_0")

    calls, original = [], twin_train.train_step

    def train_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 10:
            raise KeyboardInterrupt  # no handler saves anything: what SIGKILL leaves
        return original(*args, **kwargs)

    logdir = tmp_path / "killed"
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(twin_train, "train_step", train_step)
        twin_train.fit(parse_numpy_args(["--logdir", str(logdir), *SMALL, "--checkpoint_every_n_steps", "5"]))
    run_dir = logdir / "numpy" / "version_0"
    assert [row["epoch"] for row in read_rows(run_dir / METRICS_CSV)] == [0, 1]
    assert twin_train.fit(parse_numpy_args(["--logdir", str(logdir), "--resume"])) == 0
    capsys.readouterr()
    assert metrics_csv_scalars(run_dir) == expected
