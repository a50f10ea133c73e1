"""What each DDP process holds alone, and a resume must hand back to that same process.

Rank 0 writes the checkpoint from its own objects. The weights, the optimizer, the
loader position and the dropout masks (a pure function of seed, epoch and point:
``core.dropout``) are the same on every rank, or follow from what is; the torchmetrics
sums of an epoch in progress are not: each rank sums its own shard. So every save
gathers each rank's sums into the checkpoint, and a resume gives each rank back its
own, which needs the same number of processes. (A format-1 checkpoint's entries also
hold the torch RNG states dropout drew from then; they are not read.)
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from mlp_lightning.core.errors import ResumeError


def gather_rank_states(trainer: L.Trainer, state: dict[str, Any]) -> list[dict[str, Any]]:
    """``[rank] -> state`` of every rank, on every rank; a collective: all ranks must call it."""
    if trainer.world_size == 1:
        return [state]
    gathered: list[Any] = [None] * trainer.world_size
    torch.distributed.all_gather_object(gathered, state)  # CPU tensors and ints: pickled
    return gathered


def saved_ranks(saved: dict[str, Any]) -> list[dict[str, Any]]:
    """A checkpoint's per-rank states, one per process (a checkpoint without ``ranks`` is one process's)."""
    return saved.get("ranks") or [saved]


def check_process_count(trained_by: int, world_size: int) -> None:
    """Raise ResumeError unless a resume runs on as many processes as trained the run."""
    if trained_by != world_size:
        raise ResumeError(
            f"--resume: the run was trained by {trained_by} process(es) and this launch has "
            f"{world_size}; resume it with {trained_by} (--devices x --num_nodes), because "
            "each process continues its own data shard and metric sums"
        )


def own_rank_state(saved: dict[str, Any], trainer: L.Trainer) -> dict[str, Any]:
    """This rank's entry of a checkpoint's ``ranks`` list."""
    ranks = saved_ranks(saved)
    check_process_count(len(ranks), trainer.world_size)
    return ranks[trainer.global_rank]
