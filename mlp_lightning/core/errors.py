"""Every exception the project raises, and how a script ends on one: one line, exit code 2.

The ``ConfigError`` family is what a user can fix (a flag, a file, a run to resume): a
script prints its message as one line and exits with 2, before anything is written.
``DivergenceError`` and ``RunInterrupted`` end a training run that has started.
"""

from __future__ import annotations

import sys
from typing import NoReturn


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


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss, gradient or parameter; the message says where."""


class RunInterrupted(Exception):
    """Raised at the batch boundary where a stop request was honoured, after the checkpoint is saved.

    An exception rather than ``trainer.should_stop``: Lightning validates a run that
    stops early, which would log metrics for a half-trained epoch.
    """


def fail(prog: str, message: str) -> NoReturn:
    """End a script on a user's error: ``<prog>: error: <message>`` on stderr, exit code 2."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(2)
