"""What the two scripts print: whole lines from the first column, in a terminal or a log, one epoch count.

Off a terminal (a CI log, nohup, ``| tee``) neither script draws a progress bar, so no carriage
return reaches the output; in a terminal the summary lines and the stop message are written from
the first column of a line of their own, and the bar counts epochs from 1 as they do.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import lightning as L
import pytest
import tqdm

from mlp_lightning.cli import parse_fit_args, parse_numpy_args
from mlp_lightning.core.report import resuming_line
from mlp_lightning.numpy_twin import train as twin_train
from tests.helpers import REPO

# 80 points -> 64 train -> 4 batches of 16 per epoch
SMALL = ("--n_per_class", "40", "--batch_size", "16")
STEPS_PER_EPOCH = 4
SUMMARY = re.compile(r"epoch \d{2} \| train loss \S+ acc \S+ \| val loss \S+ acc \S+")
SCRIPTS = {
    "fit.py": ("lightning", "last.ckpt", ["--accelerator", "cpu"]),
    "baseline_numpy.py": ("numpy", "last.npz", []),
}


def _start(script: str, logdir: Path, **popen) -> tuple[subprocess.Popen, Path]:
    """A run long enough to be stopped: a checkpoint after every step, far more epochs than it lives."""
    trainer, checkpoint, flags = SCRIPTS[script]
    cmd = [sys.executable, str(REPO / "scripts" / script), *flags, *SMALL, "--max_epochs", "100000"]
    cmd += ["--checkpoint_every_n_steps", "1", "--logdir", str(logdir)]
    proc = subprocess.Popen(cmd, cwd=REPO, **popen)
    return proc, logdir / trainer / "version_0" / "checkpoints" / checkpoint


@pytest.mark.slow
@pytest.mark.parametrize("script", list(SCRIPTS))
def test_a_run_stopped_by_sigint_off_a_terminal_prints_whole_lines_without_carriage_returns(tmp_path, script):
    proc, checkpoint = _start(script, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "\r" not in out and "\r" not in err
    assert all(SUMMARY.fullmatch(line) for line in out.splitlines()), out[-2000:]
    stop, resume = err.splitlines()
    how_far = r"\d+ epochs? and \d+ steps? done"  # as the resume line says it
    assert re.match(rf"{re.escape(script)}: stopped by SIGINT with {how_far}; ", stop), err
    assert resume.startswith(f"resume with: python scripts/{script} --resume ")


def _run_in_a_terminal(cmd: list[str], stop_after: bytes, timeout: float = 120) -> tuple[int, str]:
    """Run ``cmd`` with a terminal as stdin, stdout and stderr; SIGINT once ``stop_after`` was printed."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    proc = subprocess.Popen(cmd, cwd=REPO, stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    out, sent, deadline = b"", False, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([leader], [], [], 0.1)[0]:
                try:
                    chunk = os.read(leader, 1 << 16)
                except OSError:  # the terminal closed: every process that held it has exited
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
            if not sent and stop_after in out:
                proc.send_signal(signal.SIGINT)
                sent = True
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return proc.returncode, out.decode(errors="replace")


def _starts_a_line(text: str, pattern: str) -> list[bool]:
    """For each place ``pattern`` is printed: whether it starts at the first column (after \\n or \\r)."""
    return [m.start() == 0 or text[m.start() - 1] in "\r\n" for m in re.finditer(pattern, text)]


@pytest.mark.slow
@pytest.mark.parametrize("script", list(SCRIPTS))
def test_in_a_terminal_the_bar_counts_from_1_and_summaries_and_the_stop_message_start_their_own_line(
    tmp_path, script
):
    trainer, _, flags = SCRIPTS[script]
    cmd = [sys.executable, str(REPO / "scripts" / script), *flags, *SMALL, "--max_epochs", "100000"]
    # a 100000-epoch run reports every 3575 epochs after the first (at most 30 lines): stop after it
    code, out = _run_in_a_terminal([*cmd, "--logdir", str(tmp_path)], stop_after=b"epoch 01 |")
    assert code == 130, out[-2000:]
    assert "Epoch 1/100000" in out and "Epoch 0" not in out  # the bar was drawn, counting from 1
    summaries = _starts_a_line(out, SUMMARY.pattern)
    assert len(summaries) >= 1 and all(summaries), out[-3000:]
    assert _starts_a_line(out, rf"{re.escape(script)}: stopped by SIGINT") == [True], out[-3000:]
    assert _starts_a_line(out, "resume with: ") == [True]


