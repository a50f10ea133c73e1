"""Shared test helpers: the repository root, reading TensorBoard event files, running the scripts.

They live here, not in ``conftest.py``: pytest imports a conftest under a name of its own, so a
test that imported ``tests.conftest`` would load a second copy of it. Tests import these as
``from tests.helpers import ...``; pyproject's ``pythonpath = ["."]`` puts the repository root on
``sys.path`` for a bare ``pytest`` as well as for ``python -m pytest``.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def read_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} from a run directory's event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def metrics_csv_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """A run's metrics.csv in ``read_scalars``'s shape: {tag: [(step, value), ...]}, ``epoch`` included."""
    from mlp_lightning.core.tensorboard_schema import EPOCH, METRIC_TAGS
    from mlp_lightning.runs.layout import METRICS_CSV
    from mlp_lightning.runs.metrics_csv import read_rows

    rows = read_rows(Path(run_dir) / METRICS_CSV)
    table = {tag: [(row["step"], row[tag]) for row in rows] for tag in METRIC_TAGS}
    return {**table, EPOCH: [(row["step"], float(row["epoch"])) for row in rows]}


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG file, from its signature and IHDR chunk (AssertionError if not a PNG)."""
    import struct
    import zlib

    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13, kind
    (crc,) = struct.unpack(">I", data[16 + length : 20 + length])
    assert crc == zlib.crc32(data[12 : 16 + length]), "IHDR checksum"
    return struct.unpack(">II", data[16:24])


def run_script(name: str, *args: str, timeout: float = 120, cwd: Path | None = None):
    """Run ``scripts/<name>`` in a fresh interpreter; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or REPO,
    )


def run_numpy(argv: list[str], logdir: Path) -> Path:
    """Train the twin in this process with the flags ``argv``, quietly: its run directory."""
    from mlp_lightning.analysis.logged_run import newest_run
    from mlp_lightning.cli import parse_numpy_args
    from mlp_lightning.numpy_twin.train import fit

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        fit(parse_numpy_args([*argv, "--logdir", str(logdir)]))
    return newest_run(logdir, "numpy")


def run_lightning(argv: list[str], logdir: Path) -> Path:
    """Train with Lightning on the CPU in this process with the flags ``argv``, quietly: its run directory."""
    from mlp_lightning.analysis.logged_run import newest_run
    from mlp_lightning.cli import parse_fit_args
    from mlp_lightning.lightning.train import fit

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        fit(parse_fit_args([*argv, "--logdir", str(logdir), "--accelerator", "cpu", "--devices", "1"]))
    return newest_run(logdir, "lightning")


def run_both(argv: list[str], logdir: Path) -> tuple[Path, Path]:
    """The twin's and Lightning's run directories for one set of flags."""
    return run_numpy(argv, logdir), run_lightning(argv, logdir)


def restamp_event_files_into_the_next_second(run_dir: Path) -> None:
    """Rename a run's event files as if written in the next second by a counter that sorts last.

    TensorBoard reads a run's files in name order (``events.out.tfevents.<second>.<host>.<pid>.<n>``):
    a resume that opened its file in the same second would sort before these and be read first,
    so the resume must wait for a later second. This makes that case certain, on any machine.
    """
    second = int(time.time()) + 1
    for path in sorted(Path(run_dir).glob("events.out.tfevents.*")):
        prefix, _, host_and_rest = path.name.partition(".tfevents.")
        host = host_and_rest.split(".", 1)[1].rsplit(".", 2)[0]
        path.rename(path.with_name(f"{prefix}.tfevents.{second}.{host}.99999.99999"))


def signal_during_step(monkeypatch, step: int, signum: int) -> None:
    """Send ``signum`` to this process in the twin's training step ``step`` (1-based), before its update."""
    from mlp_lightning.numpy_twin import train as twin_train

    calls = []
    original = twin_train.train_step

    def train_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == step:
            os.kill(os.getpid(), signum)
        return original(*args, **kwargs)

    monkeypatch.setattr(twin_train, "train_step", train_step)
