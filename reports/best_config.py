"""The best configuration's per-class scores and confusion matrix: on the held-out test set
when the study wrote `final_test.json`, else on the search's validation fold."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from reports.artifact import Figure, Section, Sources, Table
from reports.cv_tables import class_labels, confusion_figure
from reports.final_test import best_candidate, final_test, test_description
from reports.per_class import best_search_row, class_rows
from reports.study_data import StudyData
from study.folder_format import CONFUSION_JSON, EPOCH, TRIAL_ID

CANDIDATE_NAME = "config/candidate/trial_id"
"""The `cv.parquet` column naming the configuration a cross-validation run trained."""


@dataclass(frozen=True)
class BestScores:
    """Per-class scores of the best configuration on one set of records.

    Attributes:
        trial_id: the search trial whose configuration it is.
        where: which records, in words.
        values: ``val/<metric>`` -> value (test scores carry the same names, so one table
            builder serves both).
        confusion: counts, true classes as rows, or None when not recorded.
    """

    trial_id: str
    where: str
    values: dict[str, float]
    confusion: np.ndarray | None


def best_scores(study: StudyData) -> BestScores | None:
    """The best configuration's scores: its test scores from `final_test.json`, else its
    search trial's last validation row; None when no trial has a score."""
    record = final_test(study)
    if record is not None and (candidate := best_candidate(record)) is not None:
        metrics = candidate["metrics"]
        values = {"val/" + k.removeprefix("test/"): float(v) for k, v in metrics.items()
                  if k.startswith("test/") and isinstance(v, int | float)}
        confusion = metrics.get("test/confusion")
        return BestScores(
            trial_id=str(candidate[TRIAL_ID]),
            where=f"held-out test set ({test_description(record)}), retrained once",
            values=values,
            confusion=None if confusion is None else np.asarray(confusion, dtype=int))
    if study.metric not in study.trials:
        return best_fixed_scores(study)
    row = best_search_row(study)
    if row is None:
        return None
    values = {k: float(v) for k, v in row.items() if str(k).startswith("val/")
              and isinstance(v, int | float | np.floating) and np.isfinite(v)}
    text = row.get(CONFUSION_JSON)
    fold = study.record.get("plan", {}).get("fold")
    return BestScores(
        trial_id=str(row[TRIAL_ID]),
        where=f"validation fold {fold} at epoch {int(row['epoch'])} (the fold the search "
              "chose it on, so the scores are optimistic)",
        values=values,
        confusion=np.asarray(json.loads(text), dtype=int) if isinstance(text, str) else None)


def best_config_section(study: StudyData) -> Section:
    """Per-class F1 and confusion matrix of the best configuration, or one line why not."""
    title = "Best configuration: per-class scores and confusion matrix"
    found = best_scores(study)
    if found is None:
        return Section(title=title, notes=[f"Not computed: no trial reported "
                                           f"{study.metric_display}."])
    if not study.classes:
        return Section(title=title, notes=[
            "Not computed: study.json records no data-set definition, so the classes are "
            "unknown."])
    sources = Sources(study=study.name, trials=(found.trial_id,))
    counts = found.confusion.sum(axis=1) if found.confusion is not None else None
    frame = class_rows(study, found.values, counts)
    headline = found.values.get(study.metric)
    score = f": {study.metric_display} {headline:.3f}" if headline is not None else ""
    tables = [Table(name="best-per-class", title=f"Trial {found.trial_id} on the "
                                                 f"{found.where}{score}",
                    frame=frame, sources=sources)]
    figures, notes = [], []
    if found.confusion is not None:
        labels = class_labels(study, n_classes=found.confusion.shape[0])
        matrix = pd.DataFrame(found.confusion, index=pd.Index(labels, name="true"),
                              columns=pd.Index(labels, name="predicted"))
        caption = f"Trial {found.trial_id}, {found.where.split(' (')[0]}"
        figures.append(Figure(name="best-confusion",
                              title=f"Confusion matrix of the best configuration ({caption}; "
                                    "colour: share of the true class)",
                              figure=confusion_figure(matrix, title=caption), sources=sources))
    else:
        notes.append("No confusion matrix: the study recorded none for this trial.")
    return Section(title=title, tables=tables, figures=figures, notes=notes)


def best_fixed_scores(study: StudyData) -> BestScores | None:
    """A fixed-configuration study's best configuration (highest mean over its folds): per-class
    scores averaged over the folds' last epochs, confusion matrices summed over the folds."""
    cv = study.cv
    if cv is None or study.metric not in cv or cv.empty:
        return None
    last = cv.sort_values(EPOCH).drop_duplicates(TRIAL_ID, keep="last")
    last = last[np.isfinite(last[study.metric].to_numpy(dtype=float))]
    if last.empty:
        return None
    name = CANDIDATE_NAME if CANDIDATE_NAME in last else TRIAL_ID
    means = last.groupby(name)[study.metric].mean()
    best = means.idxmax() if study.mode == "max" else means.idxmin()
    rows = last[last[name] == best]
    values = {k: float(rows[k].mean()) for k in rows.columns if str(k).startswith("val/")
              and pd.api.types.is_numeric_dtype(rows[k]) and rows[k].notna().any()}
    matrices = [np.asarray(json.loads(t), dtype=int) for t in rows.get(CONFUSION_JSON, [])
                if isinstance(t, str)]
    folds = ", ".join(str(int(f)) for f in sorted(rows["fold"]))
    return BestScores(
        trial_id=str(best),
        where=f"cross-validation folds {folds} (per-class scores averaged over the folds' last "
              "epochs; confusion matrix summed over their validation records)",
        values=values,
        confusion=np.sum(matrices, axis=0) if len(matrices) == len(rows) else None)
