"""The answer first: a summary of what the study ran and spent, and a leaderboard of the best
configurations with their search, cross-validation and test scores."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType

import numpy as np
import pandas as pd

from reports.artifact import Section, Sources, Table
from reports.cv_tables import cv_summary, fold_scores
from reports.final_test import final_test, test_description, test_key, test_scores
from reports.naming import config_value, parameter_name
from reports.study_data import StudyData
from study.folder_format import (
    COMPLETED,
    CONFIG_PREFIX,
    CV_TABLE,
    DIVERGED,
    EARLY_STOPPED,
    EPOCH,
    FAILED,
    FINAL_TEST,
    STOP_REASON,
    TRIAL_ID,
    TRIALS_TABLE,
)

BUDGET_OPTIONS = ("data/fs_hz", "epochs", "seed")
"""Fixed options the overview shows in rows of their own (data set, epochs, the plan)."""
RUNG_WORDS = {"loss": "the validation loss", "auroc": "the macro AUROC"}
"""How the summary names a rung metric other than the study's (``--rung-metric``)."""

OUTCOMES: Mapping[str, str] = MappingProxyType({
    COMPLETED: COMPLETED,
    EARLY_STOPPED: "stopped early",
    FAILED: "failed",
    DIVERGED: DIVERGED,
})
"""`trials.parquet` stop reasons, in the words (and order) of the summary."""

LEADERBOARD_ROWS = 10
"""Configurations in the leaderboard (the best completed trials)."""


def runs(study: StudyData) -> pd.DataFrame:
    """The rows of the trials a study ran: its search trials, or for a study of fixed
    configurations (no search) the configurations on every fold (`cv.parquet`)."""
    if STOP_REASON in study.trials or study.cv is None:
        return study.trials
    return study.cv


def outcome_counts(study: StudyData) -> dict[str, int]:
    """Trials per outcome (every key of `OUTCOMES`, zero included)."""
    rows = runs(study)
    if STOP_REASON not in rows:
        return dict.fromkeys(OUTCOMES, 0)
    last = rows.drop_duplicates(TRIAL_ID, keep="last")[STOP_REASON]
    unknown = sorted(set(last) - set(OUTCOMES))
    if unknown:
        raise ValueError(f"{study.directory}/trials.parquet: unknown stop_reason {unknown}; "
                         f"known: {list(OUTCOMES)}")
    return {reason: int((last == reason).sum()) for reason in OUTCOMES}


def epochs_spent(study: StudyData) -> tuple[int, int]:
    """Epochs the search trained in all, and what every trial at the full budget (no early
    stopping) would have trained."""
    rows = runs(study)
    if EPOCH not in rows:
        return 0, 0
    per_trial = pd.to_numeric(rows.groupby(TRIAL_ID)[EPOCH].max()).clip(lower=0)
    return int(per_trial.sum()), int(len(per_trial) * study.max_epochs)


def trial_wall_s(frame: pd.DataFrame | None) -> float:
    """Wall seconds of the trials in ``frame``, summed: each trial's last ``time_total_s``
    (Tune's, pre-training and start included), or its epochs' ``seconds`` where the study
    did not record it."""
    if frame is None or frame.empty:
        return 0.0
    if "time_total_s" in frame:
        per_trial = pd.to_numeric(frame["time_total_s"], errors="coerce").groupby(
            [frame[c] for c in (TRIAL_ID, "fold") if c in frame]).max()
        return float(per_trial.fillna(0.0).sum())
    if "seconds" not in frame:
        return 0.0
    return float(pd.to_numeric(frame["seconds"], errors="coerce").fillna(0.0).sum())


