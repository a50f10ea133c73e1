"""How the training epoch and the validation split are cut between DDP ranks (pure NumPy, fast)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlp_lightning.core.data import BatchOrder, shard


def rank_batches(n: int, batch_size: int, world: int, epoch: int = 3) -> list[list[np.ndarray]]:
    """[rank][step] -> that rank's index array."""
    out = []
    for rank in range(world):
        order = BatchOrder(n, batch_size, seed=7, rank=rank, world_size=world)
        order.set_epoch(epoch)
        out.append(list(order))
    return out


@given(
    n=st.integers(1, 300),
    batch_size=st.integers(1, 40),
    world=st.integers(1, 5),
)
def test_every_rank_gets_a_nonempty_disjoint_shard_of_every_global_batch(n, batch_size, world):
    if n < world:
        with pytest.raises(ValueError, match="cannot give each"):
            BatchOrder(n, batch_size, seed=0, rank=0, world_size=world)
        return
    batches = rank_batches(n, batch_size, world)
    steps = {len(b) for b in batches}
    assert steps == {len(BatchOrder(n, batch_size, 0, 0, world))}, "ranks must take the same number of steps"
    perm = BatchOrder(n, batch_size, seed=7).permutation(3)
    start = 0
    for step in range(steps.pop()):
        parts = [batches[rank][step] for rank in range(world)]
        sizes = [len(p) for p in parts]
        assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1
        glued = np.concatenate(parts)
        # the ranks' parts, in rank order, are the next run of the (seed, epoch) permutation
        assert glued.tolist() == perm[start : start + len(glued)].tolist()
        start += len(glued)
    assert start == n  # the epoch is covered exactly once: no point dropped or repeated


def test_full_global_batches_give_each_rank_batch_size_points():
    batches = rank_batches(640, 64, world=2)
    assert [len(b) for b in batches[0]] == [64] * 5 == [len(b) for b in batches[1]]


def test_one_process_keeps_the_plain_ceil_batches():
    (batches,) = rank_batches(130, 64, world=1)
    assert [len(b) for b in batches] == [64, 64, 2]


def test_remainder_smaller_than_the_world_joins_the_last_full_batch():
    # 129 points, global batch 128 over 2 ranks: 1 left over cannot be split in two
    batches = rank_batches(129, 64, world=2)
    assert [len(b) for b in batches[0]] == [64] and [len(b) for b in batches[1]] == [65]


def test_remainder_is_split_evenly_not_first_rank_first():
    # 130 points: the 2 left over give each rank one, not 2 to rank 0 and none to rank 1
    batches = rank_batches(130, 64, world=2)
    assert [len(b) for b in batches[0]] == [64, 1] == [len(b) for b in batches[1]]


@given(n=st.integers(1, 1000), world=st.integers(1, 8))
def test_validation_shards_partition_the_split(n, world):
    if n < world:
        return
    parts = [shard(0, n, rank, world) for rank in range(world)]
    assert parts[0].start == 0 and parts[-1].stop == n
    assert all(a.stop == b.start for a, b in zip(parts[:-1], parts[1:], strict=True))
    assert all(p.stop - p.start >= 1 for p in parts)
