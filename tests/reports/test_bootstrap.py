"""Bootstrap intervals: their coverage on data with a known answer, and no widening."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reports.bootstrap import DEFAULT_RESAMPLES, mean_interval, percentile_interval


def coverage(*, n: int, n_datasets: int, n_resamples: int, seed: int) -> float:
    """Share of simulated data sets (n draws of a skewed distribution with known mean 1)
    whose 95% percentile interval of the mean contains 1."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(n_datasets):
        values = rng.exponential(1.0, size=n)  # mean 1, skewed like F1 scores near a bound
        low, high = mean_interval(values, n_resamples=n_resamples, rng=rng)
        hits += low <= 1.0 <= high
    return hits / n_datasets


def test_default_resamples_are_at_least_200():
    assert DEFAULT_RESAMPLES >= 200


def test_95_percent_intervals_cover_a_known_mean_about_95_percent_of_the_time():
    # 400 data sets: the coverage estimate has a binomial sd of ~1.1 points; the percentile
    # bootstrap of a mean of 40 exponential draws is known to undercover slightly (~93%).
    found = coverage(n=40, n_datasets=400, n_resamples=DEFAULT_RESAMPLES, seed=0)
    assert 0.90 <= found <= 0.99, found


def test_coverage_check_can_fail_a_too_narrow_interval():
    # the same check on 50% intervals (too narrow for a 95% claim) finds it out
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(200):
        values = rng.exponential(1.0, size=40)
        boot = values[rng.integers(0, 40, (DEFAULT_RESAMPLES, 40))].mean(axis=1)
        low, high = percentile_interval(boot, confidence=0.5)
        hits += low <= 1.0 <= high
    assert hits / 200 < 0.90


def test_interval_is_the_percentiles_of_the_resamples_never_widened_to_an_estimate():
    boot = np.linspace(0.0, 1.0, 1001)
    low, high = percentile_interval(boot, confidence=0.9)
    assert (low, high) == pytest.approx((0.05, 0.95))
    # an estimate of 2.0 outside the resamples does not move the interval: no estimate
    # argument exists at all
    assert percentile_interval(np.full(10, math.nan)) == (pytest.approx(math.nan, nan_ok=True),
                                                         pytest.approx(math.nan, nan_ok=True))


def test_intervals_along_an_axis_leave_all_nan_columns_nan():
    boot = np.array([[0.0, math.nan], [1.0, math.nan], [2.0, math.nan]])  # (B, G)
    low, high = percentile_interval(boot, confidence=0.5, axis=0)
    assert low[0] == pytest.approx(0.5) and high[0] == pytest.approx(1.5)
    assert math.isnan(low[1]) and math.isnan(high[1])


def test_bad_confidence_is_refused():
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        percentile_interval(np.arange(3.0), confidence=95)
