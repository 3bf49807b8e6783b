"""Percentile bootstrap intervals, one rule for every analysis of a report.

Intervals are reported as computed: the percentile interval of the resampled statistic, never
widened to contain the point estimate (with few trials a resampled statistic can be biased, so
an interval that misses its estimate is information, and the analyses say how often it happens).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

DEFAULT_RESAMPLES = 200
"""Bootstrap resamples per interval unless the report is asked for another number
(``python -m reports.build --bootstrap N``); 200 keeps the Monte Carlo error of a 95%
percentile bound small next to the sampling error of the few trials a study has."""


def percentile_interval(
    boot: np.ndarray, *, confidence: float = 0.95, axis: int | None = None
) -> tuple[np.ndarray | float, np.ndarray | float]:
    """The ``confidence`` percentile interval of bootstrap values (NaNs ignored).

    Args:
        boot: resampled statistics; with ``axis``, the axis that holds the resamples.
        confidence: coverage aimed at, e.g. 0.95 for the 2.5 and 97.5 percentiles.
        axis: None for a flat array of resamples (returns floats).

    Returns:
        ``(low, high)``; NaN where no resample is finite.

    Raises:
        ValueError: ``confidence`` outside (0, 1).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence {confidence} must lie strictly between 0 and 1")
    tail = (1.0 - confidence) / 2.0 * 100.0
    boot = np.asarray(boot, dtype=float)
    if axis is None:
        if not np.isfinite(boot).any():
            return math.nan, math.nan
        low, high = np.nanpercentile(boot, [tail, 100.0 - tail])
        return float(low), float(high)
    finite = np.isfinite(boot).any(axis=axis)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="All-NaN slice encountered")
        low, high = np.nanpercentile(boot, [tail, 100.0 - tail], axis=axis)
    return np.where(finite, low, np.nan), np.where(finite, high, np.nan)


def mean_interval(
    values: np.ndarray, *, n_resamples: int = DEFAULT_RESAMPLES, confidence: float = 0.95,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (NaN bounds for no values or
    no resamples)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0 or n_resamples <= 0:
        return math.nan, math.nan
    if values.size == 1:  # every resample is the value itself (scipy needs two)
        return float(values[0]), float(values[0])
    boot = stats.bootstrap((values,), np.mean, n_resamples=n_resamples, method="percentile",
                           vectorized=True, rng=rng).bootstrap_distribution
    return percentile_interval(boot, confidence=confidence)
