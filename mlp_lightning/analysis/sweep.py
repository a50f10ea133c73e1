"""Running a sweep: which of its runs ``--logdir`` holds finished, which to resume, which to start; then a
pool of processes trains the rest, printing a line per finished run, and the report follows.

A run belongs to a combination when its hparams.yaml holds the combination's hyperparameters, and
it is finished when it reached ``max_epochs`` (``load_run`` reads it whole). An unfinished one with
a checkpoint (stopped by Ctrl-C, a SIGTERM, a preempted job) is resumed with ``--resume``, which
ends bit for bit where an uninterrupted run would; one without a checkpoint, or one that failed
(diverged, crashed), is started afresh. No torch here.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mlp_lightning.analysis.logged_run import Run, ended_in_failure, load_run
from mlp_lightning.analysis.sweep_report import report
from mlp_lightning.core.errors import RunError
from mlp_lightning.core.tensorboard_schema import VAL_ACC, VAL_LOSS
from mlp_lightning.runs.interrupt import EXIT_CODES
from mlp_lightning.runs.layout import (
    CHECKPOINT_DIR,
    LIGHTNING_CHECKPOINT,
    LIGHTNING_TRAINER,
    NUMPY_TRAINER,
    TWIN_CHECKPOINT,
)
from mlp_lightning.runs.slurm import requeue_line
from mlp_lightning.runs.sweep import TRAINERS, Job, StoredRuns, SweepArgs, run_pool

RESUMABLE = {NUMPY_TRAINER: TWIN_CHECKPOINT, LIGHTNING_TRAINER: LIGHTNING_CHECKPOINT}  # in CHECKPOINT_DIR


@dataclass(frozen=True)
class Plan:
    finished: dict[Job, Run]  # runs already done, read back
    todo: list[Job]  # runs to start or (Job.resume) to continue


def finished_run(job: Job, stored: StoredRuns) -> Run | None:
    """The newest finished run of the job's trainer and combination, or None."""
    runs = (_finished(run_dir) for run_dir in stored.search(job.trainer, job.combination.hparams))
    return next((run for run in runs if run is not None), None)


def resumable_run(job: Job, stored: StoredRuns) -> Path | None:
    """The newest unfinished run of the job that saved a checkpoint and did not fail, or None."""
    checkpoint = Path(CHECKPOINT_DIR) / RESUMABLE[job.trainer]
    for run_dir in stored.search(job.trainer, job.combination.hparams):
        if (run_dir / checkpoint).is_file() and not ended_in_failure(run_dir):
            return run_dir
    return None


def plan(args: SweepArgs, stored: StoredRuns) -> Plan:
    """Each of the sweep's runs: finished already, or to do (new, or resumed)."""
    finished, todo = {}, []
    for combination in args.combinations:
        for trainer in args.trainers:
            job = Job(trainer, combination)
            run = finished_run(job, stored)
            if run is not None:
                finished[job] = run
            else:
                todo.append(Job(trainer, combination, resume=resumable_run(job, stored)))
    return Plan(finished, todo)


def print_commands(args: SweepArgs, scripts: Path) -> int:
    """One command line per run still to train (new, or a ``--resume``), for a job array; runs nothing.

    Each line continues its run when rerun (a requeued or retried task): a ``--resume`` does, and a
    new run's line names a ``--run_id`` that its rerun finds.
    """
    logdir = Path(os.path.abspath(args.logdir))  # a task of a job array may start elsewhere
    for job in plan(args, StoredRuns(args.logdir)).todo:
        print(shlex.join(job.argv(logdir, scripts, run_id=True)))
    return 0


