"""The twin's resumable state, ``<run>/checkpoints/last.npz``: plain arrays, read with allow_pickle=False.

It holds everything the next step depends on: W1, b1, W2, b2; the batch order's
position; the epoch's running loss and accuracy sums; the global step; and the
run's hyperparameters. The dropout masks need no state: they are a pure function of
(seed, epoch, point), ``core.dropout``. Non-array values travel as one JSON string
(a unicode array), so nothing in the file is a pickle.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from mlp_lightning.core.archive_check import archive_members, check_promised_size, npz_headers
from mlp_lightning.core.errors import CheckpointError, DivergenceError, RunInterrupted
from mlp_lightning.core.hparams import HParams
from mlp_lightning.core.quoted import quoted, quoted_text, short_text
from mlp_lightning.core.weights import PARAM_NAMES, check_weights, nonfinite_names, param_shapes
from mlp_lightning.runs.files import atomic_write_bytes, read_zip_archive, stored_hparams
from mlp_lightning.runs.interrupt import StopRequest
from mlp_lightning.runs.layout import TWIN_CHECKPOINT
from mlp_lightning.runs.resume import ResumeTarget, resolve_resume, resumed_hparams

# 2: no dropout generator state (format 1 held one: its masks came from a generator, so such a
# run with dropout on cannot continue with the stream's masks, and is refused)
FORMAT_VERSION = 2
_SUMS = ("loss_sum", "weight")  # the running mean's float32 sums, kept bit-exact as arrays
_ARRAYS = ("meta", *PARAM_NAMES, *_SUMS)
META_MAX_BYTES = 16 << 20  # 'meta' inflated: the hyperparameters as JSON, 4 bytes a character
UNKNOWN_MODEL_MAX_BYTES = 64 << 20  # all arrays, when 'meta' cannot say what model they are


@dataclass
class TwinState:
    """What ``train`` needs to continue exactly where a run stopped."""

    hp: HParams
    params: dict[str, np.ndarray]
    order: dict[str, int]  # BatchOrder.state_dict()
    sums: dict[str, np.float32]  # RunningMean's loss_sum and weight
    counts: dict[str, int]  # RunningMean's correct and seen
    step: int

    @property
    def epochs_done(self) -> int:
        steps_per_epoch = -(-self.hp.n_train // self.hp.batch_size)  # one process: ceil(n / B)
        return self.order["epoch"] + (1 if self.order["batches_done"] >= steps_per_epoch else 0)


def save_state(state: TwinState, path: Path) -> None:
    """Write ``state`` atomically; refuses non-finite weights so no file ever holds one."""
    bad = nonfinite_names(state.params)
    if bad:
        raise DivergenceError(
            f"training diverged by step {state.step}: non-finite {', '.join(bad)}; "
            "not saved over the last good checkpoint"
        )
    meta = {
        "format": FORMAT_VERSION,
        "hparams": state.hp.as_dict(),
        "order": state.order,
        "counts": state.counts,
        "step": state.step,
    }
    arrays = {name: np.ascontiguousarray(state.params[name], dtype=np.float32) for name in PARAM_NAMES}
    arrays.update({k: np.asarray(state.sums[k], dtype=np.float32) for k in _SUMS})
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array(json.dumps(meta)), **arrays)
    atomic_write_bytes(buffer.getvalue(), path)


def load_state(path: Path) -> TwinState:
    """Read and check a twin checkpoint; CheckpointError names the file and what is wrong."""
    path = Path(path)
    name = str(path)
    data = read_zip_archive(path, "an .npz (zip) archive", lambda archive: _check_directory(archive, path))
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise CheckpointError(
                f"checkpoint {name!r} holds pickled objects (refused unread, nothing in it was run)"
            ) from None
        raise CheckpointError(f"checkpoint {name!r} is damaged: {short_text(err)}") from None
    except Exception as err:  # zipfile/zlib errors for a damaged member
        raise CheckpointError(f"checkpoint {name!r} is damaged: {short_text(err)}") from None
    _check_array_names(arrays, name)
    try:
        meta = json.loads(str(arrays["meta"][()]))
        hp = stored_hparams(meta["hparams"], path)
        state = TwinState(
            hp=hp,
            params={k: arrays[k] for k in PARAM_NAMES},
            order={
                "epoch": _count(meta["order"]["epoch"]),
                "batches_done": _count(meta["order"]["batches_done"]),
            },
            sums=_sums(arrays, name),
            counts={"correct": _count(meta["counts"]["correct"]), "seen": _count(meta["counts"]["seen"])},
            step=_count(meta["step"]),
        )
        if meta.get("format", 1) < 2 and hp.dropout > 0:
            raise CheckpointError(
                f"checkpoint {name!r} was written before the dropout masks came from the run's stream "
                f"(format 1, --dropout {hp.dropout:g}): it cannot continue exactly; resume it with the "
                "version that wrote it, or train it again"
            )
    except CheckpointError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError, RecursionError) as err:
        raise CheckpointError(
            f"checkpoint {name!r} has a damaged 'meta' entry: {type(err).__name__}: {short_text(err)}"
        ) from None
    _check_params(state, name)
    return state


def _check_array_names(names: Collection[str], name: str) -> None:
    if set(names) != set(_ARRAYS):
        shown = ", ".join(quoted_text(n, 40) for n in sorted(names)[:12]) + (
            ", ..." if len(names) > 12 else ""
        )
        raise CheckpointError(
            f"checkpoint {name!r} is for another architecture or trainer: arrays [{shown}], "
            f"expected {sorted(_ARRAYS)}"
        )


def _check_directory(archive: zipfile.ZipFile, path: Path) -> None:
    """Before a member is inflated: a twin checkpoint's arrays, in no more bytes than twice its
    model's (so that a float64 copy is still refused by name, once read)."""
    source = f"checkpoint {str(path)!r}"
    members = archive_members(archive, source, CheckpointError)
    _check_array_names([f.removesuffix(".npy") if f.endswith(".npy") else f for f in members], str(path))
    npz_headers(archive, source, CheckpointError, _ARRAYS, "a twin checkpoint")
    check_promised_size([members["meta.npy"]], META_MAX_BYTES, f"{source}: its 'meta'", CheckpointError, "")
    try:
        with archive.open("meta.npy") as f:
            hp = stored_hparams(json.loads(str(npy_format.read_array(f)[()]))["hparams"], path)
    except CheckpointError:
        raise
    except Exception:  # a damaged 'meta' is refused with its reason once the arrays are read
        check_promised_size(members.values(), UNKNOWN_MODEL_MAX_BYTES, source, CheckpointError, "")
        return
    sizes = param_shapes(hp.dim, hp.hidden_dim, hp.num_classes).values()
    limit = 2 * 4 * (sum(math.prod(shape) for shape in sizes) + len(_SUMS)) + 4096 * len(_ARRAYS)
    model = f"dim={hp.dim}, hidden_dim={hp.hidden_dim}, num_classes={hp.num_classes}"
    check_promised_size(
        members.values(),
        limit + members["meta.npy"].file_size,
        source,
        CheckpointError,
        f"a model of {model}",
    )


