"""What ``--resume`` points at: the newest run, a run directory, or a checkpoint file.

A resumed run continues in its own run directory (and so its own TensorBoard run)
with the hyperparameters it started with. Nothing here imports torch: a ``--resume``
that names nothing usable is answered at once. Whatever goes wrong is an error that
names the path; a resume never quietly becomes a fresh run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mlp_lightning.core.data_file import read_data_file
from mlp_lightning.core.errors import ConfigError, ResumeError
from mlp_lightning.core.hparams import HParams, hparam_names
from mlp_lightning.core.quoted import quoted
from mlp_lightning.runs.layout import CHECKPOINT_DIR, VERSION, run_name, versions
from mlp_lightning.runs.outcome import newest_not_failed

RESUME_NEWEST = "newest"  # what a bare ``--resume`` means
# hyperparameters a resumed run may change: more epochs extend it; any other given beside --resume
# must equal the run's own
RESUME_MAY_CHANGE = frozenset({"max_epochs"})


@dataclass(frozen=True)
class ResumeTarget:
    checkpoint: Path
    run_dir: Path  # <logdir>/<trainer>/version_<N>

    @property
    def logdir(self) -> Path:
        return self.run_dir.parent.parent

    @property
    def version(self) -> int:
        return int(VERSION.match(self.run_dir.name).group(1))


def resolve_resume(value: str, logdir: Path, trainer: str, filename: str, note: bool = True) -> ResumeTarget:
    """The checkpoint and run directory that ``--resume value`` means for ``trainer``'s runs (``note``: say
    which newer runs a bare ``--resume`` passed over)."""
    if value == RESUME_NEWEST:
        root = Path(logdir) / trainer
        found = versions(root)
        if not found:
            raise ResumeError(f"--resume: there is no {trainer} run under {str(root)!r} to resume")
        # a run that failed before its first save (diverged, mostly) has nothing to resume; one that
        # saved (a full disk, say) goes on from its checkpoint
        run_dir = newest_not_failed(
            [Path(logdir) / run_name(trainer, v) for v in reversed(found)],
            "--resume" if note else None,
            still_serves=lambda run_dir: (run_dir / CHECKPOINT_DIR / filename).is_file(),
        )
        if run_dir is None:
            raise ResumeError(f"--resume: every {trainer} run under {str(root)!r} failed; start a new run")
        checkpoint = run_dir / CHECKPOINT_DIR / filename
    else:
        path = Path(value)
        if path.is_dir():
            run_dir, checkpoint = path, path / CHECKPOINT_DIR / filename
        elif path.is_file():
            run_dir, checkpoint = path.parent.parent, path
            if path.parent.name != CHECKPOINT_DIR:
                raise ResumeError(
                    f"--resume {value!r} is not inside a run directory "
                    f"(<logdir>/{trainer}/version_N/{CHECKPOINT_DIR}/): a run continues in its own directory"
                )
        else:
            raise ResumeError(f"--resume {value!r} is neither a run directory nor a checkpoint file")
    if not VERSION.match(run_dir.name) or run_dir.parent.name != trainer:
        raise ResumeError(
            f"--resume: {str(run_dir)!r} is not a {trainer} run directory (<logdir>/{trainer}/version_N)"
        )
    if not checkpoint.is_file():
        raise ResumeError(
            f"--resume: run {str(run_dir)!r} has no checkpoint ({str(checkpoint)!r} is missing: "
            "it stopped before its first save); start a new run instead"
        )
    return ResumeTarget(checkpoint=checkpoint, run_dir=run_dir)


def resumed_hparams(
    stored: HParams, requested: HParams, given: Iterable[str], epochs_done: int, run_dir: Path
) -> HParams:
    """The hyperparameters a resumed run trains with: the ones its checkpoint stores.

    The one rule for both trainers. A hyperparameter flag given beside ``--resume`` (on the
    command line or in a ``--config``) is accepted when its value equals the stored one, compared
    as numbers (``--lr 0.10`` is 0.1); one that differs is refused, naming both values. Only
    ``--max_epochs`` may change, to extend the run (not below the epochs it has trained). A run on
    a ``--data`` file needs that file unchanged.
    """
    if stored.data:
        try:
            read_data_file(stored.data, stored.target, stored.drop, expected_sha256=stored.data_sha256)
        except ConfigError as err:
            raise ResumeError(f"--resume {str(run_dir)!r}: {err}") from None
    given = set(given)
    for name in hparam_names():
        if name in given and name not in RESUME_MAY_CHANGE:
            was, got = getattr(stored, name), getattr(requested, name)
            if got != was:
                raise ResumeError(
                    f"--resume: the run was started with --{name} {quoted(was)}; got --{name} {quoted(got)} "
                    "(a resumed run keeps its hyperparameters; start a new run to change them)"
                )
    if "max_epochs" not in given:
        return stored
    if requested.max_epochs < epochs_done:
        raise ResumeError(
            f"--max_epochs {requested.max_epochs} is fewer than the {epochs_done} epochs "
            f"run {str(run_dir)!r} has already trained"
        )
    return dataclasses.replace(stored, max_epochs=requested.max_epochs)
