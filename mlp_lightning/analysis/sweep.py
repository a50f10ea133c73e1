"""Running a sweep: which of its runs ``--logdir`` holds finished, which to resume, which to start; then a
pool of processes trains the rest, printing a line per finished run, and the report follows.

A run belongs to a combination when its hparams.yaml holds the combination's hyperparameters, and
it is finished when it reached ``max_epochs`` (``load_run`` reads it whole). An unfinished one with
a checkpoint (stopped by Ctrl-C, a SIGTERM, a preempted job) is resumed with ``--resume``, which
ends bit for bit where an uninterrupted run would; one without a checkpoint, or one that failed
(diverged, crashed), is started afresh. No torch here.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from mlp_lightning.analysis.logged_run import Run, ended_in_failure, load_run
from mlp_lightning.analysis.sweep_report import report
from mlp_lightning.core.errors import RunError
from mlp_lightning.core.tensorboard_schema import VAL_ACC, VAL_LOSS
from mlp_lightning.runs.interrupt import EXIT_CODES
from mlp_lightning.runs.layout import CHECKPOINT_DIR, LIGHTNING_CHECKPOINT, LIGHTNING_TRAINER, TWIN_CHECKPOINT
from mlp_lightning.runs.sweep import Combination, Job, SweepArgs, run_pool, stored_runs

CHECKPOINTS = {LIGHTNING_TRAINER: LIGHTNING_CHECKPOINT}  # the twin's: TWIN_CHECKPOINT


@dataclass(frozen=True)
class Plan:
    finished: dict[Job, Run]  # runs already done, read back
    todo: list[Job]  # runs to start or (Job.resume) to continue


def finished_run(trainer: str, combination: Combination, logdir: Path) -> Run | None:
    """The newest finished run of ``combination`` under ``logdir``, or None."""
    for run_dir, stored in reversed(stored_runs(logdir, trainer)):
        if stored == combination.hparams:
            try:
                return load_run(run_dir)
            except RunError:
                continue
    return None


def plan(args: SweepArgs) -> Plan:
    finished, todo = {}, []
    for combination in args.combinations:
        for trainer in args.trainers:
            job = Job(trainer, combination)
            run = finished_run(trainer, combination, args.logdir)
            if run is not None:
                finished[job] = run
            else:
                todo.append(Job(trainer, combination, resume=_resumable(trainer, combination, args.logdir)))
    return Plan(finished, todo)


def _resumable(trainer: str, combination: Combination, logdir: Path) -> Path | None:
    """The newest unfinished run of ``combination`` that saved a checkpoint and did not fail, or None."""
    checkpoint = Path(CHECKPOINT_DIR) / CHECKPOINTS.get(trainer, TWIN_CHECKPOINT)
    for run_dir, stored in reversed(stored_runs(logdir, trainer)):
        unfinished = stored == combination.hparams and (run_dir / checkpoint).is_file()
        if unfinished and not ended_in_failure(run_dir):
            return run_dir
    return None


def print_commands(args: SweepArgs, scripts: Path) -> int:
    """One command line per run still to train (new, or a ``--resume``), for a job array; runs nothing."""
    logdir = Path(os.path.abspath(args.logdir))  # a task of a job array may start elsewhere
    for job in plan(args).todo:
        print(shlex.join(job.argv(logdir, scripts)))
    return 0


def run_sweep(args: SweepArgs, scripts: Path) -> int:
    """Train what is not finished, a line per run as it ends, then the report; 0, 1 if a run failed,
    or 130/143 when stopped by a signal (the report is then left for the next sweep)."""
    work = plan(args)
    total = len(work.finished) + len(work.todo)
    resumed = sum(job.resume is not None for job in work.todo)
    print(
        f"sweep: {total} runs under {args.logdir}: {len(work.finished)} finished already, "
        f"{resumed} to resume, {len(work.todo) - resumed} to start ({args.jobs} at a time)",
        flush=True,
    )
    runs, failed, done = dict(work.finished), [], [0]

    def on_done(job: Job, code: int, seconds: float, output: str) -> None:
        done[0] += 1
        head = f"[{done[0]}/{len(work.todo)}] {job.label}"
        if code == 0 and (run := finished_run(job.trainer, job.combination, args.logdir)) is not None:
            runs[Job(job.trainer, job.combination)] = run
            again = "resumed, " if job.resume is not None else ""
            print(
                f"{head}: val loss {run.scalars[VAL_LOSS][-1]:.4f} acc {run.scalars[VAL_ACC][-1]:.4f} "
                f"({again}{seconds:.1f} s)",
                flush=True,
            )
        elif code in EXIT_CODES.values():
            print(f"{head}: stopped, checkpoint saved; the same sweep command resumes it", flush=True)
        else:
            failed.append(job)
            last = [line for line in output.splitlines() if line.strip()][-1:] or ["(no output)"]
            why = "no finished run of it reads back" if code == 0 else last[0]
            print(f"{head}: failed (exit {code}): {why}", flush=True)

    code = run_pool(work.todo, args.logdir, scripts, args.jobs, on_done)
    if code:
        print(f"sweep: stopped by a signal; run the same command again to resume ({args.logdir})", flush=True)
        return code
    print()
    report(list(runs.values()), args.logdir)
    return 1 if failed else 0


def summarize(args: SweepArgs) -> int:
    """The report over the sweep's finished runs under --logdir; with no swept flag given, over all."""
    runs = [run for _, run in plan_finished(args)] if args.given else all_finished_runs(args.logdir)
    report(runs, args.logdir)
    return 0


def plan_finished(args: SweepArgs) -> list[tuple[Job, Run]]:
    found = []
    for combination in args.combinations:
        for trainer in args.trainers:
            run = finished_run(trainer, combination, args.logdir)
            if run is not None:
                found.append((Job(trainer, combination), run))
    return found


def all_finished_runs(logdir: Path) -> list[Run]:
    """Every finished run of either trainer under ``logdir``."""
    from mlp_lightning.runs.sweep import TRAINERS

    runs = []
    for trainer in TRAINERS:
        for run_dir, _ in stored_runs(logdir, trainer):
            try:
                runs.append(load_run(run_dir))
            except RunError:
                continue
    return runs
