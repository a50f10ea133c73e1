"""Weights between the two trainers: a Lightning checkpoint <-> the twin's ``weights.npz``.

Both sides hold the same four arrays under the same names (``W1`` (D, H), ``b1`` (H,),
``W2`` (H, C), ``b2`` (C,)); the checkpoint keeps them under ``model.`` in its
``state_dict``. Nothing here unpickles: checkpoints load with ``weights_only=True``
and ``.npz`` files with ``allow_pickle=False``. torch is imported only by the
functions that need it, so the ``.npz`` side works without it.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlp_lightning.core.archive_check import check_promised_size, npz_headers
from mlp_lightning.core.columns import (
    COLUMN_ARRAYS,
    COLUMNS_KEY,
    Columns,
    columns_from_arrays,
    columns_from_stored,
    columns_to_stored,
    plain_columns,
)
from mlp_lightning.core.errors import WeightsError
from mlp_lightning.core.quoted import short_text
from mlp_lightning.core.weights import PARAM_NAMES, check_weights
from mlp_lightning.runs.files import atomic_write_bytes
from mlp_lightning.runs.layout import CHECKPOINT_DIR, LIGHTNING_CHECKPOINT, TWIN_WEIGHTS

WEIGHTS_ARRAYS = (*PARAM_NAMES, *COLUMN_ARRAYS)  # what is read of a weights .npz
NAME_MAX_CHARS = 1024  # a feature's or class's name, at most, in what a weights file may hold

if TYPE_CHECKING:
    from mlp_lightning.lightning.lit_module import MLPClassifier


def checked(weights: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """``weights`` as NumPy arrays, once they meet the MLP's contract (``core.weights.check_weights``)."""
    arrays = {name: np.asarray(value) for name, value in weights.items()}
    check_weights(arrays, source)
    return arrays


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The twin's weights file as {W1, b1, W2, b2}; never unpickles."""
    return load_model_npz(path)[0]


def load_model_npz(path: str | Path) -> tuple[dict[str, np.ndarray], Columns]:
    """A weights ``.npz``: {W1, b1, W2, b2} and the ``Columns`` beside them (plain where it holds none)."""
    try:
        with zipfile.ZipFile(path) as archive:  # its directory and headers, before an array is inflated
            headers = npz_headers(archive, str(path), WeightsError, WEIGHTS_ARRAYS, "", others=True)
            _check_promised_size(archive, headers, path)
        with np.load(path, allow_pickle=False) as npz:
            # another member is named by check_weights below, unread
            arrays = {name: npz[name] if name in headers else None for name in npz.files}
    except WeightsError:
        raise
    except Exception as err:  # OSError, ValueError, EOFError, BadZipFile, zlib.error, ...: a damaged file
        raise WeightsError(f"cannot read {path} as a .npz of arrays: {_one_line(err)}") from None
    weights = checked({k: v for k, v in arrays.items() if k not in COLUMN_ARRAYS}, str(path))
    return weights, _columns_of(weights, arrays, str(path))


def _check_promised_size(archive: zipfile.ZipFile, headers: dict[str, tuple], path: str | Path) -> None:
    """At most what the model its W1 and W2 headers declare may hold: its parameters and its columns,
    in float64, its names ``NAME_MAX_CHARS`` characters each."""
    (dim, hidden), (_, classes) = (_matrix(headers, "W1"), _matrix(headers, "W2"))
    numbers = dim * hidden + hidden + hidden * classes + classes + 2 * dim
    limit = 8 * numbers + 4 * NAME_MAX_CHARS * (dim + classes) + 4096 * len(WEIGHTS_ARRAYS)
    members = [archive.getinfo(name + ".npy") for name in headers]
    why = f"weights of W1 {(dim, hidden)}, W2 {(hidden, classes)}"
    check_promised_size(members, limit, str(path), WeightsError, why)


def _matrix(headers: dict[str, tuple], name: str) -> tuple[int, int]:
    shape = headers[name][0] if name in headers else ()
    return shape if len(shape) == 2 else (0, 0)


def save_npz(weights: dict[str, np.ndarray], path: str | Path, columns: Columns | None = None) -> Path:
    """Write W1, b1, W2, b2 and the ``Columns`` (plain if not given) to ``path``, as the twin writes them."""
    weights = checked(weights, "the weights to save")
    columns = columns or plain_columns(weights["W1"].shape[0], weights["W2"].shape[1])
    buffer = io.BytesIO()  # a file object: np.savez would append ".npz" to a bare name
    np.savez(buffer, **weights, **columns.as_arrays())
    atomic_write_bytes(buffer.getvalue(), Path(path))
    return Path(path)


def _columns_of(weights: dict[str, np.ndarray], arrays: Mapping[str, Any], source: str) -> Columns:
    dim, num_classes = weights["W1"].shape[0], weights["W2"].shape[1]
    return columns_from_arrays(arrays, source, dim, num_classes)


