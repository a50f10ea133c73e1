"""A start that continues its run: the id a run records, and finding the run that recorded it.

A scheduler reruns a command unchanged: a requeued SLURM job, a job-array task, a retried job. So
that the rerun continues the run its first start made instead of starting another, each new run
records an id in its directory (``RUN_ID_FILE``): the one ``--run_id`` gives, or under SLURM the
job's and the command's (``slurm-1234-<digest>``; ``slurm-1230_4-<digest>`` for an array task).
A start with ``--run_id``, or a SLURM job started again (``SLURM_RESTART_COUNT`` >= 1),
continues the newest run under ``--logdir`` that recorded its id, as ``--resume`` would, if that
run holds a checkpoint; otherwise it starts a new run. The id is looked for only among the
trainer's ``version_N`` directories. No torch here.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlp_lightning.core.errors import ConfigError
from mlp_lightning.runs.files import atomic_write_text
from mlp_lightning.runs.layout import CHECKPOINT_DIR, run_name, versions
from mlp_lightning.runs.no_follow import FLAGS
from mlp_lightning.runs.slurm import restarted, slurm_job

RUN_ID_FILE = "run_id"
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=+,-]{0,127}")
RUN_ID_WORDS = "1 to 128 of letters, digits and . _ = + , - (a letter or digit first)"
MAX_READ = 256


def check_run_id(value: str) -> str:
    if not RUN_ID.fullmatch(value):
        raise ConfigError(f"--run_id must be {RUN_ID_WORDS}, got {value!r}")
    return value


def run_id_to_record(
    given: str | None, command: Sequence[str], env: Mapping[str, str] = os.environ
) -> str | None:
    """What a new run records: ``--run_id``'s value, else the SLURM job's and the command's; None outside.

    ``slurm-1234-<12 hex digits>``: a digest of the command's arguments beside the job id, so that a
    batch script that trains several configurations one after the other continues each in its own
    run when the job runs again, rather than every command the newest run of the job.
    """
    if given is not None:
        return given
    job = slurm_job(env)
    return f"slurm-{job}-{hashlib.sha256(shlex.join(command).encode()).hexdigest()[:12]}" if job else None


def run_id_to_continue(
    given: str | None, command: Sequence[str], env: Mapping[str, str] = os.environ
) -> str | None:
    """The id whose run a start continues: ``--run_id``'s, or a restarted SLURM job's; None: a new run."""
    if given is not None:
        return given
    return run_id_to_record(None, command, env) if restarted(env) else None


def record_run_id(run_dir: Path, run_id: str | None) -> None:
    if run_id is not None:
        atomic_write_text(run_id + "\n", Path(run_dir) / RUN_ID_FILE)


def recorded_run_id(run_dir: Path) -> str | None:
    """The id ``run_dir`` recorded; None if none (or not a regular file: never followed through a link)."""
    try:
        fd = os.open(Path(run_dir) / RUN_ID_FILE, os.O_RDONLY | FLAGS)
    except OSError:
        return None
    try:
        return os.read(fd, MAX_READ).decode("utf-8", "replace").strip() or None
    except OSError:
        return None
    finally:
        os.close(fd)


def run_to_continue(logdir: Path, trainer: str, run_id: str, checkpoint: str) -> Path | None:
    """The newest ``<logdir>/<trainer>/version_N`` that recorded ``run_id``, if it holds ``checkpoint``."""
    for version in reversed(versions(Path(logdir) / trainer)):
        run_dir = Path(logdir) / run_name(trainer, version)
        if recorded_run_id(run_dir) == run_id:
            return run_dir if (run_dir / CHECKPOINT_DIR / checkpoint).is_file() else None
    return None
