"""Evaluate a saved model on points: a run's own validation split, a --data file, or a generated set.

A Lightning run directory or ``.ckpt`` is evaluated with Lightning's own module, through its
``validation_step`` and metrics in the chunks a run validates in, so on the run's split it
reproduces the run's last logged ``val/loss`` and ``val/acc`` exactly (one process, float32).
A twin run directory or ``.npz`` is evaluated with the twin's own evaluation pass, with NumPy
alone: torch is imported only on the Lightning path.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from mlp_lightning.analysis.export import load_npz
from mlp_lightning.core.data import eval_chunks, load_splits
from mlp_lightning.core.data_file import read_data_file
from mlp_lightning.core.errors import ConfigError
from mlp_lightning.core.hparams import DATA_FILE, HParams, column_names, data_names, flag_names, validate
from mlp_lightning.runs.files import atomic_write_text, stored_hparams
from mlp_lightning.runs.layout import CHECKPOINT_DIR, HPARAMS_FILE, LIGHTNING_CHECKPOINT, TWIN_WEIGHTS

LIGHTNING, NUMPY = "lightning", "numpy"
# the hyperparameters that decide a generated set's points: given, they replace the run's
# the flags that name a generated set's validation split (a --data file is its own flag)
DATA_FLAGS = tuple(
    name for name in data_names() if name in flag_names() and name != "data" and name not in column_names()
)


@dataclass(frozen=True)
class SavedModel:
    weights_file: Path  # a Lightning .ckpt or the twin's weights .npz
    backend: str  # LIGHTNING or NUMPY
    hp: HParams | None  # the run's hyperparameters, where the file sits in a run or stores them


@dataclass(frozen=True)
class Evaluation:
    loss: float
    acc: float
    probs: np.ndarray  # (N, C) float32 class probabilities
    y: np.ndarray  # (N,) the labels
    what: str  # which points, in words


def locate(target: str | Path) -> SavedModel:
    """The model ``target`` names: a run directory (either trainer's), a ``.ckpt`` or a ``.npz``."""
    path = Path(target)
    if path.is_dir():
        for candidate, backend in (
            (path / TWIN_WEIGHTS, NUMPY),
            (path / CHECKPOINT_DIR / LIGHTNING_CHECKPOINT, LIGHTNING),
        ):
            if candidate.is_file():
                return SavedModel(candidate, backend, _run_hparams(path / HPARAMS_FILE))
        raise ConfigError(
            f"{str(path)!r} holds neither {TWIN_WEIGHTS} nor {CHECKPOINT_DIR}/{LIGHTNING_CHECKPOINT}: "
            "not a finished run directory"
        )
    if not path.is_file():
        raise ConfigError(f"{str(path)!r}: no such run directory or file")
    if path.suffix == ".npz":
        hp = next(
            (
                _run_hparams(d / HPARAMS_FILE)
                for d in (path.parent, path.parent.parent)
                if (d / HPARAMS_FILE).is_file()
            ),
            None,
        )
        return SavedModel(path, NUMPY, hp)
    if path.suffix == ".ckpt":
        from mlp_lightning.lightning.checkpoint_io import PROJECT_KEY, checkpoint_hparams, read_checkpoint

        ckpt = read_checkpoint(path)
        hp = checkpoint_hparams(ckpt, path) if PROJECT_KEY in ckpt else None
        return SavedModel(path, LIGHTNING, hp)
    raise ConfigError(f"{str(path)!r}: expected a run directory, a Lightning .ckpt or a twin .npz")


def _run_hparams(path: Path) -> HParams | None:
    if not path.is_file():
        return None
    return stored_hparams(yaml.safe_load(path.read_text()), path)


def evaluation_points(
    model: SavedModel, data: str | None, given: dict, columns: dict | None = None
) -> tuple[np.ndarray, np.ndarray, str]:
    """X (N, D), y (N,) and what they are: a --data file whole, or a split rebuilt from hyperparameters.

    ``columns`` (``target``, ``drop``) picks a .csv's columns; those not given are the run's own.
    """
    columns = columns or {}
    if data is None and columns:
        raise ConfigError(f"--{next(iter(columns))} needs --data: it names columns of a .csv file")
    if data is not None:
        if given:
            raise ConfigError(f"--data brings its own points; --{next(iter(given))} shapes a generated set")
        of_run = model.hp is not None and model.hp.data and Path(data).suffix.lower() == ".csv"
        run_columns = {name: getattr(model.hp, name) for name in column_names()} if of_run else {}
        points = read_data_file(data, **{**run_columns, **columns})
        return points.X, points.y, f"all {len(points.y)} points of {points.path}"
    if given:
        base = model.hp if model.hp is not None and not model.hp.data else HParams()
        if model.hp is not None and model.hp.data:  # a generated set for a model of the file's size
            base = dataclasses.replace(base, dim=model.hp.dim, num_classes=model.hp.num_classes)
        reset = {"noise": None} if "dataset" in given and "noise" not in given else {}  # the new set's own
        hp = validate(dataclasses.replace(base, **given, **reset))
        flags = ", ".join(f"--{k} {getattr(hp, k)}" for k in DATA_FLAGS)
        what = f"the validation split ({hp.n_val} points) of {flags}"
    elif model.hp is None:
        raise ConfigError(
            f"{str(model.weights_file)!r} has no run hyperparameters beside it to rebuild its validation "
            "split: give --data PATH or the set's flags (--dataset, --seed, ...)"
        )
    else:
        hp = model.hp
        source = hp.data if hp.dataset == DATA_FILE else f"--dataset {hp.dataset}"
        what = f"the run's own validation split ({hp.n_val} points of {source}, seed {hp.seed})"
    _, _, Xva, yva = load_splits(hp)
    return Xva, yva, what


def evaluate_model(model: SavedModel, X: np.ndarray, y: np.ndarray, what: str) -> Evaluation:
    """Loss, accuracy and class probabilities of ``model`` on the points, with its own backend."""
    evaluate = _evaluate_lightning if model.backend == LIGHTNING else _evaluate_numpy
    return evaluate(model, X, y, what)


def _check_fits(weights: dict, X: np.ndarray, y: np.ndarray, source: Path) -> None:
    dim, classes = weights["W1"].shape[0], weights["W2"].shape[1]
    if X.shape[1] != dim:
        raise ConfigError(f"the points have {X.shape[1]} features; the model in {str(source)!r} takes {dim}")
    if y.max() >= classes:
        raise ConfigError(
            f"the points have label {int(y.max())}; the model in {str(source)!r} has {classes} classes"
        )


def _evaluate_numpy(model: SavedModel, X: np.ndarray, y: np.ndarray, what: str) -> Evaluation:
    from mlp_lightning.numpy_twin import model as twin
    from mlp_lightning.numpy_twin.step import evaluate

    weights = load_npz(model.weights_file)
    _check_fits(weights, X, y, model.weights_file)
    X = X.astype(weights["W1"].dtype, copy=False)
    loss, acc = evaluate(weights, X, y)  # the pass the twin logs val/* with
    probs = np.concatenate([_softmax(twin.forward(X[chunk], weights)[0]) for chunk in eval_chunks(len(X))])
    return Evaluation(loss, acc, probs, y, what)


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))  # (B, C)
    return exp / exp.sum(axis=1, keepdims=True)


