"""The sweep's statistics on synthetic numbers whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlp_lightning.analysis.statistics import (
    SPREAD_RATIO_ALLOWED,
    agree_in_distribution,
    mean_interval,
    mean_sd,
    t_central_mass,
    t_quantile,
)

# Student's t 0.975 quantiles, from published tables (scipy.stats.t.ppf(0.975, df))
T_975 = {
    1: 12.706204736174698,
    2: 4.302652729749464,
    3: 3.182446305284263,
    4: 2.7764451051977934,
    5: 2.570581835636314,
    10: 2.2281388519862744,
    30: 2.0422724563012373,
    100: 1.9839715184496334,
}


@pytest.mark.parametrize("df", sorted(T_975))
def test_t_quantile_matches_the_published_975_quantiles(df):
    assert t_quantile(0.975, df) == pytest.approx(T_975[df], rel=1e-9)


def test_t_quantile_is_symmetric_and_other_levels_match_the_tables():
    assert t_quantile(0.025, 4) == pytest.approx(-T_975[4], rel=1e-9)
    assert t_quantile(0.995, 4) == pytest.approx(4.604094871415897, rel=1e-9)
    assert t_quantile(0.95, 9) == pytest.approx(1.8331129326536335, rel=1e-9)
    assert t_quantile(0.5, 7) == 0.0


def test_t_quantile_approaches_the_normal_quantile_for_many_degrees_of_freedom():
    assert t_quantile(0.975, 5000) == pytest.approx(1.959963984540054, abs=1e-3)
    assert t_quantile(0.975, 5000) > 1.959963984540054


def test_t_central_mass_of_one_degree_of_freedom_is_the_cauchy_distribution():
    for t in (0.3, 1.0, 7.5):
        assert t_central_mass(t, 1) == pytest.approx(2 / math.pi * math.atan(t), rel=1e-12)
    assert t_central_mass(math.sqrt(2), 2) == pytest.approx(1 / math.sqrt(2), rel=1e-12)


def test_t_quantile_refuses_a_probability_outside_0_1():
    with pytest.raises(ValueError, match="0 < p < 1"):
        t_quantile(1.0, 3)


def test_mean_sd_uses_the_sample_standard_deviation():
    mean, sd = mean_sd([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5 and sd == pytest.approx(math.sqrt(5 / 3), rel=1e-12)
    assert math.isnan(mean_sd([3.0])[1])


def test_mean_interval_is_the_t_interval_of_the_mean():
    ci = mean_interval([1.0, 2.0, 3.0, 4.0])
    half = T_975[3] * math.sqrt(5 / 3) / 2
    assert (ci.mean, ci.n) == (2.5, 4)
    assert ci.lo == pytest.approx(2.5 - half, rel=1e-9) and ci.hi == pytest.approx(2.5 + half, rel=1e-9)
    one = mean_interval([0.7])
    assert one.mean == 0.7 and math.isnan(one.lo) and math.isnan(one.hi)


def finals(losses, accs) -> np.ndarray:
    return np.stack([np.asarray(losses, dtype=float), np.asarray(accs, dtype=float)], axis=1)


LIT_LOSS = np.array([0.10, 0.12, 0.14, 0.16, 0.18])  # sample sd 0.0316...
ACC = np.full(5, 0.99375)


def test_agreement_holds_when_the_paired_difference_is_small_beside_the_spread():
    sd = LIT_LOSS.std(ddof=1)
    d = np.array([1, -1, 1, -1, 1]) * 0.2 * sd  # RMS(d) = 0.2 sd
    ok, detail = agree_in_distribution(finals(LIT_LOSS + d, ACC), finals(LIT_LOSS, ACC), n_val=160)
    assert ok, detail
    assert "RMS(d)/spread 0.2" in detail


def test_agreement_fails_when_the_paired_difference_is_a_third_of_the_spread():
    sd = LIT_LOSS.std(ddof=1)
    d = np.full(5, (SPREAD_RATIO_ALLOWED + 0.05) * sd)  # a constant shift keeps the twin's sd the same
    ok, detail = agree_in_distribution(finals(LIT_LOSS + d, ACC), finals(LIT_LOSS, ACC), n_val=160)
    assert not ok, detail


def test_agreement_allows_one_validation_point_of_accuracy_per_seed_and_no_more():
    one_point = ACC - np.array([0, 1, 0, 0, 0]) / 160
    two_points = ACC - np.array([0, 2, 0, 0, 0]) / 160
    assert agree_in_distribution(finals(LIT_LOSS, one_point), finals(LIT_LOSS, ACC), n_val=160)[0]
    assert not agree_in_distribution(finals(LIT_LOSS, two_points), finals(LIT_LOSS, ACC), n_val=160)[0]


def test_agreement_without_spread_needs_identical_losses():
    flat = np.full(5, 0.1)
    assert agree_in_distribution(finals(flat, ACC), finals(flat, ACC), n_val=160)[0]
    assert not agree_in_distribution(finals(flat + 1e-9, ACC), finals(flat, ACC), n_val=160)[0]
