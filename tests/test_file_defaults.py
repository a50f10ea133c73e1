"""A --data file's own defaults: enough steps for a small table, none added for a large one."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import yaml

from mlp_lightning.cli import parse_numpy_args
from mlp_lightning.core.data import load_splits
from mlp_lightning.core.hparams import FILE_MIN_STEPS, SET_DEFAULTS, file_max_epochs, train_size
from mlp_lightning.core.seeds import data_rng
from mlp_lightning.core.tensorboard_schema import VAL_ACC
from mlp_lightning.numpy_twin.train import train


def write_csv(path, X: np.ndarray, y: np.ndarray) -> str:
    header = ",".join([*(f"x{i}" for i in range(X.shape[1])), "label"])
    np.savetxt(path, np.column_stack([X, y]), delimiter=",", header=header, comments="", fmt="%.8g")
    return str(path)


def test_a_small_file_gets_enough_epochs_for_its_steps_and_a_large_one_the_plain_30():
    assert file_max_epochs(n_train=120, batch_size=64) == FILE_MIN_STEPS // 2  # 2 steps an epoch
    assert file_max_epochs(n_train=800_000, batch_size=64) == SET_DEFAULTS["file"]["max_epochs"] == 30


def test_a_data_runs_plain_command_takes_the_files_defaults_and_print_config_shows_them(tmp_path, capsys):
    rng = np.random.default_rng(0)
    data = write_csv(tmp_path / "t.csv", rng.normal(size=(150, 4)), np.arange(150) % 3)
    hp = parse_numpy_args(["--data", data, "--logdir", str(tmp_path / "logs")]).hp
    assert (hp.lr, hp.max_epochs) == (SET_DEFAULTS["file"]["lr"], file_max_epochs(120, 64))
    given = parse_numpy_args(["--data", data, "--max_epochs", "7", "--logdir", str(tmp_path / "logs")]).hp
    assert given.max_epochs == 7
    with pytest.raises(SystemExit) as exit_info:
        parse_numpy_args(["--data", data, "--print_config", "--logdir", str(tmp_path / "logs")])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["lr"] == hp.lr and printed["max_epochs"] == hp.max_epochs
    assert printed["noise"] is None  # a file has no noise; printed, it would be refused when fed back


def standardized_csv(tmp_path, name: str, seed: int) -> str:
    """scikit-learn's table, scaled by the mean and std of the run's own training split."""
    datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn (the dev extra) is missing")
    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    train_rows = data_rng(seed).permutation(len(X))[: train_size(len(X), 0.2)]  # make_points' shuffle
    mean, std = X[train_rows].mean(axis=0), X[train_rows].std(axis=0)
    return write_csv(tmp_path / f"{name}.csv", (X - mean) / std, y)


@pytest.mark.parametrize("name", ["iris", "wine", "breast_cancer"])
@pytest.mark.parametrize("momentum", [0.9, 0.0])
def test_the_twin_at_a_tables_plain_command_is_within_003_of_scikit_learns_same_size_mlp(
    name, momentum, tmp_path
):
    neural_network = pytest.importorskip("sklearn.neural_network", reason="scikit-learn is missing")
    hp = parse_numpy_args(["--data", standardized_csv(tmp_path, name, 42), "--logdir", str(tmp_path)]).hp
    Xtr, ytr, Xva, yva = load_splits(hp)
    reference = neural_network.MLPClassifier(
        hidden_layer_sizes=(32,), solver="sgd", learning_rate_init=0.1, max_iter=30, batch_size=64,
        momentum=momentum, alpha=1e-4, random_state=hp.seed,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 30 iterations: its ConvergenceWarning is expected
        reference_acc = reference.fit(Xtr, ytr).score(Xva, yva)
    last: dict[str, float] = {}
    train(hp, on_epoch=lambda epoch, metrics, params: last.update(metrics))
    assert last[VAL_ACC] >= reference_acc - 0.03, (last[VAL_ACC], reference_acc)
