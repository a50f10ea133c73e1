"""What a run is asked to do: its hyperparameters, Lightning flags, log directory and what to resume.

The command line builds these; both trainers take them. Plain data: the values
were checked when they were parsed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Union

from mlp_lightning.core.hparams import HParams

CHECKPOINT_EVERY_N_STEPS = 500
LOG_EVERY_N_STEPS = 0  # per-epoch scalars only


@dataclass(frozen=True)
class TrainerFlags:
    """The Lightning-only flags, passed on to ``lightning.Trainer``."""

    accelerator: str = "auto"
    # one process unless asked: a small model gains nothing from every visible GPU, and a resume
    # needs as many processes as the run had
    devices: Union[int, str] = 1  # noqa: UP007 (jsonargparse reads the annotation)
    strategy: str = "auto"
    precision: str = "32-true"
    num_nodes: int = 1


@dataclass(frozen=True)
class RunArgs:
    hp: HParams
    trainer: TrainerFlags
    logdir: Path
    resume: str | None = None  # RESUME_NEWEST, a run directory or a checkpoint; None: a new run
    checkpoint_every_n_steps: int = CHECKPOINT_EVERY_N_STEPS
    log_every_n_steps: int = LOG_EVERY_N_STEPS  # also write train/loss_step every N optimizer steps
    given: frozenset[str] = frozenset()  # the flags set on the command line or in a --config file
    command: str = ""  # the command line, shell-quoted, as the run's TensorBoard text shows it
    config_yaml: str = ""  # the resolved configuration, as --print_config prints it
    run_id: str | None = None  # what a new run records for a rerun to find it (runs/run_id.py)
    requeue: bool = True  # under SLURM, after a SIGUSR1 stop: ask for the job to be requeued
