"""A hard kill at the worst moments the kill soak found, reproduced in-process: resume loses nothing.

A "kill" here is an exception raised where SIGKILL would land (as in test_resume.py): whatever
was written stays, nothing after it runs. ``test_kill_soak.py`` kills the scripts for real.
"""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path

import lightning as L
import numpy as np
import pytest
from tensorboard.summary.writer import record_writer

from mlp_lightning.analysis.export import load_npz
from mlp_lightning.cli import parse_fit_args, parse_numpy_args
from mlp_lightning.core.tensorboard_schema import ALL_TAGS, TRAIN_LOSS
from mlp_lightning.lightning.train import fit as fit_lightning
from mlp_lightning.numpy_twin import checkpoint as twin_checkpoint
from mlp_lightning.numpy_twin import train as twin_train
from mlp_lightning.numpy_twin.events import EventWriter
from tests.helpers import read_scalars

# 80 points -> 64 train -> 4 batches of 16 per epoch, 12 steps; a save every 3 steps: epoch 1 is
# logged at step 3 (0-based, its last step), after the save at step 3 and before the next one
SMALL = ("--n_per_class", "40", "--batch_size", "16", "--max_epochs", "3", "--checkpoint_every_n_steps", "3")


class Killed(BaseException):
    """Stands for SIGKILL: nothing catches it, nothing after it runs."""


def twin(logdir: Path, *flags: str) -> int:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = twin_train.fit(parse_numpy_args(["--logdir", str(logdir), *SMALL, *flags]))
    print(out.getvalue(), end="")
    return code


def lightning(logdir: Path, *flags: str, callbacks=()) -> int:
    argv = ["--logdir", str(logdir), "--accelerator", "cpu", *SMALL, *flags]
    return fit_lightning(parse_fit_args(argv), callbacks=callbacks)


@pytest.fixture(scope="module")
def twin_reference(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("twin_reference")
    assert twin(logdir) == 0
    run_dir = logdir / "numpy" / "version_0"
    return read_scalars(run_dir), load_npz(run_dir / "weights.npz")


def test_the_twins_epoch_scalars_are_on_disk_before_the_checkpoint_that_follows_them(tmp_path, monkeypatch):
    """The event writer's thread writes later; a kill right after the next save must not lose them."""
    write = record_writer.RecordWriter.write

    def slow_write(self, data):
        time.sleep(0.05)  # the writer thread, when the training loop outruns it
        write(self, data)

    monkeypatch.setattr(record_writer.RecordWriter, "write", slow_write)
    events = EventWriter(tmp_path, {"lr": 0.1}, run_name="numpy/version_0", text="python x.py", first_step=0)
    events.epoch_scalars(0, 4, {TRAIN_LOSS: 0.5})
    assert read_scalars(tmp_path)[TRAIN_LOSS] == [(3, 0.5)]  # read before close()
    events.close()


def test_twin_killed_between_an_epochs_metrics_and_its_checkpoint_resumes_without_a_duplicate_point(
    tmp_path, monkeypatch, twin_reference
):
    save_state = twin_checkpoint.save_state

    def killed_at_step_6(state, path):  # the save after epoch 1's metrics: the one before is from step 3
        if state.step == 6:
            raise Killed
        save_state(state, path)

    with monkeypatch.context() as patch:
        patch.setattr(twin_checkpoint, "save_state", killed_at_step_6)
        with pytest.raises(Killed):
            twin(tmp_path)
    run_dir = tmp_path / "numpy" / "version_0"
    assert read_scalars(run_dir)[TRAIN_LOSS][-1][0] == 3  # epoch 1 logged, its checkpoint not written
    assert twin(tmp_path, "--resume") == 0  # from step 3: epoch 1 is logged again
    ref_scalars, ref_weights = twin_reference
    assert read_scalars(run_dir) == ref_scalars  # every point once
    np.testing.assert_equal(load_npz(run_dir / "weights.npz"), ref_weights)


def test_twin_killed_after_its_final_save_writes_its_weights_on_resume(
    tmp_path, monkeypatch, capsys, twin_reference
):
    with monkeypatch.context() as patch:
        patch.setattr(twin_train, "save_weights", lambda *args: (_ for _ in ()).throw(Killed))
        with pytest.raises(Killed):
            twin(tmp_path)
    run_dir = tmp_path / "numpy" / "version_0"
    assert not (run_dir / "weights.npz").exists()
    capsys.readouterr()
    assert twin(tmp_path, "--resume") == 0
    assert "wrote its final weights" in capsys.readouterr().out
    np.testing.assert_equal(load_npz(run_dir / "weights.npz"), twin_reference[1])
    # a weights file cut short is written again too; a whole one is left alone
    (run_dir / "weights.npz").write_bytes((run_dir / "weights.npz").read_bytes()[:100])
    assert twin(tmp_path, "--resume") == 0
    assert "wrote its final weights" in capsys.readouterr().out
    np.testing.assert_equal(load_npz(run_dir / "weights.npz"), twin_reference[1])
    assert twin(tmp_path, "--resume") == 0
    assert "wrote its final weights" not in capsys.readouterr().out


class KillAfterTheEpoch(L.Callback):
    """SIGKILL once the epoch's metrics are all logged (train/* after validation), before the next save."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.global_step == self.step:
            raise Killed


def test_lightning_killed_between_an_epochs_metrics_and_its_checkpoint_resumes_without_a_duplicate_point(
    tmp_path,
):
    reference = tmp_path / "reference"
    assert lightning(reference) == 0
    with pytest.raises(Killed):
        lightning(tmp_path, callbacks=[KillAfterTheEpoch(step=4)])
    run_dir = tmp_path / "lightning" / "version_0"
    assert {tag: points[-1][0] for tag, points in read_scalars(run_dir).items()} == dict.fromkeys(ALL_TAGS, 3)
    assert lightning(tmp_path, "--resume") == 0
    assert read_scalars(run_dir) == read_scalars(reference / "lightning" / "version_0")
