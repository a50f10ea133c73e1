"""A sweep's runs: every combination of the given flag values for each trainer, their commands, the runs
already under ``--logdir`` with the same hyperparameters, and a bounded pool of processes to train them.

Each run is an ordinary run of ``scripts/fit.py`` or ``scripts/baseline_numpy.py`` in a process of
its own, in its own ``<logdir>/<trainer>/version_N``. A run's configuration is what it stores in
``hparams.yaml``, so runs are matched to combinations by that, whoever started them. No torch here.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlp_lightning.core.errors import CheckpointError
from mlp_lightning.core.quoted import fits
from mlp_lightning.runs.files import MAX_HPARAMS_FILE_BYTES, load_hparams_yaml
from mlp_lightning.runs.interrupt import StopRequest
from mlp_lightning.runs.layout import HPARAMS_FILE, LIGHTNING_TRAINER, NUMPY_TRAINER, run_name, versions
from mlp_lightning.runs.slurm import slurm_job

TRAINERS = (NUMPY_TRAINER, LIGHTNING_TRAINER)
SCRIPTS = {NUMPY_TRAINER: "baseline_numpy.py", LIGHTNING_TRAINER: "fit.py"}
# each Lightning run trains in one CPU process, as the twin does; many such runs fill the machine
LIGHTNING_FLAGS = ("--accelerator", "cpu", "--devices", "1")
MAX_DEFAULT_JOBS = 8  # each run is one process of a few hundred MB; more rarely pays on one machine
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
POLL_S = 0.05


@dataclass(frozen=True)
class Combination:
    """One value of each swept flag, and the hyperparameters its runs store."""

    flags: tuple[tuple[str, str], ...]  # (flag name, value as given), in command-line order
    hparams: dict[str, object] = field(compare=False)  # the runs' hparams.yaml

    @property
    def label(self) -> str:
        """``seed=1 dropout=0.5``: the swept flags' values."""
        return " ".join(f"{name}={value}" for name, value in self.flags) or "defaults"

    def argv(self) -> list[str]:
        return [arg for name, value in self.flags for arg in (f"--{name}", value)]

    @property
    def run_id(self) -> str:
        """``sweep-<16 hex digits>``: the ``--run_id`` of its runs, a digest of every hyperparameter."""
        return "sweep-" + hashlib.sha256(repr(hparams_key(self.hparams)).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SweepArgs:
    """What ``sweep.py`` was asked to do; every combination was validated as the trainers validate it."""

    combinations: tuple[Combination, ...]
    trainers: tuple[str, ...]
    logdir: Path
    jobs: int
    given: tuple[str, ...]  # the swept flags given, in command-line order
    print_commands: bool = False
    summarize: bool = False


@dataclass(frozen=True)
class Job:
    """One run of the sweep: a new one, or (``resume``) an interrupted one to continue."""

    trainer: str
    combination: Combination
    resume: Path | None = None

    @property
    def label(self) -> str:
        return f"{self.trainer} {self.combination.label}"

    def argv(self, logdir: Path, scripts: Path, run_id: bool = False, requeue: bool = True) -> list[str]:
        """The command that trains this run; ``scripts``: the folder holding the two scripts.

        ``run_id``: a new run's command names it (``--run_id``), so that the command, rerun by a
        scheduler after a preemption, continues the run it started (``runs/run_id.py``).
        ``requeue`` false: the run asks SLURM for no requeue (the sweep around it asks, once).
        """
        command = [sys.executable, str(scripts / SCRIPTS[self.trainer])]
        if not requeue:
            command += ["--requeue", "false"]
        if self.resume is not None:  # the run keeps the flags it started with
            return [*command, "--resume", str(self.resume)]
        lightning = LIGHTNING_FLAGS if self.trainer == LIGHTNING_TRAINER else ()
        named = ["--run_id", self.combination.run_id] if run_id else []
        return [*command, *self.combination.argv(), "--logdir", str(logdir), *named, *lightning]


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_jobs() -> int:
    """One process per usable CPU, at most ``MAX_DEFAULT_JOBS``."""
    return max(1, min(usable_cpus(), MAX_DEFAULT_JOBS))


def threads_per_job(jobs: int) -> int:
    """The CPUs shared out over the pool, so ``jobs`` runs do not oversubscribe the machine."""
    return max(1, usable_cpus() // jobs)


class StoredRuns:
    """The runs under a logdir, found by trainer and stored hyperparameters; each hparams.yaml read once.

    A run without a readable hparams.yaml yet (just started, or stopped before writing it) is
    looked at again by the next search.
    """

    def __init__(self, logdir: Path) -> None:
        self.logdir = Path(logdir)
        self._read: dict[str, dict[int, Path]] = {}  # trainer -> version -> run directory
        self._by_key: dict[tuple, list[tuple[int, Path]]] = {}  # (trainer, hparams key) -> runs

    def search(self, trainer: str, hparams: dict) -> list[Path]:
        """The run directories of ``trainer`` whose hparams.yaml holds ``hparams``, newest first."""
        self._refresh(trainer)
        return [run_dir for _, run_dir in sorted(self._by_key.get((trainer, hparams_key(hparams)), []))[::-1]]

    def all(self, trainer: str) -> list[Path]:
        """Every run directory of ``trainer`` with a readable hparams.yaml, oldest first."""
        self._refresh(trainer)
        read = self._read.get(trainer, {})
        return [read[version] for version in sorted(read)]

    def _refresh(self, trainer: str) -> None:
        read = self._read.setdefault(trainer, {})
        for version in versions(self.logdir / trainer):
            run_dir = self.logdir / run_name(trainer, version)
            if version in read or (stored := read_stored_hparams(run_dir)) is None:
                continue
            read[version] = run_dir
            if (key := hparams_key(stored)) is not None:
                self._by_key.setdefault((trainer, key), []).append((version, run_dir))


def hparams_key(hparams: dict) -> tuple | None:
    """``hparams`` as a dictionary key (None for one holding a value that cannot be one).

    A list (``drop``, as hparams.yaml holds it) counts as the tuple of its items.
    """
    try:
        key = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in hparams.items()))
        hash(key)
    except TypeError:
        return None
    return key