def checkpoint_weights(path: str | Path) -> dict[str, np.ndarray]:
    """W1, b1, W2, b2 of a Lightning checkpoint, as NumPy arrays in the twin's layout."""
    return checkpoint_model(path)[0]


def checkpoint_model(path: str | Path) -> tuple[dict[str, np.ndarray], Columns]:
    """W1, b1, W2, b2 of a Lightning checkpoint in the twin's layout, and its ``Columns``."""
    import torch

    from mlp_lightning.core.errors import CheckpointError
    from mlp_lightning.lightning.checkpoint_io import STATE_PREFIX, read_checkpoint

    try:  # weights_only, checksums checked, every failure one line
        checkpoint = read_checkpoint(Path(path))
    except CheckpointError as err:
        raise WeightsError(str(err)) from None
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise WeightsError(f"{path} holds no state_dict (the model's weights): not a Lightning checkpoint")
    weights = {  # anything but a tensor is left as it is, for check_weights to name
        key.removeprefix(STATE_PREFIX): value.detach().cpu().numpy().copy()
        if torch.is_tensor(value)
        else value
        for key, value in state.items()
        if isinstance(key, str) and key.startswith(STATE_PREFIX)
    }
    weights = checked(weights, str(path))
    stored = checkpoint.get(COLUMNS_KEY, {})
    if not isinstance(stored, dict):
        raise WeightsError(f"{path}: its {COLUMNS_KEY!r} entry is a {type(stored).__name__}, not a table")
    return weights, _columns_of(weights, columns_from_stored(stored), str(path))


def _one_line(err: Exception) -> str:
    """An exception's message on one line, escaped and cut short (torch's run to many lines)."""
    return short_text(err) or type(err).__name__


def checkpoint_to_npz(ckpt_path: str | Path, npz_path: str | Path) -> Path:
    weights, columns = checkpoint_model(ckpt_path)
    return save_npz(weights, npz_path, columns)


def classifier_from_weights(weights: dict[str, np.ndarray], **hparams: float | int) -> MLPClassifier:
    """An ``MLPClassifier`` holding ``weights``; its sizes come from their shapes.

    ``hparams`` are the module's other arguments (dropout, lr, weight_decay, seed);
    they do not change what the loaded model predicts in eval mode.
    """
    import torch

    from mlp_lightning.lightning.checkpoint_io import STATE_PREFIX
    from mlp_lightning.lightning.lit_module import MLPClassifier

    weights = checked(weights, "the weights to load")
    dim, hidden_dim = weights["W1"].shape
    module = MLPClassifier(dim=dim, hidden_dim=hidden_dim, num_classes=weights["W2"].shape[1], **hparams)
    dtype = weights["W1"].dtype
    if dtype != np.float32:  # e.g. float64: the parameters must take the stored precision
        module = module.to(getattr(torch, dtype.name))
    state = {STATE_PREFIX + name: torch.from_numpy(np.array(weights[name])) for name in PARAM_NAMES}
    module.load_state_dict(state, strict=True)
    return module.eval()


def npz_to_classifier(npz_path: str | Path, **hparams: float | int) -> MLPClassifier:
    return classifier_from_weights(load_npz(npz_path), **hparams)


def save_checkpoint(
    weights: dict[str, np.ndarray], path: str | Path, columns: Columns | None = None, **hparams: float | int
) -> Path:
    """A minimal checkpoint that ``MLPClassifier.load_from_checkpoint(path, weights_only=True)`` reads.

    It carries the ``Columns`` (plain if not given) under ``COLUMNS_KEY``, as a run's checkpoint does.
    """
    import lightning

    from mlp_lightning.lightning.checkpoint_io import atomic_torch_save

    module = classifier_from_weights(weights, **hparams)
    columns = columns or plain_columns(weights["W1"].shape[0], weights["W2"].shape[1])
    path = Path(path)
    checkpoint = {
        "state_dict": module.state_dict(),
        "hyper_parameters": dict(module.hparams),
        "pytorch-lightning_version": lightning.__version__,
        COLUMNS_KEY: columns_to_stored(columns),
    }
    atomic_torch_save(checkpoint, path)
    return path


def run_weights_file(run_dir: str | Path) -> Path | None:
    """A run's final weights: the twin's ``weights.npz``, else Lightning's ``checkpoints/last.ckpt``."""
    run_dir = Path(run_dir)
    for candidate in (run_dir / TWIN_WEIGHTS, run_dir / CHECKPOINT_DIR / LIGHTNING_CHECKPOINT):
        if candidate.is_file():
            return candidate
    return None


def load_weights_file(path: str | Path) -> dict[str, np.ndarray]:
    """W1, b1, W2, b2 from a ``.npz`` or a Lightning checkpoint, by its suffix."""
    return load_model_file(path)[0]


def load_model_file(path: str | Path) -> tuple[dict[str, np.ndarray], Columns]:
    """W1, b1, W2, b2 and the ``Columns`` of a ``.npz`` or a Lightning checkpoint, by its suffix."""
    return load_model_npz(path) if Path(path).suffix == ".npz" else checkpoint_model(path)
