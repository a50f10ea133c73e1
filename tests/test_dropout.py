"""Dropout's keep rule, the run's stream of keep bits (both trainers' masks), and the Lightning model's
fallback mask: exact keep rate, exact scale, uncorrelated bits, train vs eval."""

import math

import numpy as np
import pytest
import torch

from mlp_lightning.core import dropout as stream
from mlp_lightning.core.dropout import exact_bits, keep_packed, keep_probability, keep_threshold, keep_units
from mlp_lightning.core.weights import init_weights
from mlp_lightning.lightning.dropout import keep_mask, unpack_keep
from mlp_lightning.lightning.model import TwoLayerMLP


@pytest.mark.parametrize(("p", "bits"), [(0.5, 1), (0.25, 8), (0.375, 8), (3 / 256, 8), (0.1, 31), (0.3, 31)])
def test_the_keep_rule_is_exact_where_p_fits_the_draw_and_within_its_resolution_elsewhere(p, bits):
    assert exact_bits(p, (1, 8), fallback=31) == bits
    if bits < 31:
        assert keep_probability(p, bits) == 1 - p
    else:
        assert keep_probability(p, bits) != 1 - p  # 0.1 and 0.3 are not k / 2**31 ...
        assert abs(keep_probability(p, bits) - (1 - p)) <= 2.0**-bits  # ... but within 2**-31 of it


def test_a_p_just_under_one_still_keeps_a_unit_now_and_then():
    assert keep_threshold(1 - 2.0**-40, 8) == 255
    assert keep_probability(1 - 2.0**-40, 8) == 1 / 256


