"""A sweep stops cleanly: its runs end with it however it ends, a Ctrl-C never reports a run as failed,
the next sweep finishes what is left, and a line says which runs train while they do."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlp_lightning.analysis import sweep as analysis_sweep
from mlp_lightning.analysis.sweep import LiveLine, training_line
from mlp_lightning.cli import parse_numpy_args, parse_sweep_args
from mlp_lightning.numpy_twin import train as twin_train
from mlp_lightning.runs.sweep import Combination, Job
from tests.helpers import REPO

SCRIPTS = REPO / "scripts"
TINY = ("--n_per_class", "8", "--batch_size", "16", "--max_epochs", "2")


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie that no one reaped has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_sweep_killed_with_sigkill_takes_its_runs_with_it_and_leaves_them_resumable(tmp_path):
    long = ("--n_per_class", "40", "--batch_size", "8", "--max_epochs", "100000")
    argv = ["--trainers", "numpy", "--seed", "0", *long, "--logdir", str(tmp_path), "--jobs", "1"]
    sweep = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "sweep.py"), *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    children = Path(f"/proc/{sweep.pid}/task/{sweep.pid}/children")
    checkpoint = tmp_path / "numpy" / "version_0" / "checkpoints" / "last.npz"
    deadline = time.monotonic() + 120
    while not checkpoint.is_file() and time.monotonic() < deadline:  # training: saved at step 500
        time.sleep(0.05)
    (run,) = [int(pid) for pid in children.read_text().split()]
    sweep.kill()
    sweep.wait()
    deadline = time.monotonic() + 60
    while _alive(run) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(run), "the run outlived the sweep that was killed"
    out = subprocess.run(
        [sys.executable, str(SCRIPTS / "sweep.py"), *argv, "--print_commands"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "--resume" in out.stdout, out  # it saved its checkpoint as it stopped


def test_ctrl_c_reports_each_run_as_finished_stopped_or_not_started_and_the_next_sweep_finishes(
    tmp_path, monkeypatch, capsys
):
    argv = ["--trainers", "numpy", "--seed", "0", "1", "2", *TINY, "--logdir", str(tmp_path)]
    args = parse_sweep_args(argv)

    def stopped_pool(jobs, logdir, scripts, processes, on_done, on_progress=None) -> int:
        """Ctrl-C as the first run had finished and exited by the signal, the second was still starting."""
        first, second, _ = jobs
        seed = dict(first.combination.flags)["seed"]
        assert twin_train.fit(parse_numpy_args([*TINY, "--seed", seed, "--logdir", str(logdir)])) == 0
        on_done(first, -signal.SIGINT, 1.0, "open it with: tensorboard --logdir /tmp/x", True)
        on_done(second, -signal.SIGINT, 0.1, "KeyboardInterrupt", True)
        return 130

    with monkeypatch.context() as patch:
        patch.setattr(analysis_sweep, "run_pool", stopped_pool)
        assert analysis_sweep.run_sweep(args, SCRIPTS) == 130
    out = capsys.readouterr().out
    assert "failed" not in out, out
    first, second = [line for line in out.splitlines() if line.startswith("[")]
    assert first.startswith("[1/3] numpy seed=0 ") and ": val loss " in first, out
    assert second.startswith("[2/3] numpy seed=1 ") and second.endswith(
        ": not started (no checkpoint); the same sweep command starts it"
    ), out
    assert "(1 finished, 0 stopped, 2 not started)" in out
    assert analysis_sweep.run_sweep(args, SCRIPTS) == 0
    again = capsys.readouterr().out
    assert "1 finished already, 0 to resume, 2 to start" in again and "failed" not in again


def _job(seed: int, resume: Path | None = None) -> Job:
    return Job("numpy", Combination((("seed", str(seed)),), {"max_epochs": 30}), resume=resume)


def test_the_live_line_names_each_run_in_progress_and_its_last_reported_epoch():
    printed = {_job(0): "epoch 01 | ...\nepoch 05 | ...\n", _job(1): "", _job(2, Path("x")): "resuming x\n"}
    assert training_line(printed) == (
        "training: numpy seed=0 (epoch 5/30), numpy seed=1 (starting), numpy seed=2 (resuming)"
    )


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_live_line_is_redrawn_on_a_terminal_and_off_one_is_plain_lines_only():
    plain, terminal = LiveLine(io.StringIO()), LiveLine(_Terminal())
    for epochs in ("", "epoch 01 | ...\n"):
        for live in (plain, terminal):
            live.show({_job(0): epochs})
    terminal.clear()
    assert "\r" not in plain.stream.getvalue()
    assert plain.stream.getvalue() == "training: numpy seed=0 (starting)\n"  # again within PLAIN_S: not shown
    assert terminal.stream.getvalue().count("\r\x1b[K") == 3 and "\n" not in terminal.stream.getvalue()
    assert "numpy seed=0 (epoch 1/30)" in terminal.stream.getvalue()


def test_a_sweep_off_a_terminal_prints_which_runs_train(tmp_path):
    argv = ["--trainers", "numpy", "--seed", "0", *TINY, "--logdir", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "sweep.py"), *argv], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "training: numpy seed=0 " in done.stdout and "\r" not in done.stdout
