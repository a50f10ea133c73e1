"""Interrupt a Lightning run anywhere, resume it, and get the uninterrupted run's numbers bit for bit.

The runs are in-process (importing Lightning per subprocess costs seconds) and the
interrupts are real signals sent to this process at an exact point of training:
mid-batch (before an optimizer step) or during the epoch's validation.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import lightning as L
import pytest
import torch

from mlp_lightning.cli import parse_fit_args
from mlp_lightning.lightning.checkpoint_io import PROJECT_KEY
from mlp_lightning.lightning.train import fit
from mlp_lightning.runs.interrupt import StopRequest
from tests.helpers import (
    metrics_csv_scalars,
    read_scalars,
    restamp_event_files_into_this_second,
    run_script,
)

# 80 points -> 64 train -> 4 batches of 16 per epoch, 12 optimizer steps in all
SMALL = ("--accelerator", "cpu", "--n_per_class", "40", "--batch_size", "16", "--max_epochs", "3")
STEPS_PER_EPOCH = 4


class SignalAt(L.Callback):
    """Sends ``signum`` to this process during optimizer step ``step`` (1-based) or a validation."""

    def __init__(self, signum: int, step: int | None = None, validation_after_step: int | None = None):
        self.signum, self.step, self.validation_after_step = signum, step, validation_after_step

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.global_step + 1 == self.step:
            os.kill(os.getpid(), self.signum)  # mid-batch: the step must still complete

    def on_validation_start(self, trainer, pl_module) -> None:
        if trainer.global_step == self.validation_after_step:
            os.kill(os.getpid(), self.signum)


def run(logdir: Path, *flags: str, callbacks=()) -> int:
    return fit(parse_fit_args(["--logdir", str(logdir), *flags]), callbacks=callbacks)


def final_state(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def assert_same_training_state(a: dict, b: dict) -> None:
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for name in a["state_dict"]:
        assert torch.equal(a["state_dict"][name], b["state_dict"][name]), name
    assert a["optimizer_states"] == b["optimizer_states"]
    assert a["global_step"] == b["global_step"]
    # no RNG state: the masks are the run's stream, a pure function of (seed, epoch, point)
    assert a[PROJECT_KEY]["ranks"][0].keys() == b[PROJECT_KEY]["ranks"][0].keys() == {"metrics"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run: its TensorBoard scalars and its final checkpoint."""
    logdir = tmp_path_factory.mktemp("reference")
    assert run(logdir, *SMALL) == 0
    run_dir = logdir / "lightning" / "version_0"
    return read_scalars(run_dir), final_state(run_dir)


SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    ("where", "signum", "kwargs"),
    [
        ("mid_epoch", signal.SIGINT, {"step": 6}),
        # the other moments: the slow suite (pytest -m slow)
        pytest.param("last_batch_of_an_epoch", signal.SIGTERM, {"step": STEPS_PER_EPOCH}, marks=SLOW),
        pytest.param(
            "epoch_boundary_during_validation",
            signal.SIGINT,
            {"validation_after_step": STEPS_PER_EPOCH},
            marks=SLOW,
        ),
        pytest.param("first_batch", signal.SIGTERM, {"step": 1}, marks=SLOW),
    ],
)
def test_interrupted_then_resumed_run_equals_the_uninterrupted_one_bit_for_bit(
    tmp_path, capsys, monkeypatch, reference, where, signum, kwargs
):
    ref_scalars, ref_state = reference
    code = run(tmp_path, *SMALL, callbacks=[SignalAt(signum, **kwargs)])
    assert code == {signal.SIGINT: 130, signal.SIGTERM: 143}[signum]
    run_dir = tmp_path / "lightning" / "version_0"
    err = capsys.readouterr().err
    assert f"stopped by {signal.Signals(signum).name}" in err
    assert f"resume with: python scripts/fit.py --resume {run_dir}" in err
    interrupted = final_state(run_dir)
    assert interrupted["global_step"] < ref_state["global_step"]

    restamp_event_files_into_this_second(run_dir)  # the resumed run must still be read after it
    assert run(tmp_path, "--resume", str(run_dir)) == 0

    assert [p.name for p in (tmp_path / "lightning").iterdir()] == ["version_0"]  # same run directory
    assert read_scalars(run_dir) == ref_scalars  # every epoch once, same steps, same values
    assert metrics_csv_scalars(run_dir) == ref_scalars  # and one metrics.csv row per epoch
    assert_same_training_state(final_state(run_dir), ref_state)