def read_stored_hparams(run_dir: Path) -> dict | None:
    """The hyperparameters a run's hparams.yaml holds; None where there is no readable one.

    A table of names to plain values (a list of them for ``drop`` and ``class_names``) that YAML aliases
    do not expand beyond the file's size: a sweep compares, hashes and prints them.
    """
    try:
        stored = load_hparams_yaml(Path(run_dir) / HPARAMS_FILE)
    except CheckpointError:
        return None
    if not isinstance(stored, dict) or not fits(stored, MAX_HPARAMS_FILE_BYTES):
        return None
    for key, value in stored.items():
        items = value if isinstance(value, list) else [value]
        if not isinstance(key, str) or not all(isinstance(v, str | int | float | bool | None) for v in items):
            return None
    return stored


# (job, exit code, seconds, everything the run printed, whether the sweep was stopping)
OnDone = Callable[[Job, int, float, str, bool], None]
# {job: what it printed so far}, about every LIVE_S seconds while runs train
OnProgress = Callable[[dict[Job, str]], None]
LIVE_S = 0.5
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def end_with_parent(parent: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send SIGTERM to the run when the sweep dies, however it dies
    (SIGKILL included): PR_SET_PDEATHSIG, through ctypes. SIGTERM, so the run saves its checkpoint and
    a later sweep resumes it. None where there is no prctl (not Linux): runs then outlive a killed sweep."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the sweep died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def run_pool(
    jobs: Sequence[Job],
    logdir: Path,
    scripts: Path,
    processes: int,
    on_done: OnDone,
    on_progress: OnProgress | None = None,
) -> int:
    """Train ``jobs`` in at most ``processes`` processes at once; 0, or 130/143 when stopped by a signal.

    Ctrl-C or SIGTERM starts no more runs and passes the signal on, once, to each run in
    progress: it saves its checkpoint and stops at the next batch, and a later sweep resumes
    it. A second Ctrl-C passes on a second one, which stops the runs at once. The runs sit
    in sessions of their own, so a terminal's Ctrl-C reaches them through the sweep alone;
    each is sent SIGTERM by the kernel if the sweep dies (``end_with_parent``), so none
    outlives it.
    """
    env = dict(os.environ)
    for name in THREAD_VARIABLES:  # read by torch and NumPy's BLAS as they start; a user's value wins
        env.setdefault(name, str(threads_per_job(processes)))
    pending, running = deque(jobs), {}
    # under SLURM a SIGUSR1 passed on to every run must not requeue the one job once per run
    requeue = slurm_job() is None
    stop, passed_on, shown = StopRequest().install(), False, 0.0
    preexec = end_with_parent(os.getpid())

    def collect(process: subprocess.Popen) -> None:
        job, start, output = running.pop(process)
        output.seek(0)
        on_done(job, process.returncode, time.perf_counter() - start, output.read(), stop.requested)
        output.close()

    try:
        while pending or running:
            while pending and len(running) < processes and not stop.requested:
                job = pending.popleft()
                # a file, not a pipe: a chatty run never blocks; closed when the run has ended
                output = tempfile.TemporaryFile("w+")  # noqa: SIM115
                process = subprocess.Popen(
                    job.argv(logdir, scripts, requeue=requeue), stdout=output, stderr=subprocess.STDOUT,
                    env=env, start_new_session=True, text=True, preexec_fn=preexec,
                )  # fmt: skip
                running[process] = (job, time.perf_counter(), output)
            if stop.requested and not passed_on:
                _signal_all(running, stop.signum)
                passed_on = True
            if stop.requested and not running:
                break
            for process in [p for p in running if p.poll() is not None]:
                collect(process)
            if on_progress is not None and running and time.monotonic() - shown >= LIVE_S:
                on_progress({job: _printed(output) for job, _, output in running.values()})
                shown = time.monotonic()
            time.sleep(POLL_S)
    except KeyboardInterrupt:  # the second Ctrl-C: the runs stop at once, without saving
        _signal_all(running, signal.SIGINT)
        for process in list(running):
            process.wait()
            collect(process)
    finally:
        stop.restore()
    return stop.exit_code if stop.requested else 0


def _printed(output) -> str:
    """What a run wrote to its output file so far; pread, since the run shares the file's offset."""
    fd = output.fileno()
    return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")


def _signal_all(running: dict, signum: int) -> None:
    for process in running:
        if process.poll() is None:
            process.send_signal(signum)
