"""The HTML copy of figures and the report details (integer axes, log ticks, few trials)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from reports.display import for_display, minmax_indices
from reports.early_stopping import MIN_RANK_TRIALS, spearman_with_ci
from reports.marginals import as_drawn, log_ticks


def test_long_traces_are_thinned_keeping_extremes_and_colours_aligned():
    t = np.arange(9000) / 150.0
    y = np.sin(2 * np.pi * t)
    y[4321] = 5.0  # a QRS-like spike must survive
    figure = go.Figure([go.Scatter(x=t, y=y, mode="markers", marker={"color": y})])
    figure.update_layout(width=1800)
    shown = for_display(figure, max_points=1000)
    xs, ys, colours = (np.asarray(v) for v in
                       (shown.data[0].x, shown.data[0].y, shown.data[0].marker.color))
    assert len(xs) <= 1000 and 5.0 in ys
    assert np.array_equal(ys, colours)
    assert shown.layout.width is None and figure.layout.width == 1800  # original untouched
    assert len(figure.data[0].x) == 9000


def test_heatmaps_are_block_averaged_on_the_page_and_kept_whole_in_the_original():
    z = np.tile(np.arange(400, dtype=np.float32), (3, 1))
    z[1, 7] = np.nan
    x = np.arange(400, dtype=np.float32) / 10
    figure = go.Figure([go.Heatmap(x=x, y=[0, 1, 2], z=z)])
    shown = for_display(figure, max_columns=100)
    zs, xs = np.asarray(shown.data[0].z), np.asarray(shown.data[0].x)
    assert zs.shape == (3, 100) and len(xs) == 100
    assert zs[0, :3].tolist() == [1.5, 5.5, 9.5] and xs[0] == pytest.approx(0.15)
    assert zs[1, 1] == pytest.approx((4 + 5 + 6) / 3)  # the NaN is left out of its block
    assert np.asarray(figure.data[0].z).shape == (3, 400)
    labels = [f"c{i}" for i in range(400)]
    categorical = for_display(go.Figure([go.Heatmap(x=labels, y=[0, 1, 2], z=z)]),
                              max_columns=100)
    assert np.asarray(categorical.data[0].z).shape == (3, 400)
    small = for_display(go.Figure([go.Heatmap(x=["N", "A"], y=["N", "A"], z=np.eye(2))]))
    assert list(small.data[0].x) == ["N", "A"]


def test_minmax_indices_keep_short_traces_whole():
    assert minmax_indices(np.arange(10.0), max_points=100).tolist() == list(range(10))


def test_integer_parameters_with_few_values_are_drawn_per_value():
    few = {"distribution": "IntDistribution", "low": 1, "high": 3, "step": 1, "log": False}
    many = {**few, "high": 64}
    logged = {**few, "high": 256, "log": True}
    assert as_drawn(few)["choices"] == [1, 2, 3]
    assert as_drawn(few)["distribution"] == "CategoricalDistribution"
    assert as_drawn(many) is many and as_drawn(logged) is logged


def test_log_ticks_are_one_two_five_with_full_labels():
    assert log_ticks(2.0, 256.0) == [2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0]
    assert log_ticks(1e-4, 3e-3)[0] == 1e-4 and log_ticks(1e-4, 3e-3)[-1] == 5e-3


def test_a_perfect_rank_correlation_on_few_trials_has_no_point_interval():
    result = spearman_with_ci(np.arange(5.0), np.arange(5.0) * 2, n_bootstrap=0)
    assert result["rho"] == pytest.approx(1.0)
    assert np.isnan(result["ci_low"]) and np.isnan(result["ci_high"])
    assert MIN_RANK_TRIALS >= 10