def run_sweep(args: SweepArgs, scripts: Path) -> int:
    """Train what is not finished, a line per run as it ends, then the report; 0, 1 if a run failed,
    or 130/143 when stopped by a signal (the report is then left for the next sweep)."""
    stored = StoredRuns(args.logdir)
    work = plan(args, stored)
    total = len(work.finished) + len(work.todo)
    resumed = sum(job.resume is not None for job in work.todo)
    print(
        f"sweep: {total} {'run' if total == 1 else 'runs'} under {args.logdir}: "
        f"{len(work.finished)} finished already, "
        f"{resumed} to resume, {len(work.todo) - resumed} to start ({args.jobs} at a time)",
        flush=True,
    )
    runs, failed, stopped, ended = dict(work.finished), [], [], itertools.count(1)
    live = LiveLine(sys.stdout)

    def on_done(job: Job, code: int, seconds: float, output: str, stopping: bool) -> None:
        live.clear()
        head = f"[{next(ended)}/{len(work.todo)}] {job.label}"
        # while the sweep stops, a run may have finished, or ended before it began: never "failed"
        run = finished_run(job, stored) if code == 0 or stopping else None
        if run is not None:
            runs[Job(job.trainer, job.combination)] = run
            again = "resumed, " if job.resume is not None else ""
            line = f"val loss {run.scalars[VAL_LOSS][-1]:.4f} acc {run.scalars[VAL_ACC][-1]:.4f}"
            print(f"{head}: {line} ({again}{seconds:.1f} s)", flush=True)
        elif stopping or code in EXIT_CODES.values():
            if resumable_run(job, stored) is not None:
                stopped.append(job)
                print(f"{head}: stopped, checkpoint saved; the same sweep command resumes it", flush=True)
            else:  # ended while starting, or before its first save
                print(f"{head}: not started (no checkpoint); the same sweep command starts it", flush=True)
        else:
            failed.append(job)
            last = [line for line in output.splitlines() if line.strip()][-1:] or ["(no output)"]
            why = "no finished run of it reads back" if code == 0 else last[0]
            print(f"{head}: failed (exit {code}): {why}", flush=True)

    code = run_pool(work.todo, args.logdir, scripts, args.jobs, on_done, live.show)
    live.clear()
    if code:
        done = len(runs) - len(work.finished)
        not_started = len(work.todo) - done - len(stopped) - len(failed)
        counts = f"{done} finished, {len(stopped)} stopped, {not_started} not started"
        print(
            f"sweep: stopped by a signal ({counts}); the same command finishes it ({args.logdir})", flush=True
        )
        if requeued := requeue_line("sweep", signal.Signals(code - 128).name, True):
            print(requeued, flush=True)  # under SLURM, after SIGUSR1: once for the job, not once per run
        return code
    print()
    report(list(runs.values()), args.logdir)
    return 1 if failed else 0


_SUMMARY = re.compile(r"^epoch (\d+) \|", re.MULTILINE)


def training_line(printed: dict[Job, str]) -> str:
    """``training: numpy seed=0 (epoch 5/30), lightning seed=0 (starting)``: each run in progress and
    the last epoch it reported."""
    parts = []
    for job, output in printed.items():
        epochs = _SUMMARY.findall(output)
        total = job.combination.hparams.get("max_epochs", "?")
        state = f"epoch {int(epochs[-1])}/{total}" if epochs else "resuming" if job.resume else "starting"
        parts.append(f"{job.label} ({state})")
    return "training: " + ", ".join(parts)


class LiveLine:
    """The runs in progress, on one line: redrawn in place on a terminal; off one, a plain line when it
    changed, at most every ``PLAIN_S`` seconds, so a log gets whole lines and not too many."""

    PLAIN_S = 10.0

    def __init__(self, stream) -> None:
        self.stream, self.drawn, self.last, self.at = stream, False, "", -self.PLAIN_S
        self.terminal = getattr(stream, "isatty", lambda: False)()

    def show(self, printed: dict[Job, str]) -> None:
        line = training_line(printed)
        if self.terminal:
            width = shutil.get_terminal_size().columns - 1
            self.stream.write("\r\x1b[K" + (line if len(line) <= width else line[: width - 1] + "…"))
            self.stream.flush()
            self.drawn = True
        elif line != self.last and time.monotonic() - self.at >= self.PLAIN_S:
            print(line, file=self.stream, flush=True)
            self.last, self.at = line, time.monotonic()

    def clear(self) -> None:
        """Before a line of its own: the live line's place is taken."""
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.drawn = False


def summarize(args: SweepArgs) -> int:
    """The report over the sweep's finished runs under --logdir; with no swept flag given, over all."""
    stored = StoredRuns(args.logdir)
    if args.given:
        jobs = (Job(trainer, combination) for combination in args.combinations for trainer in args.trainers)
        runs = [run for job in jobs if (run := finished_run(job, stored)) is not None]
    else:
        runs = [run for t in TRAINERS for d in stored.all(t) if (run := _finished(d)) is not None]
    report(runs, args.logdir)
    return 0


def _finished(run_dir: Path) -> Run | None:
    try:
        return load_run(run_dir)
    except RunError:
        return None
