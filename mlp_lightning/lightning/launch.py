"""What the processes of one launch agree on: who claims the run directory, how many they are.

Also the start-up chatter of Lightning a user cannot act on, silenced while a run trains.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator

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
