"""The SLURM job this process runs in, and asking SLURM to requeue it once the run has saved.

A preemptible job is told its end is near with SIGUSR1 (``#SBATCH --signal=SIGUSR1@90``): the run
stops at its next batch boundary and saves (``runs/interrupt.py``), then global rank 0 asks for the
job to be requeued, as Lightning's own SLURM handler does. SIGTERM (preemption, the time limit,
``scancel``) saves and exits without asking: a preempted job is requeued by SLURM itself, and a
cancelled job must stay cancelled. No torch here.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Mapping

REQUEUE_SIGNAL = signal.SIGUSR1  # Lightning's SLURMEnvironment's default requeue_signal
SCONTROL_TIMEOUT_S = 60


def slurm_job(env: Mapping[str, str] = os.environ) -> str | None:
    """``1234``, or ``1230_4`` for task 4 of job array 1230 (as scontrol requeue takes it); None outside."""
    array, task = env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return env.get("SLURM_JOB_ID") or None


def restarted(env: Mapping[str, str] = os.environ) -> bool:
    """Whether SLURM started this job again (requeued, preempted): ``SLURM_RESTART_COUNT`` >= 1."""
    count = env.get("SLURM_RESTART_COUNT", "0").strip()
    return count.isdigit() and int(count) >= 1


def requeue_line(
    prog: str,
    signal_name: str,
    requeue: bool,
    env: Mapping[str, str] = os.environ,
    run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
) -> str | None:
    """After a stop by ``signal_name`` has saved: requeue the job where that is asked; the line saying so.

    None where there is nothing to say (Ctrl-C, or SIGTERM outside SLURM).
    """
    job = slurm_job(env)
    usr1 = signal_name == REQUEUE_SIGNAL.name
    if job is None:
        return f"{prog}: not running under SLURM (no SLURM_JOB_ID): no job to requeue" if usr1 else None
    if signal_name == signal.SIGTERM.name:
        return (
            f"{prog}: SLURM job {job} is not requeued on SIGTERM (a preempted job is requeued by SLURM "
            "itself; scancel sends SIGTERM too); when it runs again, the same command continues this run"
        )
    if not usr1:
        return None
    if not requeue:
        return f"{prog}: --requeue false: SLURM job {job} is not requeued"
    command = ["scontrol", "requeue", job]
    try:
        done = run(command, capture_output=True, text=True, timeout=SCONTROL_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as err:
        return f"{prog}: could not requeue SLURM job {job}: {' '.join(command)}: {err}"
    if done.returncode != 0:
        why = (done.stderr or done.stdout or "").strip().splitlines()[:1] or ["no message"]
        exited = f"{' '.join(command)} exited {done.returncode}"
        return f"{prog}: could not requeue SLURM job {job}: {exited}: {why[0]}"
    return f"{prog}: requeued SLURM job {job} ({' '.join(command)}): the same command continues this run"
