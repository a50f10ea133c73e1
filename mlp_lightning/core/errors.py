"""Every exception the project raises, and how a script ends on one: one line, exit code 2.

The ``ConfigError`` family is what a user can fix (a flag, a file, a run to resume): a
script prints its message as one line and exits with 2, before anything is written.
``DivergenceError`` and ``RunInterrupted`` end a training run that has started;
``WriteFailed`` ends any script whose disk refused a file (full, read-only, failing).
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import NoReturn

from mlp_lightning.core.quoted import printable

# what the operating system's refusals mean, in the words a message uses
PLAIN_OS_ERRORS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for this filesystem's or process's size limit",
    errno.EIO: "I/O error",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
WRITE_FAILED_EXIT = os.EX_IOERR  # 74, sysexits.h's "an error occurred while doing I/O on some file"


def plain_os_error(err: OSError) -> str:
    """``disk full`` for ENOSPC, ...; the system's own words, lower-cased, for any other error."""
    return PLAIN_OS_ERRORS.get(err.errno, (err.strerror or str(err) or type(err).__name__).lower())


class ConfigError(ValueError):
    """A flag or config key has a value that is not allowed; the message names it."""


class ResumeError(ConfigError):
    """``--resume`` names no usable run; the message names the path and what is missing."""


class CheckpointError(ConfigError):
    """A checkpoint (or .npz) that cannot be used; the message names the file and the problem."""


class WeightsError(ConfigError):
    """A weights file is missing, unreadable or does not hold the two-layer MLP's arrays."""


class RunError(ConfigError):
    """A run directory is missing, empty or half-written; the message says which and why."""


class RunInUse(ConfigError):
    """Another live process holds the run directory (``runs/lock.py``); the message names its pid."""


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss, gradient or parameter; the message says where."""


class RunInterrupted(Exception):
    """Raised at the batch boundary where a stop request was honoured, after the checkpoint is saved.

    An exception rather than ``trainer.should_stop``: Lightning validates a run that
    stops early, which would log metrics for a half-trained epoch.
    """


class WriteFailed(Exception):
    """The operating system refused a file the project writes; the message names it and says why.

    Raised where the write happened (``runs/files.py``'s atomic writes, the event-file writers),
    so that no final name ever holds a partial file and the last good checkpoint stays.
    """

    def __init__(self, path: str | Path, err: OSError) -> None:
        self.path, self.errno = Path(path), err.errno
        super().__init__(f"cannot write {str(path)!r}: {plain_os_error(err)}")


def error_line(prog: str, message: object) -> str:
    """``<prog>: error: <message>``, every character a terminal would act on escaped (``core/quoted.py``)."""
    return f"{prog}: error: {printable(str(message))}"


def fail(prog: str, message: str) -> NoReturn:
    """End a script on a user's error: ``<prog>: error: <message>`` on stderr, exit code 2."""
    print(error_line(prog, message), file=sys.stderr)
    sys.exit(2)


def fail_write(prog: str, err: WriteFailed) -> int:
    """Report a refused write: ``<prog>: error: cannot write '<file>': disk full``; the exit code."""
    print(error_line(prog, err), file=sys.stderr, flush=True)
    return WRITE_FAILED_EXIT
