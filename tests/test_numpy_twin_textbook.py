"""The fast kernels (numpy_twin/model.py, step.py) against the textbook math (numpy_twin/textbook.py).

The textbook module is the oracle, checked itself against torch autograd; the fast one is its
optimisation. Float64 throughout. "Equal" is ``assert_same``: the largest absolute difference is
at most 1e-12 times the largest magnitude in the textbook's array (a max-norm relative error).
Scaling a whole array by 1 + 1e-9 fails it, and so does adding 1e-9 to any one entry, since no
array here reaches 1000. Not elementwise: ``(softmax - onehot) / B`` at the true class is a
difference of nearly equal numbers, whose few last bits differ between the two orders of operations.
Dropout uses one keep mask on both sides, the run's (``core.dropout.keep_units``).
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mlp_lightning.core.dropout import keep_units
from mlp_lightning.core.hparams import HParams
from mlp_lightning.core.weights import PARAM_NAMES
from mlp_lightning.numpy_twin import model as twin
from mlp_lightning.numpy_twin import textbook
from mlp_lightning.numpy_twin.step import Workspace, train_step

TOL = 1e-12
D, H = 3, 17
CLASSES = (2, 5)
ROW_BYTES = H * np.dtype(np.float64).itemsize  # a row of h, the (B, H) array the forward blocks
# rows per block of the forward and of dh: the most over CLASSES, so every C spans as many blocks
ROWS_PER_BLOCK = max(twin.block_rows(ROW_BYTES, H * C) for C in CLASSES)
BATCHES = (1, 7, 2 * ROWS_PER_BLOCK + 7)  # one row, a few, three row blocks (the last one partial)
DROPOUTS = (0.0, 0.5, 0.3)  # off; one raw bit per unit and scale 2; 32-bit draws and scale 1/0.7


def assert_same(fast, expected, what: str) -> None:
    fast, expected = np.asarray(fast), np.asarray(expected)
    assert fast.shape == expected.shape and fast.dtype == expected.dtype == np.float64, what
    diff = float(np.max(np.abs(fast - expected)))
    assert diff <= TOL * float(np.max(np.abs(expected))), f"{what}: differs by {diff:.3g}"


def problem(B: int, C: int, p: float, seed: int = 0):
    """Weights (biases non-zero), inputs, labels, and a keep mask from ``keep_units`` (None at p = 0)."""
    rng = np.random.default_rng(seed)
    params = {name: rng.normal(0, 0.7, shape) for name, shape in
              {"W1": (D, H), "b1": (H,), "W2": (H, C), "b2": (C,)}.items()}  # fmt: skip
    X = rng.normal(0, 1, (B, D))
    y = rng.integers(0, C, B)
    keep = keep_units(seed, 0, np.arange(B), H, p, out=np.empty((B, H), bool)) if p > 0 else None
    return params, X, y, keep


cases = pytest.mark.parametrize(
    ("B", "C", "p"), [(B, C, p) for B in BATCHES for C in CLASSES for p in DROPOUTS]
)


def test_the_largest_batch_crosses_the_row_blocks_of_every_blocked_kernel():
    B = BATCHES[-1]
    for C in CLASSES:
        assert len(list(twin.row_blocks(B, ROW_BYTES, H * C))) == 3, C  # forward, and dh in backward
    assert len(list(twin.row_blocks(H, 0, B * max(CLASSES)))) > 1  # backward's slices of dW2


@cases
def test_fast_forward_gives_the_textbook_logits_and_hidden_activations(B, C, p):
    params, X, _, keep = problem(B, C, p)
    expected, (_, _, _, h) = textbook.forward(X, params, keep, p)
    logits, cache = twin.forward(X, params, keep, p)
    assert_same(logits, expected, "logits")
    assert_same(cache.h, h, "h")


@pytest.mark.parametrize("B", BATCHES)
@pytest.mark.parametrize("C", CLASSES)
def test_fast_cross_entropy_gives_the_textbook_loss_and_gradient(B, C):
    params, X, y, _ = problem(B, C, 0.0)
    logits = 10 * textbook.forward(X, params)[0]  # sharper: some softmax entries near 0 and 1
    expected_loss, expected = textbook.cross_entropy(logits, y)
    loss, dlogits = twin.cross_entropy(logits.copy(), y)  # the fast one overwrites its input
    assert_same(loss, expected_loss, "loss")
    assert_same(dlogits, expected, "dlogits")


@cases
def test_fast_backward_gives_the_textbook_gradients(B, C, p):
    params, X, y, keep = problem(B, C, p)
    logits, textbook_cache = textbook.forward(X, params, keep, p)
    _, dlogits = textbook.cross_entropy(logits, y)
    expected = textbook.backward(dlogits, textbook_cache, params)
    grads = twin.backward(dlogits.copy(), twin.forward(X, params, keep, p)[1], params)
    for name in PARAM_NAMES:
        assert_same(grads[name], expected[name], name)


@pytest.mark.parametrize("C", CLASSES)
def test_fast_sgd_update_gives_the_textbook_weights(C):
    params, X, y, keep = problem(7, C, 0.3)
    logits, cache = textbook.forward(X, params, keep, 0.3)
    grads = textbook.backward(textbook.cross_entropy(logits, y)[1], cache, params)
    expected = {name: value.copy() for name, value in params.items()}
    textbook.sgd_update(expected, grads, lr=0.3, weight_decay=0.01)
    twin.sgd_update(params, {name: g.copy() for name, g in grads.items()}, lr=0.3, weight_decay=0.01)
    for name in PARAM_NAMES:
        assert_same(params[name], expected[name], name)


@cases
def test_fast_training_steps_give_the_textbook_losses_and_weights_with_the_same_dropout_draws(B, C, p):
    params, X, y, _ = problem(B, C, p)
    hp = HParams(dim=D, hidden_dim=H, num_classes=C, batch_size=B, dropout=p, lr=0.3, weight_decay=0.01)
    expected = {name: value.copy() for name, value in params.items()}
    ws = Workspace.allocate(B, params, dtype=np.float64)
    points = np.arange(B)
    for step in range(3):  # a fresh mask each step (here: each epoch), from the run's stream on both sides
        loss, correct = train_step(params, X, y, hp, ws, step, points)
        keep = keep_units(hp.seed, step, points, H, p, out=np.empty((B, H), bool)) if p > 0 else None
        logits, cache = textbook.forward(X, expected, keep, p)
        expected_loss, dlogits = textbook.cross_entropy(logits, y)
        textbook.sgd_update(expected, textbook.backward(dlogits, cache, expected), hp.lr, hp.weight_decay)
        assert_same(loss, expected_loss, f"loss of step {step}")
        assert correct == np.count_nonzero(logits.argmax(axis=1) == y), step
        for name in PARAM_NAMES:
            assert_same(params[name], expected[name], f"{name} after step {step}")


def test_textbook_loss_and_gradients_match_torch_autograd_in_float64():
    p = 0.4  # a scale 1/(1-p) that is not a power of two
    rng = np.random.default_rng(1)
    params, X, y, _ = problem(B=16, C=3, p=0.0, seed=1)
    keep = rng.random((16, H)) >= p
    logits, cache = textbook.forward(X, params, keep, p)
    loss, dlogits = textbook.cross_entropy(logits, y)
    grads = textbook.backward(dlogits, cache, params)
    t = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    h = F.relu(torch.tensor(X) @ t["W1"] + t["b1"]) * torch.tensor(keep) / (1 - p)
    expected_loss = F.cross_entropy(h @ t["W2"] + t["b2"], torch.tensor(y))
    expected_loss.backward()
    assert loss == pytest.approx(expected_loss.item(), rel=1e-12)
    for name in PARAM_NAMES:
        np.testing.assert_allclose(grads[name], t[name].grad.numpy(), rtol=1e-10, atol=1e-14, err_msg=name)
