"""The generated sets beside the blobs: deterministic, learnable at their own defaults, in parity."""

from __future__ import annotations

import numpy as np
import pytest

from mlp_lightning.analysis.compare import LOSS_TOLERANCE
from mlp_lightning.analysis.logged_run import load_run, max_differences
from mlp_lightning.cli import parse_numpy_args
from mlp_lightning.core.data import load_splits, make_blobs, make_points
from mlp_lightning.core.datasets import SPIRAL_SWEEP
from mlp_lightning.core.hparams import DATASETS, SET_DEFAULTS, HParams, validate
from mlp_lightning.core.tensorboard_schema import TRAIN_ACC, TRAIN_LOSS, VAL_ACC, VAL_LOSS
from mlp_lightning.numpy_twin.train import train
from tests.helpers import run_both, run_lightning, run_script


def plain(dataset: str) -> HParams:
    """The hyperparameters of ``--dataset DATASET`` with no other flag."""
    return parse_numpy_args(["--dataset", dataset]).hp


@pytest.mark.parametrize("dataset", DATASETS)
def test_each_set_is_a_pure_function_of_its_seed(dataset):
    hp = validate(HParams(dataset=dataset, n_per_class=50))
    X1, y1 = make_points(hp)
    X2, y2 = make_points(hp)
    X3, _ = make_points(validate(HParams(dataset=dataset, n_per_class=50, seed=hp.seed + 1)))
    assert X1.dtype == np.float32 and y1.dtype == np.int64 and X1.shape == (100, 2)
    assert X1.tobytes() == X2.tobytes() and np.array_equal(y1, y2)
    assert X1.tobytes() != X3.tobytes()
    assert np.bincount(y1).tolist() == [50, 50]
    assert 0 < y1[:50].mean() < 1  # shuffled: the classes are not stacked in order


def test_blobs_through_the_dataset_flag_are_the_notebooks_blobs():
    hp = HParams()
    assert hp.dataset == "blobs" and hp.noise == SET_DEFAULTS["blobs"]["noise"] == 1.0
    X, y = make_points(hp)
    X_ref, y_ref = make_blobs(hp.n_per_class, hp.dim, hp.offset, hp.num_classes, hp.seed)
    assert X.tobytes() == X_ref.tobytes() and np.array_equal(y, y_ref)


@pytest.mark.parametrize("dataset", ["circles", "spirals"])
def test_circles_and_spirals_take_one_ring_or_arm_per_class(dataset):
    X, y = make_points(validate(HParams(dataset=dataset, num_classes=4, n_per_class=30, noise=0.0)))
    assert np.bincount(y).tolist() == [30] * 4
    radius = np.linalg.norm(X, axis=1)
    if dataset == "circles":  # ring k has radius k + 1
        np.testing.assert_allclose(radius, y + 1.0, rtol=1e-6)
    else:  # arm k: angle 2*pi*k/C + SPIRAL_SWEEP * radius, radius in [0, 1]
        angle = np.arctan2(X[:, 0], X[:, 1])
        offset = np.angle(np.exp(1j * (angle - SPIRAL_SWEEP * radius - 2 * np.pi * y / 4)))  # wrapped
        np.testing.assert_allclose(offset, 0.0, atol=1e-5)
        assert radius.max() <= 1.0


