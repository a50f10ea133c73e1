"""One process per run: the process training in a run directory holds its lock file.

An advisory ``flock`` on ``<run>/.lock``: the kernel releases it when the holder's file is
closed or the holder dies, however it dies, so a crashed run never blocks its own resume.
The holder writes its pid into the file, for the message that refuses a second process.
Under DDP only the process that claims the run (global rank 0) holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from mlp_lightning.core.errors import RunInUse, WriteFailed
from mlp_lightning.runs.layout import LOCK_FILE


@contextlib.contextmanager
def hold_run(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir`` inside the block; RunInUse (exit 2) if another live process holds it."""
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise WriteFailed(path, err) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunInUse(
                f"run {str(run_dir)!r} is in use by another process (pid {_holder(path)}): "
                "one process trains or writes in a run at a time; wait for it to end or stop it"
            ) from None
        with contextlib.suppress(OSError):  # the pid only serves a message: a full disk must not stop the run
            os.pwrite(fd, f"{os.getpid():>10}\n".encode(), 0)  # one width: never a mix of two pids
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def hold_run_of(path: Path) -> Iterator[None]:
    """Hold the run directory ``path`` lies in (a file a script writes there), if it lies in one."""
    here = Path(os.path.abspath(path))
    run_dir = next((d for d in here.parents if (d / LOCK_FILE).is_file()), None)
    if run_dir is not None and not Path(path).is_absolute():
        run_dir = Path(os.path.relpath(run_dir))  # named in messages as the user named it
    with hold_run(run_dir) if run_dir is not None else contextlib.nullcontext():
        yield


def unchanged_since(path: Path) -> Callable[[], bool]:
    """A check that ``path`` is still the file it is now (same inode, size and modification time).

    A resume reads its checkpoint before taking the run's lock (a refused resume writes
    nothing); if the holder saved it again and ended meanwhile, the resume reads it again.
    """

    def stamp() -> tuple[int, int, int] | None:
        with contextlib.suppress(OSError):
            st = os.stat(path)
            return st.st_ino, st.st_size, st.st_mtime_ns
        return None

    before = stamp()
    return lambda: stamp() == before


def _holder(path: Path) -> str:
    """The pid the holder wrote into the lock file, or "unknown"."""
    with contextlib.suppress(OSError, ValueError):
        return str(int(path.read_text().strip()))
    return "unknown"
