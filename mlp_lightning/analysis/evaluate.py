"""Evaluate a saved model on points: a run's own validation split, a --data file, or a generated set.

A Lightning run directory or ``.ckpt`` is evaluated as a Lightning user would: ``Trainer.validate``
and ``Trainer.predict`` on the module, in the chunks a run validates in, so on the run's split it
reproduces the run's last logged ``val/loss`` and ``val/acc`` exactly (one process, float32).
A twin run directory or ``.npz`` is evaluated with the twin's own evaluation pass, with NumPy
alone: torch is imported only on the Lightning path.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlp_lightning.analysis.export import load_model_npz
from mlp_lightning.analysis.predictions import rows_of_file
from mlp_lightning.core.columns import Columns
from mlp_lightning.core.data import eval_chunks, load_splits
from mlp_lightning.core.errors import ConfigError
from mlp_lightning.core.hparams import DATA_FILE, HParams, column_names, data_names, flag_names, validate
from mlp_lightning.core.quoted import quoted_text
from mlp_lightning.runs.files import read_hparams_file
from mlp_lightning.runs.layout import CHECKPOINT_DIR, HPARAMS_FILE, LIGHTNING_CHECKPOINT, TWIN_WEIGHTS

LIGHTNING, NUMPY = "lightning", "numpy"
# the flags that name a generated set's validation split (a --data file is its own flag; --standardize
# and the columns are the model's own: it scales every point by its stored statistics)
DATA_FLAGS = tuple(
    name
    for name in data_names()
    if name in flag_names() and name not in ("data", "standardize") and name not in column_names()
)


@dataclass(frozen=True)
class SavedModel:
    weights_file: Path  # a Lightning .ckpt or the twin's weights .npz
    backend: str  # LIGHTNING or NUMPY
    hp: HParams | None  # the run's hyperparameters, where the file sits in a run or stores them
    weights: dict[str, np.ndarray] = field(repr=False, default_factory=dict)  # W1, b1, W2, b2
    columns: Columns | None = None  # its features' names and scaling, its classes' names


@dataclass(frozen=True)
class Points:
    X: np.ndarray  # (N, D) the features as the file or the set gives them, before the model's scaling
    y: np.ndarray | None  # (N,) labels in the model's class order; None: the file has no class column
    what: str  # which points, in words
    validation: bool = False  # a validation split (scored as val loss/acc), not a file's rows


@dataclass(frozen=True)
class Evaluation:
    loss: float | None  # None without labels
    acc: float | None
    probs: np.ndarray  # (N, C) float32 class probabilities
    y: np.ndarray | None  # (N,) the labels, if the points have them
    what: str  # which points, in words
    class_names: tuple[str, ...]  # (C,) the model's


def locate(target: str | Path) -> SavedModel:
    """The model ``target`` names: a run directory (either trainer's), a ``.ckpt`` or a ``.npz``."""
    path = Path(target)
    if path.is_dir():
        for candidate, backend in (
            (path / TWIN_WEIGHTS, NUMPY),
            (path / CHECKPOINT_DIR / LIGHTNING_CHECKPOINT, LIGHTNING),
        ):
            if candidate.is_file():
                return _saved_model(candidate, backend, _run_hparams(path / HPARAMS_FILE))
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
        return _saved_model(path, NUMPY, hp)
    if path.suffix == ".ckpt":
        from mlp_lightning.lightning.checkpoint_io import PROJECT_KEY, checkpoint_hparams, read_checkpoint

        ckpt = read_checkpoint(path)
        hp = checkpoint_hparams(ckpt, path) if PROJECT_KEY in ckpt else None
        return _saved_model(path, LIGHTNING, hp)
    raise ConfigError(f"{str(path)!r}: expected a run directory, a Lightning .ckpt or a twin .npz")


def _saved_model(path: Path, backend: str, hp: HParams | None) -> SavedModel:
    if backend == NUMPY:
        weights, columns = load_model_npz(path)
    else:
        from mlp_lightning.analysis.export import checkpoint_model

        weights, columns = checkpoint_model(path)  # torch.load(weights_only=True): no code runs
    return SavedModel(path, backend, hp, weights, columns)


def _run_hparams(path: Path) -> HParams | None:
    if not path.is_file():
        return None
    return read_hparams_file(path)


def evaluation_points(model: SavedModel, data: str | None, given: dict, target: str | None = None) -> Points:
    """The points to score: a --data file's rows, by the model's column names, or a validation split.

    A split is rebuilt from the run's hyperparameters (those ``given`` replaced) as the run drew
    it, unscaled: ``evaluate_model`` scales every point by the model's own statistics.
    """
    if data is not None:
        if given:
            raise ConfigError(f"--data brings its own points; --{next(iter(given))} shapes a generated set")
        return Points(*rows_of_file(data, model.columns, model.hp, target))
    if target is not None:
        raise ConfigError("--target needs --data: it names the class column of the rows to evaluate")
    if given:
        base = model.hp if model.hp is not None and not model.hp.data else HParams()
        if model.hp is not None and model.hp.data:  # a generated set for a model of the file's size
            base = dataclasses.replace(base, dim=model.hp.dim, num_classes=model.hp.num_classes)
        reset = {"noise": None} if "dataset" in given and "noise" not in given else {}  # the new set's own
        hp = validate(dataclasses.replace(base, **given, **reset, class_names=()))
        flags = ", ".join(f"--{k} {getattr(hp, k)}" for k in DATA_FLAGS)
        what = f"the validation split ({hp.n_val} points) of {flags}"
    elif model.hp is None:
        raise ConfigError(
            f"{str(model.weights_file)!r} has no run hyperparameters beside it to rebuild its validation "
            "split: give --data PATH or the set's flags (--dataset, --seed, ...)"
        )
    else:
        hp = model.hp
        # the run's own record (it may come from someone else): escaped, bounded
        source = quoted_text(hp.data, 300) if hp.dataset == DATA_FILE else f"--dataset {hp.dataset}"
        what = f"the run's own validation split ({hp.n_val} points of {source}, seed {hp.seed})"
    _, _, Xva, yva = load_splits(dataclasses.replace(hp, standardize=False))  # the model scales them
    return Points(Xva, yva, what, validation=True)


def evaluate_model(model: SavedModel, points: Points) -> Evaluation:
    """Loss and accuracy (where the points have labels) and class probabilities, by the model's backend."""
    _check_fits(model, points)
    X = model.columns.scaled(points.X)  # (N, D) float32, as the run fed its model
    evaluate = _evaluate_lightning if model.backend == LIGHTNING else _evaluate_numpy
    loss, acc, probs = evaluate(model, X, points.y)
    return Evaluation(loss, acc, probs, points.y, points.what, model.columns.class_names)


def _check_fits(model: SavedModel, points: Points) -> None:
    dim, classes = model.columns.dim, model.columns.num_classes
    source = str(model.weights_file)
    if points.X.shape[1] != dim:
        raise ConfigError(
            f"the points have {points.X.shape[1]} features; the model in {source!r} takes {dim}"
        )
    if points.y is not None and len(points.y) and points.y.max() >= classes:
        raise ConfigError(
            f"the points have label {int(points.y.max())}; the model in {source!r} has {classes} classes"
        )


def _evaluate_numpy(model: SavedModel, X: np.ndarray, y: np.ndarray | None):
    from mlp_lightning.numpy_twin import model as twin
    from mlp_lightning.numpy_twin.step import evaluate

    weights = model.weights
    X = X.astype(weights["W1"].dtype, copy=False)
    loss = acc = None
    if y is not None:
        loss, acc = evaluate(weights, X, y)  # the pass the twin logs val/* with
    probs = np.concatenate([_softmax(twin.forward(X[chunk], weights)[0]) for chunk in eval_chunks(len(X))])
    return loss, acc, probs


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))  # (B, C)
    return exp / exp.sum(axis=1, keepdims=True)


