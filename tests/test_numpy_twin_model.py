"""The twin's math: gradients against finite differences and torch autograd, loss, dtypes, update."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mlp_lightning.core.dropout import keep_threshold, keep_units, mask_bits
from mlp_lightning.core.hparams import HParams
from mlp_lightning.core.weights import PARAM_NAMES, init_weights
from mlp_lightning.lightning.model import TwoLayerMLP
from mlp_lightning.numpy_twin import model as twin
from mlp_lightning.numpy_twin.step import Workspace, train_step

P = 0.4  # a dropout rate whose scale 1/(1-p) is not a power of two


def problem(dtype=np.float64, B=6, D=3, H=7, C=4, seed=0):
    """Random weights (biases non-zero), inputs, labels and a fixed dropout mask."""
    rng = np.random.default_rng(seed)
    params = {name: rng.normal(0, 0.7, shape).astype(dtype) for name, shape in
              {"W1": (D, H), "b1": (H,), "W2": (H, C), "b2": (C,)}.items()}  # fmt: skip
    X = rng.normal(0, 1, (B, D)).astype(dtype)
    y = rng.integers(0, C, B)
    keep = rng.random((B, H)) >= P
    return params, X, y, keep


def loss_and_grads(params, X, y, keep, p=P):
    logits, cache = twin.forward(X, params, keep, p)
    loss, dlogits = twin.cross_entropy(logits, y)
    return loss, twin.backward(dlogits, cache, params)


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """CS231n's elementwise relative error, worst entry (exact zeros on both sides count as 0)."""
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-300)))


@pytest.mark.parametrize("name", PARAM_NAMES)
def test_backward_matches_central_finite_differences_in_float64(name):
    params, X, y, keep = problem()
    _, grads = loss_and_grads(params, X, y, keep)
    numeric = np.zeros_like(params[name])
    eps = 1e-5
    for i in np.ndindex(params[name].shape):
        old = params[name][i]
        params[name][i] = old + eps
        up = loss_and_grads(params, X, y, keep)[0]
        params[name][i] = old - eps
        down = loss_and_grads(params, X, y, keep)[0]
        params[name][i] = old
        numeric[i] = (up - down) / (2 * eps)
    assert rel_error(grads[name], numeric) < 1e-6


def torch_loss_and_grads(params, X, y, keep, p=P):
    t = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    h = F.relu(torch.tensor(X) @ t["W1"] + t["b1"]) * torch.tensor(keep) / (1 - p)
    loss = F.cross_entropy(h @ t["W2"] + t["b2"], torch.tensor(y))
    loss.backward()
    return loss.item(), {k: v.grad.numpy() for k, v in t.items()}


def test_numpy_backward_matches_torch_autograd_with_the_same_dropout_mask():
    params, X, y, keep = problem(B=16, D=5, H=32, C=3, seed=1)
    loss, grads = loss_and_grads(params, X, y, keep)
    expected_loss, expected = torch_loss_and_grads(params, X, y, keep)
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    for name in PARAM_NAMES:
        np.testing.assert_allclose(grads[name], expected[name], rtol=1e-10, atol=1e-14, err_msg=name)


