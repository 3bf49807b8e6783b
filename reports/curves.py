"""How the search went: every trial's learning curve with ASHA's milestones and where each
trial stopped, and the optimisation history (best score so far against trial number)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go

from reports.artifact import Figure, Section, Sources, Table
from reports.overview import OUTCOMES, runs
from reports.study_data import StudyData
from study.folder_format import (
    COMPLETED,
    DIVERGED,
    EARLY_STOPPED,
    EPOCH,
    FAILED,
    STOP_REASON,
    TRIAL_ID,
    TRIAL_NUMBER,
)

CURVE_STYLE: Mapping[str, dict] = MappingProxyType({
    COMPLETED: {"color": "rgb(31, 119, 180)", "dash": "solid"},
    EARLY_STOPPED: {"color": "rgb(150, 150, 150)", "dash": "dot"},
    DIVERGED: {"color": "rgb(214, 39, 40)", "dash": "dash"},
    FAILED: {"color": "rgb(140, 86, 75)", "dash": "dash"},
})
END_SYMBOL: Mapping[str, str] = MappingProxyType({
    COMPLETED: "circle", EARLY_STOPPED: "x", DIVERGED: "triangle-down", FAILED: "square",
})
TUNE_TRIAL_ID = "tune_trial_id"
"""Optuna user attribute naming a trial's Tune id (= `trials.parquet` trial_id)."""


# -- learning curves -----------------------------------------------------------------------

def learning_curves(study: StudyData) -> pd.DataFrame:
    """Every trial's score per epoch (measured epochs only: a diverged trial's unmeasured last
    row is left out), with its outcome and whether the row is its last. A study of fixed
    configurations searched nothing: its curves are those of every configuration on every
    fold (`cv.parquet`).

    Returns:
        Columns ``trial_id``, ``epoch``, ``score``, ``stop_reason``, ``last``.
    """
    source = runs(study)
    if study.metric not in source:
        return pd.DataFrame(columns=[TRIAL_ID, EPOCH, "score", STOP_REASON, "last"])
    rows = source[source[EPOCH] > 0]
    rows = rows[np.isfinite(rows[study.metric].to_numpy(dtype=float))]
    rows = rows.sort_values([TRIAL_ID, EPOCH], kind="stable")
    frame = pd.DataFrame({TRIAL_ID: rows[TRIAL_ID].astype(str),
                          EPOCH: rows[EPOCH].astype(int),
                          "score": rows[study.metric].astype(float),
                          STOP_REASON: rows[STOP_REASON]}).reset_index(drop=True)
    frame["last"] = ~frame[TRIAL_ID].duplicated(keep="last")
    return frame


def learning_curves_figure(curves: pd.DataFrame, *, milestones: list[int], metric: str
                           ) -> go.Figure:
    """One line per trial (coloured by outcome), a marker where it ended, and a dotted
    vertical line at every ASHA milestone before the full budget."""
    figure = go.Figure()
    shown: set[str] = set()
    for trial_id, rows in curves.groupby(TRIAL_ID, sort=True):
        reason = rows[STOP_REASON].iloc[0]
        style = CURVE_STYLE.get(reason, CURVE_STYLE[FAILED])
        figure.add_trace(go.Scatter(
            x=rows[EPOCH], y=rows["score"], mode="lines", line={**style, "width": 1.5},
            name=OUTCOMES.get(reason, reason), legendgroup=reason,
            showlegend=reason not in shown,
            hovertemplate=f"trial {trial_id}<br>epoch %{{x}}: %{{y:.3f}}<extra></extra>",
        ))
        shown.add(reason)
        end = rows[rows["last"]]
        figure.add_trace(go.Scatter(
            x=end[EPOCH], y=end["score"], mode="markers", legendgroup=reason,
            showlegend=False, marker={"color": style["color"], "size": 9,
                                      "symbol": END_SYMBOL.get(reason, "square")},
            hovertemplate=f"trial {trial_id} {OUTCOMES.get(reason, reason)} after epoch "
                          "%{x}: %{y:.3f}<extra></extra>",
        ))
    for rung, epoch in enumerate(milestones[:-1]):
        figure.add_vline(x=epoch, line_dash="dot", line_color="black", line_width=1,
                         opacity=0.6, annotation_text=f"ASHA rung {rung} (epoch {epoch})",
                         annotation_position="top left", annotation_font_size=11)
    figure.update_xaxes(title_text=EPOCH, range=[0.5, max(milestones) + 0.5], dtick=1
                        if max(milestones) <= 20 else None)
    figure.update_yaxes(title_text=metric)
    figure.update_layout(template="simple_white", width=820, height=460,
                         legend_title_text="trial outcome", margin={"t": 40})
    return figure


