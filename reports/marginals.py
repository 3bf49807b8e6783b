"""Marginal effects and pairwise interactions of the swept parameters, at the full budget.

Each parameter's marginal is the score of the trials that trained the full budget against
that parameter's value, all other parameters left as sampled: raw points, a kernel smoother
(numeric parameters, on the log axis where the search was log-uniform) or per-choice means
(categorical ones), with bootstrap bands. Interactions are mean scores per cell of two
parameters, binned. Conditional parameters use only the trials where they are active.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from reports.artifact import Figure, Section, Sources, Table
from reports.bootstrap import DEFAULT_RESAMPLES, mean_interval, percentile_interval
from reports.naming import parameter_name, slug
from reports.study_data import StudyData
from study.folder_format import TRIAL_ID

__all__ = [
    "CURVE_COLUMNS",
    "DEFAULT_BANDWIDTH",
    "INTERACTION_COLUMNS",
    "POINT_COLUMNS",
    "THESIS_PAIRS",
    "MarginalEffects",
    "ScoredTrials",
    "interaction",
    "interaction_figure",
    "interaction_pairs",
    "kernel_smooth",
    "marginal_effects",
    "marginal_figure",
    "marginals_section",
    "scored_trials",
]

POINT_COLUMNS: tuple[str, ...] = (
    "parameter", "kind", TRIAL_ID, "value", "x", "category", "score",
)
CURVE_COLUMNS: tuple[str, ...] = (
    "parameter", "kind", "x", "category", "estimate", "ci_low", "ci_high", "n_trials",
)
INTERACTION_COLUMNS: tuple[str, ...] = (
    "x_parameter", "y_parameter", "x_bin", "y_bin", "x_position", "y_position",
    "mean_score", "n_trials", "budget_epoch",
)

THESIS_PAIRS: tuple[tuple[str, str], ...] = (
    ("model/depth", "model/hidden_units"),  # CNN depth x LSTM hidden units
    ("model/depth", "model/pooling"),  # CNN depth x global pooling type
)
"""Interactions the thesis discusses; drawn for every study that samples both parameters."""

MAX_INTEGER_LEVELS = 6
"""Integer parameters with at most this many values are shown per value, like choices: a
smoother between 1, 2 and 3 layers would draw scores for values no trial can have."""

MIN_MARGINAL_TRIALS = 10
"""Fewer scored trials than this cannot support a marginal effect (the section says so)."""

DEFAULT_BANDWIDTH = 0.15
"""Kernel width of the marginal smoother, as a fraction of the parameter's search range."""

