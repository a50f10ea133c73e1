"""What the processes of one launch agree on: who claims the run directory, how many they are.

Also the start-up chatter of Lightning a user cannot act on, silenced while a run trains.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator

import lightning as L

from mlp_lightning.lightning.internals import launched_processes
from mlp_lightning.runs.args import RunArgs
from mlp_lightning.runs.layout import LIGHTNING_TRAINER, RUN_VERSION_ENV, claim_run_dir

PROG = "fit.py"


QUIET_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda",
    "lightning.fabric.utilities.seed", "lightning.fabric.utilities.distributed",
)  # fmt: skip


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence the start-up chatter a user cannot act on (device tables, tips, summaries) inside the block.

    The process's warning filters and those loggers' levels are what they were again after it,
    so a notebook that calls ``fit()`` keeps its own warnings.
    """
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        for logger in loggers:
            logger.setLevel(logging.WARNING)
        # our loaders are in-memory iterables: worker processes would only add overhead
        warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=r".*GPU available but not used.*")
        # the epoch metrics are torchmetrics objects, already summed over the ranks at compute()
        warnings.filterwarnings("ignore", message=r".*when logging on epoch level in distributed setting.*")
        # raised inside Lightning 2.6 by newer torch; nothing a user can change
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def slurm_plugins() -> list:
    """Under SLURM, its environment without Lightning's own auto-requeue.

    Lightning's SIGUSR1 handler saves an ``hpc_ckpt_N.ckpt`` into the working directory, outside
    the run, and requeues at whatever point of a step the signal lands; the project's handler
    (``runs/interrupt.py``, ``runs/slurm.py``) stops at a batch boundary, saves the run's own
    checkpoint, then requeues. Without SLURM, nothing: Lightning picks the environment.
    """
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []


def launched_as_nonzero_rank() -> bool:
    """Whether an outside launcher started this process as a rank other than global rank 0.

    torchrun sets RANK, srun SLURM_PROCID; on the second and later machines of a
    multi-node run Lightning's own launcher sees NODE_RANK (torchrun: GROUP_RANK).
    """
    return any(os.environ.get(key, "0") != "0" for key in ("RANK", "SLURM_PROCID", "NODE_RANK", "GROUP_RANK"))


def holds_the_run() -> bool:
    """Whether this process holds the run's lock: global rank 0, not a process a launcher started.

    Lightning's launcher gives the processes it starts LOCAL_RANK >= 1; an outside launcher
    sets the variables ``launched_as_nonzero_rank`` reads.
    """
    return os.environ.get("LOCAL_RANK", "0") == "0" and not launched_as_nonzero_rank()


def run_version(args: RunArgs) -> int | None:
    """Rank 0 claims a new run directory; processes it launches inherit its number.

    ``None`` for the other ranks of an outside launch (torchrun, srun): they cannot
    know rank 0's number before the processes connect, and they need none, since
    only rank 0 writes and Lightning broadcasts rank 0's checkpoint directory.
    """
    # Lightning's launcher gives the processes it starts LOCAL_RANK >= 1; the launching
    # process (and a second run in the same interpreter) must claim a fresh directory
    inherited = os.environ.get(RUN_VERSION_ENV)
    if inherited is not None and os.environ.get("LOCAL_RANK", "0") != "0":
        return int(inherited)
    if launched_as_nonzero_rank():
        return None
    _, version = claim_run_dir(args.logdir, LIGHTNING_TRAINER)
    os.environ[RUN_VERSION_ENV] = str(version)
    return version


def processes_line(trainer) -> str | None:
    """``fit.py: training on 2 processes (strategy ddp, accelerator cpu)``; None for one process."""
    if trainer.world_size <= 1:
        return None
    strategy, accelerator = _strategy_name(trainer.strategy), trainer.strategy.root_device.type
    nodes = f", {trainer.num_nodes} nodes" if trainer.num_nodes > 1 else ""
    how = f"strategy {strategy}, accelerator {accelerator}{nodes}"
    return f"{PROG}: training on {trainer.world_size} processes ({how})"


