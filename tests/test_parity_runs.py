"""Run-level parity: the twin's and Lightning's logged metrics and final weights, read as TensorBoard does."""

from __future__ import annotations

import numpy as np
import pytest

from mlp_lightning.analysis.compare import (
    ACC_TOLERANCE,
    LOSS_TOLERANCE,
    WEIGHT_TOLERANCE,
    compare_runs,
    hparam_differences,
    within_parity,
)
from mlp_lightning.analysis.export import checkpoint_weights, load_npz
from mlp_lightning.analysis.logged_run import load_run, max_differences
from mlp_lightning.analysis.statistics import agree_in_distribution
from mlp_lightning.core.hparams import HParams
from mlp_lightning.core.tensorboard_schema import TRAIN_ACC, TRAIN_LOSS, VAL_ACC, VAL_LOSS
from mlp_lightning.core.weights import PARAM_NAMES
from mlp_lightning.numpy_twin import model as twin
from tests.helpers import run_both, run_lightning, run_numpy

DROPOUT_SEEDS = range(5)


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


def final_val(run_dir) -> tuple[float, float]:
    run = load_run(run_dir)
    return run.scalars[VAL_LOSS][-1], run.scalars[VAL_ACC][-1]


@pytest.fixture(scope="module")
def lightning_dropout_finals(tmp_path_factory) -> np.ndarray:
    """(seeds, [val loss, val acc]) of Lightning runs with the default dropout 0.5."""
    logdir = tmp_path_factory.mktemp("logs")
    return np.array([final_val(run_lightning(["--seed", str(seed)], logdir)) for seed in DROPOUT_SEEDS])


def twin_dropout_finals(logdir) -> np.ndarray:
    return np.array([final_val(run_numpy(["--seed", str(seed)], logdir)) for seed in DROPOUT_SEEDS])


@pytest.mark.slow  # five Lightning runs of the default size: a soak over seeds
def test_with_dropout_the_twins_agree_in_distribution_over_seeds(lightning_dropout_finals, tmp_path):
    ok, detail = agree_in_distribution(
        twin_dropout_finals(tmp_path), lightning_dropout_finals, HParams().n_val
    )
    assert ok, detail


@pytest.mark.slow  # shares the five Lightning runs above
def test_the_dropout_check_catches_a_twin_without_inverted_scaling(
    lightning_dropout_finals, tmp_path, monkeypatch
):
    forward = twin.forward

    def unscaled(X, params, keep=None, p=0.0, out=None):
        return forward(X, params, keep, 0.0, out=out)  # masks, but no 1/(1-p)

    monkeypatch.setattr(twin, "forward", unscaled)
    ok, detail = agree_in_distribution(
        twin_dropout_finals(tmp_path), lightning_dropout_finals, HParams().n_val
    )
    assert not ok, detail


def test_compare_check_passes_on_the_dropout0_runs_and_draws_both_boundaries(dropout0_runs, tmp_path, capsys):
    assert compare_runs(*dropout0_runs, out=tmp_path, check=True) == 0
    printed = capsys.readouterr().out
    assert "parity broken" not in printed and "no decision boundaries" not in printed
    assert (tmp_path / "compare_numpy-version_0_vs_lightning-version_0.png").is_file()
