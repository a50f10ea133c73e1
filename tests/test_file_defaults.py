"""A --data file's own defaults: enough steps for a small table, none added for a large one."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from benchmarks import public_tables
from mlp_lightning.analysis.logged_run import load_run
from mlp_lightning.cli import parse_numpy_args
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
    """scikit-learn's copy of a classic table as the CSV a user brings (``benchmarks/public_tables.py``)."""
    pytest.importorskip("sklearn", reason="scikit-learn (the dev extra) is missing")
    path, flags = public_tables.public_table(tmp_path, name)
    return str(path), flags


def scikit_learn_accuracy(hp, momentum: float) -> float:
    return public_tables.scikit_learn_accuracy(hp, momentum)


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