# -- optimisation history ------------------------------------------------------------------

def trial_numbers(study: StudyData) -> pd.Series:
    """The position (1, 2, ...) in which each trial id started: from `trials.parquet`'s
    ``trial_number`` (Tune's start order) where the study recorded it, else Optuna's trial
    number plus one from the study's Optuna storage; empty when neither can be read.

    The storage URL in study.json is tried first, then ``optuna.db`` in the study directory
    (a study directory copied elsewhere keeps its SQLite file)."""
    if TRIAL_NUMBER in study.trials:  # Tune's start order, recorded by newer studies
        first = study.trials.drop_duplicates(TRIAL_ID).set_index(TRIAL_ID)[TRIAL_NUMBER]
        first = pd.to_numeric(first, errors="coerce").dropna()
        if len(first):
            return first.rank(method="first").astype(int)
    plan = study.record.get("plan", {})
    urls = [plan.get("optuna_storage"), f"sqlite:///{study.directory / 'optuna.db'}"]
    for url in [u for u in urls if u]:
        if url.startswith("sqlite:///") and not _sqlite_file(url):
            continue
        try:
            trials = optuna.load_study(study_name=plan.get("optuna_study_name"),
                                       storage=url).get_trials(deepcopy=False)
        except Exception:  # wrong study name, unreachable server, damaged file: try the next
            continue
        found = {str(t.user_attrs[TUNE_TRIAL_ID]): t.number + 1 for t in trials
                 if TUNE_TRIAL_ID in t.user_attrs}
        if found:
            return pd.Series(found, dtype=int)
    return pd.Series(dtype=int)


def _sqlite_file(url: str) -> bool:
    return Path(url.removeprefix("sqlite:///")).is_file()


def optimisation_history(study: StudyData, numbers: pd.Series) -> pd.DataFrame:
    """Per trial in proposal order: its last score, the budget it was scored at, whether it
    completed the full budget, and the best full-budget score so far.

    Returns:
        Columns ``trial_number``, ``trial_id``, ``score``, ``epoch``, ``stop_reason``,
        ``best_so_far`` (NaN until a trial completes).
    """
    last = study.trials.sort_values(EPOCH, kind="stable").drop_duplicates(TRIAL_ID,
                                                                            keep="last")
    measured = learning_curves(study).query("last").set_index(TRIAL_ID)
    frame = pd.DataFrame({TRIAL_ID: last[TRIAL_ID].astype(str),
                          STOP_REASON: last[STOP_REASON]})
    frame[TRIAL_NUMBER] = frame[TRIAL_ID].map(numbers)
    frame["score"] = frame[TRIAL_ID].map(measured["score"])
    frame[EPOCH] = frame[TRIAL_ID].map(measured[EPOCH])
    frame = frame.dropna(subset=[TRIAL_NUMBER]).sort_values(TRIAL_NUMBER, kind="stable")
    frame[TRIAL_NUMBER] = frame[TRIAL_NUMBER].astype(int)
    complete = frame["score"].where(frame[STOP_REASON] == COMPLETED)
    better = complete.cummin() if study.mode == "min" else complete.cummax()
    frame["best_so_far"] = better.ffill()  # cummax leaves NaN where a trial did not complete
    return frame[[TRIAL_NUMBER, TRIAL_ID, "score", EPOCH, STOP_REASON,
                  "best_so_far"]].reset_index(drop=True)