def _evaluate_lightning(model: SavedModel, X: np.ndarray, y: np.ndarray | None):
    """``Trainer.validate`` for the scores and ``Trainer.predict`` for the probabilities, on one CPU
    process, in the chunks a one-process run validates in: the run's own logged numbers, exactly."""
    import lightning as L
    import torch

    from mlp_lightning.analysis.export import classifier_from_weights
    from mlp_lightning.core.tensorboard_schema import VAL_ACC, VAL_LOSS
    from mlp_lightning.lightning.datamodule import TensorBatches
    from mlp_lightning.lightning.launch import quiet_lightning

    module = classifier_from_weights(model.weights)
    x = torch.from_numpy(np.ascontiguousarray(X, dtype=model.weights["W1"].dtype))  # (N, D)
    labels = None if y is None else torch.from_numpy(y)
    with quiet_lightning():
        trainer = L.Trainer(
            accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False,
        )  # fmt: skip
        loss = acc = None
        if labels is not None:
            (scores,) = trainer.validate(module, TensorBatches(x, labels, eval_chunks(len(x))), verbose=False)
            loss, acc = scores[VAL_LOSS], scores[VAL_ACC]
        probs = trainer.predict(module, TensorBatches(x, None, eval_chunks(len(x))))
    return loss, acc, torch.cat(probs).numpy()
