"""Run directories: ``<logdir>/<trainer>/version_N``, claimed atomically.

Lightning's own version numbering scans the directory and races when several runs
start at once; ``os.mkdir`` either creates a directory or fails, so a claim loop
over it gives every concurrent run its own version.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from mlp_lightning.hparams import ConfigError

_VERSION = re.compile(r"version_(\d+)$")
# set for the processes a multi-process strategy launches, so they join rank 0's run
RUN_VERSION_ENV = "MLP_LIGHTNING_RUN_VERSION"


def versions(root: Path) -> list[int]:
    """Version numbers of the runs under ``root``, ascending."""
    if not root.is_dir():
        return []
    found = (_VERSION.match(p.name) for p in root.iterdir() if p.is_dir())
    return sorted(int(m.group(1)) for m in found if m)


def check_logdir(logdir: Path) -> None:
    if logdir.exists() and not logdir.is_dir():
        raise ConfigError(f"--logdir must be a directory, got the file {str(logdir)!r}")


def claim_run_dir(logdir: Path, trainer: str) -> tuple[Path, int]:
    """Create and return a new ``<logdir>/<trainer>/version_N`` that no other run holds."""
    root = Path(logdir) / trainer
    root.mkdir(parents=True, exist_ok=True)
    existing = versions(root)
    version = existing[-1] + 1 if existing else 0
    while True:
        run_dir = root / f"version_{version}"
        try:
            run_dir.mkdir()
        except FileExistsError:
            version += 1
            continue
        return run_dir, version


def wait_for_a_later_event_file_second(run_dir: Path) -> None:
    """Sleep, if needed, until a new event file in ``run_dir`` will sort after every file there.

    TensorBoard reads a run's event files in name order. The name is
    ``events.out.tfevents.<second>.<host>.<pid>.<n>``: across seconds that is time order, but
    within one second the pid and a per-process counter decide ("10" sorts before "9"), so a
    resume that opens its file in the second its interrupted run did would be read first.
    Waiting for the next second costs nothing in practice: only a run interrupted within a
    second of its start (a test) waits at all, and less than a second.
    """
    stamps = (p.name.split(".")[3] for p in Path(run_dir).glob("events.out.tfevents.*"))
    seconds = [int(stamp) for stamp in stamps if stamp.isdigit()]  # a stray file is no reason to fail
    delay = max(seconds) + 1 - time.time() if seconds else 0.0
    if delay > 0:
        time.sleep(delay)