def history_figure(history: pd.DataFrame, *, metric: str, max_epochs: int) -> go.Figure:
    """Markers per trial (filled: full budget; hollow grey: stopped early, at its last score)
    and the best full-budget score so far as a step line."""
    full = history[history[STOP_REASON] == COMPLETED]
    partial = history[(history[STOP_REASON] != COMPLETED) & history["score"].notna()]
    figure = go.Figure([
        go.Scatter(x=partial[TRIAL_NUMBER], y=partial["score"], mode="markers",
                   name="stopped before the full budget (last score)",
                   marker={"color": "rgb(150, 150, 150)", "size": 8, "symbol": "x"},
                   customdata=np.column_stack([partial[TRIAL_ID], partial[EPOCH]])
                   if len(partial) else None,
                   hovertemplate="trial %{customdata[0]} (#%{x}): %{y:.3f} at epoch "
                                 "%{customdata[1]}<extra></extra>"),
        go.Scatter(x=full[TRIAL_NUMBER], y=full["score"], mode="markers",
                   name=f"completed ({max_epochs} epochs)",
                   marker={"color": "rgb(31, 119, 180)", "size": 9},
                   customdata=full[TRIAL_ID],
                   hovertemplate="trial %{customdata} (#%{x}): %{y:.3f}<extra></extra>"),
        go.Scatter(x=history[TRIAL_NUMBER], y=history["best_so_far"], mode="lines",
                   line={"shape": "hv", "color": "rgb(214, 39, 40)", "width": 2},
                   name="best so far", connectgaps=True, hoverinfo="skip"),
    ])
    figure.update_xaxes(title_text="trial (in the order the trials started)",
                        dtick=1 if len(history) <= 20 else None)
    figure.update_yaxes(title_text=metric)
    figure.update_layout(template="simple_white", width=820, height=420, margin={"t": 30})
    return figure


# -- sections ------------------------------------------------------------------------------

def _ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10,
                                                                                 "th")
    return f"{number}{suffix}"


def learning_curves_section(study: StudyData) -> Section:
    """Every trial's learning curve, or one line saying why there is none."""
    title = "Learning curves"
    curves = learning_curves(study)
    if curves.empty:
        return Section(title=title, notes=[
            f"Not drawn: no trial reported a finite {study.metric_display}."])
    counts = curves.drop_duplicates(TRIAL_ID)[STOP_REASON].value_counts()
    outcome = ", ".join(f"{int(counts[r])} {w}" for r, w in OUTCOMES.items() if r in counts)
    searched = study.metric in study.trials
    milestones = study.milestones if searched else study.milestones[-1:]
    note = (f"{curves['trial_id'].nunique()} trials ({outcome}); dotted lines: ASHA's "
            f"milestones (epochs {', '.join(str(m) for m in milestones[:-1])}), where a trial "
            "in the bottom of its rung is stopped; markers: where each trial ended."
            if len(milestones) > 1 else
            f"{curves['trial_id'].nunique()} trials ({outcome}); no early stopping (a single "
            "milestone, the full budget).")
    sources = Sources(study=study.name, trials=tuple(sorted(set(curves[TRIAL_ID]))))
    where = ("on the search fold, every trial" if searched
             else "of every configuration on every fold")
    return Section(title=title, notes=[note], figures=[Figure(
        name="learning-curves",
        title=f"{study.metric_display} per epoch {where}",
        figure=learning_curves_figure(curves, milestones=milestones,
                                      metric=study.metric_display),
        sources=sources)])


def history_section(study: StudyData) -> Section:
    """The optimisation history, or one line saying why there is none."""
    title = "Optimisation history"
    if study.trials.empty:
        return Section(title=title, notes=["Not drawn: this study searched nothing (fixed "
                                           "configurations)."])
    numbers = trial_numbers(study)
    if numbers.empty:
        return Section(title=title, notes=[
            "Not drawn: the order of the trials comes from the Optuna storage "
            f"({study.record.get('plan', {}).get('optuna_storage', '?')}), which could not be "
            "read."])
    history = optimisation_history(study, numbers)
    completed = history[history[STOP_REASON] == COMPLETED]
    if completed.empty:
        return Section(title=title, notes=[
            f"Not drawn: no trial completed the full budget of {study.max_epochs} epochs."])
    best = completed.loc[completed["score"].idxmax() if study.mode == "max"
                         else completed["score"].idxmin()]
    sources = Sources(study=study.name, trials=tuple(history[TRIAL_ID]))
    found = (f"The best full-budget score, {best['score']:.3f}, was found by the "
             f"{_ordinal(int(best['trial_number']))} of {len(history)} trials "
             f"({best['trial_id']}).")
    return Section(title=title, notes=[found], figures=[Figure(
        name="optimisation-history",
        title=f"Best {study.metric_display} so far against trial number",
        figure=history_figure(history, metric=study.metric_display, max_epochs=study.max_epochs),
        sources=sources)], tables=[Table(
            name="optimisation-history", title="Trials in the order they started",
            frame=history, sources=sources)])


__all__ = [
    "history_figure", "history_section", "learning_curves", "learning_curves_figure",
    "learning_curves_section", "optimisation_history", "trial_numbers",
]