def test_float32_forward_and_backward_match_the_lightning_sides_model_in_eval_mode():
    weights = init_weights(4, 16, 3, seed=2)
    weights["b1"][:] = 0.05  # non-zero biases, so their gradients are tested too
    X = np.random.default_rng(2).normal(0, 3, (32, 4)).astype(np.float32)
    y = np.random.default_rng(3).integers(0, 3, 32)
    model = TwoLayerMLP(weights, dropout=0.5).eval()
    torch_loss = F.cross_entropy(model(torch.from_numpy(X)), torch.from_numpy(y))
    torch_loss.backward()
    logits, cache = twin.forward(X, weights)
    loss, dlogits = twin.cross_entropy(logits, y)
    grads = twin.backward(dlogits, cache, weights)
    assert loss == pytest.approx(torch_loss.item(), rel=1e-6)
    for name in PARAM_NAMES:
        expected = getattr(model, name).grad.numpy()
        np.testing.assert_allclose(grads[name], expected, rtol=1e-5, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_matches_torch_on_logits_of_plus_minus_1e3(dtype):
    rng = np.random.default_rng(4)
    logits = rng.uniform(-1e3, 1e3, (64, 5)).astype(dtype)
    y = rng.integers(0, 5, 64)
    t = torch.tensor(logits, requires_grad=True)
    expected = F.cross_entropy(t, torch.tensor(y))
    expected.backward()
    loss, dlogits = twin.cross_entropy(logits.copy(), y)
    assert loss.dtype == dtype and dlogits.dtype == dtype
    assert loss == pytest.approx(expected.item(), rel=1e-6)
    np.testing.assert_allclose(dlogits, t.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_cross_entropy_is_finite_with_a_finite_gradient_at_plus_minus_1e4():
    logits = np.array([[1e4, -1e4], [-1e4, 1e4], [1e4, 1e4]], dtype=np.float32)
    y = np.array([1, 1, 0])
    loss, dlogits = twin.cross_entropy(logits, y)
    # wrong by 2e4, right, and a tie: (2e4 + 0 + ln 2) / 3
    assert loss == pytest.approx((2e4 + math.log(2)) / 3, rel=1e-6)
    assert np.isfinite(dlogits).all()
    np.testing.assert_allclose(dlogits, np.array([[1, -1], [0, 0], [-0.5, 0.5]]) / 3, atol=1e-7)


def test_cross_entropy_gradient_is_softmax_minus_onehot_over_batch():
    logits = np.array([[0.0, np.log(3.0)], [2.0, 2.0]], dtype=np.float32)
    loss, dlogits = twin.cross_entropy(logits, np.array([0, 1]))
    np.testing.assert_allclose(dlogits, np.array([[0.25 - 1, 0.75], [0.5, 0.5 - 1]]) / 2, rtol=1e-6)


def test_loss_at_init_is_about_ln_num_classes():
    C = 5
    hp = HParams(dim=8, hidden_dim=64, num_classes=C)
    params = init_weights(hp.dim, hp.hidden_dim, C, seed=0)
    X = np.random.default_rng(0).normal(0, 1, (256, hp.dim)).astype(np.float32)
    loss, _ = twin.cross_entropy(twin.forward(X, params)[0], np.arange(256) % C)
    assert loss == pytest.approx(math.log(C), abs=0.01)


def test_params_and_grads_stay_float32_after_a_training_step():
    hp = HParams(dim=3, hidden_dim=16, num_classes=3, batch_size=8, dropout=0.5)
    params = init_weights(hp.dim, hp.hidden_dim, hp.num_classes, seed=0)
    ws = Workspace.allocate(hp.batch_size, params)
    X = np.random.default_rng(0).normal(0, 1, (8, 3)).astype(np.float32)
    loss, correct = train_step(params, X, np.arange(8) % 3, hp, ws, 0, np.arange(8))
    assert loss.dtype == np.float32 and 0 <= correct <= 8
    for name in PARAM_NAMES:
        assert params[name].dtype == np.float32 and ws.grads[name].dtype == np.float32, name
    assert ws.cache.h.dtype == np.float32 and ws.cache.gate.dtype == np.float32


def test_it_overfits_twenty_examples():
    hp = HParams(dim=5, hidden_dim=64, num_classes=3, batch_size=20, dropout=0.0, lr=0.5, weight_decay=0.0)
    rng = np.random.default_rng(5)
    X, y = rng.normal(0, 1, (20, 5)).astype(np.float32), rng.integers(0, 3, 20)  # random labels
    params = init_weights(hp.dim, hp.hidden_dim, hp.num_classes, seed=5)
    ws = Workspace.allocate(20, params)
    for _ in range(1000):
        loss, correct = train_step(params, X, y, hp, ws, 0, np.arange(20))
    assert correct == 20 and loss < 0.05


def _five_sigma(p: float, n: int) -> float:
    """5 binomial standard deviations of the kept fraction of ``n`` independent draws."""
    return 5 * math.sqrt(p * (1 - p) / n)


def test_dropout_keeps_units_with_probability_one_minus_p_and_scales_them():
    keep = keep_units(0, 0, np.arange(1024), 1024, 0.3, out=np.empty((1024, 1024), bool))
    assert abs(keep.mean() - 0.7) < _five_sigma(0.3, keep.size)
    params, X, _, mask = problem(B=6, H=7)
    z1 = X @ params["W1"] + params["b1"]
    _, cache = twin.forward(X, params, mask, P)
    np.testing.assert_allclose(cache.h, np.maximum(z1, 0) * mask / (1 - P), rtol=1e-12)
    _, eval_cache = twin.forward(X, params)  # eval mode: no mask, no scaling
    np.testing.assert_allclose(eval_cache.h, np.maximum(z1, 0), rtol=1e-12)


def test_dropout_mask_is_a_pure_function_of_seed_epoch_and_point():
    out = np.empty((3, 5), bool)
    first = keep_units(7, 2, np.array([4, 0, 9]), 5, 0.5, out=out).copy()
    again = keep_units(7, 2, np.array([4, 0, 9]), 5, 0.5, out=out)
    assert np.array_equal(first, again)


def test_sgd_update_is_torch_sgd_with_weight_decay_on_W1_and_W2_only():
    params, X, y, keep = problem()
    _, grads = loss_and_grads(params, X, y, keep)
    t = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    for k in PARAM_NAMES:
        t[k].grad = torch.tensor(grads[k])
    torch.optim.SGD(
        [
            {"params": [t["W1"], t["W2"]], "weight_decay": 0.01},
            {"params": [t["b1"], t["b2"]], "weight_decay": 0.0},
        ],
        lr=0.3,
    ).step()
    twin.sgd_update(params, grads, lr=0.3, weight_decay=0.01)
    for name in PARAM_NAMES:
        np.testing.assert_allclose(
            params[name], t[name].detach().numpy(), rtol=1e-13, atol=1e-15, err_msg=name
        )


@pytest.mark.parametrize(("p", "bits"), [(0.5, 1), (0.25, 8), (0.375, 8), (1 / 1024, 16), (0.3, 32)])
def test_narrow_mask_draws_keep_units_with_exactly_probability_one_minus_p(p, bits):
    assert mask_bits(p) == bits
    kept = 2**bits - keep_threshold(p, bits)  # draws at or above the threshold
    assert kept / 2**bits == pytest.approx(1 - p, abs=0 if bits < 32 else 2**-32)


@pytest.mark.parametrize("p", [0.5, 0.25, 1 / 1024])
def test_every_mask_width_keeps_units_with_probability_one_minus_p(p):
    keep = keep_units(0, 0, np.arange(1024), 1024, p, out=np.empty((1024, 1024), bool))
    # 5 sigma over 2**20 draws (0.0021 at p = 0.25): a keep threshold off by 1 / 256 fails it
    assert abs(keep.mean() - (1 - p)) < _five_sigma(p, keep.size)
    # rows are independent draws, not one row repeated
    assert not np.array_equal(keep[0], keep[1])


def test_eval_only_buffers_give_the_same_logits_as_a_training_forward_without_dropout():
    params, X, _, _ = problem(dtype=np.float32, B=40, D=5, H=64, C=3)
    expected, _ = twin.forward(X, params)
    eval_only = twin.Cache(X=X, h=np.empty((40, 64), np.float32), gate=None)
    logits, cache = twin.forward(X, params, out=eval_only)
    np.testing.assert_array_equal(logits, expected)
    assert cache.gate is None