@pytest.mark.parametrize("p", [0.5, 0.25, 0.1, 0.9])
def test_the_mask_keeps_units_at_rate_one_minus_p_and_scales_them_by_its_inverse(p):
    torch.manual_seed(0)
    n = 1 << 20
    mask = keep_mask(torch.empty(1024, n // 1024), p)
    kept = mask > 0
    values = mask.unique().tolist()
    assert values == [0.0, float(torch.tensor(1 / (1 - p)))]  # exactly 0 or 1/(1-p) in float32
    sd = math.sqrt(p * (1 - p) / n)  # binomial sd of the kept fraction
    assert abs(kept.double().mean().item() - (1 - p)) < 5 * sd
    # rows and columns are independent draws, not a pattern repeated
    assert not torch.equal(kept[0], kept[1]) and not torch.equal(kept[:, 0], kept[:, 1])


def test_the_one_bit_mask_uses_each_random_bit_once():
    """At p = 0.5 neighbouring units take neighbouring bits of one byte: their masks are uncorrelated."""
    torch.manual_seed(1)
    kept = (keep_mask(torch.empty(1 << 20), 0.5) > 0).double()
    for lag in (1, 7, 8, 9, 64):
        corr = np.corrcoef(kept[:-lag].numpy(), kept[lag:].numpy())[0, 1]
        assert abs(corr) < 5 / math.sqrt(len(kept)), lag


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_the_mask_has_the_activations_shape_dtype_and_an_odd_size(dtype):
    like = torch.empty(3, 7, dtype=dtype)  # 21 units: not a whole number of bytes of bits
    mask = keep_mask(like, 0.5)
    assert mask.shape == like.shape and mask.dtype == dtype


def test_the_same_seed_draws_the_same_mask_and_another_seed_another():
    like = torch.empty(64, 128)
    masks = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        masks.append(keep_mask(like, 0.5))
    assert torch.equal(masks[0], masks[1]) and not torch.equal(masks[0], masks[2])


def test_p_zero_keeps_everything_unscaled():
    assert torch.equal(keep_mask(torch.empty(8, 8), 0.0), torch.ones(8, 8))


def test_training_mode_drops_and_scales_units_and_eval_mode_is_the_plain_network():
    w = init_weights(4, 4096, 2, seed=0)
    w["b1"][:] = 0.5  # most hidden units positive, so dropping them shows
    model = TwoLayerMLP(w, dropout=0.5)
    x = torch.randn(1, 4)
    with torch.no_grad():
        h = torch.relu(torch.addmm(model.b1, x, model.W1))  # (1, H), the plain network's hidden layer
        torch.testing.assert_close(model.eval()(x), h @ model.W2 + model.b2, rtol=0, atol=0)

    model.train()
    torch.manual_seed(5)
    logits = model(x)
    torch.manual_seed(5)
    mask = keep_mask(h, 0.5)  # the mask that forward drew
    torch.testing.assert_close(logits, (h * mask) @ model.W2 + model.b2, rtol=0, atol=0)
    assert set(mask.unique().tolist()) == {0.0, 2.0}
    # the backward pass goes through the same mask: no gradient reaches a dropped unit's weights
    logits.sum().backward()
    dropped = (mask == 0).squeeze(0)
    assert torch.count_nonzero(model.W1.grad[:, dropped]) == 0
    assert torch.count_nonzero(model.W1.grad[:, ~dropped & (h.squeeze(0) > 0)]) > 0


# --- the run's stream: core.dropout.keep_units, drawn by the twin and shipped to the Lightning model ---


def _kept(seed: int, epoch: int, points, units: int, p: float) -> np.ndarray:
    points = np.asarray(points)
    return keep_units(seed, epoch, points, units, p, out=np.empty((len(points), units), bool))


@pytest.mark.parametrize("p", [0.5, 0.25, 0.1, 0.9, 0.3])
def test_the_stream_keeps_units_at_rate_one_minus_p_within_five_sigma(p):
    kept = _kept(42, 0, np.arange(1024), 1024, p)
    n = kept.size
    assert abs(kept.mean() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


@pytest.mark.parametrize("p", [0.5, 0.25, 0.3])
def test_the_stream_bits_are_uncorrelated_across_units_points_epochs_and_seeds(p):
    kept = _kept(0, 0, np.arange(512), 512, p)
    bound = 5 / math.sqrt(kept.size)  # 5 sigma of a correlation of independent bits
    for lag in (1, 7, 8, 9, 63, 64, 65):  # neighbouring units: bits of one byte, one word, the next word
        assert abs(_corr(kept[:, :-lag], kept[:, lag:])) < 5 / math.sqrt(kept[:, lag:].size), lag
    assert abs(_corr(kept[:-1], kept[1:])) < bound  # neighbouring points (one batch, the next step's)
    assert abs(_corr(kept, _kept(0, 1, np.arange(512), 512, p))) < bound  # the next epoch
    assert abs(_corr(kept, _kept(1, 0, np.arange(512), 512, p))) < bound  # another seed


def test_a_points_mask_depends_on_seed_epoch_and_point_not_on_its_batch():
    """So a DDP rank draws exactly its rows of the global batch, and batch size does not matter."""
    whole = _kept(3, 5, [10, 11, 12, 13], 40, 0.5)
    assert np.array_equal(_kept(3, 5, [12, 13], 40, 0.5), whole[2:])  # rank 1's half of the batch
    assert np.array_equal(_kept(3, 5, [13, 10], 40, 0.5), whole[[3, 0]])
    assert not np.array_equal(_kept(3, 6, [10], 40, 0.5), whole[:1])
    assert not np.array_equal(_kept(4, 5, [10], 40, 0.5), whole[:1])


def test_the_key_mix_on_python_ints_is_the_array_mix():
    z = np.array([0, 1, 2**63, 2**64 - 1, 0x9E3779B97F4A7C15], dtype=np.uint64)
    mixed = stream._mix(z.copy(), np.empty_like(z))
    assert [int(v) for v in mixed] == [stream._mix_int(int(v)) for v in z]
    assert int(
        stream._mix(np.zeros(1, np.uint64) + np.uint64(0x9E3779B97F4A7C15), np.empty(1, np.uint64))[0]
    ) == (
        0xE220A8397B1DCDAF  # splitmix64's first output from state 0 (the reference implementation's)
    )


@pytest.mark.parametrize(("p", "units"), [(0.5, 21), (0.5, 64), (0.25, 13), (0.3, 40)])
def test_the_packed_bits_unpack_on_the_device_to_the_twins_mask(p, units):
    points = np.array([5, 1, 77])
    packed = keep_packed(9, 2, points, units, p)
    assert packed.shape == (3, -(-units // 8)) and packed.dtype == np.uint8
    like = torch.empty(3, units)
    mask = unpack_keep(torch.from_numpy(packed), like, p)
    assert mask.shape == like.shape and mask.dtype == like.dtype
    expected = _kept(9, 2, points, units, p) / np.float32(1 - p)
    assert np.array_equal(mask.numpy(), expected.astype(np.float32))


def test_the_model_applies_the_bits_it_is_given_and_draws_its_own_without_them():
    w = init_weights(4, 64, 2, seed=0)
    w["b1"][:] = 0.5
    model = TwoLayerMLP(w, dropout=0.5).train()
    x = torch.randn(3, 4)
    packed = torch.from_numpy(keep_packed(0, 0, np.arange(3), 64, 0.5))
    with torch.no_grad():
        h = torch.relu(torch.addmm(model.b1, x, model.W1))
        expected = (h * unpack_keep(packed, h, 0.5)) @ model.W2 + model.b2
        torch.testing.assert_close(model(x, packed), expected, rtol=0, atol=0)
        torch.manual_seed(5)
        fallback = model(x)  # a plain (x, y) loop: torch's own draws, by the same rule
        torch.manual_seed(5)
        torch.testing.assert_close(fallback, (h * keep_mask(h, 0.5)) @ model.W2 + model.b2, rtol=0, atol=0)
