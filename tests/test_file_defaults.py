"""A --data file's own defaults: enough steps for a small table, none added for a large one."""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest
import yaml

from mlp_lightning.analysis.logged_run import load_run
from mlp_lightning.cli import parse_numpy_args
from mlp_lightning.core.data import load_splits
from mlp_lightning.core.hparams import FILE_MIN_STEPS, SET_DEFAULTS, file_max_epochs
from mlp_lightning.core.tensorboard_schema import VAL_ACC
from mlp_lightning.numpy_twin.train import train
from tests.helpers import run_lightning


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


def public_table(tmp_path, name: str) -> tuple[str, list[str]]:
    """scikit-learn's copy of a classic public table, written as its usual CSV layout, and the flags
    that layout needs: iris with its class names last; wine with its class (1, 2, 3) first;
    breast cancer as the common download has it, an id first and the diagnosis (B/M) second."""
    datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn (the dev extra) is missing")
    table = getattr(datasets, f"load_{name}")()
    X, y, features = table.data, table.target, [str(f).replace(" ", "_") for f in table.feature_names]
    path = tmp_path / f"{name}.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        if name == "iris":
            writer.writerow([*features, "species"])
            writer.writerows(
                [*map(repr, map(float, x)), table.target_names[c]] for x, c in zip(X, y, strict=True)
            )
            return str(path), []
        if name == "wine":
            writer.writerow(["class", *features])
            writer.writerows([c + 1, *map(repr, map(float, x))] for x, c in zip(X, y, strict=True))
            return str(path), ["--target", "class"]
        writer.writerow(["id", "diagnosis", *features])  # scikit-learn's 0 is malignant
        rows = enumerate(zip(X, y, strict=True))
        writer.writerows([842302 + i, "MB"[c], *map(repr, map(float, x))] for i, (x, c) in rows)
        return str(path), ["--target", "diagnosis", "--drop", "id"]


def scikit_learn_accuracy(hp, momentum: float) -> float:
    """scikit-learn's same-size SGD MLP on the run's own split, scaled as the run scales it."""
    neural_network = pytest.importorskip("sklearn.neural_network", reason="scikit-learn is missing")
    Xtr, ytr, Xva, yva = load_splits(hp)  # standardized by the training split, as a StandardScaler would
    reference = neural_network.MLPClassifier(
        hidden_layer_sizes=(32,), solver="sgd", learning_rate_init=0.1, max_iter=30, batch_size=64,
        momentum=momentum, alpha=1e-4, random_state=hp.seed,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 30 iterations: its ConvergenceWarning is expected
        return reference.fit(Xtr, ytr).score(Xva, yva)


@pytest.mark.parametrize("name", ["iris", "wine", "breast_cancer"])
def test_the_twin_at_a_tables_plain_command_is_within_003_of_scikit_learns_same_size_mlp(name, tmp_path):
    path, flags = public_table(tmp_path, name)
    hp = parse_numpy_args(["--data", path, *flags, "--logdir", str(tmp_path)]).hp
    assert hp.standardize and len(hp.class_names) == hp.num_classes
    last: dict[str, float] = {}
    train(hp, on_epoch=lambda epoch, metrics, params: last.update(metrics))
    for momentum in (0.9, 0.0):
        reference = scikit_learn_accuracy(hp, momentum)
        assert last[VAL_ACC] >= reference - 0.03, (momentum, last[VAL_ACC], reference)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["iris", "wine", "breast_cancer"])
def test_lightning_at_a_tables_plain_command_is_within_003_of_scikit_learns_same_size_mlp(name, tmp_path):
    path, flags = public_table(tmp_path, name)
    run_dir = run_lightning(["--data", path, *flags], tmp_path / "logs")
    hp = parse_numpy_args(["--data", path, *flags, "--logdir", str(tmp_path)]).hp
    acc = load_run(run_dir).scalars[VAL_ACC][-1]
    for momentum in (0.9, 0.0):
        reference = scikit_learn_accuracy(hp, momentum)
        assert acc >= reference - 0.03, (momentum, acc, reference)
