"""Cross-validation of the best configurations (`cv.parquet`): the thesis-style tables of
per-class F1 over folds, confusion matrices summed over folds, and corrected resampled t-tests
of every candidate against the best.

`cv.parquet` holds one row per (candidate, fold) trial and epoch; the candidate's trial id is
in ``config/candidate`` and the fold in ``fold``. Each fold counts with its last epoch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from scipy import stats

from reports.artifact import Figure, Section, Sources, Table
from reports.naming import parameter_name, slug
from reports.study_data import ReportError, StudyData
from study.folder_format import (
    CANDIDATE,
    COMPLETED,
    CONFIG_PREFIX,
    CONFUSION_JSON,
    EPOCH,
    STOP_REASON,
    TRIAL_ID,
)

PER_CLASS_HEADERS = (("f1", "F1"), ("sensitivity", "Se"), ("ppv", "+P"))
"""Per-class metric prefix and its header (AAMI's Se and +P), in table order."""
BINARY_COLUMNS = (("val/sensitivity", "Se"), ("val/specificity", "Sp"),
                  ("val/accuracy", "Accuracy"))


def score_columns(study: StudyData) -> list[tuple[str, str]]:
    """The summary columns and their headers: per class (in the data set's report order) F1,
    then Se and +P where the data set reports them, then two-class sensitivity, specificity
    and accuracy where it has a positive class, then the study metric."""
    dataset = study.dataset
    by_label = {c["label"]: c for c in study.classes}
    order = dataset.get("report_class_order") or list(by_label)
    reported = dataset.get("per_class_metrics", ["f1"])
    columns = [(f"val/{prefix}_{by_label[label]['key']}", f"{header} {label}")
               for prefix, header in PER_CLASS_HEADERS if prefix in reported
               for label in order]
    if dataset.get("binary_metrics"):
        columns += list(BINARY_COLUMNS)
    if not study.classes:  # a study.json written before data sets were recorded
        columns += [(m, m.removeprefix("val/")) for m in sorted(_per_class_columns(study))]
    columns = [c for c in columns if c[0] != study.metric]
    return [*columns, (study.metric, study.metric_display)]


def class_labels(study: StudyData, *, n_classes: int) -> list[str]:
    """Confusion-matrix labels in class-index order (``0, 1, ...`` without a definition)."""
    return [c["label"] for c in study.classes] or [str(k) for k in range(n_classes)]


def _per_class_columns(study: StudyData) -> set[str]:
    frame = study.cv if study.cv is not None else study.trials
    return {c for c in frame if c.startswith("val/f1_") and c != study.metric}

CV_HINT = ("This study has no cv.parquet, so there are no cross-validation tables. Studies "
           "run with `--cv-top-k K` (e.g. `python -m study.run --space convlstm --data-dir DIR "
           "--num-samples 40 --cv-top-k 3`) retrain their K best configurations on every fold "
           "at the full budget and write cv.parquet; `--resume` keeps the original setting, so "
           "a study run without it needs a new run.")


# -- data ----------------------------------------------------------------------------------

def fold_scores(study: StudyData, *, also: Sequence[str] = ()) -> pd.DataFrame:
    """One row per (candidate, fold): the fold's last epoch.

    Folds whose last row has no score (an errored trial) are left out.

    Args:
        also: further metrics to carry where `cv.parquet` has them (e.g. the weighted
            scores a published table reports).

    Returns:
        Columns ``candidate``, ``fold``, ``trial_id``, ``epoch``, ``stop_reason``, the score
        columns and ``also`` present in `cv.parquet` and ``val/confusion_json``.

    Raises:
        ReportError: the study has no `cv.parquet`.
    """
    if study.cv is None:
        raise ReportError(f"{study.directory} has no cv.parquet. {CV_HINT}")
    cv = study.cv
    metrics = [m for m in dict.fromkeys([*_score_metrics(study), *also]) if m in cv]
    last = (cv.sort_values(EPOCH, kind="stable")
            .groupby([CANDIDATE, "fold"], sort=False, dropna=True).tail(1))
    last = last.dropna(subset=[study.metric])
    columns = [TRIAL_ID, EPOCH, STOP_REASON, *metrics,
               *([CONFUSION_JSON] if CONFUSION_JSON in cv else [])]
    frame = last[[CANDIDATE, "fold", *columns]].rename(columns={CANDIDATE: "candidate"})
    frame["candidate"] = frame["candidate"].astype(str)
    frame["fold"] = frame["fold"].astype(int)
    return frame.sort_values(["candidate", "fold"], kind="stable").reset_index(drop=True)


def cv_summary(study: StudyData) -> pd.DataFrame:
    """Per candidate, mean and standard deviation over folds of each class's F1 and the score.

    Standard deviations are sample ones (ddof = 1; NaN with a single fold). Candidates are
    ordered by the mean of the study's metric (best first, following its mode).

    Returns:
        The data table: ``rank``, ``candidate``, ``n_folds``, the candidate's ``config/``
        values that differ between candidates, and ``<name>_mean``/``<name>_std`` for each
        score of `score_columns` (per class F1, and Se/+P where reported, and the study's
        metric).
    """
    folds = fold_scores(study)
    metrics = [m for m in _score_metrics(study) if m in folds]
    grouped = folds.groupby("candidate", sort=True)
    summary = pd.DataFrame({"n_folds": grouped.size()})
    for metric in metrics:
        name = _short(metric)
        summary[f"{name}_mean"] = grouped[metric].mean()
        summary[f"{name}_std"] = grouped[metric].std(ddof=1)
    summary = summary.reset_index()
    summary = summary.join(_varying_config(study, summary["candidate"]), on="candidate")
    key = f"{_short(study.metric)}_mean"
    summary = summary.sort_values([key, "candidate"], ascending=[study.mode == "min", True],
                                  kind="stable").reset_index(drop=True)
    summary.insert(0, "rank", np.arange(1, len(summary) + 1))
    config = [c for c in summary if c.startswith(CONFIG_PREFIX)]
    scores = [c for c in summary if c.endswith(("_mean", "_std"))]
    return summary[["rank", "candidate", "n_folds", *config, *scores]]


def presentation_table(summary: pd.DataFrame, *, digits: int = 3,
                       columns: list[tuple[str, str]] | None = None) -> pd.DataFrame:
    """The thesis-style table of `cv_summary`: ``"0.812 ± 0.021"`` cells, config columns
    named in words (``CNN depth``), scores headed as in ``columns`` (`score_columns`)."""
    table = pd.DataFrame({"Rank": summary["rank"], "Candidate": summary["candidate"]})
    for column in (c for c in summary if c.startswith(CONFIG_PREFIX)):
        table[parameter_name(column.removeprefix(CONFIG_PREFIX))] = [
            _format_value(v) for v in summary[column]]
    headers = dict(columns or ())
    for column in (c for c in summary if c.endswith("_mean")):
        name = column.removesuffix("_mean")
        header = headers.get(f"val/{name}", name)
        table[header] = [_mean_std(m, s, digits=digits)
                         for m, s in zip(summary[column], summary[f"{name}_std"],
                                             strict=True)]
    table["Folds"] = summary["n_folds"]
    return table


def summed_confusion(study: StudyData) -> dict[str, pd.DataFrame]:
    """Per candidate (best first), the confusion matrix summed over its folds' last epochs.

    Returns:
        Candidate id -> integer DataFrame, index ``true`` and columns ``predicted`` labelled
        with the data set's classes.
    """
    folds = fold_scores(study)
    if CONFUSION_JSON not in folds:
        raise ReportError(f"{study.directory}/cv.parquet has no val/confusion_json column")
    order = cv_summary(study)["candidate"]
    matrices = {}
    for candidate in order:
        rows = folds.loc[folds["candidate"] == candidate, CONFUSION_JSON]
        total = sum(np.asarray(json.loads(text), dtype=int) for text in rows)
        labels = class_labels(study, n_classes=total.shape[0])
        matrices[candidate] = pd.DataFrame(
            total, index=pd.Index(labels, name="true"),
            columns=pd.Index(labels, name="predicted"),
        )
    return matrices


def search_fold(study: StudyData) -> int | None:
    """The fold whose validation scores the search tuned on (``plan.fold``), or None."""
    fold = study.record.get("plan", {}).get("fold")
    return None if fold is None else int(fold)


def without_search_fold(study: StudyData, folds: pd.DataFrame) -> pd.Series:
    """Per candidate, ``"mean ± sd"`` of the study metric over the folds other than the
    search fold (the search chose the candidates by their score on it, so it flatters them)."""
    fold = search_fold(study)
    unseen = folds if fold is None else folds[folds["fold"] != fold]
    grouped = unseen.groupby("candidate")[study.metric]
    return pd.Series({c: _mean_std(m, s, digits=3) for c, m, s in
                      zip(grouped.mean().index, grouped.mean(), grouped.std(ddof=1),
                          strict=True)}, dtype=object)


def fold_table(study: StudyData, folds: pd.DataFrame) -> pd.DataFrame:
    """The study metric per candidate and fold, the search fold marked."""
    fold = search_fold(study)
    order = list(cv_summary(study)["candidate"])
    table = folds.assign(candidate=pd.Categorical(folds["candidate"], categories=order))
    table = table.sort_values(["candidate", "fold"], kind="stable")
    return pd.DataFrame({
        "Candidate": table["candidate"].astype(str),
        "Fold": table["fold"],
        "Role": ["search fold (the search chose the candidates on it)" if f == fold
                 else "" for f in table["fold"]],
        study.metric_display: table[study.metric],
        "Trial": table[TRIAL_ID].astype(str),
    }).reset_index(drop=True)


def row_normalised(matrix: pd.DataFrame) -> pd.DataFrame:
    """Each row divided by its sum (recall on the diagonal); rows without samples are 0."""
    sums = matrix.sum(axis=1).replace(0, np.nan)
    return matrix.div(sums, axis=0).fillna(0.0)


def paired_tests(
    study: StudyData, *, alpha: float = 0.05, test_train_ratio: float | None = None
) -> pd.DataFrame:
    """Every candidate against the best by the corrected resampled t-test.

    Differences d_j = score(candidate, fold j) - score(best, fold j) over the folds both
    trained; the test is Nadeau & Bengio's (2003), see `corrected_resampled_t`, with
    ``n_test / n_train`` = 1 / (K - 1) for K-fold CV (K from the study's plan, else the folds
    seen) unless ``test_train_ratio`` is given. The naive paired t-test is reported beside it
    to show how much the correction matters (fold training sets overlap, so the naive test is
    anti-conservative).

    Returns:
        One row per candidate except the best, in rank order: ``candidate``, ``best``,
        ``n_folds`` (paired), ``mean_difference``, ``std_difference``, ``t``, ``df``,
        ``p_value``, ``p_holm`` (Holm across candidates), ``significant`` (p_value < alpha),
        ``significant_holm``, ``t_naive``, ``p_naive``.
    """
    folds = fold_scores(study)
    order = list(cv_summary(study)["candidate"])
    columns = ["candidate", "best", "n_folds", "mean_difference", "std_difference", "t", "df",
               "p_value", "p_holm", "significant", "significant_holm", "t_naive", "p_naive"]
    if len(order) < 2:
        return pd.DataFrame(columns=columns)
    if test_train_ratio is None:
        k = int(study.record.get("plan", {}).get("n_folds") or folds["fold"].nunique())
        test_train_ratio = 1.0 / (k - 1) if k > 1 else math.nan
    scores = folds.pivot(index="fold", columns="candidate", values=study.metric)
    best = order[0]
    rows = []
    for candidate in order[1:]:
        d = (scores[candidate] - scores[best]).dropna().to_numpy()
        corrected = corrected_resampled_t(d, test_train_ratio=test_train_ratio)
        naive = corrected_resampled_t(d, test_train_ratio=0.0)
        rows.append({
            "candidate": candidate, "best": best, "n_folds": len(d),
            "mean_difference": float(d.mean()) if len(d) else math.nan,
            "std_difference": float(d.std(ddof=1)) if len(d) > 1 else math.nan,
            "t": corrected["t"], "df": corrected["df"], "p_value": corrected["p_value"],
            "t_naive": naive["t"], "p_naive": naive["p_value"],
        })
    frame = pd.DataFrame(rows)
    frame["p_holm"] = holm_adjust(frame["p_value"])
    frame["significant"] = frame["p_value"] < alpha
    frame["significant_holm"] = frame["p_holm"] < alpha
    return frame[columns]


def corrected_resampled_t(d: np.ndarray, *, test_train_ratio: float) -> dict[str, float]:
    """Nadeau & Bengio's (2003) corrected resampled t-test of paired differences.

    t = mean(d) / sqrt((1/k + n_test/n_train) * var(d)) with var the sample variance
    (ddof = 1), k = len(d), df = k - 1, two-sided p. ``test_train_ratio = 0`` gives the naive
    paired t-test. Zero variance gives t = 0 (p = 1) for a zero mean, else t = ±inf (p = 0).

    Returns:
        ``t``, ``df`` and ``p_value`` (NaN with fewer than two differences).
    """
    d = np.asarray(d, dtype=float)
    k = len(d)
    if k < 2 or not np.isfinite(test_train_ratio):
        return {"t": math.nan, "df": math.nan, "p_value": math.nan}
    mean, variance = float(d.mean()), float(d.var(ddof=1))
    if variance == 0:
        t = 0.0 if mean == 0 else math.copysign(math.inf, mean)
    else:
        t = mean / math.sqrt((1 / k + test_train_ratio) * variance)
    df = k - 1
    return {"t": t, "df": float(df), "p_value": float(2 * stats.t.sf(abs(t), df))}


def holm_adjust(p_values: pd.Series | np.ndarray | list[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (same order as given; NaN stays NaN and is not
    counted among the tests)."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = len(finite)
    if m == 0:
        return adjusted
    order = finite[np.argsort(p[finite], kind="stable")]
    steps = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted[order] = np.maximum.accumulate(steps)
    return adjusted


def _score_metrics(study: StudyData) -> list[str]:
    return [m for m, _ in score_columns(study)]


def _varying_config(study: StudyData, candidates: pd.Series) -> pd.DataFrame:
    """The candidates' ``config/`` values that are not the same for all (one row each).

    Columns of the CV bookkeeping are left out: ``config/candidate`` and Ray's flattened copy
    of it (``config/candidate/...``), and any column that varies within a candidate
    (``config/fold``).
    """
    cv = study.cv.assign(**{CANDIDATE: study.cv[CANDIDATE].astype(str)})
    config = [c for c in cv if c.startswith(CONFIG_PREFIX) and not c.startswith(CANDIDATE)]
    as_text = cv[config].astype(str).assign(**{CANDIDATE: cv[CANDIDATE]})
    within = as_text.groupby(CANDIDATE)[config].nunique(dropna=False).max()
    values = cv.drop_duplicates(CANDIDATE).set_index(CANDIDATE)[config].reindex(candidates)
    varying = [c for c in config if within[c] <= 1
               and values[c].astype(str).nunique(dropna=False) > 1]
    return values[varying]


def _short(metric: str) -> str:
    return metric.rsplit("/", 1)[-1]


def _mean_std(mean: float, std: float, *, digits: int) -> str:
    if not np.isfinite(mean):
        return "–"
    if not np.isfinite(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _format_value(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


# -- figures -------------------------------------------------------------------------------

def confusion_figure(matrix: pd.DataFrame, *, title: str) -> go.Figure:
    """Heatmap of a confusion matrix: colour = row-normalised share, text = count and share."""
    shares = row_normalised(matrix)
    text = [[f"{int(c)}<br>({s:.0%})" for c, s in zip(counts, row, strict=True)]
            for counts, row in zip(matrix.to_numpy(), shares.to_numpy(), strict=True)]
    figure = go.Figure(go.Heatmap(
        z=shares.to_numpy(), x=list(matrix.columns), y=list(matrix.index), text=text,
        texttemplate="%{text}", colorscale="Blues", zmin=0, zmax=1,
        colorbar={"title": {"text": "row share"}},
        hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>",
    ))
    figure.update_xaxes(title_text="predicted", type="category", side="bottom")
    figure.update_yaxes(title_text="true", type="category", autorange="reversed")
    figure.update_layout(title={"text": title, "font": {"size": 13}}, width=460, height=420,
                         template="simple_white")
    return figure


# -- section -------------------------------------------------------------------------------

def cv_section(study: StudyData, *, alpha: float = 0.05) -> Section:
    """The cross-validation tables and confusion matrices of one study (or how to get them)."""
    title = "Cross-validation of the best configurations"
    if study.cv is None:
        return Section(title=title, notes=[CV_HINT])
    folds = fold_scores(study)
    summary = cv_summary(study)
    tests = paired_tests(study, alpha=alpha)
    all_sources = Sources(study=study.name, trials=tuple(folds[TRIAL_ID].astype(str)))
    tuned = search_fold(study)
    presented = presentation_table(summary, columns=score_columns(study))
    if tuned is not None and tuned in set(folds["fold"]):
        unseen = without_search_fold(study, folds)
        presented.insert(len(presented.columns) - 1,
                         f"{study.metric_display} without search fold {tuned}",
                         [unseen.get(c, "–") for c in summary["candidate"]])
    tables = [
        Table(name="cv_summary",
              title=f"Cross-validation of the {len(summary)} best configurations: per-class "
                    f"scores and {study.metric_display}, mean ± standard deviation over folds"
                    + (f" (fold {tuned} is the search fold)" if tuned is not None else ""),
              frame=presented, sources=all_sources),
        Table(name="cv_summary_data",
              title="Cross-validation scores per candidate (mean and sample standard "
                    "deviation over folds)", frame=summary, sources=all_sources,
              float_format="{:.4f}"),
        Table(name="cv_paired_tests",
              title="Each candidate against the best: corrected resampled t-test (Nadeau and "
                    f"Bengio 2003), Holm-adjusted across candidates, alpha = {alpha}; the best "
                    "was selected on these same folds, so the p-values are optimistic",
              frame=tests, sources=all_sources, float_format="{:.3g}"),
        Table(name="cv_fold_scores",
              title=f"{study.metric_display} per candidate and fold"
                    + (f"; fold {tuned} is the fold the search tuned on" if tuned is not None
                       else ""),
              frame=fold_table(study, folds), sources=all_sources),
    ]
    figures = []
    confusion = summed_confusion(study) if CONFUSION_JSON in folds else {}
    for rank, (candidate, matrix) in enumerate(confusion.items(), start=1):
        trials = folds.loc[folds["candidate"] == candidate, TRIAL_ID].astype(str)
        sources = Sources(study=study.name, trials=tuple(trials))
        name = f"cv_confusion_{rank}_{slug(candidate)}"
        caption = (f"Candidate {candidate} (rank {rank}): confusion matrix summed over "
                   f"{len(trials)} folds")
        figures.append(Figure(name=name, title=caption + " (colour: share of the true class)",
                              figure=confusion_figure(matrix, title=caption), sources=sources))
        tables.append(Table(name=f"{name}_counts", title=caption,
                            frame=matrix.reset_index(), sources=sources))
    notes = [
        "Each fold counts with its last epoch; ± is the sample standard deviation over folds.",
        "Paired tests: t = mean(d) / sqrt((1/k + n_test/n_train) var(d)) over the k folds both "
        "candidates trained, n_test/n_train = 1/(K-1) for K-fold CV, df = k - 1; t_naive and "
        "p_naive are the uncorrected paired t-test, shown for comparison.",
        "Selection bias: the best candidate is the one with the best mean over these same "
        "folds (and the candidates were chosen by the search on one of them), so its lead is "
        "biased upward and the tests are optimistic; a difference that is not significant "
        "here is no evidence of a difference, and a significant one needs confirmation on "
        "data no decision has seen (a held-out test set).",
        *([f"Fold {tuned} is the search fold: the search ranked the configurations by their "
           "validation score on it, so scores there flatter the candidates; the column "
           f"'without search fold {tuned}' leaves it out."] if tuned is not None else []),
    ]
    n_folds = study.record.get("plan", {}).get("n_folds")
    short = summary[summary["n_folds"] < (n_folds or summary["n_folds"].max())]
    if len(short):
        notes.append("Fewer folds than planned for: " + ", ".join(
            f"{c} ({n})" for c, n in zip(short["candidate"], short["n_folds"], strict=True)) + ".")
    partial = folds[folds[STOP_REASON] != COMPLETED]
    if len(partial):
        notes.append(f"{len(partial)} fold trial(s) did not complete the full budget "
                     f"({', '.join(sorted(set(partial['stop_reason'])))}); their last epoch "
                     "is used.")
    return Section(title=title, figures=figures, tables=tables, notes=notes)


