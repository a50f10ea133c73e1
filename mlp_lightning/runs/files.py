"""Files a run writes and reads back, without torch: atomic writes, stored hyperparameters, errors.

Both trainers use these; the NumPy twin imports no torch, so they live here rather
than beside the torch checkpoint code.
"""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from pathlib import Path

from mlp_lightning.core.errors import CheckpointError, ConfigError
from mlp_lightning.core.hparams import HParams, hparam_names, validate


def atomic_write_bytes(data: bytes, path: Path) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_zip_archive(path: Path, expected: str) -> bytes:
    """The bytes of a file that must be a zip archive (torch.save and .npz both are).

    CheckpointError names the file and says whether it is missing, empty, cut short
    or something else entirely; ``expected`` names the format in the message.
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
            bad = archive.testzip()
    except Exception as err:  # BadZipFile, zlib.error, EOFError, ...: headers that do not add up
        bad = f"its directory ({' '.join(str(err).split())[:120]})"
    if bad is not None:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is damaged: {bad} fails its checksum or cannot be read"
        )
    return data


def stored_hparams(stored: object, path: Path) -> HParams:
    """The hyperparameters a checkpoint stores, as plain values; validated like the command line's."""
    if not isinstance(stored, dict):
        raise CheckpointError(
            f"checkpoint {str(path)!r} stores its hyperparameters as a {type(stored).__name__}"
        )
    missing = sorted(set(hparam_names()) - set(stored))
    unknown = sorted(set(stored) - set(hparam_names()))
    if missing or unknown:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has different hyperparameters: missing {missing}, unknown {unknown}"
        )
    defaults = HParams()
    for name, value in stored.items():
        expected = type(getattr(defaults, name))
        ok = type(value) is expected or (expected is float and type(value) is int)
        if not ok:
            raise CheckpointError(
                f"checkpoint {str(path)!r}: hyperparameter {name!r} is {' '.join(repr(value).split())[:80]}, "
                f"not a plain {expected.__name__}"
            )
    try:
        return validate(HParams(**stored))
    except ConfigError as err:
        raise CheckpointError(f"checkpoint {str(path)!r} holds a bad hyperparameter: {err}") from None
