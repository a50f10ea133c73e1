"""Runs a multi-process launch (fit.py under DDP, torchrun) and makes sure none of its processes outlives it.

Every process of a launch carries a unique marker in its environment, which
Lightning's launcher and torchrun both pass on to the processes they start. That
finds them all, even torchrun's workers (each in a session of its own) and
children orphaned by a parent that died, which a process-group kill would miss.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIT = str(REPO / "scripts" / "fit.py")
_MARKER = "MLP_LIGHTNING_TEST_LAUNCH"


def marked_pids(tag: str) -> list[int]:
    """Live processes whose environment carries ``tag`` (this machine, this user)."""
    needle = f"{_MARKER}={tag}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # exited meanwhile, or not ours to read
        if state != "Z" and needle in environ.split(b"\0"):
            found.append(int(entry))
    return found


def launch(
    cmd: list[str], timeout: float, env: dict[str, str] | None = None
) -> tuple[int, str, str, list[int]]:
    """Run ``cmd`` to the end or ``timeout``; return (exit code, stdout, stderr, processes left behind).

    Whatever the outcome, every process of the launch is killed before returning, so
    a hung rank cannot outlive the test; the survivors listed are those found when
    the launcher itself had finished, for the test to assert on.
    """
    tag = uuid.uuid4().hex
    env = {**os.environ, **(env or {}), _MARKER: tag, "PYTHONUNBUFFERED": "1"}
    env.pop("MLP_LIGHTNING_RUN_VERSION", None)  # a fresh launch claims its own run directory
    pipe = subprocess.PIPE
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=pipe, stderr=pipe, text=True, start_new_session=True
    )
    survivors: list[int] = []
    try:
        out, err = proc.communicate(timeout=timeout)
        deadline = time.monotonic() + 5  # ranks may take a moment to exit after the launcher
        while (survivors := marked_pids(tag)) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        for pid in marked_pids(tag):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err, survivors


def fit_cmd(*args: str) -> list[str]:
    return [sys.executable, FIT, "--accelerator", "cpu", *args]
