"""Shared test helpers: the repository root, reading TensorBoard event files, running the scripts.

They live here, not in ``conftest.py``: pytest imports a conftest under a name of its own, so a
test that imported ``tests.conftest`` would load a second copy of it. Tests import these as
``from tests.helpers import ...``; pyproject's ``pythonpath = ["."]`` puts the repository root on
``sys.path`` for a bare ``pytest`` as well as for ``python -m pytest``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import resource
import signal
import subprocess
import sys
import threading
import time
import unittest.mock
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


def run_script(
    name: str, *args: str, timeout: float = 120, cwd: Path | None = None, memory: int | None = None
):
    """Run ``scripts/<name>`` in a fresh interpreter; returns the CompletedProcess.

    ``memory``: a cap in bytes on the child's address space (RLIMIT_AS), so that a probe
    that would exhaust memory fails with MemoryError instead of taking the machine.
    """
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or REPO,
        preexec_fn=None if memory is None else address_space_limited(memory),
    )


GIB = 1 << 30


def address_space_limited(limit: int):
    """A ``preexec_fn`` that caps a child's address space at ``limit`` bytes (RLIMIT_AS).

    Importing torch and Lightning fits in 1 GiB here; a probe's allocation past the cap
    raises MemoryError in the child, which a test sees as a traceback on stderr.
    """

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return limit_memory


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


def restamp_event_files_into_this_second(run_dir: Path) -> None:
    """Rename a run's event files as if written in this second by a counter that sorts last.

    TensorBoard reads a run's files in name order (``events.out.tfevents.<second>.<host>.<pid>.<n>``):
    a resume that opened its file in the same second would sort before these and be read first,
    so the resume must wait for a later second. (Not the next second: a name from a later second
    than the clock's is waited for one second at most, ``runs.layout.EVENT_WAIT_MAX_S``.)
    """
    second = int(time.time())
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


class _FailingFile:
    """A file object whose writes go through ``fault``; everything else is the real file's."""

    def __init__(self, file, fault: DiskFault) -> None:
        self._file, self._fault = file, fault

    def write(self, data):
        self._fault.before_write()
        return self._file.write(data)

    def __getattr__(self, name):
        return getattr(self._file, name)

    def __iter__(self):
        return iter(self._file)

    def __enter__(self):
        self._file.__enter__()
        return self

    def __exit__(self, *exc):
        return self._file.__exit__(*exc)


class DiskFault:
    """Writes to files whose path holds ``name`` fail with ``OSError(err_no)`` from the
    ``at_write``-th on, as a disk that fills (or fails) and stays so; ``writes`` counts them."""

    def __init__(self, err_no: int, name: str, at_write: int = 1) -> None:
        self.err_no, self.name, self.at_write = err_no, name, at_write
        self.writes, self.failed = 0, 0
        self._lock = threading.Lock()

    def before_write(self) -> None:
        with self._lock:  # TensorBoard writes from a thread of its own
            self.writes += 1
            if self.writes >= self.at_write:
                self.failed += 1
                raise OSError(self.err_no, os.strerror(self.err_no))


@contextlib.contextmanager
def disk_fault(err_no: int, name: str, at_write: int = 1):
    """Inside the block, ``DiskFault`` on every file opened for writing through ``open``/``io.open``.

    That is every Python writer here: ``os.fdopen`` (the atomic writer's temporary file) and
    TensorBoard's event writer (its thread appends through ``io.open``) call ``io.open``.
    No root, no mount: the error is raised where the operating system's would be.
    """
    fault, real_open = DiskFault(err_no, name, at_write), io.open

    def faulty_open(file, mode="r", *args, **kwargs):
        opened = real_open(file, mode, *args, **kwargs)
        if not any(c in mode for c in "wax+"):
            return opened
        path = os.readlink(f"/proc/self/fd/{file}") if isinstance(file, int) else os.fspath(file)
        return _FailingFile(opened, fault) if name in str(path) else opened

    with (
        unittest.mock.patch("io.open", faulty_open),
        unittest.mock.patch("builtins.open", faulty_open),
    ):
        yield fault


def file_size_limited(limit: int):
    """A ``preexec_fn`` that caps the files a child process writes at ``limit`` bytes (RLIMIT_FSIZE).

    A write past it fails with EFBIG (SIGXFSZ, which would kill the process, is ignored).
    """

    def limit_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limit_files


def script_main(name: str):
    """``scripts/<name>``'s ``main``, loaded in this process (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(Path(name).stem, REPO / "scripts" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


# what the suite imports; a pytest outside the project's environment has none of it
REQUIRED = ("numpy", "torch", "lightning", "torchmetrics", "tensorboard", "jsonargparse", "mlp_lightning")


def setup_problem(required: tuple[str, ...] = REQUIRED) -> str | None:
    """Why this Python cannot run the suite, in one line naming what is missing; None when it can."""
    missing = [name for name in required if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return (
        f"this Python ({sys.executable}) lacks {', '.join(missing)}: set up first, in a virtual "
        'environment: pip install "torch==2.13.0" -e ".[dev]" (the README\'s test command)'
    )


def repository_changes(root: Path = REPO) -> set[str] | None:
    """``git status --porcelain`` of ``root``, one entry a path: what is new or changed beside the commit
    (ignored paths, such as logs/ runs, not among them). None outside a git checkout."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=all"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return set(done.stdout.splitlines()) if done.returncode == 0 else None
