"""Files a run writes and reads back, without torch: atomic writes, stored hyperparameters, errors.

Both trainers use these; the NumPy twin imports no torch, so they live here rather
than beside the torch checkpoint code. Every file the project writes whole (checkpoints,
weights, hparams.yaml, figures, exports, benchmark reports) goes through ``atomic_write_bytes``;
the operating system's refusal (disk full, read-only, ...) comes out as one ``WriteFailed``.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import yaml

from mlp_lightning.core.errors import CheckpointError, ConfigError, WriteFailed
from mlp_lightning.core.hparams import DATA_FILE, HParams, generated_set_names, hparam_names, validate
from mlp_lightning.core.quoted import quoted, short_text
from mlp_lightning.runs.layout import own_event_file
from mlp_lightning.runs.no_follow import open_own_file

TEMP_SUFFIX = ".tmp"  # .<name>.<random>.tmp beside the file it will replace


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# the mode open() would give a new file (mkstemp's own is 0o600)
NEW_FILE_MODE = 0o666 & ~_umask()

# hyperparameters added after runs were first stored: a run stored without them read back with their
# defaults (it trained on blobs, unstandardized, with classes 0..C-1, its label in the last column)
DATA_FLAGS_ADDED = (
    "dataset", "noise", "data", "target", "drop", "data_sha256", "data_points", "standardize", "class_names",
)  # fmt: skip


def atomic_write_bytes(data: bytes, path: Path) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix.

    A temporary file in the same directory, flushed to the disk, then renamed over ``path``;
    if any step fails the temporary file is removed and ``path`` is untouched. An OSError
    (ENOSPC, EDQUOT, EFBIG, EIO, EROFS, ...) is raised as ``WriteFailed`` naming ``path``.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(fd, NEW_FILE_MODE)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_directory(path.parent)  # the rename itself, on the disk
    except OSError as err:
        raise WriteFailed(path, err) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def atomic_write_text(text: str, path: Path) -> None:
    atomic_write_bytes(text.encode("utf-8"), path)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def thread_write_errors_quiet() -> Iterator[None]:
    """Inside the block a thread that dies of an OSError prints no traceback.

    TensorBoard's event writers write from a thread; when a write fails there the thread keeps
    the error and the writer raises it again at its next ``flush()`` in the training thread,
    which reports it as one line (``event_file_errors``). The thread's own traceback would only
    precede that line. Other exceptions keep Python's hook.
    """
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if not isinstance(args.exc_value, OSError):
            previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous


@contextlib.contextmanager
def event_file_errors(run_dir: Path) -> Iterator[None]:
    """Turn an OSError of an event-file write or flush into ``WriteFailed`` naming the file.

    An event file is appended to, not replaced: a write the disk cut short leaves half a record
    at its end, which is cut off (on a read-only disk it stays; TensorBoard skips it).
    """
    try:
        yield
    except OSError as err:
        path = own_event_file(run_dir)
        with contextlib.suppress(OSError):
            cut_half_record(path)
        raise WriteFailed(path, err) from None


def cut_half_record(path: Path) -> None:
    """Cut ``path`` after its last whole TFRecord (8-byte length, its 4-byte CRC, data, a 4-byte CRC)."""
    # never through a link: the name is found by a glob of the run (runs/no_follow.py)
    with os.fdopen(open_own_file(path, os.O_RDWR), "r+b") as f:
        end = 0
        while len(header := f.read(12)) == 12:
            (length,) = struct.unpack("<Q", header[:8])
            if len(f.read(length + 4)) < length + 4:
                break
            end = f.tell()
        f.truncate(end)


def read_zip_archive(
    path: Path, expected: str, members: Callable[[zipfile.ZipFile], None] | None = None
) -> bytes:
    """The bytes of a file that must be a zip archive (torch.save and .npz both are).

    CheckpointError names the file and says whether it is missing, empty, cut short
    or something else entirely; ``expected`` names the format in the message. ``members``
    checks the archive's directory (``core/archive_check.py``) before any member is inflated.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    data = path.read_bytes()
    if not data:
        raise CheckpointError(f"checkpoint {str(path)!r} is empty (0 bytes): an interrupted copy?")
    if not zipfile.is_zipfile(io.BytesIO(data)):
        what = "truncated (an unfinished write or copy?)" if data[:4] == b"PK\x03\x04" else "not a checkpoint"
        raise CheckpointError(f"checkpoint {str(path)!r} is {what}: {expected} was expected")
    # torch's reader skips the members' CRC-32s: a flipped bit would load as a different number
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if members is not None:
                members(archive)
            bad = archive.testzip()
    except CheckpointError:
        raise
    except Exception as err:  # BadZipFile, zlib.error, EOFError, ...: headers that do not add up
        bad = f"its directory ({short_text(err, 120)})"
    else:  # a member's name is the sender's text: escaped, bounded
        bad = None if bad is None else quoted(bad)
    if bad is not None:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is damaged: {bad} fails its checksum or cannot be read"
        )
    return data


