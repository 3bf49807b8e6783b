"""The HTML page's copy of a figure: long traces decimated, width left to the page.

A gallery trace holds every sample of a record (9,000 points for 60 s at 150 Hz), many per
figure; inlined as JSON they made `index.html` tens of MB. The page shows at most
`MAX_DISPLAY_POINTS` points per trace, picked as the minimum and maximum of equal buckets so
QRS peaks and map extremes survive; heatmaps are averaged over blocks of columns down to
`MAX_DISPLAY_COLUMNS`. The PDF and SVG keep full resolution. Fixed figure widths are dropped
so a figure fits the page instead of scrolling it sideways.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

MAX_DISPLAY_POINTS = 800
"""Points per trace on the page (twice the number of min/max buckets): 400 buckets, 0.15 s
each for a 60 s record, still keep every R peak."""

MAX_DISPLAY_COLUMNS = 100
"""Time columns per heatmap on the page (block means; hover shows the block's mean)."""

_PER_POINT = ("x", "y", "text", "hovertext", "customdata")
_PER_POINT_MARKER = ("color", "size")


def minmax_indices(values: np.ndarray, *, max_points: int) -> np.ndarray:
    """Sorted indices of each bucket's minimum and maximum, about ``max_points`` in all
    (every index when ``values`` is short enough)."""
    n = len(values)
    if n <= max_points:
        return np.arange(n)
    buckets = max(max_points // 2, 1)
    edges = np.linspace(0, n, buckets + 1).astype(int)
    filled = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
    picks = []
    for start, stop in itertools.pairwise(edges):
        if stop <= start:
            continue
        chunk = filled[start:stop]
        picks += [start + int(chunk.argmin()), start + int(chunk.argmax())]
    return np.unique(np.array(picks))


def _is_long(value: Any, n: int) -> bool:
    return isinstance(value, Sequence | np.ndarray) and not isinstance(value, str) \
        and len(value) == n


def decimate_trace(trace: go.Scatter, *, max_points: int = MAX_DISPLAY_POINTS) -> None:
    """Thin a scatter trace in place: per-point arrays (x, y, text, marker colours...) keep
    the same indices, so colours stay on their samples."""
    y = trace.y
    if y is None or len(y) <= max_points:
        return
    n = len(y)
    try:
        keep = minmax_indices(np.asarray(y, dtype=np.float64), max_points=max_points)
    except (TypeError, ValueError):  # categorical y: nothing to thin by value
        return
    for name in _PER_POINT:
        value = getattr(trace, name, None)
        if _is_long(value, n):
            trace[name] = np.asarray(value)[keep]
    marker = getattr(trace, "marker", None)
    if marker is not None:
        for name in _PER_POINT_MARKER:
            value = getattr(marker, name, None)
            if _is_long(value, n):
                marker[name] = np.asarray(value)[keep]


def decimate_heatmap(trace: go.Heatmap, *, max_columns: int = MAX_DISPLAY_COLUMNS) -> None:
    """Average a heatmap's z (rows, columns) over blocks of adjacent columns in place; x
    becomes the block centres. Heatmaps without an explicit x or z are left alone."""
    if trace.z is None or trace.x is None:
        return
    z = np.asarray(trace.z, dtype=np.float32)
    if z.ndim != 2 or z.shape[1] <= max_columns or len(trace.x) != z.shape[1]:
        return
    try:
        x = np.asarray(trace.x, dtype=np.float32)
    except (TypeError, ValueError):  # categorical columns (class names): nothing to average
        return
    block = -(-z.shape[1] // max_columns)
    starts = np.arange(0, z.shape[1], block)
    counts = np.diff(np.append(starts, z.shape[1]))
    # (rows, columns) -> (rows, blocks): NaN-aware sums divided by the finite counts
    finite = np.isfinite(z)
    sums = np.add.reduceat(np.where(finite, z, 0.0), starts, axis=1)
    n = np.add.reduceat(finite.astype(np.float32), starts, axis=1)
    trace.z = np.divide(sums, n, out=np.full_like(sums, np.nan), where=n > 0)
    trace.x = (np.add.reduceat(x, starts) / counts).astype(np.float32)


def for_display(figure: go.Figure, *, max_points: int = MAX_DISPLAY_POINTS,
                max_columns: int = MAX_DISPLAY_COLUMNS) -> go.Figure:
    """A copy of ``figure`` for the HTML page (see the module docstring)."""
    shown = go.Figure(figure)
    for trace in shown.data:
        if isinstance(trace, go.Scatter | go.Scattergl):
            decimate_trace(trace, max_points=max_points)
        elif isinstance(trace, go.Heatmap):
            decimate_heatmap(trace, max_columns=max_columns)
    shown.layout.width = None
    shown.layout.autosize = True
    return shown