def test_interrupt_in_the_last_batch_of_the_run_finishes_it_and_resume_has_nothing_to_do(
    tmp_path, capsys, reference
):
    ref_scalars, ref_state = reference
    assert run(tmp_path, *SMALL, callbacks=[SignalAt(signal.SIGINT, step=3 * STEPS_PER_EPOCH)]) == 0
    run_dir = tmp_path / "lightning" / "version_0"
    assert read_scalars(run_dir) == ref_scalars
    assert_same_training_state(final_state(run_dir), ref_state)
    capsys.readouterr()
    assert run(tmp_path, "--resume") == 0
    assert "already finished its 3 epochs" in capsys.readouterr().out


def test_resume_from_an_older_periodic_checkpoint_after_a_hard_kill_still_matches(tmp_path, reference):
    """SIGKILL after step 7: the events go up to epoch 1, the periodic checkpoint is from step 5."""
    ref_scalars, ref_state = reference
    run_dir = tmp_path / "lightning" / "version_0"
    kept = tmp_path / "step5.ckpt"

    class KeepStep5(L.Callback):
        def on_train_batch_end(self, trainer, *args) -> None:
            if trainer.global_step == 5:
                shutil.copy(run_dir / "checkpoints" / "last.ckpt", kept)

    class Kill(L.Callback):  # what SIGKILL leaves: whatever was written, no goodbye
        def on_train_batch_end(self, trainer, *args) -> None:
            if trainer.global_step == 7:
                raise KeyboardInterrupt

    with pytest.raises(SystemExit):  # Lightning turns KeyboardInterrupt into exit 1
        run(tmp_path, *SMALL, "--checkpoint_every_n_steps", "5", callbacks=[KeepStep5(), Kill()])
    shutil.copy(kept, run_dir / "checkpoints" / "last.ckpt")
    assert run(tmp_path, "--resume") == 0
    # the resumed run writes epoch 1 again; TensorBoard keeps the newer points, metrics.csv one row
    assert read_scalars(run_dir) == ref_scalars
    assert metrics_csv_scalars(run_dir) == ref_scalars
    assert_same_training_state(final_state(run_dir), ref_state)


def test_resume_with_more_max_epochs_extends_a_finished_run_exactly(tmp_path):
    flags = ["--accelerator", "cpu", "--n_per_class", "40", "--batch_size", "16", "--max_epochs"]
    assert run(tmp_path, *flags, "2") == 0
    assert run(tmp_path, "--resume", "--max_epochs", "3") == 0
    assert run(tmp_path, *flags, "3") == 0
    extended, straight = (tmp_path / "lightning" / f"version_{v}" for v in (0, 1))
    assert read_scalars(extended) == read_scalars(straight)
    assert_same_training_state(final_state(extended), final_state(straight))


def test_resume_typed_as_the_first_command_again_plus_resume_continues_the_run(tmp_path, capsys, reference):
    """Up arrow, then ``--resume``: the run's own hyperparameter flags beside it are accepted."""
    ref_scalars, ref_state = reference
    assert run(tmp_path, *SMALL, callbacks=[SignalAt(signal.SIGINT, step=6)]) == 130

    assert run(tmp_path, *SMALL, "--lr", "0.10", "--resume") == 0

    run_dir = tmp_path / "lightning" / "version_0"
    assert [p.name for p in (tmp_path / "lightning").iterdir()] == ["version_0"]
    assert f"resuming {run_dir}" in capsys.readouterr().out
    assert read_scalars(run_dir) == ref_scalars
    assert_same_training_state(final_state(run_dir), ref_state)


