"""Lightning checkpoints on disk: written atomically, read without running code, checked.

A checkpoint is read with ``torch.load(weights_only=True)``: tensors and plain
Python values only, so a file carrying a pickled object is refused before anything
in it runs. Every way a file can be unusable ends in one ``CheckpointError`` that
names the file and what is wrong with it. Writes go to a temporary file in the same
directory and are renamed over the target, so a crash mid-write leaves the previous
checkpoint whole. No lightning here (the script checks a ``--resume`` file before
paying for that import).
"""

from __future__ import annotations

import io
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from mlp_lightning.core.errors import CheckpointError, DivergenceError, WriteFailed
from mlp_lightning.core.hparams import HParams
from mlp_lightning.core.quoted import quoted, short_text
from mlp_lightning.core.weights import check_weights, nonfinite_names, param_shapes
from mlp_lightning.lightning.checkpoint_archive import (
    STATE_PREFIX,
    check_tensor_bytes,
    storage_bytes_promised,
)
from mlp_lightning.runs.files import atomic_write_bytes, read_zip_archive, stored_hparams
from mlp_lightning.runs.resume import ResumeTarget, resumed_hparams

# the callback's section of the checkpoint: what Lightning itself does not save
PROJECT_KEY = "mlp_lightning"
# 2: the dropout masks come with the batches, so no process's torch RNG state is kept (format 1
# kept them: such a run with dropout on drew its masks from torch and cannot continue exactly)
FORMAT_VERSION = 2


