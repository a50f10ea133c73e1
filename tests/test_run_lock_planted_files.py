"""A run's lock file is opened in the run alone, never through a symbolic link, and only if it is a
regular file of this account; anything else is refused in one line (exit 2) and left as it was."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlp_lightning.core.errors import RunError, RunInUse
from mlp_lightning.runs.layout import CHECKPOINT_DIR
from mlp_lightning.runs.lock import hold_run, hold_run_of
from tests.helpers import REPO, script_main

VICTIM = b"a file outside the run\n"
OTHER_UID = 65534  # nobody
as_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="another account is simulated with root's chown/setuid"
)


def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim.txt"
    path.write_bytes(VICTIM)
    return path


def refusal(run_dir: Path, what: str) -> str:
    return (
        f"run {str(run_dir)!r} cannot be locked: its .lock is {what}; "
        "a run's lock file must be a regular file of the account that trains in it"
    )


def test_a_lock_linked_to_a_file_outside_is_refused_and_the_file_is_unchanged(tmp_path):
    target = victim(tmp_path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".lock").symlink_to(target)
    with pytest.raises(RunError) as refused, hold_run(run_dir):
        pass
    assert str(refused.value) == refusal(run_dir, "a symbolic link, never followed in a run")
    assert target.read_bytes() == VICTIM


def test_a_dangling_lock_link_creates_nothing(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".lock").symlink_to(tmp_path / "created-by-the-lock")
    with pytest.raises(RunError), hold_run(run_dir):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_lock_link_in_a_parent_folder_of_the_run_is_never_touched(tmp_path):
    target = victim(tmp_path)
    outer = tmp_path / "outer"
    (outer / "inner").mkdir(parents=True)
    (outer / ".lock").symlink_to(target)
    (tmp_path / ".lock").symlink_to(target)
    with hold_run_of(outer / "inner" / "w.npz"):  # no run here: nothing held, nothing opened
        assert not os.path.lexists(outer / "inner" / ".lock")
    assert target.read_bytes() == VICTIM


def test_a_file_in_a_runs_checkpoints_folder_holds_that_run(tmp_path):
    (tmp_path / CHECKPOINT_DIR).mkdir()
    with hold_run(tmp_path), pytest.raises(RunInUse), hold_run_of(tmp_path / CHECKPOINT_DIR / "x.ckpt"):
        pass


@pytest.mark.parametrize("kind", ["directory", "FIFO"])
def test_a_lock_that_is_not_a_regular_file_is_refused_in_one_line_with_exit_2(tmp_path, capsys, kind):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    os.mkdir(run_dir / ".lock") if kind == "directory" else os.mkfifo(run_dir / ".lock")
    weights = tmp_path / "w.npz"
    weights.write_bytes(b"")
    dst = run_dir / "w.ckpt"
    assert script_main("export_weights.py")([str(weights), str(dst)]) == 2
    what = f"a {kind}, not a regular file"
    assert capsys.readouterr().err.splitlines() == [f"export_weights.py: error: {refusal(run_dir, what)}"]
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]


@as_root
def test_a_lock_owned_by_another_account_is_refused_naming_its_uid(tmp_path):
    (tmp_path / ".lock").write_bytes(b"        42\n")
    os.chown(tmp_path / ".lock", OTHER_UID, OTHER_UID)
    with pytest.raises(RunError) as refused, hold_run(tmp_path):
        pass
    assert str(refused.value) == refusal(
        tmp_path, f"another user's file (uid {OTHER_UID}; this account is uid 0)"
    )
    assert (tmp_path / ".lock").read_bytes() == b"        42\n"


def hold_as_another_account(fd: int) -> tuple[int, int, int]:
    """A forked child, switched to OTHER_UID, that takes the lock on ``fd`` (open for reading only).

    Only system calls in the child, no interpreter to start: its pid, and the pipes that say it
    holds the lock and tell it to end.
    """
    held_r, held_w = os.pipe()
    end_r, end_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.setgid(OTHER_UID)
            os.setuid(OTHER_UID)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(held_w, b"held")
            os.read(end_r, 1)
        finally:
            os._exit(0)
    os.close(held_w)
    os.close(end_r)
    return pid, held_r, end_w


@as_root
def test_a_lock_another_account_holds_is_named_as_that_accounts_and_not_the_pid_in_the_file(tmp_path):
    lock = tmp_path / ".lock"
    lock.write_bytes(b"         1\n")  # the pid of a run long gone
    fd = os.open(lock, os.O_RDONLY)  # what read access alone allowed while a lock file was 0o644
    pid, held, end = hold_as_another_account(fd)
    try:
        assert os.read(held, 4) == b"held"
        with pytest.raises(RunInUse) as refused, hold_run(tmp_path):
            pass
    finally:
        os.write(end, b"x")
        os.waitpid(pid, 0)
        for descriptor in (fd, held, end):
            os.close(descriptor)
    assert str(refused.value) == (
        f"run {str(tmp_path)!r} is in use by another user's process (pid {pid}, uid {OTHER_UID}): "
        "one process trains or writes in a run at a time; wait for it to end or ask its owner to stop it"
    )


def test_a_new_run_directory_and_its_lock_are_writable_by_their_owner_alone_under_umask_0(tmp_path):
    code = (
        "import os, sys\nos.umask(0)\n"
        "from mlp_lightning.runs.layout import claim_run_dir\nfrom mlp_lightning.runs.lock import hold_run\n"
        "run_dir, _ = claim_run_dir(sys.argv[1], 'numpy')\nwith hold_run(run_dir):\n    pass\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, cwd=REPO)
    run_dir = tmp_path / "numpy" / "version_0"
    assert (run_dir.stat().st_mode & 0o777, (run_dir / ".lock").stat().st_mode & 0o777) == (0o755, 0o600)


def test_an_older_lock_file_open_to_others_is_made_owner_only_when_held(tmp_path):
    (tmp_path / ".lock").write_bytes(b"")
    (tmp_path / ".lock").chmod(0o666)
    with hold_run(tmp_path):
        pass
    assert (tmp_path / ".lock").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("planted", [CHECKPOINT_DIR, "events.out.tfevents.1700000000.host.4242.0"])
def test_a_run_with_a_link_where_it_writes_is_refused_and_the_target_unchanged(tmp_path, planted):
    outside = tmp_path / "outside"
    outside.mkdir()
    target = victim(outside)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / planted).symlink_to(outside if planted == CHECKPOINT_DIR else target)
    with pytest.raises(RunError) as refused, hold_run(run_dir):
        pass
    assert str(refused.value) == (
        f"run {str(run_dir)!r} holds a symbolic link where it is written ({planted!r}): "
        "nothing is written outside a run; remove the link"
    )
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"]
    assert target.read_bytes() == VICTIM
    (run_dir / planted).unlink()  # the refusal released the lock: the run can be held at once
    with hold_run(run_dir):
        pass
