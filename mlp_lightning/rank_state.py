"""What each DDP process holds alone, and a resume must hand back to that same process.

Rank 0 writes the checkpoint from its own objects. The weights, the optimizer and
the loader position are the same on every rank; the torch RNG (dropout) and the
torchmetrics sums of an epoch in progress are not: each rank sums its own shard,
and when the epoch's last batch splits unevenly the ranks draw masks for different
numbers of points. So every save gathers each rank's state into the checkpoint, and
a resume gives each rank back its own, which needs the same number of processes.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from mlp_lightning.resume import ResumeError


def gather_rank_states(trainer: L.Trainer, state: dict[str, Any]) -> list[dict[str, Any]]:
    """``[rank] -> state`` of every rank, on every rank; a collective: all ranks must call it."""
    if trainer.world_size == 1:
        return [state]
    gathered: list[Any] = [None] * trainer.world_size
    torch.distributed.all_gather_object(gathered, state)  # CPU tensors and ints: pickled
    return gathered


def own_rank_state(saved: dict[str, Any], trainer: L.Trainer) -> dict[str, Any]:
    """This rank's entry of a checkpoint's ``ranks`` list (a checkpoint without one is one process's)."""
    ranks = saved.get("ranks") or [saved]
    if len(ranks) != trainer.world_size:
        raise ResumeError(
            f"--resume: the run was trained by {len(ranks)} process(es) and this launch has "
            f"{trainer.world_size}; resume it with {len(ranks)} (--devices x --num_nodes), because "
            "each process continues its own data shard, dropout RNG and metric sums"
        )
    return ranks[trainer.global_rank]