def _sums(arrays: dict[str, np.ndarray], name: str) -> dict[str, np.float32]:
    """The epoch's running sums: float32 scalars, finite and >= 0 (a mid-epoch resume adds to them)."""
    for key in _SUMS:
        array = arrays[key]
        if array.shape != () or array.dtype != np.float32:
            what = f"a {array.dtype} array of shape {array.shape}"
        elif not (np.isfinite(array) and array >= 0):
            what = f"{float(array)}"
        else:
            continue
        raise CheckpointError(
            f"checkpoint {name!r} is damaged: {key} is {what}, expected one finite float32 >= 0 "
            "(the epoch's running sum)"
        )
    return {key: np.float32(arrays[key]) for key in _SUMS}


def _count(value: object) -> int:
    """A count the file stores: a plain integer >= 0 (not a bool, a float or a string that looks like one)."""
    if type(value) is not int or value < 0:
        raise ValueError(f"expected a count, got {quoted(value)}")
    return value


def _check_params(state: TwinState, name: str) -> None:
    hp = state.hp
    check_weights(
        state.params, f"checkpoint {name!r}", param_shapes(hp.dim, hp.hidden_dim, hp.num_classes),
        context=f"for dim={hp.dim}, hidden_dim={hp.hidden_dim}, num_classes={hp.num_classes}",
        dtype=np.float32, error=CheckpointError,
    )  # fmt: skip


def resume_target(args, trainer: str) -> ResumeTarget:
    """The run and checkpoint ``--resume`` names."""
    return resolve_resume(args.resume, args.logdir, trainer, TWIN_CHECKPOINT)


def load_resume(args, target: ResumeTarget) -> TwinState:
    """``target``'s state, checked; the flags given beside ``--resume`` must match the run's own
    (``resumed_hparams``, the rule fit.py's resume follows: a given ``--max_epochs`` may extend it)."""
    state = load_state(target.checkpoint)
    state.hp = resumed_hparams(state.hp, args.hp, args.given, state.epochs_done, target.run_dir)
    return state


class Checkpointer:
    """``train``'s boundary hook: saves at a stop request (then raises RunInterrupted),
    every ``every_n_steps`` steps and after the last epoch."""

    def __init__(
        self, path: Path, every_n_steps: int, max_epochs: int, stop: StopRequest, saved: TwinState | None
    ) -> None:
        self.path, self.every_n_steps, self.stop = Path(path), every_n_steps, stop
        self.max_epochs = max_epochs
        # (epochs done, global step) at the last save, None before the first, as fit.py's RunCheckpoint
        self.saved_at = (saved.epochs_done, saved.step) if saved is not None else None

    def __call__(self, step: int, finished_epoch: int | None, snapshot: Callable[[], TwinState]) -> None:
        end_of_run = finished_epoch is not None and finished_epoch + 1 >= self.max_epochs
        due = (
            self.every_n_steps > 0 and step - (self.saved_at[1] if self.saved_at else 0) >= self.every_n_steps
        )
        if due or end_of_run or self.stop.requested:
            state = snapshot()
            save_state(state, self.path)
            self.saved_at = (state.epochs_done, step)
        if self.stop.requested and not end_of_run:
            raise RunInterrupted(self.stop.name)