_KINDS = MappingProxyType({
    "CategoricalDistribution": "categorical",
    "FloatDistribution": "numeric",
    "IntDistribution": "numeric",
})
# Numeric axes: (forward, inverse) by the description's ``log`` flag.
_SCALES: Mapping[bool, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = MappingProxyType({
    True: (np.log10, lambda t: np.power(10.0, t)),
    False: (np.asarray, np.asarray),
})


@dataclass(frozen=True)
class ScoredTrials:
    """The trials a marginal or interaction is computed on, one row each.

    Attributes:
        frame: rows of `StudyData.trials`, one per trial, with a finite score.
        budget_epoch: the epoch they are scored at.
        full_budget: False where too few trials finished and an earlier milestone is used.
    """

    frame: pd.DataFrame
    budget_epoch: int
    full_budget: bool


def scored_trials(study: StudyData, *, min_trials: int = 3) -> ScoredTrials:
    """Trials that completed the full budget, scored there; if fewer than ``min_trials`` did,
    the trials at the deepest ASHA milestone that at least ``min_trials`` reached (or, if none
    did, the deepest of the milestones most trials reached), flagged ``full_budget=False``."""
    final = _finite(study.final(), study.metric)
    if len(final) >= min_trials:
        return ScoredTrials(final, study.max_epochs, True)
    by_epoch = {e: _finite(study.at_epoch(e), study.metric) for e in study.milestones}
    enough = [e for e in study.milestones if len(by_epoch[e]) >= min_trials]
    epoch = enough[-1] if enough else max(study.milestones, key=lambda e: (len(by_epoch[e]), e))
    return ScoredTrials(by_epoch[epoch], epoch, False)


def _finite(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    return frame[np.isfinite(frame[metric].to_numpy(dtype=float))].reset_index(drop=True)


@dataclass(frozen=True)
class MarginalEffects:
    """Per-parameter marginals (tidy: one row per trial or curve point per parameter).

    Attributes:
        points: the raw trials, columns `POINT_COLUMNS`; ``x`` is the value for numeric
            parameters and the choice's position for categorical ones, ``category`` the
            choice as text (None for numeric).
        curves: columns `CURVE_COLUMNS`; numeric parameters: the smoother on a grid (``x``),
            categorical ones: one row per observed choice (mean score and its interval).
        budget_epoch: epoch the scores are taken at.
        full_budget: False where `scored_trials` fell back to an earlier milestone.
        notes: parameters left out, and why.
    """

    points: pd.DataFrame
    curves: pd.DataFrame
    budget_epoch: int
    full_budget: bool
    notes: tuple[str, ...] = ()


def marginal_effects(
    study: StudyData,
    *,
    n_bootstrap: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    n_grid: int = 60,
    bandwidth: float = DEFAULT_BANDWIDTH,
    confidence: float = 0.95,
    min_trials: int = 3,
) -> MarginalEffects:
    """Score against each swept parameter, at the full budget (see `scored_trials`).

    Numeric parameters get a Nadaraya-Watson (Gaussian kernel) smoother on ``n_grid`` points
    across the observed values, in log10 units for log-uniform parameters. Its bandwidth is
    ``bandwidth`` times the width of the search range, so curves of one parameter are
    comparable across studies and resamples. The band is the percentile interval of the
    smoother refitted on ``n_bootstrap`` resamples of the trials. Categorical parameters get
    the mean score per choice and a bootstrap interval resampling that choice's trials.
    Conditional parameters use only the trials where they are active; nothing is imputed.
    """
    chosen = scored_trials(study, min_trials=min_trials)
    points, curves, notes = [], [], []
    unvaried = study.unvaried(chosen.frame)
    for position, (name, description) in enumerate(study.parameters.items()):
        column = study.parameter_column(name)
        rows = (chosen.frame[chosen.frame[column].notna()] if column in chosen.frame
                else chosen.frame.iloc[:0])
        if rows.empty:
            notes.append(f"{name}: not active in any trial scored at epoch "
                         f"{chosen.budget_epoch}; no marginal")
            continue
        if name in unvaried:
            notes.append(f"{name}: {unvaried[name]} in every trial scored at epoch "
                         f"{chosen.budget_epoch} (not varied); no marginal")
            continue
        description = as_drawn(description)
        kind = _KINDS[description["distribution"]]
        rng = np.random.default_rng([seed, position])
        point, curve = _MARGINALS[kind](
            rows[column].to_numpy(dtype=object), rows[study.metric].to_numpy(dtype=float),
            description, rng=rng, n_bootstrap=n_bootstrap, n_grid=n_grid,
            bandwidth=bandwidth, confidence=confidence,
        )
        points.append(point.assign(parameter=name, kind=kind,
                                   trial_id=rows[TRIAL_ID].to_numpy()))
        curves.append(curve.assign(parameter=name, kind=kind))
    return MarginalEffects(
        points=_concat(points, POINT_COLUMNS),
        curves=_concat(curves, CURVE_COLUMNS),
        budget_epoch=chosen.budget_epoch,
        full_budget=chosen.full_budget,
        notes=tuple(notes),
    )


def _concat(frames: list[pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame(columns=list(columns))
    return pd.concat(frames, ignore_index=True)[list(columns)]


def kernel_smooth(grid: np.ndarray, x: np.ndarray, y: np.ndarray, bandwidth: float) -> np.ndarray:
    """Nadaraya-Watson estimates at ``grid`` from one or a batch of samples.

    ``x`` and ``y`` are (n,) or (B, n); returns (G,) or (B, G). Where every weight underflows
    (a grid point far from all samples) the estimate is NaN.
    """
    single = np.ndim(x) == 1
    x, y = np.atleast_2d(x), np.atleast_2d(y)  # (B, n)
    weights = np.exp(-0.5 * ((grid[None, :, None] - x[:, None, :]) / bandwidth) ** 2)  # (B, G, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        estimate = (weights * y[:, None, :]).sum(-1) / weights.sum(-1)  # (B, G)
    return estimate[0] if single else estimate


def _numeric_marginal(
    values: np.ndarray, scores: np.ndarray, description: Mapping[str, Any], *,
    rng: np.random.Generator, n_bootstrap: int, n_grid: int, bandwidth: float,
    confidence: float,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    forward, inverse = _SCALES[bool(description.get("log"))]
    x = values.astype(float)
    t = forward(x)
    width = float(forward(description["high"]) - forward(description["low"])) or 1.0
    h = bandwidth * width
    grid = np.unique(np.linspace(t.min(), t.max(), n_grid))
    estimate = kernel_smooth(grid, t, scores, h)
    low = high = np.full_like(grid, math.nan)
    if n_bootstrap > 0:
        rows = rng.integers(0, len(t), (n_bootstrap, len(t)))
        boot = kernel_smooth(grid, t[rows], scores[rows], h)  # (B, G)
        low, high = percentile_interval(boot, confidence=confidence, axis=0)
    points = pd.DataFrame({"value": values, "x": x, "category": None, "score": scores})
    curve = pd.DataFrame({
        "x": inverse(grid), "category": None, "estimate": estimate,
        "ci_low": low, "ci_high": high, "n_trials": len(t),
    })
    return points, curve


def _categorical_marginal(
    values: np.ndarray, scores: np.ndarray, description: Mapping[str, Any], *,
    rng: np.random.Generator, n_bootstrap: int, confidence: float, **_: Any,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    choices = list(description["choices"])
    positions = np.array([_choice_position(choices, v) for v in values])
    labels = [str(c) for c in choices]
    rows = []
    for position, label in enumerate(labels):
        mine = scores[positions == position]
        if mine.size == 0:
            continue
        low, high = mean_interval(mine, n_resamples=n_bootstrap, confidence=confidence,
                                  rng=rng)
        rows.append({"x": float(position), "category": label, "estimate": float(mine.mean()),
                     "ci_low": float(low), "ci_high": float(high), "n_trials": int(mine.size)})
    points = pd.DataFrame({"value": values, "x": positions.astype(float),
                           "category": [labels[p] for p in positions], "score": scores})
    return points, pd.DataFrame(rows)


_MARGINALS = MappingProxyType({"numeric": _numeric_marginal, "categorical": _categorical_marginal})


def _choice_position(choices: list[Any], value: Any) -> int:
    """Index of a trials.parquet value among the choices (numpy scalars, 7.0 for 7)."""
    try:
        return choices.index(value.item() if isinstance(value, np.generic) else value)
    except ValueError:
        raise ValueError(f"value {value!r} is not among the choices {choices}") from None


# --- interactions -------------------------------------------------------------------------


def interaction_pairs(study: StudyData) -> list[tuple[str, str]]:
    """The `THESIS_PAIRS` whose two parameters are both sampled in ``study``."""
    return [(x, y) for x, y in THESIS_PAIRS if x in study.parameters and y in study.parameters]


def interaction(
    study: StudyData, *, x: str, y: str, n_bins: int = 4, min_trials: int = 3
) -> pd.DataFrame:
    """Mean score and trial count per cell of two parameters, at the full budget.

    Categorical parameters: one bin per choice. Integer parameters with at most ``n_bins``
    values: one bin per value. Other numeric parameters: ``n_bins`` equal-width bins over
    the search range, in log10 units where the search was log-uniform (so bins are the same
    for every study of a space). Only trials where both parameters are active count.

    Returns:
        Every cell of the grid (empty ones with ``n_trials`` 0 and NaN mean), columns
        `INTERACTION_COLUMNS`; ``*_position`` orders the bins.

    Raises:
        ValueError: ``x`` or ``y`` is not a sampled parameter of the study.
    """
    unknown = [name for name in (x, y) if name not in study.parameters]
    if unknown:
        raise ValueError(f"{unknown} not sampled in study {study.name!r}; sampled: "
                         f"{list(study.parameters)}")
    chosen = scored_trials(study, min_trials=min_trials)
    frame = chosen.frame
    columns = [study.parameter_column(x), study.parameter_column(y)]
    frame = frame[frame.reindex(columns=columns).notna().all(axis=1)]
    x_labels, x_codes = _bins(study.parameters[x], frame.get(columns[0]), n_bins)
    y_labels, y_codes = _bins(study.parameters[y], frame.get(columns[1]), n_bins)
    cells = (pd.DataFrame({"x_position": x_codes, "y_position": y_codes,
                           "score": frame[study.metric].to_numpy(dtype=float)})
             .groupby(["x_position", "y_position"])["score"].agg(["mean", "size"]))
    grid = pd.MultiIndex.from_product([range(len(x_labels)), range(len(y_labels))],
                                      names=["x_position", "y_position"])
    cells = cells.reindex(grid).reset_index()
    return pd.DataFrame({
        "x_parameter": x, "y_parameter": y,
        "x_bin": [x_labels[i] for i in cells["x_position"]],
        "y_bin": [y_labels[i] for i in cells["y_position"]],
        "x_position": cells["x_position"], "y_position": cells["y_position"],
        "mean_score": cells["mean"], "n_trials": cells["size"].fillna(0).astype(int),
        "budget_epoch": chosen.budget_epoch,
    }, columns=list(INTERACTION_COLUMNS))


def _bins(
    description: Mapping[str, Any], values: pd.Series | None, n_bins: int
) -> tuple[list[str], np.ndarray]:
    values = np.asarray([] if values is None else values.to_numpy(dtype=object), dtype=object)
    return _BINNERS[_KINDS[description["distribution"]]](description, values, n_bins)


def _category_bins(
    description: Mapping[str, Any], values: np.ndarray, n_bins: int
) -> tuple[list[str], np.ndarray]:
    choices = list(description["choices"])
    codes = np.array([_choice_position(choices, v) for v in values], dtype=int)
    return [str(c) for c in choices], codes


def _numeric_bins(
    description: Mapping[str, Any], values: np.ndarray, n_bins: int
) -> tuple[list[str], np.ndarray]:
    low, high = description["low"], description["high"]
    x = values.astype(float)
    step = description.get("step") or 1
    integer_values = np.arange(low, high + step, step)
    if description["distribution"] == "IntDistribution" and len(integer_values) <= n_bins:
        codes = np.rint((x - low) / step).astype(int)
        return [str(int(v)) for v in integer_values], codes
    forward, inverse = _SCALES[bool(description.get("log"))]
    edges = inverse(np.linspace(forward(low), forward(high), n_bins + 1))
    codes = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, n_bins - 1)
    labels = [f"[{_number(a)}, {_number(b)})" for a, b in pairwise(edges)]
    labels[-1] = labels[-1][:-1] + "]"
    return labels, codes


_BINNERS = MappingProxyType({"categorical": _category_bins, "numeric": _numeric_bins})


def _number(value: float) -> str:
    return f"{value:.3g}"


# --- drawing ------------------------------------------------------------------------------


def marginal_figure(
    points: pd.DataFrame, curve: pd.DataFrame, *, parameter: str, description: Mapping[str, Any],
    score_title: str,
) -> go.Figure:
    """One parameter's marginal: numeric -> points, band and curve (3 traces); categorical ->
    box with every trial shown, and mean with its interval (2 traces)."""
    description = as_drawn(description)
    kind = _KINDS[description["distribution"]]
    figure = _DRAWERS[kind](points, curve, description)
    figure.update_layout(template="simple_white", width=640, height=440, showlegend=True,
                         xaxis_title=parameter, yaxis_title=score_title)
    return figure


def _draw_numeric(points: pd.DataFrame, curve: pd.DataFrame, description: Mapping[str, Any]
                  ) -> go.Figure:
    x = curve["x"].tolist()
    figure = go.Figure([
        go.Scatter(x=points["x"], y=points["score"], mode="markers", name="trials",
                   marker={"color": "rgba(60, 60, 60, 0.55)", "size": 7},
                   customdata=points[TRIAL_ID],
                   hovertemplate="%{customdata}<br>%{x:.3g}: %{y:.3f}<extra></extra>"),
        go.Scatter(x=x + x[::-1], y=curve["ci_high"].tolist() + curve["ci_low"].tolist()[::-1],
                   mode="lines", fill="toself", fillcolor="rgba(31, 119, 180, 0.18)",
                   line={"width": 0},
                   name="bootstrap band", hoverinfo="skip"),
        go.Scatter(x=x, y=curve["estimate"], mode="lines", name="kernel smoother",
                   line={"color": "rgb(31, 119, 180)", "width": 2.5}),
    ])
    if description.get("log"):
        ticks = log_ticks(float(np.nanmin(points["x"])), float(np.nanmax(points["x"])))
        figure.update_xaxes(type="log", tickvals=ticks, ticktext=[_number(t) for t in ticks])
    return figure


def log_ticks(low: float, high: float) -> list[float]:
    """Ticks 1, 2, 5 x 10^k spanning [low, high] (with one beyond each end), every one
    labelled in full: plotly's own log ticks label minor ticks "2, 5" between decades."""
    if not (np.isfinite(low) and np.isfinite(high)) or low <= 0 or high <= 0:
        return []
    ticks = [m * 10.0 ** k for k in range(math.floor(math.log10(low)) - 1,
                                          math.ceil(math.log10(high)) + 1)
             for m in (1, 2, 5)]
    below = [t for t in ticks if t <= low]
    above = [t for t in ticks if t >= high]
    start = ticks.index(below[-1]) if below else 0
    stop = ticks.index(above[0]) if above else len(ticks) - 1
    return ticks[start:stop + 1]


def as_drawn(description: Mapping[str, Any]) -> Mapping[str, Any]:
    """An integer parameter with at most `MAX_INTEGER_LEVELS` values (not log-uniform) as
    the categorical choice of those values; any other description as it is."""
    if description["distribution"] != "IntDistribution" or description.get("log"):
        return description
    step = int(description.get("step") or 1)
    values = list(range(int(description["low"]), int(description["high"]) + 1, step))
    if len(values) > MAX_INTEGER_LEVELS:
        return description
    return {**description, "distribution": "CategoricalDistribution", "choices": values}


def _draw_categorical(points: pd.DataFrame, curve: pd.DataFrame, description: Mapping[str, Any]
                      ) -> go.Figure:
    order = [str(c) for c in description["choices"]]
    figure = go.Figure([
        go.Box(x=points["category"], y=points["score"], boxpoints="all", jitter=0.4,
               pointpos=0, name="trials", marker={"color": "rgba(60, 60, 60, 0.55)"},
               line={"color": "rgba(60, 60, 60, 0.5)"}, fillcolor="rgba(0, 0, 0, 0)"),
        go.Scatter(x=curve["category"], y=curve["estimate"], mode="markers", name="mean",
                   marker={"color": "rgb(214, 39, 40)", "size": 11, "symbol": "diamond"},
                   error_y={"type": "data", "symmetric": False,
                            "array": curve["ci_high"] - curve["estimate"],
                            "arrayminus": curve["estimate"] - curve["ci_low"]},
                   customdata=curve["n_trials"],
                   hovertemplate="%{x}: mean %{y:.3f} (%{customdata} trials)<extra></extra>"),
    ])
    figure.update_xaxes(type="category", categoryorder="array", categoryarray=order)
    return figure


_DRAWERS = MappingProxyType({"numeric": _draw_numeric, "categorical": _draw_categorical})


def interaction_figure(table: pd.DataFrame, *, score_title: str) -> go.Figure:
    """Heatmap of the mean score per cell, each cell annotated with its trial count (1 trace)."""
    x_labels = table.sort_values("x_position")["x_bin"].drop_duplicates().tolist()
    y_labels = table.sort_values("y_position")["y_bin"].drop_duplicates().tolist()
    means = table.pivot(index="y_position", columns="x_position", values="mean_score")
    counts = table.pivot(index="y_position", columns="x_position", values="n_trials")
    x_name, y_name = (parameter_name(table[c].iloc[0]) for c in ("x_parameter", "y_parameter"))
    figure = go.Figure(go.Heatmap(
        x=x_labels, y=y_labels, z=means.to_numpy(), text=counts.to_numpy(),
        texttemplate="n=%{text}", colorscale="Viridis",
        colorbar={"title": {"text": score_title, "side": "right"}},
        hovertemplate=f"{x_name} %{{x}}<br>{y_name} %{{y}}<br>mean %{{z:.3f}}, n=%{{text}}"
                      "<extra></extra>",
    ))
    figure.update_layout(template="simple_white", width=640, height=480,
                         xaxis_title=x_name, yaxis_title=y_name)
    figure.update_xaxes(type="category")
    figure.update_yaxes(type="category")
    return figure




def marginals_section(
    study: StudyData,
    *,
    n_bootstrap: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    pairs: Sequence[tuple[str, str]] | None = None,
    n_bins: int = 4,
) -> Section:
    """Marginal-effect figures (one per parameter), interaction heatmaps (``pairs``, default
    `interaction_pairs`) and their tables, for a report. With fewer than
    `MIN_MARGINAL_TRIALS` scored trials, one line says so instead of figures."""
    title = "Marginal effects and interactions"
    # Ask for as many trials as the section needs: with fewer finished trials the smoothers
    # fall back to the deepest milestone that many reached (e.g. 5 finished, 24 at the first
    # rung: the first rung), instead of refusing on the 5.
    effects = marginal_effects(study, n_bootstrap=n_bootstrap, seed=seed,
                               min_trials=MIN_MARGINAL_TRIALS)
    n_scored = effects.points[TRIAL_ID].nunique() if not effects.points.empty else 0
    if n_scored < MIN_MARGINAL_TRIALS:
        return Section(title=title, notes=[
            f"Not computed: needs at least {MIN_MARGINAL_TRIALS} trials scored at one budget; "
            f"this study has {n_scored} (at epoch {effects.budget_epoch})."])
    budget = "full budget" if effects.full_budget else "NOT the full budget"
    score_title = f"{study.metric} at epoch {effects.budget_epoch} ({budget})"
    figures, tables = [], []
    for name in dict.fromkeys(effects.points["parameter"]):
        points = effects.points[effects.points["parameter"] == name]
        curve = effects.curves[effects.curves["parameter"] == name]
        figures.append(Figure(
            name=f"marginal-{slug(name)}",
            title=f"Marginal effect of {parameter_name(name)} ({len(points)} trials, epoch "
                  f"{effects.budget_epoch})",
            figure=marginal_figure(points, curve, parameter=parameter_name(name),
                                   description=study.parameters[name], score_title=score_title),
            sources=Sources(study=study.name, trials=tuple(points[TRIAL_ID])),
        ))
    categorical = effects.curves[effects.curves["kind"] == "categorical"]
    all_sources = Sources(study=study.name, trials=tuple(dict.fromkeys(effects.points[TRIAL_ID])))
    tables.append(Table(
        name="marginal-categorical-means", title=f"Mean score per choice ({score_title})",
        frame=categorical[["parameter", "category", "estimate", "ci_low", "ci_high",
                           "n_trials"]].reset_index(drop=True),
        sources=all_sources,
    ))
    drawn = set(effects.points["parameter"])
    for x, y in interaction_pairs(study) if pairs is None else pairs:
        if not {x, y} <= drawn:
            continue  # a parameter that did not vary (its note says so) has no interaction
        table = interaction(study, x=x, y=y, n_bins=n_bins, min_trials=MIN_MARGINAL_TRIALS)
        name = f"interaction-{slug(x)}-x-{slug(y)}"
        words = f"{parameter_name(x)} and {parameter_name(y)}"
        figures.append(Figure(name=name, title=f"Mean score by {words} ({score_title})",
                              figure=interaction_figure(table, score_title=score_title),
                              sources=all_sources))
        tables.append(Table(name=name, title=f"Mean score by {words}", frame=table,
                            sources=all_sources))
    notes = [
        study.budget_verdict,
        f"Scores at epoch {effects.budget_epoch}: "
        + ("trials that completed the full budget." if effects.full_budget else
           f"too few trials completed the full budget ({study.max_epochs} epochs), so the "
           "deepest ASHA milestone enough trials reached is used instead: these marginals "
           f"describe the score after {effects.budget_epoch} epoch(s), not after training."),
        "Numeric parameters: Gaussian-kernel (Nadaraya-Watson) smoother, bandwidth "
        f"{DEFAULT_BANDWIDTH} of the search range (log10 units for log-uniform parameters), 95% "
        f"percentile bootstrap band over trials ({n_bootstrap} resamples). Categorical: mean "
        "and bootstrap interval per choice. Conditional parameters: only trials where they "
        "are active.",
        *effects.notes,
        *([f"{study.n_diverged} diverged trial(s) left out (no score measures their "
           "configuration)."] if study.n_diverged else []),
    ]
    return Section(title=title, figures=figures, tables=tables, notes=notes)