def time_rows(study: StudyData) -> list[tuple[str, str]]:
    """One row per stage: its wall time (`stage_times.json`) and, for the stages that train,
    the trials' own wall time summed; then CPU- or GPU-hours of the trials."""
    plan = study.record.get("plan", {})
    stages = study.stage_times
    search_s, cv_s = trial_wall_s(study.trials), trial_wall_s(study.cv)

    def stage(key: str, trials_s: float | None) -> str:
        wall = stages.get(key)
        parts = ([f"{_duration(wall)} wall"] if wall is not None else []) + (
            [f"{_duration(trials_s)} summed over trials"] if trials_s else [])
        return "; ".join(parts)

    rows = [("Wall time", _duration(wall_time_s(study)))]
    for label, key, trials_s in (("Search time", "search", search_s),
                                 ("Cross-validation time", "cv", cv_s),
                                 ("Final training time", "final", None),
                                 ("Explanation time", "explanations", None)):
        text = stage(key, trials_s)
        if text:
            rows.append((label, text + (" (in the driver)" if key == "explanations" else "")))
    trial_s = search_s + cv_s + stages.get("final", 0.0)
    for unit, per_trial in (("CPU", float(plan.get("cpus_per_trial") or 0.0)),
                            ("GPU", float(plan.get("gpus_per_trial") or 0.0))):
        rows.append((f"{unit}-hours", f"{trial_s * per_trial / 3600:.3g} ({per_trial:g} "
                                      f"{unit} per trial, over the trial times above)"))
    return rows


