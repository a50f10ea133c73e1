"""One process per run: the process training in a run directory holds its lock file.

An advisory ``flock`` on ``<run>/.lock``: the kernel releases it when the holder's file is
closed or the holder dies, however it dies, so a crashed run never blocks its own resume.
The holder writes its pid into the file, for the message that refuses a second process.
Under DDP only the process that claims the run (global rank 0) holds it.

A run may come from someone else, so the lock file is opened through ``no_follow``: never
through a symbolic link, and refused (exit 2) unless it is a regular file of this account; only
the run directory itself is searched, never its parents. Modes, whatever the umask allows:
``.lock`` is 0o600, so no other account can open it and take the lock; a run directory drops
the write bits of group and others (``layout.RUN_DIR_MODE``), so no other account can plant or
swap a link in it, while a TensorBoard served by another account can still read it. The holder
is found in ``/proc/locks`` (the file's pid is its fallback), so a lock another account holds is
named as such.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from mlp_lightning.core.errors import RunError, RunInUse, WriteFailed
from mlp_lightning.runs.layout import CHECKPOINT_DIR, LOCK_FILE
from mlp_lightning.runs.no_follow import UnsafeFile, open_own_file, planted_links

LOCK_MODE = 0o600


@contextlib.contextmanager
def hold_run(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir`` inside the block; RunInUse (exit 2) if another live process holds it.

    RunError (exit 2) if its lock file is not a regular file of this account, or if the run
    holds a symbolic link where it is written (``no_follow.planted_links``).
    """
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = open_own_file(path, os.O_RDWR | os.O_CREAT, LOCK_MODE)
    except UnsafeFile as err:
        raise RunError(
            f"run {str(run_dir)!r} cannot be locked: its {LOCK_FILE} is {err.strerror}; "
            "a run's lock file must be a regular file of the account that trains in it"
        ) from None
    except OSError as err:
        raise WriteFailed(path, err) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunInUse(in_use_message(run_dir, fd)) from None
        if links := ", ".join(map(repr, planted_links(run_dir))):
            raise RunError(
                f"run {str(run_dir)!r} holds a symbolic link where it is written ({links}): "
                "nothing is written outside a run; remove the link"
            )
        with contextlib.suppress(OSError):  # an older lock file, made 0o644 (only its owner can)
            os.fchmod(fd, LOCK_MODE)
        with contextlib.suppress(OSError):  # the pid only serves a message: a full disk must not stop the run
            os.pwrite(fd, f"{os.getpid():>10}\n".encode(), 0)  # one width: never a mix of two pids
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def hold_run_of(path: Path) -> Iterator[None]:
    """Hold the run directory a file a script writes lies in, if it lies in one.

    Only the file's own directory is a candidate, or, for a file in a run's ``checkpoints/``,
    that run: a ``.lock`` in a folder further up is none of this file's business.
    """
    directory = Path(path).parent
    candidates = [directory, directory.parent] if directory.name == CHECKPOINT_DIR else [directory]
    run_dir = next((d for d in candidates if os.path.lexists(d / LOCK_FILE)), None)
    with hold_run(run_dir) if run_dir is not None else contextlib.nullcontext():
        yield


def in_use_message(run_dir: Path, fd: int) -> str:
    """Who holds the lock on ``fd``'s file: its pid, and its uid where that is another account."""
    pid, uid = _holder(fd)
    if uid is not None and uid != os.geteuid():
        return (
            f"run {str(run_dir)!r} is in use by another user's process (pid {pid}, uid {uid}): "
            "one process trains or writes in a run at a time; wait for it to end or ask its owner to stop it"
        )
    return (
        f"run {str(run_dir)!r} is in use by another process (pid {pid}): one process trains or "
        "writes in a run at a time; wait for it to end or stop it"
    )


def _holder(fd: int) -> tuple[str, int | None]:
    """The holder's pid and uid from ``/proc/locks``; else the pid written in the file, uid unknown."""
    st = os.fstat(fd)
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    with contextlib.suppress(OSError, ValueError), open("/proc/locks") as locks:
        for line in locks:  # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:5678 0 EOF"; "->" marks a waiter
            fields = line.split()
            if fields[1:2] == ["FLOCK"] and fields[5:6] == [inode]:
                pid = int(fields[4])
                return str(pid), os.stat(f"/proc/{pid}").st_uid
    with contextlib.suppress(OSError, ValueError):
        return str(int(os.pread(fd, 32, 0).decode().strip())), None
    return "unknown", None


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
