"""Nothing the project writes into a run lands outside it: no symbolic link there is followed.

A run directory may come from someone else (an archive, a shared disk). A symbolic link planted
where the project writes (``.lock``, ``metrics.csv``, ``checkpoints/``, an event file) would send
the write to any file the user can write; as root, to any file on the machine. A file written
whole is safe already: ``atomic_write_bytes`` renames over a link, never through it. A file
opened in place is opened by ``open_own_file``, with ``O_NOFOLLOW``, and kept only if ``fstat``
of the open descriptor says it is a regular file of this account: the check is of the file
opened, not of a name that could change between a check and the open.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from mlp_lightning.runs.layout import CHECKPOINT_DIR, EVENT_FILES

# a FIFO or a device must not block the open; O_NONBLOCK changes nothing for a regular file
FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


class UnsafeFile(OSError):
    """A file in a run that is not a regular file of this account; ``strerror`` says what it is instead."""


def open_own_file(path: Path, flags: int, mode: int = 0o600) -> int:
    """``os.open(path, flags, mode)`` of a regular file this account owns, never through a link.

    UnsafeFile if ``path`` is a symbolic link (a dangling one creates nothing), not a regular
    file, or another user's; any other refusal is the OSError ``os.open`` raised.
    """
    try:
        fd = os.open(path, flags | FLAGS, mode)
    except OSError as err:
        if err.errno == errno.ELOOP and os.path.islink(path):  # the name only words the message
            raise UnsafeFile(errno.ELOOP, "a symbolic link, never followed in a run") from None
        if err.errno == errno.EISDIR:
            raise UnsafeFile(errno.EISDIR, "a directory, not a regular file") from None
        raise
    st = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(st.st_mode):
        problem = f"{KINDS.get(stat.S_IFMT(st.st_mode), 'a special file')}, not a regular file"
    elif st.st_uid != os.geteuid():
        problem = f"another user's file (uid {st.st_uid}; this account is uid {os.geteuid()})"
    if problem is not None:
        os.close(fd)
        raise UnsafeFile(errno.EINVAL, problem)
    return fd


def planted_links(run_dir: Path) -> list[str]:
    """The names in ``run_dir`` that the project writes through and that are symbolic links.

    ``checkpoints/`` would take the checkpoints out of the run; TensorBoard's writer reopens its
    event file by name at every flush, so a link with that name would be written through.
    """
    run_dir = Path(run_dir)
    names = [CHECKPOINT_DIR] if (run_dir / CHECKPOINT_DIR).is_symlink() else []
    return names + sorted(p.name for p in run_dir.glob(EVENT_FILES) if p.is_symlink())
