"""One process per run: a second process on a held run is refused in one line naming the run and
the holder's pid (exit 2, nothing written); a holder that died never blocks the run's resume."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlp_lightning.cli import parse_numpy_args
from mlp_lightning.core.errors import RunInUse
from mlp_lightning.numpy_twin.train import fit as twin_fit
from mlp_lightning.runs.lock import hold_run
from tests.helpers import REPO, read_scalars, run_script, script_main

# 80 points: 64 train, 2 steps per epoch; a checkpoint every step
SMALL = ["--n_per_class", "40", "--batch_size", "32", "--max_epochs", "3", "--checkpoint_every_n_steps", "1"]

# a trainer that, after its first checkpoint, says so and waits for a line on stdin: a run held
# at a known point, without timing
HELD_AT_FIRST_SAVE = """
import sys
{patch}
real = module.{saver}
first = []

def save_then_wait(*args, **kwargs):
    real(*args, **kwargs)
    if not first:
        first.append(1)
        print("saved", flush=True)
        sys.stdin.readline()

module.{saver} = save_then_wait
sys.exit(fit(parse(sys.argv[1:])))
"""
TRAINERS = {
    "numpy": HELD_AT_FIRST_SAVE.format(
        patch="from mlp_lightning.cli import parse_numpy_args as parse\n"
        "from mlp_lightning.numpy_twin import checkpoint as module\n"
        "from mlp_lightning.numpy_twin.train import fit",
        saver="save_state",
    ),
    "lightning": HELD_AT_FIRST_SAVE.format(
        patch="from mlp_lightning.cli import parse_fit_args as parse\n"
        "from mlp_lightning.lightning import checkpoint_io as module\n"
        "from mlp_lightning.lightning.train import fit",
        saver="atomic_torch_save",
    ),
}
SCRIPTS = {"numpy": "baseline_numpy.py", "lightning": "fit.py"}


def start_held(trainer: str, logdir: Path) -> subprocess.Popen:
    """A run of ``trainer`` under ``logdir``, stopped after its first checkpoint until told to go on."""
    extra = ["--accelerator", "cpu"] if trainer == "lightning" else []
    proc = subprocess.Popen(
        [sys.executable, "-c", TRAINERS[trainer], "--logdir", str(logdir), *SMALL, *extra],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    assert proc.stdout.readline() == "saved\n", proc.stderr.read()
    return proc


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def in_use(run_dir: Path, pid: int) -> str:
    return (
        f"run {str(run_dir)!r} is in use by another process (pid {pid}): one process trains or "
        "writes in a run at a time; wait for it to end or stop it"
    )


def check_second_resume_refused_and_first_finishes(trainer: str, tmp_path: Path) -> None:
    first = start_held(trainer, tmp_path)
    run_dir = tmp_path / trainer / "version_0"
    try:
        before = snapshot(tmp_path)
        second = run_script(SCRIPTS[trainer], "--logdir", str(tmp_path), "--resume", str(run_dir))
        assert (second.returncode, second.stdout) == (2, "")
        assert second.stderr.splitlines() == [f"{SCRIPTS[trainer]}: error: {in_use(run_dir, first.pid)}"]
        assert snapshot(tmp_path) == before  # the second process wrote nothing
    finally:
        out, err = first.communicate("go\n", timeout=300)
    assert first.returncode == 0, err
    # the first run ended normally, alone: one event file, one point per epoch and tag
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
    assert {tag: len(points) for tag, points in read_scalars(run_dir).items()} == dict.fromkeys(
        ("train/loss", "train/acc", "val/loss", "val/acc", "epoch"), 3
    )


def test_a_second_twin_resume_of_a_run_in_training_is_refused_with_the_holders_pid(tmp_path):
    check_second_resume_refused_and_first_finishes("numpy", tmp_path)


@pytest.mark.slow  # two interpreters that import Lightning
def test_a_second_fit_resume_of_a_run_in_training_is_refused_with_the_holders_pid(tmp_path):
    check_second_resume_refused_and_first_finishes("lightning", tmp_path)


def test_export_and_compare_into_a_run_in_training_are_refused_and_write_nothing(tmp_path, capsys):
    done = tmp_path / "done"
    with contextlib.redirect_stdout(io.StringIO()):
        for _ in range(2):
            assert twin_fit(parse_numpy_args(["--logdir", str(done), *SMALL])) == 0
    finished = [done / "numpy" / "version_0", done / "numpy" / "version_1"]
    first = start_held("numpy", tmp_path / "held")
    run_dir = tmp_path / "held" / "numpy" / "version_0"
    try:
        before = snapshot(tmp_path)
        export = script_main("export_weights.py")([str(finished[0] / "weights.npz"), str(run_dir / "w.ckpt")])
        compare = script_main("compare.py")([*map(str, finished), "--out", str(run_dir)])
        assert (export, compare) == (2, 2)
        assert capsys.readouterr().err.splitlines() == [
            f"export_weights.py: error: {in_use(run_dir, first.pid)}",
            f"compare.py: error: {in_use(run_dir, first.pid)}",
        ]
        assert snapshot(tmp_path) == before
    finally:
        first.communicate("go\n", timeout=300)
    assert first.returncode == 0


def test_a_run_whose_holder_was_killed_resumes_at_once(tmp_path):
    first = start_held("numpy", tmp_path)
    first.send_signal(signal.SIGKILL)  # no chance to clean up: the kernel releases the lock
    first.communicate(timeout=60)
    with contextlib.redirect_stdout(io.StringIO()):
        assert twin_fit(parse_numpy_args(["--logdir", str(tmp_path), "--resume"])) == 0
    assert (tmp_path / "numpy" / "version_0" / "weights.npz").is_file()


def test_a_held_run_is_refused_even_to_another_holder_in_the_same_process(tmp_path):
    with hold_run(tmp_path), pytest.raises(RunInUse) as refused, hold_run(tmp_path):
        pass
    assert str(refused.value) == in_use(tmp_path, os.getpid())
    with hold_run(tmp_path):  # released when the block ends
        pass
