"""The sweep's statistics on synthetic numbers whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlp_lightning.analysis.statistics import (
    mean_interval,
    mean_sd,
    t_central_mass,
    t_quantile,
    welch_test,
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


def test_welch_test_matches_a_hand_computed_case():
    # a: mean 2, var 1 (n 3); b: mean 5, var 4 (n 3): se^2 = 1/3 + 4/3, df = (5/3)^2 / ((1/9 + 16/9) / 2)
    test = welch_test([1.0, 2.0, 3.0], [3.0, 5.0, 7.0])
    assert test.t == pytest.approx(-3 / math.sqrt(5 / 3), rel=1e-12)
    assert test.df == 2  # (5/3)^2 / ((1/9 + 16/9) / 2) = 2.94, rounded down: fewer false alarms
    assert test.critical == pytest.approx(T_975[2], rel=1e-9)
    assert test.same  # |t| = 2.32 < 4.30
    assert not welch_test([1.0, 2.0, 3.0, 4.0], [11.0, 12.0, 13.0, 14.0]).same


def test_welch_test_false_alarm_rate_at_10_seeds_is_about_5_percent():
    rng = np.random.default_rng(0)
    alarms = [not welch_test(rng.normal(0, 1, 10), rng.normal(0, 2, 10)).same for _ in range(4000)]
    assert 0.035 < np.mean(alarms) < 0.065  # 5% +- 3.5 sigma of 4000 draws


def test_welch_test_without_spread_needs_equal_values():
    assert welch_test([0.1, 0.1], [0.1, 0.1]).same
    assert not welch_test([0.1, 0.1], [0.1 + 1e-9, 0.1 + 1e-9]).same