def _evaluate_lightning(model: SavedModel, X: np.ndarray, y: np.ndarray, what: str) -> Evaluation:
    import torch

    from mlp_lightning.analysis.export import checkpoint_weights, classifier_from_weights

    weights = checkpoint_weights(model.weights_file)  # torch.load(weights_only=True): no code runs
    _check_fits(weights, X, y, model.weights_file)
    module = classifier_from_weights(weights)  # eval mode
    dtype = weights["W1"].dtype
    probs = []
    with torch.inference_mode():
        for chunk in eval_chunks(len(X)):  # the chunks a one-process run validates in
            batch = (
                torch.from_numpy(np.ascontiguousarray(X[chunk], dtype=dtype)),
                torch.from_numpy(y[chunk]),
            )
            module.validation_step(batch, 0)  # updates module.val_loss / val_acc as in fit
            probs.append(torch.softmax(module(batch[0]), dim=1).numpy())
        loss, acc = float(module.val_loss.compute()), float(module.val_acc.compute())
    return Evaluation(loss, acc, np.concatenate(probs), y, what)


def write_predictions(evaluation: Evaluation, path: str | Path) -> Path:
    """One CSV row per point, in order: its label, the predicted class, each class's probability."""
    probs = evaluation.probs
    header = ["label", "predicted", *(f"p{k}" for k in range(probs.shape[1]))]
    rows = np.column_stack([evaluation.y, probs.argmax(axis=1), probs]).astype(object)
    rows[:, :2] = rows[:, :2].astype(np.int64)
    lines = [",".join(header)] + [",".join(_cell(v) for v in row) for row in rows]
    atomic_write_text("\n".join(lines) + "\n", Path(path))  # a refused write leaves no half file
    return Path(path)


def _cell(value) -> str:
    return str(int(value)) if isinstance(value, (int, np.integer)) else repr(float(value))
