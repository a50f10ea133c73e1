"""scripts/evaluate.py: a saved model on its run's split reproduces its logged metrics, either backend."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys

import numpy as np
import pytest

from mlp_lightning.analysis.compare import LOSS_TOLERANCE
from mlp_lightning.analysis.evaluate import evaluate_model, evaluation_points, locate
from mlp_lightning.analysis.export import checkpoint_to_npz
from mlp_lightning.analysis.logged_run import load_run
from mlp_lightning.analysis.predictions import write_predictions
from mlp_lightning.core.data import load_splits
from mlp_lightning.core.datasets import make_moons
from mlp_lightning.core.errors import ConfigError
from mlp_lightning.core.report import val_line
from mlp_lightning.core.tensorboard_schema import VAL_ACC, VAL_LOSS
from tests.helpers import REPO, run_both, run_script

FLAGS = ["--dataset", "moons", "--max_epochs", "4", "--lr", "0.5"]  # dropout on: evaluation is eval mode


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(twin run directory, Lightning run directory) of one moons config."""
    return run_both(FLAGS, tmp_path_factory.mktemp("logs"))


def logged_final(run_dir) -> tuple[np.float32, np.float32]:
    run = load_run(run_dir)  # TensorBoard holds float32 scalars
    return np.float32(run.scalars[VAL_LOSS][-1]), np.float32(run.scalars[VAL_ACC][-1])


def evaluated(target, data=None, **given):
    model = locate(target)
    return evaluate_model(model, evaluation_points(model, data, given))


@pytest.mark.parametrize("trainer", ["numpy", "lightning"])
def test_a_run_evaluated_on_its_own_split_reproduces_its_final_logged_metrics_exactly(runs, trainer):
    run_dir = runs[0] if trainer == "numpy" else runs[1]
    result = evaluated(run_dir)
    assert locate(run_dir).backend == trainer
    assert (np.float32(result.loss), np.float32(result.acc)) == logged_final(run_dir)


def test_a_checkpoint_or_weights_file_alone_gives_what_its_run_directory_gives(runs):
    numpy_dir, lightning_dir = runs
    assert evaluated(numpy_dir / "weights.npz").loss == evaluated(numpy_dir).loss
    assert evaluated(lightning_dir / "checkpoints" / "last.ckpt").loss == evaluated(lightning_dir).loss


@pytest.mark.parametrize("trainer", [0, pytest.param(1, marks=pytest.mark.slow)])  # 1: imports Lightning
def test_the_script_prints_the_trainers_val_line(runs, trainer):
    result = run_script("evaluate.py", str(runs[trainer]))
    assert result.returncode == 0, result.stderr
    loss, acc = logged_final(runs[trainer])
    assert result.stdout.splitlines()[-1] == val_line(loss, acc)


def test_a_twin_model_is_evaluated_without_importing_torch(runs):
    probe = (
        "import sys\nsys.argv = ['evaluate.py', sys.argv[1]]\n"
        f"sys.path.insert(0, {str(REPO / 'scripts')!r})\nimport evaluate\nevaluate.main()\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(runs[0])], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "False"


@pytest.mark.parametrize("trainer", [0, 1])
def test_predictions_hold_each_points_label_class_and_probabilities(runs, trainer, tmp_path):
    result = evaluated(runs[trainer])
    path = write_predictions(result.probs, result.y, result.class_names, tmp_path / "pred.csv")
    with open(path) as f:
        rows = list(csv.DictReader(f))
    _, _, _, yva = load_splits(locate(runs[trainer]).hp)
    assert list(rows[0]) == ["label", "predicted", "p_0", "p_1"] and len(rows) == len(yva)
    probs = np.array([[float(r["p_0"]), float(r["p_1"])] for r in rows])
    predicted = np.array([int(r["predicted"]) for r in rows])
    assert [int(r["label"]) for r in rows] == yva.tolist()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert np.array_equal(predicted, probs.argmax(axis=1))
    assert np.float32(np.mean(predicted == yva)) == np.float32(result.acc)


def test_both_backends_evaluate_one_model_alike_on_every_point_of_a_data_file(runs, tmp_path):
    X, y = make_moons(50, 0.1, seed=9)
    np.savez(tmp_path / "new.npz", X=X, y=y)
    lit = evaluated(runs[1], data=str(tmp_path / "new.npz"))
    assert np.array_equal(lit.y, y) and lit.probs.shape == (100, 2)  # every point, in the file's order
    # the Lightning model's weights, exported for the twin: the same predictions from NumPy
    checkpoint_to_npz(runs[1] / "checkpoints" / "last.ckpt", tmp_path / "w.npz")
    twin = evaluated(tmp_path / "w.npz", data=str(tmp_path / "new.npz"))
    assert abs(twin.loss - lit.loss) <= LOSS_TOLERANCE and twin.acc == lit.acc
    np.testing.assert_allclose(twin.probs, lit.probs, rtol=0, atol=1e-6)


def test_set_flags_rebuild_a_generated_split(runs):
    same = evaluated(runs[0], dataset="moons", seed=42)
    assert same.loss == evaluated(runs[0]).loss  # the run's own flags: its own split
    other = evaluated(runs[0], seed=7)
    assert other.loss != same.loss and "--seed 7" in other.what


def test_a_lone_weights_file_needs_data_to_evaluate_on(runs, tmp_path):
    lone = shutil.copy(runs[0] / "weights.npz", tmp_path / "w.npz")
    with pytest.raises(ConfigError, match="no run hyperparameters beside it"):
        evaluated(lone)
    assert evaluated(lone, dataset="moons", seed=42).loss == evaluated(runs[0]).loss


@pytest.mark.parametrize(
    "args, message",
    [
        (["{tmp}/nowhere"], "no such run directory or file"),
        (["{tmp}"], "not a finished run directory"),
        (["{numpy}", "--data", "{tmp}/p.npz", "--seed", "3"], "--data brings its own points; --seed shapes"),
        (["{numpy}", "--data", "{tmp}/three.npz"], "the points have 3 features; the model in"),
        (["{numpy}", "--dataset", "moons", "--num_classes", "3"], "--dataset moons has 2 classes"),
        (["{numpy}", "--seeds", "3"], "unknown flag --seeds (did you mean --seed?)"),
    ],
)
def test_bad_input_is_refused_in_one_line(runs, args, message, tmp_path):
    np.savez(tmp_path / "p.npz", X=np.zeros((4, 2)), y=np.array([0, 1, 0, 1]))
    np.savez(tmp_path / "three.npz", X=np.zeros((4, 3)), y=np.array([0, 1, 0, 1]))
    argv = [a.format(tmp=tmp_path, numpy=runs[0]) for a in args]
    result = run_script("evaluate.py", *argv)
    assert result.returncode == 2
    assert result.stderr.startswith("evaluate.py: error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
