"""A kill at any instant loses at most the steps since the last save: SIGKILL soak for both trainers.

Each trial starts a script, kills it with SIGKILL at one moment (during the imports, as the run
directory is claimed, between and during checkpoint writes, at the final save), sometimes kills
the command the user runs next as well, and then finishes the run the way a user would
(``--resume`` if it saved a checkpoint, else the same command again). Every time the finished run
must hold the weights and the logged metrics of an uninterrupted run with the same seed, bit for
bit. The phase each kill landed in is read from what the process left behind and printed.
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
import torch

from mlp_lightning.cli import parse_fit_args, parse_numpy_args
from mlp_lightning.lightning.train import fit as fit_lightning
from mlp_lightning.numpy_twin.checkpoint import load_state
from mlp_lightning.numpy_twin.train import fit as fit_numpy
from mlp_lightning.runs.layout import (
    CHECKPOINT_DIR,
    HPARAMS_FILE,
    LIGHTNING_CHECKPOINT,
    LIGHTNING_TRAINER,
    NUMPY_TRAINER,
    TWIN_CHECKPOINT,
    TWIN_WEIGHTS,
)
from tests.helpers import read_scalars, run_script
from tests.kill_soak import Moment, in_process, landed, next_command, run_and_kill

# 1600 training points in batches of 16: 100 steps an epoch, 300 in all, a save every 10 steps
# (30 saves): the twin trains for ~0.1 s, Lightning for ~1 s after its ~5 s of start-up
CONFIG = ["--n_per_class", "1000", "--batch_size", "16", "--hidden_dim", "16", "--max_epochs", "3",
          "--checkpoint_every_n_steps", "10", "--seed", "3"]  # fmt: skip
FINAL_STEP = 300


def spread(startup: list[float]) -> list[list[Moment]]:
    """The soak's trials: one kill each, or two (the command run after the first kill killed too)."""
    one = [Moment("start", s) for s in startup] + [
        Moment("run_dir"), Moment("events"),
        *(Moment(f"save:{n}") for n in (1, 8, 10, 20, 22, 29)),
        *(Moment(f"write:{n}") for n in (1, 14, 25)),
        Moment("stdout:epoch 01"), Moment("stdout:epoch 03"), Moment("stdout:epoch 03", 0.002),
        Moment("save:30"), Moment("stdout:final"),
    ]  # fmt: skip
    two = [
        [Moment("save:5"), Moment("save:2")],
        [Moment("start", startup[-1]), Moment("events")],
    ]
    return [[m] for m in one] + two


class Trainer:
    def __init__(self, name, script, checkpoint, fit, parse, step_of, result, extra=()):
        self.name, self.script, self.checkpoint = name, script, checkpoint
        self.run = in_process(fit, parse)
        self.step_of, self.result, self.extra = step_of, result, list(extra)

    def commands(self, logdir: Path) -> tuple[list[str], list[str]]:
        # the resume is the same command plus --resume ("up arrow, then --resume"): a bare --resume
        # would save every 500 steps, the default, not every 10 as the run did
        fresh = [*CONFIG, *self.extra, "--logdir", str(logdir)]
        return fresh, [*fresh, "--resume"]


def twin_result(run_dir: Path) -> dict:
    with np.load(run_dir / TWIN_WEIGHTS, allow_pickle=False) as npz:
        weights = {k: npz[k] for k in npz.files}
    state = load_state(run_dir / CHECKPOINT_DIR / TWIN_CHECKPOINT)
    return {"weights": weights, "checkpoint": (state.params, state.step)}


def lightning_result(run_dir: Path) -> dict:
    ckpt = torch.load(run_dir / CHECKPOINT_DIR / LIGHTNING_CHECKPOINT, weights_only=True)
    state = {k: v.numpy() for k, v in ckpt["state_dict"].items()}
    return {"weights": state, "checkpoint": ckpt["global_step"]}


def lightning_step(path: Path) -> int:
    return torch.load(path, weights_only=True)["global_step"]


TRAINERS = {
    NUMPY_TRAINER: Trainer(
        NUMPY_TRAINER, "baseline_numpy.py", TWIN_CHECKPOINT, fit_numpy, parse_numpy_args,
        lambda path: load_state(path).step, twin_result,
    ),
    LIGHTNING_TRAINER: Trainer(
        LIGHTNING_TRAINER, "fit.py", LIGHTNING_CHECKPOINT, fit_lightning, parse_fit_args,
        lightning_step, lightning_result, extra=("--accelerator", "cpu"),
    ),
}  # fmt: skip
STARTUP = {NUMPY_TRAINER: [0.0, 0.05, 0.1, 0.15, 0.2, 0.25], LIGHTNING_TRAINER: [0.3, 1.0, 2.0, 3.0]}


def everything(run_dir: Path, trainer: Trainer) -> dict:
    """What must come out of a run, killed or not: weights, the saved state, metrics, hyperparameters."""
    return {
        **trainer.result(run_dir),
        "scalars": read_scalars(run_dir),
        "hparams.yaml": (run_dir / HPARAMS_FILE).read_text(),
    }


def assert_equal(got: dict, want: dict, where: str) -> None:
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_equal(got[key], want[key], err_msg=f"{key} differs after {where}")


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", [NUMPY_TRAINER, LIGHTNING_TRAINER])
def test_a_run_killed_at_any_moment_and_resumed_ends_bit_for_bit_as_an_uninterrupted_one(tmp_path, name):
    trainer = TRAINERS[name]
    fresh, _ = trainer.commands(tmp_path / "reference")
    done = run_script(trainer.script, *fresh, timeout=300)
    assert done.returncode == 0, done.stderr
    want = everything(tmp_path / "reference" / name / "version_0", trainer)

    kills, phases = [], collections.Counter()
    for i, trial in enumerate(spread(STARTUP[name])):
        logdir = tmp_path / f"trial_{i}"
        fresh, resume = trainer.commands(logdir)
        for moment in trial:
            argv, run_dir = next_command(logdir, name, trainer.checkpoint, fresh, resume)
            kill = run_and_kill([f"scripts/{trainer.script}", *argv], run_dir, trainer.checkpoint, moment)
            if kill.killed:
                kill.phase = landed(run_dir, trainer.checkpoint, FINAL_STEP, trainer.step_of)
                phases[kill.phase] += 1
            kills.append(kill)
        argv, run_dir = next_command(logdir, name, trainer.checkpoint, fresh, resume)
        assert trainer.run(argv) == 0
        assert_equal(everything(run_dir, trainer), want, f"trial {i}: {trial}")

    print(f"\n{name}: {sum(k.killed for k in kills)} kills of {len(kills)} tries")
    for kill in kills:
        when = f"{kill.moment.trigger:>18} +{kill.moment.delay:.3f}s  at {kill.seconds:6.3f}s"
        print(f"  {when}  {kill.phase or 'ended first'}")
    for phase, count in sorted(phases.items()):
        print(f"  {count:3d}  {phase}")
    assert sum(k.killed for k in kills) >= 20
    assert len(phases) >= 4  # start-up, training, around the writes, the final save
