"""Run directories: ``<logdir>/<trainer>/version_N``, claimed atomically.

Lightning's own version numbering scans the directory and races when several runs
start at once; ``os.mkdir`` either creates a directory or fails, so a claim loop
over it gives every concurrent run its own version.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
import time
from pathlib import Path

from mlp_lightning.core.errors import ConfigError, WriteFailed, plain_os_error

# <logdir>/<trainer>/version_N/: one folder per trainer, one per run
NUMPY_TRAINER, LIGHTNING_TRAINER = "numpy", "lightning"
VERSION = re.compile(r"version_(\d+)$")
# what a run directory holds besides its event files
HPARAMS_FILE = "hparams.yaml"
METRICS_CSV = "metrics.csv"  # the per-epoch scalars as a table (runs/metrics_csv.py)
CHECKPOINT_DIR = "checkpoints"
LIGHTNING_CHECKPOINT = "last.ckpt"  # the Lightning run's resumable checkpoint
TWIN_CHECKPOINT = "last.npz"  # the NumPy twin's resumable state
TWIN_WEIGHTS = "weights.npz"  # the twin's final weights, float32 W1, b1, W2, b2
# a new run directory: no other account may write in it (plant or swap a link), any may read it
RUN_DIR_MODE = 0o755
LOCK_FILE = ".lock"  # held (flock) by the process training in the run; holds its pid
EVENT_FILES = "events.out.tfevents.*"  # TensorBoard's: events.out.tfevents.<second>.<host>.<pid>.<n>
EVENT_WAIT_MAX_S = 1.0  # the most a resume waits for a later second than its event files' names
# set for the processes a multi-process strategy launches, so they join rank 0's run
RUN_VERSION_ENV = "MLP_LIGHTNING_RUN_VERSION"


def run_name(trainer: str, version: int) -> str:
    """``numpy/version_3``: a run's path under --logdir, and its name in TensorBoard's run list."""
    return f"{trainer}/version_{version}"


def versions(root: Path) -> list[int]:
    """Version numbers of the runs under ``root``, ascending."""
    if not root.is_dir():
        return []
    found = (VERSION.match(p.name) for p in root.iterdir() if p.is_dir())
    return sorted(int(m.group(1)) for m in found if m)


def check_logdir(logdir: Path, create: bool = True) -> None:
    """Refuse a ``--logdir`` that is a file or, with ``create``, one a run could not create or write.

    Creates nothing that stays: a missing logdir is judged by its nearest existing ancestor,
    which must be a directory in which a directory can be made. ``os.access`` alone is not
    enough: as root it says yes for /proc and /sys, so a temporary directory is made there and
    removed again. The message names the path and the operating system's reason in plain words.
    """
    shown = f"--logdir {str(logdir)!r}"
    path = Path(os.path.abspath(logdir))
    if path.is_dir():
        if create:
            reason = _cannot_make_directories_in(path)
            if reason:
                raise ConfigError(f"{shown} is not writable: {reason}")
        return
    if path.exists():
        raise ConfigError(f"{shown} is a file, not a directory")
    if not create:
        return
    ancestor = path
    while not os.path.exists(ancestor):
        if os.path.lexists(ancestor):
            raise ConfigError(f"{shown} cannot be created: {str(ancestor)!r} is a broken symbolic link")
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"{shown} cannot be created: {str(ancestor)!r} is a file, not a directory")
    reason = _cannot_make_directories_in(ancestor)
    if reason:
        raise ConfigError(f"{shown} cannot be created in {str(ancestor)!r}: {reason}")


def _cannot_make_directories_in(directory: Path) -> str | None:
    """Why no directory can be made in ``directory`` (which exists), in plain words; None if one can."""
    if not os.access(directory, os.W_OK | os.X_OK):
        return "permission denied"
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".logdir-check-", dir=directory))
    except OSError as err:
        if err.errno == errno.ENOENT:  # /proc: the directory is there, but takes no new entries
            return "it accepts no new directories"
        return plain_os_error(err)
    return None


def claim_run_dir(logdir: Path, trainer: str) -> tuple[Path, int]:
    """Create and return a new ``<logdir>/<trainer>/version_N`` that no other run holds."""
    root = Path(logdir) / trainer
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WriteFailed(root, err) from None
    existing = versions(root)
    version = existing[-1] + 1 if existing else 0
    while True:
        run_dir = root / f"version_{version}"
        try:
            run_dir.mkdir(mode=RUN_DIR_MODE)  # the umask may take more away, never add
        except FileExistsError:
            version += 1
            continue
        except OSError as err:  # a full disk has no room for a directory either
            raise WriteFailed(run_dir, err) from None
        return run_dir, version


def wait_for_a_later_event_file_second(run_dir: Path) -> None:
    """Sleep, if needed, until a new event file in ``run_dir`` will sort after every file there;
    never more than ``EVENT_WAIT_MAX_S``, whatever the names in the run say.

    TensorBoard reads a run's event files in name order. The name is
    ``events.out.tfevents.<second>.<host>.<pid>.<n>``: across seconds that is time order, but
    within one second the pid and a per-process counter decide ("10" sorts before "9"), so a
    resume that opens its file in the second its interrupted run did would be read first.
    Waiting for the next second costs nothing in practice: only a run interrupted within a
    second of its start (a test) waits at all, and less than a second.
    """
    stamps = (p.name.split(".")[3] for p in Path(run_dir).glob(EVENT_FILES))
    # a stray name is no reason to fail: ASCII digits only ("²".isdigit()), few enough for int()
    seconds = [int(stamp) for stamp in stamps if stamp.isascii() and stamp.isdigit() and len(stamp) <= 20]
    delay = max(seconds) + 1 - time.time() if seconds else 0.0
    # A name from a later second than the clock's comes from a machine whose clock ran ahead, or
    # from someone who wrote it (a received run): waiting for that second could take centuries and
    # would not make the order any truer. The new file then sorts before it, which costs only the
    # order in which TensorBoard reads the two; no step is lost (its scalars are plotted by step).
    if delay > 0:
        time.sleep(min(delay, EVENT_WAIT_MAX_S))


def own_event_file(run_dir: Path) -> Path:
    """The newest event file this process opened in ``run_dir`` (its name holds the pid).

    Write errors name it; the writers keep the name to themselves.
    """

    def order(p: Path) -> tuple[str, int]:  # second, then the process's file counter
        return p.name.split(".")[3], int(p.name.split(".")[-1])

    def is_mine(
        p: Path,
    ) -> bool:  # events.out.tfevents.<second>.<host>.<pid>.<counter>; others' names are stray
        parts = p.name.split(".")
        return (
            len(parts) >= 7 and parts[-2] == str(os.getpid()) and parts[-1].isascii() and parts[-1].isdigit()
        )

    mine = [p for p in Path(run_dir).glob(EVENT_FILES) if is_mine(p)]
    return max(mine, key=order, default=Path(run_dir) / EVENT_FILES)
