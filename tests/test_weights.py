"""The initial weights: one seeded NumPy function both trainers start from."""

import numpy as np

from mlp_lightning.core.weights import PARAM_NAMES, init_weights, param_shapes


def test_initial_weights_have_the_documented_shapes_dtype_and_scale():
    w = init_weights(dim=64, hidden_dim=256, num_classes=3, seed=0)
    assert tuple(w) == PARAM_NAMES
    for name, shape in param_shapes(64, 256, 3).items():
        assert w[name].shape == shape and w[name].dtype == np.float32
    assert abs(w["W1"].std() - 0.02) < 0.001 and abs(w["W1"].mean()) < 0.001
    assert not w["b1"].any() and not w["b2"].any()


def test_same_seed_same_weights_other_seed_other_weights():
    a, b = init_weights(2, 32, 2, seed=42), init_weights(2, 32, 2, seed=42)
    c = init_weights(2, 32, 2, seed=43)
    assert all(a[n].tobytes() == b[n].tobytes() for n in PARAM_NAMES)
    assert not np.array_equal(a["W1"], c["W1"])


def test_weights_stream_is_independent_of_the_data_stream():
    from mlp_lightning.core.data import make_blobs

    X, _ = make_blobs(4, 2, 2.0, 2, seed=42)
    w = init_weights(2, 32, 2, seed=42)
    assert not np.isin(w["W1"].ravel(), X.ravel()).any()