def visible_gpus() -> int:
    """CUDA devices this process sees (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def unused_devices_line(trainer, visible: int) -> str | None:
    """A note when a GPU run uses fewer of the ``visible`` GPUs than there are; None otherwise."""
    used = trainer.num_devices
    if trainer.strategy.root_device.type != "cuda" or visible <= used:
        return None
    return (
        f"{PROG}: note: training on {used} of the {visible} visible GPUs; --devices {visible} (or -1) "
        "trains on all, one DDP process each, with a global batch that many times --batch_size"
    )


def _strategy_name(strategy) -> str:
    """The name ``--strategy`` takes for the strategy Lightning picked: ddp, ddp_spawn, fsdp, ..."""
    if name := getattr(strategy, "strategy_name", None):  # FSDP and DeepSpeed name themselves
        return name
    base = type(strategy).__name__.removesuffix("Strategy").lower()  # DDPStrategy: ddp
    start = getattr(strategy, "_start_method", "popen")  # ddp starts its processes with popen
    return base if start == "popen" else f"{base}_{start}"


RANK_DIED_EXIT = os.EX_TEMPFAIL  # 75, sysexits.h's "temporary failure": the run resumes
WATCH_EVERY_S = 0.2  # a waitpid() without waiting, or a getppid(): nothing a step would notice
EXIT_GRACE_S = 3.0  # a process that exits with an error code: time for this one to end on its own first


def _how_it_ended(returncode: int) -> str:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-returncode).name}"
    return f"exit code {returncode}"


class RankWatch(L.Callback):
    """Ends this process at once when another process of a multi-process run has died.

    Without it, a rank killed mid-run (SIGKILL, the out-of-memory killer) leaves the others
    blocked in a collective until gloo or NCCL gives up, about a minute later, with a long
    traceback per process. Global rank 0 watches the processes Lightning's launcher started
    from it; each of those watches that rank 0 is still its parent. ``ended(lines)`` gives rank
    0's message (what died, the checkpoint kept, the resume command); the process then exits
    with ``RANK_DIED_EXIT``. The checkpoint is written atomically, so it stays whole.
    """

    def __init__(self, ended: Callable[[str], str]) -> None:
        self.ended = ended
        self._stop = threading.Event()
        self._check: Callable[[], str | None] | None = None
        self._children: list = []
        self._said = threading.Lock()  # the watch thread and the main one may both find the death

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.world_size == 1 or stage != "fit":
            return
        children = launched_processes(trainer)
        if children:
            watch = self._children_died(children, trainer.world_size)
        elif os.environ.get("LOCAL_RANK", "0") != "0" and not launched_as_nonzero_rank():
            watch = self._parent_died(os.getppid(), trainer.global_rank, trainer.world_size)
        else:
            return  # an outside launcher (torchrun, srun) watches its own processes
        self._check, self._children = watch, children
        threading.Thread(target=self._watch, args=(watch, children), name="rank-watch", daemon=True).start()

    def died(self, wait_s: float = 2.0) -> str | None:
        """What ended another process, if one has; a collective that failed may beat the watch to it."""
        deadline = time.monotonic() + wait_s
        while self._check is not None:
            if (what := self._check()) is not None:
                return what
            if time.monotonic() > deadline:
                break
            time.sleep(WATCH_EVERY_S)
        return None

    def end(self, what: str) -> int:
        """Stop the other processes and say what happened; the exit code to end this one with."""
        self._stop.set()
        if not self._said.acquire(blocking=False):
            return RANK_DIED_EXIT  # said once already
        for proc in self._children:  # the others would wait in a collective for the dead one
            with contextlib.suppress(OSError):
                proc.kill()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            message = self.ended(what) if self._children else f"{PROG}: {what}"
            print(f"\n{message}", file=sys.stderr, flush=True)
        return RANK_DIED_EXIT

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._stop.set()

    def _children_died(self, children: list, world_size: int) -> Callable[[], str | None]:
        first_seen: dict[int, float] = {}

        def check() -> str | None:
            for rank, proc in enumerate(children, start=1):
                code = proc.poll()
                if not code:
                    continue
                # an error exit may be a stop every rank takes (a signal, a refused write): wait for ours
                since = first_seen.setdefault(rank, time.monotonic())
                if code < 0 or time.monotonic() - since > EXIT_GRACE_S:
                    return f"process {rank} of {world_size} ended unexpectedly ({_how_it_ended(code)})"
            return None

        return check

    @staticmethod
    def _parent_died(parent: int, rank: int, world_size: int) -> Callable[[], str | None]:
        def check() -> str | None:
            if os.getppid() != parent:
                return f"process 0 of {world_size} ended unexpectedly; process {rank} stops too"
            return None

        return check

    def _watch(self, check: Callable[[], str | None], children: list) -> None:
        while not self._stop.wait(WATCH_EVERY_S):
            if (what := check()) is not None:
                os._exit(self.end(what))  # this thread cannot unwind the main one out of a collective