def atomic_torch_save(obj: dict[str, Any], path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(buffer.getvalue(), path)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint's contents, loaded with ``weights_only=True``; CheckpointError if unreadable.

    Its tensors are read only once the archive is known to hold no more than its model needs
    (``checkpoint_archive.py``): first the structure alone, on the meta device.
    """
    path = Path(path)
    promised: list[int] = []
    data = read_zip_archive(
        path,
        "torch.save's zip format",
        lambda archive: promised.append(storage_bytes_promised(archive, path)),
    )
    skeleton = _load(data, path, map_location="meta")
    try:
        hp = checkpoint_hparams(skeleton, path) if PROJECT_KEY in skeleton else None
    except CheckpointError:
        hp = None  # refused with its reason once read; its parameters bound the read meanwhile
    check_tensor_bytes(skeleton, promised[0], hp, path)
    return _load(data, path, map_location="cpu")


def _load(data: bytes, path: Path, map_location: str) -> dict[str, Any]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about old pickle protocols before refusing
            ckpt = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:  # its words name what the file asked for: the sender's text
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds objects other than tensors and plain values "
            f"(refused unread, nothing in it was run): {short_text(str(err).splitlines()[-1])}"
        ) from None
    except Exception as err:  # torch raises RuntimeError/EOFError/... for damaged archives
        raise CheckpointError(f"checkpoint {str(path)!r} is damaged: {short_text(err)}") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds a {type(ckpt).__name__}, not a Lightning checkpoint"
        )
    return ckpt


def checkpoint_hparams(ckpt: dict[str, Any], path: Path) -> HParams:
    """The run's hyperparameters as stored by this project, validated."""
    section = ckpt.get(PROJECT_KEY)
    if not isinstance(section, dict) or not isinstance(section.get("hparams"), dict):
        raise CheckpointError(
            f"checkpoint {str(path)!r} was not written by this project's fit.py "
            f"(no {PROJECT_KEY!r} section with the run's hyperparameters)"
        )
    return stored_hparams(section["hparams"], path)


def checkpoint_trainer_flags(ckpt: dict[str, Any], path: Path) -> dict[str, Any] | None:
    """The Lightning flags the run trained with (None in a checkpoint from before they were stored).

    Their values are checked where they are used, like those typed on a command line.
    """
    flags = ckpt[PROJECT_KEY].get("trainer")
    plain = isinstance(flags, dict) and all(
        isinstance(k, str) and len(k) <= _FLAG_CHARS and _plain_flag_value(v) for k, v in flags.items()
    )
    if flags is not None and not plain:
        raise CheckpointError(
            f"checkpoint {str(path)!r}: its Lightning flags are not a table of names to "
            f"strings or integers: {quoted(flags, 200)}"
        )
    return flags


_FLAG_CHARS = 100  # a Lightning flag's name or text value ("bf16-mixed", "ddp_find_unused_parameters_true")


def _plain_flag_value(value: object) -> bool:
    """A text or an integer of a flag's size: what the flags' checks may format and convert."""
    if type(value) is str:
        return len(value) <= _FLAG_CHARS
    return type(value) is int and abs(value) < 1 << 31


def check_checkpoint_weights(ckpt: dict[str, Any], hp: HParams, path: Path) -> None:
    """The state_dict has exactly the MLP's parameters, in the shapes ``hp`` gives, all finite."""
    state = ckpt.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {str(path)!r} has no state_dict (the model's weights)")
    prefixed = [k for k in state if isinstance(k, str) and k.startswith(STATE_PREFIX)]
    params = {k.removeprefix(STATE_PREFIX): state[k] for k in prefixed}
    check_weights(
        params, f"checkpoint {str(path)!r}", param_shapes(hp.dim, hp.hidden_dim, hp.num_classes),
        context=f"for dim={hp.dim}, hidden_dim={hp.hidden_dim}, num_classes={hp.num_classes}",
        isfinite=torch.isfinite, error=CheckpointError,
    )  # fmt: skip


def load_for_resume(path: Path) -> tuple[dict[str, Any], HParams]:
    """Read and check a checkpoint to resume from; CheckpointError names what is wrong."""
    ckpt = read_checkpoint(path)
    hp = checkpoint_hparams(ckpt, path)
    checkpoint_trainer_flags(ckpt, path)
    check_checkpoint_weights(ckpt, hp, path)
    for key in ("loops", "optimizer_states", "callbacks"):
        if key not in ckpt:
            raise CheckpointError(
                f"checkpoint {str(path)!r} lacks {key!r}: it holds weights, not a run to resume"
            )
    _check_training_state(ckpt, str(path))
    if ckpt[PROJECT_KEY].get("format", 1) < 2 and hp.dropout > 0:
        raise CheckpointError(
            f"checkpoint {str(path)!r} was written before the dropout masks came from the run's stream "
            f"(format 1, --dropout {hp.dropout:g}): it cannot continue exactly; resume it with the "
            "version that wrote it, or train it again"
        )
    return ckpt, hp


# what a resume reads besides the weights, and the type each must have (the values are Lightning's)
_TRAINING_STATE = {
    "loops": dict,
    "optimizer_states": list,
    "callbacks": dict,
    "global_step": int,
    "epoch": int,
}


def _check_training_state(ckpt: dict[str, Any], name: str) -> None:
    """The loop counters and per-process states have the types a resume uses, or the file is damaged."""
    wrong = [key for key, kind in _TRAINING_STATE.items() if type(ckpt.get(key)) is not kind]
    wrong += [key for key in ("global_step", "epoch") if type(ckpt.get(key)) is int and ckpt[key] < 0]
    section = ckpt[PROJECT_KEY]
    done = section.get("epochs_done", 0)
    if type(done) is not int or done < 0:
        wrong.append(f"{PROJECT_KEY}.epochs_done")
    if type(section.get("format", 1)) is not int:
        wrong.append(f"{PROJECT_KEY}.format")
    ranks = section.get("ranks", [section])  # a checkpoint from before ``ranks``: one process, the section
    plain = isinstance(ranks, list) and ranks and all(isinstance(r, dict) for r in ranks)
    if not plain or not all(isinstance(r.get("metrics"), dict) for r in ranks):
        wrong.append(f"{PROJECT_KEY}.ranks")
    if wrong:
        raise CheckpointError(
            f"checkpoint {name!r} is damaged: {', '.join(dict.fromkeys(wrong))} not as a resume needs them "
            "(loop counters: integers >= 0; per-process states: metric sums)"
        )


def checkpoint_epochs_done(ckpt: dict[str, Any]) -> int:
    """The complete epochs a run's checkpoint records, from the project's own section.

    A checkpoint written before the section recorded them is read through Lightning's
    loop schema instead, the one place this project reads it (checked against
    Lightning 2.6: ``loops.fit_loop.epoch_progress.current.processed``;
    ``tests/test_loading.py`` fails loudly if that path moves).
    """
    section = ckpt[PROJECT_KEY]
    if "epochs_done" in section:
        return int(section["epochs_done"])
    return int(ckpt["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])


@dataclass(frozen=True)
class Resumed:
    """A run to resume, checked: where it is, its hyperparameters and how far it got."""

    target: ResumeTarget
    hp: HParams
    epochs_done: int
    step: int
    processes: int  # that trained it: a resume needs as many
    trainer_flags: dict[str, Any] | None = None  # the Lightning flags it trained with (None: not stored)
    device: str | None = None  # the device type it last trained on: "cpu", "cuda", "mps"
    contents: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # the checkpoint, read


def load_resume(target: ResumeTarget, requested: HParams, given: frozenset[str]) -> Resumed:
    """Load and check ``target``'s checkpoint; the flags given beside ``--resume`` must match it
    (``resumed_hparams``: a given ``--max_epochs`` may extend it)."""
    from mlp_lightning.lightning.rank_state import saved_ranks

    ckpt, stored = load_for_resume(target.checkpoint)
    epochs_done = checkpoint_epochs_done(ckpt)
    hp = resumed_hparams(stored, requested, given, epochs_done, target.run_dir)
    section = ckpt[PROJECT_KEY]
    processes = len(saved_ranks(section))
    flags, device = checkpoint_trainer_flags(ckpt, target.checkpoint), section.get("device")
    if device is not None and not (type(device) is str and len(device) <= _FLAG_CHARS):
        raise CheckpointError(
            f"checkpoint {str(target.checkpoint)!r}: the device it trained on is {quoted(device)}, "
            "not a device type (cpu, cuda, mps)"
        )
    return Resumed(target, hp, epochs_done, int(ckpt["global_step"]), processes, flags, device, ckpt)


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO, made atomic, finite-only and ``weights_only`` on load.

    ``preloaded`` is the checkpoint a resume has already read and checked: Lightning's
    own load of it is answered from memory rather than by reading the file twice. A write
    the disk refuses is kept in ``failed``, not raised: only rank 0 writes, and the run's
    checkpoint callback ends every rank together on it (``RunCheckpoint.save``).
    """

    def __init__(self, preloaded: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.preloaded = preloaded
        self.failed: WriteFailed | None = None

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any = None) -> None:
        bad = nonfinite_names(checkpoint["state_dict"], torch.isfinite)
        if bad:
            raise DivergenceError(
                f"refusing to save a checkpoint with non-finite {', '.join(bad)} "
                f"(epoch {checkpoint['epoch'] + 1}, step {checkpoint['global_step']})"
            )
        try:
            atomic_torch_save(checkpoint, Path(path))
        except WriteFailed as err:
            self.failed = err

    def load_checkpoint(self, path, map_location: Any = None, weights_only: bool | None = None) -> dict:
        # Lightning's own resume path ends here: never unpickle objects, whatever it asks,
        # and the same checks as the script's own (shapes, hyperparameters, finite weights)
        if self.preloaded:
            ckpt, self.preloaded = self.preloaded, None
            return ckpt
        return load_for_resume(Path(path))[0]
