"""The blob generator, the split and the batch order: shared by both trainers."""

import numpy as np
import pytest

from mlp_lightning.core.data import BatchOrder, class_centers, eval_chunks, make_blobs, split_train_val
from mlp_lightning.core.hparams import HParams


def notebook_make_blobs(n_per_class=200, dim=2, offset=2.0, seed=0):
    """The reference notebook's generator, verbatim."""
    rng = np.random.default_rng(seed)
    c0 = rng.normal(loc=-offset, scale=1.0, size=(n_per_class, dim))
    c1 = rng.normal(loc=+offset, scale=1.0, size=(n_per_class, dim))
    X = np.vstack([c0, c1]).astype(np.float32)
    y = np.array([0] * n_per_class + [1] * n_per_class, dtype=np.int64)
    idx = rng.permutation(len(X))
    return X[idx], y[idx]


@pytest.mark.parametrize(
    "n_per_class, dim, offset, seed",
    [(400, 2, 2.0, 42), (200, 2, 2.0, 0), (7, 5, 0.3, 123), (1000, 1, 1.5, 2**31 - 1)],
)
def test_two_class_blobs_equal_the_notebooks_bit_for_bit(n_per_class, dim, offset, seed):
    X, y = make_blobs(n_per_class, dim, offset, num_classes=2, seed=seed)
    X_ref, y_ref = notebook_make_blobs(n_per_class, dim, offset, seed)
    assert X.dtype == np.float32 and y.dtype == np.int64
    assert X.tobytes() == X_ref.tobytes()
    np.testing.assert_array_equal(y, y_ref)


def test_two_class_blobs_match_a_pinned_slice():
    # guards against a numpy release changing default_rng's normal() stream
    X, y = make_blobs(400, 2, 2.0, 2, seed=42)
    assert X.shape == (800, 2) and y.shape == (800,)
    assert y[:8].tolist() == notebook_make_blobs(400, 2, 2.0, 42)[1][:8].tolist()
    assert np.bincount(y).tolist() == [400, 400]


def test_many_class_blobs_are_deterministic_and_centered_as_documented():
    X1, y1 = make_blobs(500, 3, 2.0, num_classes=4, seed=7)
    X2, y2 = make_blobs(500, 3, 2.0, num_classes=4, seed=7)
    assert X1.tobytes() == X2.tobytes() and np.array_equal(y1, y2)
    assert np.bincount(y1).tolist() == [500] * 4
    centers = class_centers(4, 2.0)
    np.testing.assert_allclose(centers, [-6.0, -2.0, 2.0, 6.0])
    for k, c in enumerate(centers):
        np.testing.assert_allclose(X1[y1 == k].mean(axis=0), np.full(3, c), atol=0.15)
    # neighbouring centers are as far apart as the two-class ones: 2 * offset * sqrt(dim)
    assert np.diff(centers).min() * np.sqrt(3) == pytest.approx(2 * 2.0 * np.sqrt(3))


def test_split_takes_the_first_points_for_training_like_the_notebook():
    X, y = make_blobs(400, 2, 2.0, 2, seed=42)
    Xtr, ytr, Xva, yva = split_train_val(X, y, 0.2)
    assert len(Xtr) == int(0.8 * 800) == 640 and len(Xva) == 160
    assert np.array_equal(Xtr, X[:640]) and np.array_equal(yva, y[640:])
    assert HParams().n_train == 640 and HParams().n_val == 160


def test_split_rounds_instead_of_truncating():
    # (1 - 0.3) * 10 is 6.999... in floating point; 7 points must train
    X, y = make_blobs(5, 2, 2.0, 2, seed=0)
    assert len(split_train_val(X, y, 0.3)[0]) == 7


def test_batch_order_is_a_pure_function_of_seed_and_epoch():
    a, b = BatchOrder(640, 64, seed=42), BatchOrder(640, 64, seed=42)
    b.set_epoch(3)
    list(b)  # iterating another epoch first must not change epoch 0's order
    b.set_epoch(0)
    assert [i.tolist() for i in a] == [i.tolist() for i in b]
    epoch0 = np.concatenate(list(a))
    a.set_epoch(1)
    epoch1 = np.concatenate(list(a))
    assert sorted(epoch0.tolist()) == list(range(640))
    assert sorted(epoch1.tolist()) == list(range(640))
    assert not np.array_equal(epoch0, epoch1)
    c = BatchOrder(640, 64, seed=43)
    assert not np.array_equal(np.concatenate(list(c)), epoch0)


def test_batch_order_sizes_include_the_last_partial_batch():
    order = BatchOrder(100, 32, seed=0)
    assert len(order) == 4
    assert [len(i) for i in order] == [32, 32, 32, 4]


def test_batch_order_resumes_at_the_next_unseen_batch():
    full = BatchOrder(640, 64, seed=1)
    full.set_epoch(2)
    expected = [i.tolist() for i in full]
    first = BatchOrder(640, 64, seed=1)
    first.set_epoch(2)
    it = iter(first)
    seen = [next(it).tolist() for _ in range(3)]
    resumed = BatchOrder(640, 64, seed=1)
    resumed.load_state_dict(first.state_dict())
    resumed.set_epoch(2)  # Lightning calls this again on resume: same epoch keeps the position
    assert seen + [i.tolist() for i in resumed] == expected


def test_ranks_get_disjoint_shards_that_cover_the_epoch():
    world = 2
    shards = []
    for rank in range(world):
        order = BatchOrder(640, 32, seed=5, rank=rank, world_size=world)
        order.set_epoch(4)
        shards.append(np.concatenate(list(order)))
    assert len(set(shards[0]) & set(shards[1])) == 0
    assert sorted(np.concatenate(shards).tolist()) == list(range(640))
    single = BatchOrder(640, 64, seed=5)
    single.set_epoch(4)
    # together the ranks see exactly the single-process epoch's global batches
    for i, batch in enumerate(single):
        assert sorted(batch.tolist()) == sorted(
            np.concatenate([shards[r][i * 32 : (i + 1) * 32] for r in range(world)]).tolist()
        )


def test_eval_chunks_walk_the_split_in_order():
    chunks = eval_chunks(10_000)
    assert chunks[0].start == 0 and chunks[-1].stop == 10_000
    assert all(a.stop == b.start for a, b in zip(chunks[:-1], chunks[1:], strict=True))


def test_blobs_drawn_in_small_chunks_equal_the_notebooks(monkeypatch):
    import mlp_lightning.core.data as data

    monkeypatch.setattr(data, "_DRAW_VALUES", 7)  # many uneven chunks per class
    X, y = data.make_blobs(50, 3, 1.0, num_classes=2, seed=11)
    X_ref, y_ref = notebook_make_blobs(50, 3, 1.0, 11)
    assert X.tobytes() == X_ref.tobytes() and np.array_equal(y, y_ref)
