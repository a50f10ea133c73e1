"""Run-level parity at any dropout: the twin's and Lightning's logged metrics and final weights, read as
TensorBoard does."""

from __future__ import annotations

import numpy as np
import pytest

from mlp_lightning.analysis.compare import (
    ACC_TOLERANCE,
    LOSS_TOLERANCE,
    WEIGHT_TOLERANCE,
    check_pair,
    compare_runs,
    hparam_differences,
    within_parity,
)
from mlp_lightning.analysis.export import checkpoint_weights, load_npz
from mlp_lightning.analysis.logged_run import load_run, max_differences
from mlp_lightning.core.hparams import HParams
from mlp_lightning.core.tensorboard_schema import TRAIN_ACC, TRAIN_LOSS, VAL_ACC, VAL_LOSS
from mlp_lightning.core.weights import PARAM_NAMES
from mlp_lightning.numpy_twin import model as twin
from tests.helpers import run_both


@pytest.fixture(scope="module")
def dropout0_runs(tmp_path_factory):
    """The default 30-epoch run with --dropout 0, trained by each side."""
    numpy_dir, lightning_dir = run_both(["--dropout", "0"], tmp_path_factory.mktemp("logs"))
    return numpy_dir, lightning_dir


def test_dropout0_runs_log_the_same_metrics_at_every_epoch(dropout0_runs):
    a, b = (load_run(d) for d in dropout0_runs)
    assert hparam_differences(a, b) == []
    assert a.steps.tolist() == b.steps.tolist() and len(a.steps) == HParams().max_epochs
    worst = max_differences(a, b)
    assert worst[TRAIN_LOSS] <= LOSS_TOLERANCE and worst[VAL_LOSS] <= LOSS_TOLERANCE, worst
    # accuracies are counts over the same points: they must agree exactly
    assert ACC_TOLERANCE == 0.0
    np.testing.assert_array_equal(a.scalars[TRAIN_ACC], b.scalars[TRAIN_ACC])
    np.testing.assert_array_equal(a.scalars[VAL_ACC], b.scalars[VAL_ACC])
    assert within_parity(a, b) == []  # the rule compare.py --check and sweep.py apply


def test_dropout0_runs_end_with_the_same_weights(dropout0_runs):
    numpy_dir, lightning_dir = dropout0_runs
    twin = load_npz(numpy_dir / "weights.npz")
    lit = checkpoint_weights(lightning_dir / "checkpoints" / "last.ckpt")
    for name in PARAM_NAMES:
        assert twin[name].dtype == lit[name].dtype == np.float32
        np.testing.assert_allclose(twin[name], lit[name], rtol=0, atol=WEIGHT_TOLERANCE, err_msg=name)


# With dropout on, both trainers draw the run's masks (core.dropout): the same exact rule holds.
# (flags, epochs): the defaults (dropout 0.5), another p (32-bit draws), moons at its own defaults
# (lr 1.0, 100 epochs), and a --data file (standardized, 500 steps), each a few epochs to stay quick
DROPOUT_CASES = {
    "blobs, dropout 0.5": [],
    "blobs, dropout 0.3": ["--dropout", "0.3"],
    "moons defaults": ["--dataset", "moons", "--max_epochs", "20"],
    "a --data file, dropout 0.3": [
        "--data",
        "{table}",
        "--drop",
        "id",
        "--dropout",
        "0.3",
        "--max_epochs",
        "8",
    ],
}


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    from tests.test_table_runs import write_table

    return write_table(tmp_path_factory.mktemp("data") / "flowers.csv")


@pytest.mark.parametrize("case", DROPOUT_CASES)
def test_with_dropout_on_the_twins_log_the_same_metrics_and_end_with_the_same_weights(case, table, tmp_path):
    flags = [flag.format(table=table) for flag in DROPOUT_CASES[case]]
    numpy_dir, lightning_dir = run_both(flags, tmp_path)
    a, b = load_run(numpy_dir), load_run(lightning_dir)
    assert a.typed_hparams().dropout > 0
    assert check_pair(a, b) == [], case  # compare.py --check's rule: losses within 1e-6, accuracies equal
    twin_w, lit_w = (
        load_npz(numpy_dir / "weights.npz"),
        checkpoint_weights(lightning_dir / "checkpoints" / "last.ckpt"),
    )
    for name in PARAM_NAMES:
        np.testing.assert_allclose(twin_w[name], lit_w[name], rtol=0, atol=WEIGHT_TOLERANCE, err_msg=name)


def test_the_exact_check_catches_a_twin_without_inverted_scaling(tmp_path, monkeypatch):
    forward = twin.forward

    def unscaled(X, params, keep=None, p=0.0, out=None):
        return forward(X, params, keep, 0.0, out=out)  # masks, but no 1/(1-p)

    monkeypatch.setattr(twin, "forward", unscaled)
    a, b = (load_run(d) for d in run_both(["--max_epochs", "2"], tmp_path))
    broken = check_pair(a, b)
    assert any(line.startswith("train/loss differs by up to") for line in broken), broken


def test_compare_check_passes_on_the_dropout0_runs_and_draws_both_boundaries(dropout0_runs, tmp_path, capsys):
    assert compare_runs(*dropout0_runs, out=tmp_path, check=True) == 0
    printed = capsys.readouterr().out
    assert "parity broken" not in printed and "no decision boundaries" not in printed
    assert (tmp_path / "compare_numpy-version_0_vs_lightning-version_0.png").is_file()
