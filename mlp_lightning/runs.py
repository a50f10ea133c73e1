"""Run directories: ``<logdir>/<trainer>/version_N``, claimed atomically.

Lightning's own version numbering scans the directory and races when several runs
start at once; ``os.mkdir`` either creates a directory or fails, so a claim loop
over it gives every concurrent run its own version.
"""

from __future__ import annotations

import re
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