def wall_time_s(study: StudyData) -> float | None:
    """Seconds from the study's start (study.json's ``created_unix``) to its last result file
    (trials.parquet, cv.parquet or final_test.json); None when not recorded. A resumed
    study's pause counts too."""
    start = study.record.get("created_unix")
    ends = [p.stat().st_mtime for p in (study.directory / name for name in
                                         (TRIALS_TABLE, CV_TABLE, FINAL_TEST))
            if p.is_file()]
    if start is None or not ends:
        return None
    return max(ends) - float(start)


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "not recorded"
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def study_summary(study: StudyData) -> pd.DataFrame:
    """What the study ran and spent, one ``Item``/``Value`` row each (all text)."""
    plan = study.record.get("plan", {})
    data = study.record.get("data", {})
    counts = outcome_counts(study)
    spent, full = epochs_spent(study)
    dataset = study.dataset.get("name", plan.get("dataset", "?"))
    records = f", {data['records']} records" if data.get("records") is not None else ""
    rate = f" at {plan['fs_hz']:g} Hz" if plan.get("fs_hz") else ""
    scheduler = plan.get("scheduler", "asha")
    milestones = ", ".join(str(m) for m in study.milestones)
    fixed = bool(plan.get("presets"))
    folds = (f"folds {', '.join(str(f) for f in sorted(set(runs(study)['fold'])))}"
             if fixed and "fold" in runs(study) else f"search fold {plan.get('fold', '?')}")
    fixed_options = ", ".join(f"{parameter_name(name)} {value}"
                              for name, value in study.fixed_options.items()
                              if name not in BUDGET_OPTIONS)
    rows = [
        ("Data set", f"{dataset}{records}{rate}; {folds} of {plan.get('n_folds', '?')}"),
        ("Search space", f"{study.space}: " + ", ".join(parameter_name(p)
                                                       for p in study.parameters)),
        *([("Fixed in every trial", fixed_options)] if fixed_options and not fixed else []),
        ("Metric", f"{study.metric_display} ({study.metric}, {plan.get('mode', 'max')})"),
        ("Search", f"none: fixed configurations {', '.join(plan['presets'])}"
                   if plan.get("presets") else
                   f"{plan.get('sampler', 'tpe')} sampler, {scheduler} scheduler, ASHA "
                   f"milestones at epochs {milestones}"
                   + (f", ranked on {RUNG_WORDS.get(plan['rung_metric'], plan['rung_metric'])}"
                      if plan.get("rung_metric", "metric") != "metric" else "")),
        ("Trials" if not fixed else "Runs (configuration x fold)",
         f"{sum(counts.values())}: " + ", ".join(
            f"{counts[r]} {w}" for r, w in OUTCOMES.items())),
        ("Epochs trained", f"{spent} of {full} without early stopping "
                           f"({spent / full:.0%})" if full else "none"),
        *time_rows(study),
    ]
    created = study.record.get("created_unix")
    if created is not None:
        started = datetime.fromtimestamp(float(created), tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
        rows.insert(0, ("Started", f"{started}, git {str(study.record.get('git_sha', '?'))[:10]}"))
    return pd.DataFrame(rows, columns=["Item", "Value"])


def _answer(study: StudyData, board: pd.DataFrame) -> str:
    """The headline: the best configuration and its scores, in one sentence."""
    if study.trials.empty:
        if board.empty:
            return "A study of fixed configurations that reported no score."
        cv_header = f"{study.metric_display} CV mean ± sd"
        scores = "; ".join(f"{row['Configuration']} {row[cv_header]}"
                           for _, row in board.iterrows())
        return (f"A study of fixed configurations, no search: {study.metric_display} in "
                f"cross-validation (mean ± sd over folds): {scores}.")
    if board.empty:
        return (f"No trial completed the full budget of {study.max_epochs} epochs, so there is "
                "no best configuration.")
    best = board.iloc[0]
    parameters = ", ".join(f"{parameter_name(p)} {best[parameter_name(p)]}"
                           for p in study.parameters if parameter_name(p) in best)
    scores = [f"{study.metric_display} {best[_search_header(study)]:.3f} on the search fold"]
    cv_header = f"{study.metric_display} CV mean ± sd"
    if cv_header in best and best[cv_header] != "–":
        scores.append(f"{best[cv_header]} in cross-validation")
    test_header = f"{study.metric_display} test"
    if test_header in best and np.isfinite(best[test_header]):
        scores.append(f"{best[test_header]:.3f} on the held-out test set")
    return f"Best configuration: trial {best['Trial']} ({parameters}): " + ", ".join(scores) + "."


def summary_section(study: StudyData) -> Section:
    """The report's first section: the answer in one line, then what the study spent."""
    board = leaderboard(study)
    sources = Sources(study=study.name, trials=tuple(sorted(set(study.trials[TRIAL_ID]))))
    return Section(
        title="Summary",
        tables=[Table(name="summary", title="What the study ran and spent",
                      frame=study_summary(study), sources=sources)],
        notes=[_answer(study, board)],
    )


def _search_header(study: StudyData) -> str:
    fold = study.record.get("plan", {}).get("fold")
    return f"{study.metric_display} search fold" + (f" {fold}" if fold is not None else "")


def _cv_scores(study: StudyData) -> pd.Series:
    """``"mean ± sd"`` over folds of the study metric per search trial id (candidate)."""
    if study.cv is None:
        return pd.Series(dtype=object)
    summary = cv_summary(study)
    name = study.metric.rsplit("/", 1)[-1]
    n_folds = fold_scores(study).groupby("candidate")["fold"].nunique()
    return pd.Series({
        str(c): (f"{m:.3f} ± {s:.3f} ({n_folds[c]} folds)" if np.isfinite(s)
                 else f"{m:.3f} ({n_folds[c]} fold)")
        for c, m, s in zip(summary["candidate"], summary[f"{name}_mean"],
                           summary[f"{name}_std"], strict=True)
    }, dtype=object)


def leaderboard(study: StudyData, *, n_rows: int = LEADERBOARD_ROWS) -> pd.DataFrame:
    """The best completed trials, best first: their sampled parameters (in words) and scores
    on the search fold (full budget), in cross-validation (mean ± sd, when the study ran it)
    and on the held-out test set (when it wrote `final_test.json`)."""
    if study.trials.empty:
        return fixed_leaderboard(study)
    final = study.final()
    final = final.dropna(subset=[study.metric])
    final = final.sort_values(study.metric, ascending=study.mode == "min", kind="stable")
    final = final.head(n_rows).reset_index(drop=True)
    table = pd.DataFrame({"Rank": np.arange(1, len(final) + 1),
                          "Trial": final[TRIAL_ID].astype(str)})
    for name in study.parameters:
        column = CONFIG_PREFIX + name
        if column in final:
            table[parameter_name(name)] = [
                "–" if v is None or (isinstance(v, float) and math.isnan(v)) else config_value(v)
                for v in final[column]]
    table[_search_header(study)] = final[study.metric].to_numpy(dtype=float)
    cv = _cv_scores(study)
    if len(cv):
        table[f"{study.metric_display} CV mean ± sd"] = [cv.get(t, "–") for t in table["Trial"]]
    tests = test_scores(study)  # NaN where the test set had no score
    if len(tests):
        table[f"{study.metric_display} test"] = [tests.get(t, np.nan) for t in table["Trial"]]
    return with_baselines(table, study=study, cv=cv, tests=tests)


def baseline_names(study: StudyData) -> list[str]:
    """The ``--baseline`` presets a search trained beside its chosen configurations (in its
    cross-validation, its test set or both), in the order the study named them."""
    names = list(study.record.get("plan", {}).get("baseline") or ())
    return [str(n) for n in names]


def with_baselines(table: pd.DataFrame, *, study: StudyData, cv: pd.Series,
                   tests: pd.Series) -> pd.DataFrame:
    """The leaderboard with a row per baseline preset under the search's trials: no search
    score (it was not searched), its cross-validation and test scores beside theirs."""
    names = baseline_names(study)
    if not names:
        return table
    rows = pd.DataFrame({column: ["–"] * len(names) for column in table.columns})
    rows["Rank"] = "baseline"
    rows["Trial"] = names
    rows[_search_header(study)] = np.nan
    if len(cv):
        rows[f"{study.metric_display} CV mean ± sd"] = [cv.get(n, "–") for n in names]
    if len(tests):
        rows[f"{study.metric_display} test"] = [tests.get(n, np.nan) for n in names]
    return pd.concat([table.astype({"Rank": object}), rows], ignore_index=True)


def fixed_leaderboard(study: StudyData) -> pd.DataFrame:
    """A study of fixed configurations: each configuration ranked on its cross-validation
    mean, with its test score when the study held a test set out."""
    columns = ["Rank", "Configuration", f"{study.metric_display} CV mean ± sd"]
    if study.cv is None or study.metric not in study.cv:
        return pd.DataFrame(columns=columns)
    order = list(cv_summary(study)["candidate"].astype(str))
    cv = _cv_scores(study)
    table = pd.DataFrame({"Rank": np.arange(1, len(order) + 1), "Configuration": order,
                          columns[2]: [cv.get(c, "–") for c in order]})
    tests = test_scores(study)
    if len(tests):
        table[f"{study.metric_display} test"] = [tests.get(c, np.nan) for c in order]
    return table


def leaderboard_section(study: StudyData) -> Section:
    """The leaderboard, or one line saying why there is none."""
    title = "Leaderboard"
    board = leaderboard(study)
    counts = outcome_counts(study)
    if study.trials.empty:
        if board.empty:
            return Section(title=title, notes=[
                "No leaderboard: no fixed configuration reported a score."])
        return Section(title=title, notes=[
            f"Fixed configurations, no search: ranked on their {study.metric_display} "
            "averaged over the cross-validation folds."], tables=[
            Table(name="leaderboard", title=f"Configurations by {study.metric_display}",
                  frame=board, sources=Sources(study=study.name,
                                               trials=tuple(board["Configuration"])))])
    if board.empty:
        return Section(title=title, notes=[
            f"No leaderboard: no trial completed the full budget of {study.max_epochs} epochs "
            f"({', '.join(f'{counts[r]} {w}' for r, w in OUTCOMES.items() if counts[r])})."])
    searched = len(board) - len(baseline_names(study))
    notes = [f"The {searched} best of the {counts['completed']} trials that completed the "
             f"full budget ({study.max_epochs} epochs), ranked on the search fold. Trials "
             "stopped early are not ranked: their scores are at a smaller budget."
             + (f" Baseline ({', '.join(baseline_names(study))}): trained as the chosen "
                "configurations are, on the same folds and test set, never searched."
                if baseline_names(study) else "")]
    record = final_test(study)
    if record is not None:
        trained = record.get("trained_on", {})
        notes.append(f"Test: {test_description(record)}, never seen by the search or the "
                     f"cross-validation; each configuration retrained on "
                     f"{trained.get('n_records', '?')} records for "
                     f"{trained.get('epochs', '?')} epochs and scored once "
                     f"({test_key(study, record)}).")
    elif study.cv is None:
        notes.append("No cross-validation or test score: the study ran without --cv-top-k and "
                     "wrote no final_test.json, so the only score is the search fold's, which "
                     "chose the configurations and flatters them.")
    sources = Sources(study=study.name, trials=tuple(board["Trial"]))
    return Section(title=title, notes=notes, tables=[
        Table(name="leaderboard", title=f"Best configurations by {study.metric_display}",
              frame=board, sources=sources)])
