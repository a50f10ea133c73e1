"""Weights move both ways: Lightning checkpoint -> the twin's .npz, and .npz -> the Lightning model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from mlp_lightning.analysis.export import (
    checkpoint_to_npz,
    checkpoint_weights,
    classifier_from_weights,
    load_npz,
    npz_to_classifier,
    save_checkpoint,
)
from mlp_lightning.core.data import load_splits
from mlp_lightning.core.errors import WeightsError
from mlp_lightning.core.hparams import HParams
from mlp_lightning.core.weights import PARAM_NAMES
from mlp_lightning.lightning.lit_module import MLPClassifier
from mlp_lightning.numpy_twin.model import forward
from tests.helpers import run_both

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 3
LOGIT_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A short run of each trainer, with dropout on (export must not depend on it)."""
    return run_both(["--max_epochs", str(EPOCHS)], tmp_path_factory.mktemp("logs"))


@pytest.fixture(scope="module")
def val_x() -> np.ndarray:
    _, _, Xva, _ = load_splits(HParams(max_epochs=EPOCHS))
    return Xva


def serve(npz_path: Path, X: np.ndarray) -> np.ndarray:
    """The README's few lines of NumPy that serve an exported model."""
    w = np.load(npz_path, allow_pickle=False)
    logits = np.maximum(X @ w["W1"] + w["b1"], 0) @ w["W2"] + w["b2"]  # (N, C)
    return logits


def lightning_logits(module: MLPClassifier, X: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module.eval()(torch.from_numpy(X)).numpy()


def test_checkpoint_exported_to_npz_is_served_by_plain_numpy(runs, val_x, tmp_path):
    ckpt = runs[1] / "checkpoints" / "last.ckpt"
    npz = checkpoint_to_npz(ckpt, tmp_path / "served.npz")
    module = MLPClassifier.load_from_checkpoint(ckpt, weights_only=True)
    expected, served = lightning_logits(module, val_x), serve(npz, val_x)
    np.testing.assert_array_equal(served.argmax(axis=1), expected.argmax(axis=1))
    np.testing.assert_allclose(served, expected, rtol=0, atol=LOGIT_TOLERANCE)
    np.testing.assert_allclose(forward(val_x, load_npz(npz))[0], expected, rtol=0, atol=LOGIT_TOLERANCE)


def test_twin_npz_loads_into_the_lightning_model(runs, val_x):
    npz = runs[0] / "weights.npz"
    expected = forward(val_x, load_npz(npz))[0]
    got = lightning_logits(npz_to_classifier(npz), val_x)
    np.testing.assert_array_equal(got.argmax(axis=1), expected.argmax(axis=1))
    np.testing.assert_allclose(got, expected, rtol=0, atol=LOGIT_TOLERANCE)


def test_npz_written_as_checkpoint_loads_with_load_from_checkpoint(runs, val_x, tmp_path):
    npz = runs[0] / "weights.npz"
    ckpt = save_checkpoint(load_npz(npz), tmp_path / "from_twin.ckpt", dropout=0.5)
    module = MLPClassifier.load_from_checkpoint(ckpt, weights_only=True)
    assert module.hparams.dropout == 0.5 and module.hparams.hidden_dim == 32
    np.testing.assert_array_equal(
        lightning_logits(module, val_x), lightning_logits(npz_to_classifier(npz), val_x)
    )


def test_round_trip_checkpoint_npz_checkpoint_keeps_every_bit(runs, tmp_path):
    original = checkpoint_weights(runs[1] / "checkpoints" / "last.ckpt")
    npz = checkpoint_to_npz(runs[1] / "checkpoints" / "last.ckpt", tmp_path / "w.npz")
    back = checkpoint_weights(save_checkpoint(load_npz(npz), tmp_path / "w.ckpt"))
    for name in PARAM_NAMES:
        assert back[name].dtype == np.float32
        np.testing.assert_array_equal(back[name], original[name])


def test_float64_weights_load_in_double_precision(val_x):
    rng = np.random.default_rng(0)
    weights = {"W1": rng.normal(size=(2, 4)), "b1": rng.normal(size=4), "W2": rng.normal(size=(4, 3)),
               "b2": rng.normal(size=3)}  # fmt: skip
    module = classifier_from_weights(weights)
    assert module.model.W1.dtype == torch.float64
    x = val_x.astype(np.float64)
    np.testing.assert_allclose(lightning_logits(module, x), forward(x, weights)[0], rtol=0, atol=1e-12)


_SHAPES = {"W1": np.zeros((2, 3)), "b1": np.zeros(3), "W2": np.zeros((3, 2)), "b2": np.zeros(2)}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"W1": np.zeros((2, 3)), "b1": np.zeros(3), "W2": np.zeros((3, 2))}, "lacks b2"),
        (
            {"W1": np.zeros((2, 3)), "b1": np.zeros(4), "W2": np.zeros((3, 2)), "b2": np.zeros(2)},
            "b1 has shape \\(4,\\)",
        ),
        (
            {"W1": np.zeros((2, 3)), "b1": np.zeros(3), "W2": np.zeros((3, 2)), "b2": np.zeros(5)},
            "b2 has shape \\(5,\\)",
        ),
        (
            {n: np.zeros((2, 2), dtype=np.int64) for n in PARAM_NAMES},
            "b1 has shape \\(2, 2\\), expected \\(2,\\)",
        ),
        ({n: a.astype(np.int64) for n, a in _SHAPES.items()}, "must hold floating-point arrays; W1 is int64"),
        ({**_SHAPES, "b2": np.array([0.0, np.nan])}, "non-finite values in b2"),
        (
            {n: np.array([{"pickled": 1}], dtype=object) for n in PARAM_NAMES},
            "W1 holds pickled objects \\(refused unread",
        ),
    ],
)
def test_bad_npz_files_are_refused_with_the_reason(tmp_path, content, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **content)  # allow_pickle defaults to True on save: the object array is pickled
    with pytest.raises(WeightsError, match=message):
        load_npz(path)


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / "garbage.ckpt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="is not a checkpoint: torch.save's zip format was expected"):
        checkpoint_weights(path)


def _script_main():
    spec = importlib.util.spec_from_file_location("export_weights", ROOT / "scripts" / "export_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_script_exports_a_run_directory_and_imports_it_back(runs, tmp_path, capsys):
    main = _script_main()
    assert main([str(runs[1]), str(tmp_path / "w.npz")]) == 0
    assert main([str(tmp_path / "w.npz"), str(tmp_path / "w.ckpt")]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"wrote {tmp_path / 'w.npz'}",
        f"wrote {tmp_path / 'w.ckpt'}",
    ]
    for name, value in checkpoint_weights(tmp_path / "w.ckpt").items():
        np.testing.assert_array_equal(value, load_npz(tmp_path / "w.npz")[name])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a.npz", "b.npz"], "SRC and DST must be .ckpt -> .npz or .npz -> .ckpt, got .npz -> .npz"),
        (["missing.ckpt", "b.npz"], "SRC 'missing.ckpt' is not a file"),
    ],
)
def test_script_bad_arguments_end_in_one_line_and_exit_2(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as done:
        _script_main()(args)
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err == f"export_weights.py: error: {message}\n"
    assert list(tmp_path.iterdir()) == []
