"""Classification metrics from labels and class probabilities, as a data set defines them.

A `Scoring` is built from a data set's facts (`data_io.datasets`): the study metric (mean F1
over listed classes, e.g. the CinC 2017 score over N, A and O or macro F1 over the AAMI
classes; or the AUROC of a positive class), the per-class metrics it reports (F1,
sensitivity, positive predictivity), where a published table needs them their
class-frequency-weighted means, and, for a two-class task, sensitivity and specificity with
respect to its positive class. Every metric is computed from plain numpy arrays so saved
predictions can be re-scored anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from sklearn import metrics as skm


@dataclass(frozen=True)
class Scoring:
    """What to compute for one data set.

    Attributes:
        classes: labels in class-index order.
        keys: metric spelling of each class (``val/f1_<key>``).
        metric: the study metric's name (``val/<metric>``).
        kind: ``mean_f1`` or ``auroc`` (see `STUDY_METRICS`).
        averaged: classes whose mean F1 is the metric (``mean_f1``).
        positive: the positive class (``auroc``, and sensitivity/specificity when
            ``binary`` is set).
        per_class: per-class metrics reported: ``f1``, ``sensitivity``, ``ppv``.
        binary: report sensitivity and specificity with respect to ``positive``.
        mode: ``max`` or ``min``.
        extra: further mean-F1 metrics reported beside the study metric, as (name, classes)
            pairs (a data set's ``extra_metrics``, e.g. CinC 2017's macro F1 over all four
            classes, the score ECG-DualNet publishes).
        weighted: report F1, sensitivity (recall) and positive predictivity (precision)
            averaged over the classes weighted by their number of items (`weighted_means`).
    """

    classes: tuple[str, ...]
    keys: tuple[str, ...]
    metric: str
    kind: str
    averaged: tuple[str, ...] = ()
    positive: str | None = None
    per_class: tuple[str, ...] = ("f1",)
    binary: bool = False
    mode: str = "max"
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()
    weighted: bool = False

    @classmethod
    def from_dataset(cls, dataset) -> Scoring:
        """The scoring of a `data_io.datasets.Dataset`."""
        metric = dataset.metric
        binary = dataset.facts.get("binary_metrics")
        return cls(
            classes=dataset.labels,
            keys=tuple(c.key for c in dataset.classes),
            metric=metric.name,
            kind=metric.kind,
            averaged=metric.classes,
            positive=(binary or {}).get("positive", metric.positive),
            per_class=dataset.per_class_metrics,
            binary=binary is not None,
            mode=metric.mode,
            extra=tuple((m["name"], tuple(m["classes"]))
                        for m in dataset.facts.get("extra_metrics", ())),
            weighted=bool(dataset.facts.get("weighted_metrics", False)),
        )

    @property
    def key(self) -> str:
        """The study metric as reported, ``val/<metric>``."""
        return f"val/{self.metric}"


def confusion_matrix(*, y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts with true classes as rows and predicted classes as columns, (n_classes, n_classes)
    (scikit-learn's, every class listed even when absent)."""
    return skm.confusion_matrix(np.asarray(y_true), np.asarray(y_pred),
                                    labels=np.arange(n_classes)).astype(np.int64)


