"""Per-class scores in the data set's own classes: the best trial of the search on its
validation fold, and the best cross-validated configuration over its folds.

Rows are the data set's classes (label and display name, from study.json); columns are the
per-class metrics the data set reports (F1, and for MIT-BIH beats AAMI's sensitivity Se and
positive predictivity +P) and the number of items of the class.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from reports.artifact import Section, Sources, Table
from reports.cv_tables import PER_CLASS_HEADERS, cv_summary, fold_scores
from reports.study_data import StudyData
from study.folder_format import CONFUSION_JSON, EPOCH, TRIAL_ID


def best_search_row(study: StudyData) -> pd.Series | None:
    """The best trial at the full budget (or, when none completed, the best last epoch)."""
    final = study.final()
    rows = final if not final.empty else study.trials.sort_values(EPOCH).groupby(
        TRIAL_ID).tail(1)
    rows = rows.dropna(subset=[study.metric]) if study.metric in rows else rows.iloc[0:0]
    if rows.empty:
        return None
    return rows.sort_values(study.metric, ascending=study.mode == "min", kind="stable").iloc[0]


def class_rows(study: StudyData, values: dict[str, float | str],
               counts: np.ndarray | None) -> pd.DataFrame:
    """One row per class: label, name, the per-class metrics present in ``values``, items."""
    reported = study.dataset.get("per_class_metrics", ["f1"])
    rows = []
    for k, cls in enumerate(study.classes):
        row = {"Class": cls["label"], "Name": cls["name"]}
        for prefix, header in PER_CLASS_HEADERS:
            column = f"val/{prefix}_{cls['key']}"
            if prefix in reported and column in values:
                row[header] = values[column]
        if counts is not None:
            row["Items"] = int(counts[k])
        rows.append(row)
    return pd.DataFrame(rows)


def search_table(study: StudyData) -> tuple[pd.DataFrame, pd.Series] | None:
    """Per-class scores of the best search trial on the validation fold."""
    best = best_search_row(study)
    if best is None:
        return None
    counts = None
    if isinstance(best.get(CONFUSION_JSON), str):
        counts = np.asarray(json.loads(best[CONFUSION_JSON])).sum(axis=1)
    values = {k: float(v) for k, v in best.items() if str(k).startswith("val/")
              and isinstance(v, int | float | np.floating)}
    return class_rows(study, values, counts), best


def cv_table(study: StudyData) -> tuple[pd.DataFrame, str] | None:
    """Per-class mean ± sd over folds of the best cross-validated candidate."""
    if study.cv is None:
        return None
    summary = cv_summary(study)
    if summary.empty:
        return None
    best = summary.iloc[0]
    folds = fold_scores(study)
    folds = folds[folds["candidate"] == best["candidate"]]
    values = {}
    for column in folds:
        if str(column).startswith("val/") and column != CONFUSION_JSON:
            values[column] = _mean_sd(folds[column].to_numpy(dtype=float))
    counts = None
    if CONFUSION_JSON in folds:
        counts = sum(np.asarray(json.loads(t)) for t in folds[CONFUSION_JSON]).sum(axis=1)
    return class_rows(study, values, counts), str(best["candidate"])


def _mean_sd(values: np.ndarray) -> str:
    values = values[np.isfinite(values)]
    if not len(values):
        return "–"
    sd = f" ± {values.std(ddof=1):.3f}" if len(values) > 1 else ""
    return f"{values.mean():.3f}{sd}"


def per_class_section(study: StudyData) -> Section:
    """The per-class tables of one study."""
    title = "Per-class scores"
    if not study.classes:
        return Section(title=title, notes=[
            "study.json records no data-set definition (a study written before data sets "
            "were recorded), so the classes are unknown."])
    tables, notes = [], []
    found = search_table(study)
    if found is None and study.metric not in study.trials:
        notes.append("No search: this study trained fixed configurations; the best one's "
                     "per-class scores over its folds are above and every fold's in the "
                     "cross-validation section.")
    elif found is None:
        notes.append(f"No trial reported {study.metric}; no per-class table.")
    else:
        frame, best = found
        fold = int(best["fold"]) if "fold" in best and pd.notna(best["fold"]) else None
        tables.append(Table(
            name="per_class_best_trial",
            title=f"Best search trial {best['trial_id']} ({study.metric_display} "
                  f"{float(best[study.metric]):.3f} at epoch {int(best['epoch'])}): per-class "
                  f"scores on validation fold {fold} of {study.dataset.get('name', 'the data')}",
            frame=frame, sources=Sources(study=study.name, trials=(str(best[TRIAL_ID]),))))
    cv = cv_table(study)
    if cv is not None:
        frame, candidate = cv
        tables.append(Table(
            name="per_class_cv_best",
            title=f"Best cross-validated configuration {candidate}: per-class scores, mean ± "
                  "standard deviation over folds; items summed over folds",
            frame=frame, sources=Sources(study=study.name, trials=(candidate,))))
    notes.append("Se: sensitivity (recall), +P: positive predictivity (precision), as AAMI "
                 "EC57 reports them; F1 is 0 for a class with items that was never predicted; a "
                 "dash means undefined (Se: no items of the class; +P: never predicted; F1: "
                 "neither).")
    return Section(title=title, tables=tables, notes=notes)