class BarRecord(L.Callback):
    """The Lightning bar's description and count at the start of the training and before each batch."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, int | None]] = []

    def _record(self, trainer) -> None:
        bar = trainer.progress_bar_callback.train_progress_bar
        self.seen.append((bar.desc.removesuffix(": "), bar.n, bar.total))

    def on_train_start(self, trainer, pl_module) -> None:
        self._record(trainer)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._record(trainer)


class StopAt(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.global_step + 1 == self.step:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C: the run stops after this step


def fit_lightning(logdir: Path, *flags: str, callbacks=()) -> int:
    from mlp_lightning.lightning.train import fit

    argv = ["--accelerator", "cpu", *SMALL, "--logdir", str(logdir), *flags]
    return fit(parse_fit_args(argv), callbacks=callbacks)


def test_lightning_bar_names_each_epoch_from_1_of_max_epochs(tmp_path, capsys):
    record = BarRecord()
    assert fit_lightning(tmp_path, "--max_epochs", "3", callbacks=[record]) == 0
    per_batch = [desc for desc, _, _ in record.seen[1:]]
    assert per_batch == [f"Epoch {e}/3" for e in (1, 2, 3) for _ in range(STEPS_PER_EPOCH)]
    assert record.seen[0] == ("Epoch 1/3", 0, STEPS_PER_EPOCH)


def test_lightning_bar_of_an_epoch_resumed_part_way_shows_that_epoch_and_its_batches_done(tmp_path, capsys):
    assert fit_lightning(tmp_path, "--max_epochs", "3", callbacks=[StopAt(step=6)]) == 130
    capsys.readouterr()
    record = BarRecord()
    assert fit_lightning(tmp_path, "--resume", callbacks=[record]) == 0
    # step 6 is the 2nd batch of epoch 2: the bar goes on from there, in epoch 2 of 3
    assert record.seen[0] == ("Epoch 2/3", 2, STEPS_PER_EPOCH)
    assert [desc for desc, _, _ in record.seen[1:]] == ["Epoch 2/3"] * 2 + ["Epoch 3/3"] * STEPS_PER_EPOCH
    run_dir = tmp_path / "lightning" / "version_0"
    first = capsys.readouterr().out.splitlines()[0]
    assert (
        first == f"resuming {run_dir} from {run_dir / 'checkpoints' / 'last.ckpt'} (1 epoch and 6 steps done)"
    )


class _Descriptions:
    """Replaces tqdm's bar for the twin, keeping every description it is given."""

    def __init__(self, monkeypatch) -> None:
        self.seen: list[str] = []
        seen = self.seen

        class Bar(tqdm.tqdm):
            def __init__(self, *args, **kwargs) -> None:
                seen.append(kwargs.get("desc"))
                super().__init__(*args, **kwargs)

            def set_description(self, desc=None, refresh=True) -> None:
                seen.append(desc)
                super().set_description(desc, refresh)

        monkeypatch.setattr(tqdm, "tqdm", Bar)


def fit_twin(logdir: Path, *flags: str) -> int:
    return twin_train.fit(parse_numpy_args([*SMALL, "--logdir", str(logdir), *flags]))


def test_twin_bar_names_the_epoch_it_counts_from_1_of_max_epochs(tmp_path, monkeypatch, capsys):
    bar = _Descriptions(monkeypatch)
    assert fit_twin(tmp_path, "--max_epochs", "3") == 0
    assert bar.seen == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]


def test_twin_announces_a_resume_as_fit_does_and_its_bar_goes_on_in_that_epoch(tmp_path, monkeypatch, capsys):
    calls = []
    original = twin_train.train_step

    def train_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 6:
            os.kill(os.getpid(), signal.SIGINT)  # stops after step 6, the 2nd of epoch 2
        return original(*args, **kwargs)

    monkeypatch.setattr(twin_train, "train_step", train_step)
    assert fit_twin(tmp_path, "--max_epochs", "3") == 130
    monkeypatch.setattr(twin_train, "train_step", original)
    capsys.readouterr()
    bar = _Descriptions(monkeypatch)
    assert fit_twin(tmp_path, "--resume") == 0
    run_dir = tmp_path / "numpy" / "version_0"
    checkpoint = run_dir / "checkpoints" / "last.npz"
    assert capsys.readouterr().out.splitlines()[0] == resuming_line(run_dir, checkpoint, 1, 6)
    assert resuming_line(run_dir, checkpoint, 1, 6) == (
        f"resuming {run_dir} from {checkpoint} (1 epoch and 6 steps done)"
    )
    assert bar.seen == ["Epoch 2/3", "Epoch 3/3"]


def test_a_multi_process_trainer_is_announced_once_with_its_process_count_strategy_and_accelerator():
    from mlp_lightning.lightning.launch import processes_line

    def trainer(**flags) -> L.Trainer:
        return L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, **flags)

    assert (
        processes_line(trainer(devices=2))
        == "fit.py: training on 2 processes (strategy ddp, accelerator cpu)"
    )
    spawn = trainer(devices=3, strategy="ddp_spawn")
    assert processes_line(spawn) == "fit.py: training on 3 processes (strategy ddp_spawn, accelerator cpu)"
    assert processes_line(trainer(devices=1)) is None