def f1_per_class(*, y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """F1 = 2 TP / (row total + column total) per class (scikit-learn's), 0 where the class
    occurs neither in the truth nor in the predictions."""
    return skm.f1_score(y_true, y_pred, labels=np.arange(n_classes), average=None,
                            zero_division=0.0)


def auroc_one_vs_rest(*, y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for the positives in boolean ``y_true``
    (scikit-learn's, ties counted half); NaN where scikit-learn raises: a class absent or
    always present, or scores that are not all finite (an epoch that diverged)."""
    y_true, scores = np.asarray(y_true, dtype=bool), np.asarray(scores)
    if y_true.all() or not y_true.any() or not np.isfinite(scores).all():
        return float("nan")
    return float(skm.roc_auc_score(y_true, scores))


def mean_f1(*, f1: dict[str, float], matrix: np.ndarray, scoring: Scoring) -> float:
    """Mean F1 over ``scoring.averaged``, leaving out classes absent from both the truth and
    the predictions (their F1 is undefined; counting them as 0 would punish a validation fold
    that happens to lack a rare class)."""
    present = matrix.sum(axis=0) + matrix.sum(axis=1) > 0
    index = {c: k for k, c in enumerate(scoring.classes)}
    values = [f1[c] for c in scoring.averaged if present[index[c]]]
    return float(np.mean(values)) if values else 0.0


def positive_auroc(*, y_true: np.ndarray, probabilities: np.ndarray, scoring: Scoring) -> float:
    """AUROC of the positive class's probability against every other class."""
    k = scoring.classes.index(scoring.positive)
    return auroc_one_vs_rest(y_true=y_true == k, scores=probabilities[:, k])


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = numerator.astype(np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def weighted_means(*, y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, float]:
    """F1, sensitivity (recall) and positive predictivity (precision) averaged over the
    classes, each weighted by its number of true items: scikit-learn's ``average="weighted"``
    with ``zero_division=0``, as the HADLN reproduction reports them (a class never predicted
    counts precision 0, a class without items weighs nothing).

    Returns:
        ``f1_weighted``, ``sensitivity_weighted`` and ``ppv_weighted``; 0.0 with no items.
    """
    if len(y_true) == 0:
        return {"f1_weighted": 0.0, "sensitivity_weighted": 0.0, "ppv_weighted": 0.0}
    ppv, sensitivity, f1, _ = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=np.arange(n_classes), average="weighted", zero_division=0.0)
    return {"f1_weighted": float(f1), "sensitivity_weighted": float(sensitivity),
            "ppv_weighted": float(ppv)}


def classification_metrics(
    *,
    y_true: np.ndarray,
    probabilities: np.ndarray,
    scoring: Scoring,
    split: str = "val",
) -> dict:
    """Every metric the studies log, keyed `<split>/<name>`.

    Always: the study metric, the data set's extra mean-F1 metrics, ``accuracy``,
    ``auroc_macro``, ``confusion`` and ``f1_<key>`` per class; with ``sensitivity``/``ppv``
    in ``scoring.per_class`` also ``sensitivity_<key>``, ``ppv_<key>`` and their macro means
    over the classes present (as AAMI EC57 reports Se and +P); with ``scoring.weighted`` also
    ``f1_weighted``, ``sensitivity_weighted`` and ``ppv_weighted`` (`weighted_means`); with
    ``scoring.binary`` also ``sensitivity`` and ``specificity`` with respect to the positive
    class.

    Args:
        y_true: true class indices, shape (n,).
        probabilities: class probabilities, shape (n, n_classes).
        scoring: what to compute (`Scoring.from_dataset`).
        split: prefix of every key.
    """
    y_true = np.asarray(y_true)
    probabilities = np.asarray(probabilities)
    y_pred = probabilities.argmax(axis=1)
    n_classes = len(scoring.classes)
    matrix = confusion_matrix(y_true=y_true, y_pred=y_pred, n_classes=n_classes)
    f1 = dict(zip(scoring.classes,
                  f1_per_class(y_true=y_true, y_pred=y_pred, n_classes=n_classes), strict=True))
    aurocs = [
        auroc_one_vs_rest(y_true=y_true == k, scores=probabilities[:, k]) for k in range(n_classes)
    ]
    finite = [a for a in aurocs if np.isfinite(a)]
    metrics = {
        f"{split}/{scoring.metric}": STUDY_METRICS[scoring.kind](
            y_true=y_true, probabilities=probabilities, matrix=matrix, f1=f1, scoring=scoring),
        f"{split}/accuracy": float(np.trace(matrix) / max(matrix.sum(), 1)),
        f"{split}/auroc_macro": float(np.mean(finite)) if finite else float("nan"),
        f"{split}/confusion": matrix.tolist(),
    }
    for name, classes in scoring.extra:
        metrics[f"{split}/{name}"] = mean_f1(f1=f1, matrix=matrix,
                                             scoring=replace(scoring, averaged=classes))
    # A class with no items has no sensitivity, one never predicted no +P, and one with
    # neither no F1: NaN, not 0, so a fold without Q beats does not report "Se 0 for Q".
    tp, items, predicted = np.diag(matrix), matrix.sum(axis=1), matrix.sum(axis=0)
    for k, (name, key) in enumerate(zip(scoring.classes, scoring.keys, strict=True)):
        defined = items[k] > 0 or predicted[k] > 0
        metrics[f"{split}/f1_{key}"] = float(f1[name]) if defined else float("nan")
    rates = {"sensitivity": np.where(items > 0, _ratio(tp, items), np.nan),
             "ppv": np.where(predicted > 0, _ratio(tp, predicted), np.nan)}
    for name, values in rates.items():
        if name not in scoring.per_class:
            continue
        for key, value in zip(scoring.keys, values, strict=True):
            metrics[f"{split}/{name}_{key}"] = float(value)
        present = np.isfinite(values)
        metrics[f"{split}/{name}_macro"] = float(values[present].mean()) if present.any() else 0.0
    if scoring.weighted:
        weighted = weighted_means(y_true=y_true, y_pred=y_pred, n_classes=n_classes)
        metrics.update({f"{split}/{name}": value for name, value in weighted.items()})
    if scoring.binary:
        k = scoring.classes.index(scoring.positive)
        positive, predicted = y_true == k, y_pred == k
        metrics[f"{split}/sensitivity"] = float(_ratio(np.array([(positive & predicted).sum()]),
                                                       np.array([positive.sum()]))[0])
        metrics[f"{split}/specificity"] = float(_ratio(np.array([(~positive & ~predicted).sum()]),
                                                       np.array([(~positive).sum()]))[0])
    return metrics


STUDY_METRICS = {
    "mean_f1": lambda *, f1, matrix, scoring, **_: mean_f1(f1=f1, matrix=matrix, scoring=scoring),
    "auroc": lambda *, y_true, probabilities, scoring, **_: positive_auroc(
        y_true=y_true, probabilities=probabilities, scoring=scoring),
}
"""Metric kind (``metric.kind`` of a data set) -> how the study metric is computed."""
