"""Kill a training script with SIGKILL at a chosen moment, then finish its run as a user would.

A moment is a trigger the test can see from outside (time since the start, the run directory
or a file appearing, the resumable checkpoint replaced for the n-th time, a checkpoint write in
progress, a line on stdout) plus a delay. After the kill, ``landed`` reads what the process left
on disk to say which phase it died in, and ``finish`` does what a user would do next: ``--resume``
if the run has a checkpoint, else start the same command again.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from mlp_lightning.runs.layout import CHECKPOINT_DIR, versions
from tests.helpers import REPO

POLL_S = 0.0002  # the watcher's poll interval: the trainers replace a checkpoint every few ms


@dataclass(frozen=True)
class Moment:
    """Kill ``delay`` seconds after ``trigger`` is seen, counted from the process's start.

    ``trigger``: ``"start"``; ``"run_dir"`` (the run directory exists); ``"events"`` (its
    event file exists); ``"save:<n>"`` (the checkpoint was replaced n times); ``"write:<n>"``
    (the n-th checkpoint write in progress: its temporary file is there); ``"file:<name>"``
    (``<run>/<name>`` exists); ``"stdout:<text>"`` (a line containing text was printed).
    """

    trigger: str
    delay: float = 0.0


@dataclass
class Kill:
    moment: Moment
    killed: bool  # False: the process had ended on its own before the moment came
    seconds: float  # from the start to the kill
    phase: str = ""


class _Stdout:
    """The child's stdout lines, read on a thread so a trigger can wait for one."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line)

    def seen(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def _temporary_files(checkpoint_dir: Path) -> list[str]:
    try:
        return [name for name in os.listdir(checkpoint_dir) if name.endswith(".tmp")]
    except FileNotFoundError:
        return []


def _fired(kind: str, arg: str, run_dir: Path, stdout: _Stdout, counts: dict[str, int]) -> bool:
    if kind in counts:
        return counts[kind] >= int(arg)
    if kind == "start":
        return True
    if kind == "run_dir":
        return run_dir.is_dir()
    if kind == "events":
        return run_dir.is_dir() and any(n.startswith("events.") for n in os.listdir(run_dir))
    if kind == "file":
        return (run_dir / arg).exists()
    if kind == "stdout":
        return stdout.seen(arg)
    raise ValueError(f"unknown trigger {kind!r}")


def run_and_kill(
    argv: list[str], run_dir: Path, checkpoint: str, moment: Moment, timeout: float = 120
) -> Kill:
    """Start ``python argv`` and SIGKILL it at ``moment``; ``run_dir`` is where its run will be."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, *argv], cwd=REPO, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    stdout = _Stdout(proc.stdout)
    kind, _, arg = moment.trigger.partition(":")
    ckpt_dir = run_dir / CHECKPOINT_DIR
    saves, writes, last_stamp, last_tmp = 0, 0, _stamp(ckpt_dir / checkpoint), set()
    try:
        while proc.poll() is None:
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"{argv} still running after {timeout} s")
            if kind == "save":
                stamp = _stamp(ckpt_dir / checkpoint)
                if stamp is not None and stamp != last_stamp:
                    saves, last_stamp = saves + 1, stamp
            elif kind == "write":
                tmp = set(_temporary_files(ckpt_dir))
                writes += len(tmp - last_tmp)
                last_tmp = tmp
            counts = {"save": saves, "write": writes}
            if _fired(kind, arg, run_dir, stdout, counts):
                deadline = time.monotonic() + moment.delay
                while proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(POLL_S)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    return Kill(moment, killed=True, seconds=time.monotonic() - start)
                break
            time.sleep(POLL_S)
        return Kill(moment, killed=False, seconds=time.monotonic() - start)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()


def landed(run_dir: Path, checkpoint: str, final_step: int, saved_step) -> str:
    """The phase a killed run died in, read from what it left (``saved_step(path)``: a checkpoint's step)."""
    if not run_dir.is_dir():
        return "start-up (nothing on disk)"
    path = run_dir / CHECKPOINT_DIR / checkpoint
    if _temporary_files(run_dir / CHECKPOINT_DIR):
        return "a checkpoint write (its temporary file left)"
    if not any(n.startswith("events.") for n in os.listdir(run_dir)):
        return "start-up (run directory claimed)"
    if not path.exists():
        return "training, before the first save"
    step = saved_step(path)
    return "training, after a save" if step < final_step else "the final save (done), run ending"


def next_command(logdir: Path, trainer: str, checkpoint: str, fresh: list[str], resume: list[str]):
    """What a user runs after a crash: ``resume`` if the newest run saved a checkpoint, else ``fresh``.

    Returns the command and the run directory it will finish.
    """
    found = versions(logdir / trainer)
    newest = logdir / trainer / f"version_{found[-1]}" if found else None
    if newest is not None and (newest / CHECKPOINT_DIR / checkpoint).exists():
        return resume, newest
    return fresh, logdir / trainer / f"version_{found[-1] + 1 if found else 0}"


def in_process(fit, parse):
    """``run`` for ``finish``: the trainer's ``fit`` in this process (no second import of torch), quietly."""

    def run(argv: list[str]) -> int:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
            try:
                return fit(parse(argv))
            except SystemExit as exit_:
                raise AssertionError(f"{argv}: exit {exit_.code}: {err.getvalue()}") from None

    return run