def test_resume_with_a_hyperparameter_that_differs_is_refused_naming_both_values(
    tmp_path, capsys, tree_snapshot
):
    assert run(tmp_path, *SMALL, callbacks=[SignalAt(signal.SIGTERM, step=6)]) == 143
    capsys.readouterr()
    before = tree_snapshot(tmp_path)

    with pytest.raises(SystemExit) as exit_info:
        run(tmp_path, *SMALL, "--resume", "--hidden_dim", "64")

    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "fit.py: error: --resume: the run was started with --hidden_dim 32; got --hidden_dim 64 "
        "(a resumed run keeps its hyperparameters; start a new run to change them)\n"
    )
    assert tree_snapshot(tmp_path) == before


def test_a_bare_resume_continues_in_the_precision_and_on_the_device_the_run_started_with(tmp_path, capsys):
    """The run starts with ``--accelerator cpu --precision 64-true``; ``--resume`` alone must keep both.

    With the command line's defaults instead (``auto``, ``32-true``), a machine with a GPU
    would move the run onto it, and any machine would finish it in float32.
    """
    flags = (*SMALL, "--precision", "64-true")
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    assert run(straight, *flags) == 0
    assert run(interrupted, *flags, callbacks=[SignalAt(signal.SIGINT, step=6)]) == 130
    capsys.readouterr()
    run_dir = interrupted / "lightning" / "version_0"

    assert run(interrupted, "--resume", str(run_dir)) == 0

    assert "note:" not in capsys.readouterr().err  # nothing about how it computes changed
    state = final_state(run_dir)
    assert state["state_dict"]["model.W1"].dtype == torch.float64
    assert state[PROJECT_KEY]["trainer"]["precision"] == "64-true"
    assert state[PROJECT_KEY]["device"] == "cpu"
    assert read_scalars(run_dir) == read_scalars(straight / "lightning" / "version_0")
    assert_same_training_state(state, final_state(straight / "lightning" / "version_0"))


def test_a_lightning_flag_given_beside_resume_wins_and_the_run_is_told_its_numbers_will_differ(
    tmp_path, capsys
):
    assert run(tmp_path, *SMALL, callbacks=[SignalAt(signal.SIGTERM, step=6)]) == 143
    capsys.readouterr()

    assert run(tmp_path, "--resume", "--precision", "bf16-mixed") == 0

    err = capsys.readouterr().err
    assert (
        "fit.py: note: the run trained in precision 32-true and continues in bf16-mixed: "
        "from here its numbers will differ from an uninterrupted run's"
    ) in err
    state = final_state(tmp_path / "lightning" / "version_0")
    assert state[PROJECT_KEY]["trainer"]["precision"] == "bf16-mixed"
    assert state[PROJECT_KEY]["trainer"]["accelerator"] == "cpu"  # kept: not given again


def test_a_second_signal_stops_at_once():
    # from Python's own Ctrl-C handler, as in a terminal: a job started in the background
    # (`cmd &`, some CI runners) inherits SIGINT ignored, and a second signal would ignore it again
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with StopRequest() as stop:
            signal.raise_signal(signal.SIGINT)
            assert stop.requested and stop.exit_code == 130
            with pytest.raises(KeyboardInterrupt):
                signal.raise_signal(signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, inherited)


@pytest.mark.slow
def test_fit_script_stops_on_sigterm_with_143_and_resumes_in_the_same_run(tmp_path):
    """A real SIGTERM from outside, as a batch scheduler sends it, then ``fit.py --resume``."""
    import subprocess
    import sys
    import time

    from tests.helpers import REPO

    flags = ["--accelerator", "cpu", "--n_per_class", "16", "--max_epochs", "60", "--logdir", str(tmp_path)]
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "fit.py"), *flags, "--checkpoint_every_n_steps", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    checkpoint = tmp_path / "lightning" / "version_0" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    assert "--resume" in err

    resumed = run_script("fit.py", "--resume", "--logdir", str(tmp_path), timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert run(tmp_path / "ref", *flags[:-2]) == 0
    run_dir, ref_dir = (root / "lightning" / "version_0" for root in (tmp_path, tmp_path / "ref"))
    assert read_scalars(run_dir) == read_scalars(ref_dir)
    assert_same_training_state(final_state(run_dir), final_state(ref_dir))