# an hparams.yaml holds a few hundred bytes: one far larger is not one, and is not read whole
MAX_HPARAMS_FILE_BYTES = 1 << 20


def read_hparams_file(path: Path) -> HParams:
    """A run's ``hparams.yaml`` as ``HParams``, checked as a checkpoint's are (``stored_hparams``)."""
    return stored_hparams(load_hparams_yaml(path), path)


def load_hparams_yaml(path: Path) -> object:
    """What a run's ``hparams.yaml`` holds, read safely (no tag runs, no file larger than one can be, no
    traceback): CheckpointError in one line naming the file. Its values are not checked here."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_HPARAMS_FILE_BYTES + 1)
        if len(data) > MAX_HPARAMS_FILE_BYTES:
            raise CheckpointError(
                f"{str(path)!r} is larger than {MAX_HPARAMS_FILE_BYTES} bytes: not a run's hyperparameters"
            )
        stored = yaml.safe_load(data.decode("utf-8"))
    except OSError as err:
        raise CheckpointError(f"cannot read {str(path)!r}: {short_text(err.strerror or err)}") from None
    except UnicodeDecodeError as err:
        raise CheckpointError(f"{str(path)!r} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    except (yaml.YAMLError, ValueError, RecursionError) as err:  # a !!python tag; an int past 4300 digits
        why = short_text(err)
        raise CheckpointError(f"{str(path)!r} is not a run's hyperparameters as YAML ({why})") from None
    return stored


def stored_hparams(stored: object, path: Path) -> HParams:
    """The hyperparameters a checkpoint stores, as plain values; validated like the command line's.

    Each value's type is checked before anything else is done with it, and a value is shown only
    as ``quoted`` shows it: a few hundred bytes of YAML anchors or shared lists expand to gigabytes.
    """
    if not isinstance(stored, dict):
        raise CheckpointError(
            f"checkpoint {str(path)!r} stores its hyperparameters as a {type(stored).__name__}"
        )
    odd = [key for key in stored if not isinstance(key, str)]
    if odd:
        raise CheckpointError(f"checkpoint {str(path)!r} has a hyperparameter named {quoted(odd[0])}")
    data = stored.get("data")  # a damaged file may hold anything here: a tensor has no truth value
    if isinstance(data, str) and data:  # a --data run records no generated-set flag (as_dict): the defaults
        file_defaults = HParams(dataset=DATA_FILE)
        stored = {**{name: getattr(file_defaults, name) for name in generated_set_names()}, **stored}
    # a run from before the data flags trained on blobs: their defaults say so
    stored = {**{name: getattr(HParams(), name) for name in DATA_FLAGS_ADDED}, **stored}
    missing = sorted(set(hparam_names()) - set(stored))
    unknown = sorted(set(stored) - set(hparam_names()))
    if missing or unknown:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has different hyperparameters: missing {missing}, "
            f"unknown {quoted(unknown, 200)}"
        )
    defaults = HParams()
    for name, value in stored.items():
        expected = type(getattr(defaults, name))
        if expected is tuple and type(value) is list:  # YAML and JSON store a tuple as a list
            value = stored[name] = tuple(value)
        ok = type(value) is expected or (expected is float and type(value) is int)
        ok = ok and (expected is not tuple or all(type(v) is str for v in value))
        if not ok:
            raise CheckpointError(
                f"checkpoint {str(path)!r}: hyperparameter {name!r} is {quoted(value)}, "
                f"not a plain {expected.__name__}"
            )
    try:
        return validate(HParams(**stored))
    except ConfigError as err:
        raise CheckpointError(f"checkpoint {str(path)!r} holds a bad hyperparameter: {err}") from None
