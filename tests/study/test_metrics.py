"""CinC 2017 metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from study.metrics import auroc_one_vs_rest, classification_metrics, confusion_matrix, f1_per_class

CLASSES = ("N", "A", "O", "~")


def test_confusion_matrix_rows_are_truth_columns_predictions():
    matrix = confusion_matrix(y_true=np.array([0, 0, 1, 2]), y_pred=np.array([0, 1, 1, 0]),
                              n_classes=3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_f1_and_cinc_score_by_hand():
    # N: TP 2, FP 1, FN 1 -> 4/6; A: TP 1, FP 1, FN 0 -> 2/3; O: TP 0 -> 0; ~: TP 1 -> 1.
    y_true = np.array([0, 0, 0, 1, 2, 3])
    y_pred = np.array([0, 0, 1, 1, 0, 3])
    probabilities = np.eye(4)[y_pred]
    metrics = classification_metrics(y_true=y_true, probabilities=probabilities, classes=CLASSES,
                                     scored_classes=("N", "A", "O"))
    assert metrics["val/f1_normal"] == pytest.approx(2 / 3)
    assert metrics["val/f1_af"] == pytest.approx(2 / 3)
    assert metrics["val/f1_other"] == 0.0
    assert metrics["val/f1_noisy"] == 1.0
    assert metrics["val/f1_cinc"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    assert metrics["val/accuracy"] == pytest.approx(4 / 6)
    assert np.array(metrics["val/confusion"]).sum() == 6


def test_f1_of_an_absent_class_is_zero_not_nan():
    assert f1_per_class(np.zeros((2, 2), dtype=int)).tolist() == [0.0, 0.0]


def test_auroc_matches_pairwise_counting_with_ties():
    y = np.array([True, True, False, False, False])
    s = np.array([0.9, 0.4, 0.4, 0.1, 0.3])
    # Pairs (pos, neg): 0.9 beats all 3; 0.4 beats 0.1 and 0.3, ties 0.4 -> 2.5. Total 5.5/6.
    assert auroc_one_vs_rest(y_true=y, scores=s) == pytest.approx(5.5 / 6)
    assert np.isnan(auroc_one_vs_rest(y_true=np.ones(3, bool), scores=np.arange(3.0)))