def test_noise_widens_a_set():
    quiet, _ = make_points(validate(HParams(dataset="circles", noise=0.0)))
    noisy, _ = make_points(validate(HParams(dataset="circles", noise=0.3)))
    ring = np.linalg.norm(quiet, axis=1)
    assert np.ptp(ring - np.round(ring)) < 1e-5
    assert np.std(np.linalg.norm(noisy, axis=1) - np.round(np.linalg.norm(noisy, axis=1))) > 0.1


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--dataset", "moons", "--num_classes", "3"],
            "--dataset moons has 2 classes: --num_classes must be 2, got 3",
        ),
        (["--dataset", "spirals", "--dim", "3"], "--dataset spirals is 2-D: --dim must be 2, got 3"),
        (["--dataset", "rings"], "--dataset must be one of blobs, moons, circles, spirals, got 'rings'"),
        (["--dataset", "file"], "--dataset must be one of blobs, moons, circles, spirals, got 'file'"),
        (["--noise", "-1"], "--noise must be a finite number >= 0, got -1.0"),
    ],
)
def test_a_set_refuses_what_it_cannot_be_in_one_line(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_numpy_args([*argv, "--logdir", str(tmp_path / "logs")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == f"baseline_numpy.py: error: {message}"
    assert not (tmp_path / "logs" / "numpy").exists()


def final_metrics(hp: HParams) -> dict[str, float]:
    last: dict[str, float] = {}
    train(hp, on_epoch=lambda epoch, metrics, params: last.update(metrics))
    return last


def test_each_sets_plain_command_takes_its_own_defaults_and_the_blobs_keep_the_notebooks():
    assert (plain("blobs").lr, plain("blobs").max_epochs, plain("blobs").dropout) == (0.1, 30, 0.5)
    for dataset in DATASETS:
        hp = plain(dataset)
        assert {name: getattr(hp, name) for name in SET_DEFAULTS[dataset]} == SET_DEFAULTS[dataset]


@pytest.mark.parametrize("dataset", DATASETS)
def test_the_twin_learns_each_set_at_its_plain_command(dataset):
    assert final_metrics(plain(dataset))[VAL_ACC] >= 0.95


def test_lightning_learns_moons_at_its_plain_command(tmp_path):
    run = load_run(run_lightning(["--dataset", "moons"], tmp_path))
    assert run.scalars[VAL_ACC][-1] >= 0.95


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["circles", "spirals"])
def test_lightning_learns_each_set_at_its_plain_command(dataset, tmp_path):
    run = load_run(run_lightning(["--dataset", dataset], tmp_path))
    assert run.scalars[VAL_ACC][-1] >= 0.95


def test_a_nonlinear_set_needs_the_hidden_layer():
    # the best a linear boundary does on moons is well below what the MLP reaches
    Xtr, ytr, Xva, yva = load_splits(plain("moons"))
    A = np.column_stack([Xtr, np.ones(len(Xtr))])
    w, *_ = np.linalg.lstsq(A, 2.0 * ytr - 1.0, rcond=None)
    linear_acc = np.mean((np.column_stack([Xva, np.ones(len(Xva))]) @ w > 0) == yva)
    assert linear_acc < 0.92 <= 0.95 <= final_metrics(plain("moons"))[VAL_ACC]


def test_moons_at_dropout0_trains_the_same_with_both_trainers(tmp_path):
    # 30 epochs at lr 0.1: at moons' own lr 1.0 the float32 differences outgrow 1e-6 (docs/data.md)
    flags = ["--dataset", "moons", "--dropout", "0", "--max_epochs", "30", "--lr", "0.1"]
    numpy_dir, lightning_dir = run_both(flags, tmp_path)
    a, b = load_run(numpy_dir), load_run(lightning_dir)
    assert a.hparams == b.hparams and a.hparams["dataset"] == "moons"
    worst = max_differences(a, b)
    assert worst[TRAIN_LOSS] <= LOSS_TOLERANCE and worst[VAL_LOSS] <= LOSS_TOLERANCE, worst
    np.testing.assert_array_equal(a.scalars[TRAIN_ACC], b.scalars[TRAIN_ACC])
    np.testing.assert_array_equal(a.scalars[VAL_ACC], b.scalars[VAL_ACC])


def test_the_twin_script_trains_moons_and_prints_its_summary(tmp_path):
    result = run_script("baseline_numpy.py", "--dataset", "moons", "--logdir", str(tmp_path / "logs"))
    assert result.returncode == 0, result.stderr
    final = next(line for line in result.stdout.splitlines() if line.startswith("final"))
    assert float(final.split("val loss")[1].split("acc")[1]) >= 0.95
