"""Classification metrics of the CinC 2017 challenge, from labels and class probabilities.

The challenge score is the mean F1 of N, A and O (noisy is reported but not scored). Every
metric is computed from plain numpy arrays so saved predictions can be re-scored anywhere.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

CLASS_KEYS: dict[str, str] = {"N": "normal", "A": "af", "O": "other", "~": "noisy"}
"""Metric-name spelling of each CinC class (`val/f1_af`, ...)."""


def confusion_matrix(*, y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts with true classes as rows and predicted classes as columns, (n_classes, n_classes)."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def f1_per_class(matrix: np.ndarray) -> np.ndarray:
    """F1 = 2 TP / (row total + column total) per class; 0 where the class never occurs."""
    tp = np.diag(matrix).astype(np.float64)
    denom = matrix.sum(axis=0) + matrix.sum(axis=1)
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def auroc_one_vs_rest(*, y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for the positives in boolean ``y_true``
    (Mann-Whitney form, ties counted half); NaN when a class is absent or always present."""
    y_true = np.asarray(y_true, dtype=bool)
    n_pos, n_neg = int(y_true.sum()), int((~y_true).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[y_true].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def classification_metrics(
    *,
    y_true: np.ndarray,
    probabilities: np.ndarray,
    classes: tuple[str, ...],
    scored_classes: tuple[str, ...],
    split: str = "val",
) -> dict:
    """Every metric the studies log, keyed `<split>/<name>`.

    Args:
        y_true: true class indices, shape (n,).
        probabilities: class probabilities, shape (n, n_classes).
        classes: class names in index order, e.g. ("N", "A", "O", "~").
        scored_classes: classes whose mean F1 is the score (`<split>/f1_cinc`).
        split: prefix of every key.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(probabilities).argmax(axis=1)
    matrix = confusion_matrix(y_true=y_true, y_pred=y_pred, n_classes=len(classes))
    f1 = f1_per_class(matrix)
    by_name = dict(zip(classes, f1, strict=True))
    aurocs = [
        auroc_one_vs_rest(y_true=y_true == k, scores=probabilities[:, k])
        for k in range(len(classes))
    ]
    finite = [a for a in aurocs if np.isfinite(a)]
    metrics = {
        f"{split}/f1_cinc": float(np.mean([by_name[c] for c in scored_classes])),
        f"{split}/accuracy": float(np.trace(matrix) / max(matrix.sum(), 1)),
        f"{split}/auroc_macro": float(np.mean(finite)) if finite else float("nan"),
        f"{split}/confusion": matrix.tolist(),
    }
    for name, value in by_name.items():
        metrics[f"{split}/f1_{CLASS_KEYS.get(name, name.lower())}"] = float(value)
    return metrics
