"""Shared test helpers: the repository root, reading TensorBoard event files, running the scripts.

They live here, not in ``conftest.py``: pytest imports a conftest under a name of its own, so a
test that imported ``tests.conftest`` would load a second copy of it. Tests import these as
``from tests.helpers import ...``; pyproject's ``pythonpath = ["."]`` puts the repository root on
``sys.path`` for a bare ``pytest`` as well as for ``python -m pytest``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def read_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} from a run directory's event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def run_script(name: str, *args: str, timeout: float = 120, cwd: Path | None = None):
    """Run ``scripts/<name>`` in a fresh interpreter; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or REPO,
    )
