"""CinC 2017 metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import rankdata

from data_io.datasets import load_dataset
from study.engine.metrics import (
    Scoring,
    auroc_one_vs_rest,
    classification_metrics,
    confusion_matrix,
    f1_per_class,
    weighted_means,
)

CINC = Scoring.from_dataset(load_dataset("cinc2017"))
BEATS = Scoring.from_dataset(load_dataset("mitdb-beats"))
SEGMENTS = Scoring.from_dataset(load_dataset("mitdb-pvc-apb"))


def test_confusion_matrix_rows_are_truth_columns_predictions():
    matrix = confusion_matrix(y_true=np.array([0, 0, 1, 2]), y_pred=np.array([0, 1, 1, 0]),
                              n_classes=3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_f1_and_cinc_score_by_hand():
    # N: TP 2, FP 1, FN 1 -> 4/6; A: TP 1, FP 1, FN 0 -> 2/3; O: TP 0 -> 0; ~: TP 1 -> 1.
    y_true = np.array([0, 0, 0, 1, 2, 3])
    y_pred = np.array([0, 0, 1, 1, 0, 3])
    probabilities = np.eye(4)[y_pred]
    metrics = classification_metrics(y_true=y_true, probabilities=probabilities, scoring=CINC)
    assert metrics["val/f1_normal"] == pytest.approx(2 / 3)
    assert metrics["val/f1_af"] == pytest.approx(2 / 3)
    assert metrics["val/f1_other"] == 0.0
    assert metrics["val/f1_noisy"] == 1.0
    assert metrics["val/f1_cinc"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    assert metrics["val/accuracy"] == pytest.approx(4 / 6)
    assert np.array(metrics["val/confusion"]).sum() == 6


def test_f1_of_an_absent_class_is_zero_not_nan():
    found = f1_per_class(y_true=np.array([0, 0]), y_pred=np.array([0, 0]), n_classes=3)
    assert found.tolist() == [1.0, 0.0, 0.0]


def test_the_library_metrics_equal_their_formulas_on_fixed_inputs():
    # scikit-learn computes them now; these are the formulas the project used before.
    rng = np.random.default_rng(7)
    y_true, y_pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    y_true[y_true == 3] = 2  # class 3 never true: F1 from predictions only, weight 0
    matrix = np.zeros((4, 4), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    assert confusion_matrix(y_true=y_true, y_pred=y_pred, n_classes=4).tolist() == matrix.tolist()
    tp, rows, cols = np.diag(matrix).astype(float), matrix.sum(1), matrix.sum(0)
    f1 = np.divide(2 * tp, rows + cols, out=np.zeros(4), where=rows + cols > 0)
    np.testing.assert_allclose(f1_per_class(y_true=y_true, y_pred=y_pred, n_classes=4), f1)
    recall = np.divide(tp, rows, out=np.zeros(4), where=rows > 0)
    precision = np.divide(tp, cols, out=np.zeros(4), where=cols > 0)
    expected = {"f1_weighted": (f1 * rows).sum() / rows.sum(),
                "sensitivity_weighted": (recall * rows).sum() / rows.sum(),
                "ppv_weighted": (precision * rows).sum() / rows.sum()}
    found = weighted_means(y_true=y_true, y_pred=y_pred, n_classes=4)
    assert found == pytest.approx(expected, rel=1e-12)
    scores = rng.normal(size=200).round(1)  # ties
    positive = y_true == 1
    ranks = rankdata(scores)
    mann_whitney = ((ranks[positive].sum() - positive.sum() * (positive.sum() + 1) / 2)
                    / (positive.sum() * (~positive).sum()))
    assert auroc_one_vs_rest(y_true=positive, scores=scores) == pytest.approx(mann_whitney)


def test_auroc_matches_pairwise_counting_with_ties():
    y = np.array([True, True, False, False, False])
    s = np.array([0.9, 0.4, 0.4, 0.1, 0.3])
    # Pairs (pos, neg): 0.9 beats all 3; 0.4 beats 0.1 and 0.3, ties 0.4 -> 2.5. Total 5.5/6.
    assert auroc_one_vs_rest(y_true=y, scores=s) == pytest.approx(5.5 / 6)
    assert np.isnan(auroc_one_vs_rest(y_true=np.ones(3, bool), scores=np.arange(3.0)))
    assert np.isnan(auroc_one_vs_rest(y_true=y, scores=np.array([0.9, np.nan, 0.4, 0.1, 0.3])))


def test_cinc_scoring_reports_no_aami_or_binary_metrics():
    probabilities = np.eye(4)[[0, 1, 2, 3]]
    metrics = classification_metrics(y_true=np.arange(4), probabilities=probabilities,
                                     scoring=CINC)
    assert not [k for k in metrics if "sensitivity" in k or "ppv" in k or "specificity" in k]
    assert "val/f1_macro" not in metrics


def test_macro_f1_skips_classes_absent_from_truth_and_predictions():
    # N: TP 2, FN 1 -> F1 0.8; V: TP 1, FP 1 -> 2/3; S, F, Q never occur: left out.
    y_true = np.array([0, 0, 0, 2])
    y_pred = np.array([0, 0, 2, 2])
    metrics = classification_metrics(y_true=y_true, probabilities=np.eye(5)[y_pred],
                                     scoring=BEATS)
    assert metrics["val/f1_macro"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert np.isnan(metrics["val/f1_s"])
    assert np.isnan(metrics["val/sensitivity_s"]) and np.isnan(metrics["val/ppv_s"])


def test_a_class_with_items_never_predicted_has_f1_and_se_zero_and_no_ppv():
    y_true = np.array([0, 0, 1, 2])
    y_pred = np.array([0, 0, 0, 2])
    metrics = classification_metrics(y_true=y_true, probabilities=np.eye(5)[y_pred],
                                     scoring=BEATS)
    assert metrics["val/f1_s"] == 0.0 and metrics["val/sensitivity_s"] == 0.0
    assert np.isnan(metrics["val/ppv_s"])
    assert metrics["val/ppv_macro"] == pytest.approx((2 / 3 + 1) / 2)


def test_aami_sensitivity_and_positive_predictivity_by_hand():
    # N: 3 true, 2 found; V: 1 true, found, plus one N called V -> +P(V) 1/2.
    y_true = np.array([0, 0, 0, 2])
    y_pred = np.array([0, 0, 2, 2])
    metrics = classification_metrics(y_true=y_true, probabilities=np.eye(5)[y_pred],
                                     scoring=BEATS)
    assert metrics["val/sensitivity_n"] == pytest.approx(2 / 3)
    assert metrics["val/ppv_n"] == 1.0
    assert metrics["val/sensitivity_v"] == 1.0
    assert metrics["val/ppv_v"] == pytest.approx(0.5)
    assert metrics["val/sensitivity_macro"] == pytest.approx((2 / 3 + 1) / 2)
    assert metrics["val/accuracy"] == pytest.approx(3 / 4)


def test_pvc_apb_metrics_are_with_respect_to_pvc():
    # classes (PVC, APB); 3 PVC of which 2 found, 2 APB of which 1 called PVC.
    y_true = np.array([0, 0, 0, 1, 1])
    p_pvc = np.array([0.9, 0.8, 0.3, 0.7, 0.1])
    probabilities = np.stack([p_pvc, 1 - p_pvc], axis=1)
    metrics = classification_metrics(y_true=y_true, probabilities=probabilities,
                                     scoring=SEGMENTS)
    assert metrics["val/sensitivity"] == pytest.approx(2 / 3)
    assert metrics["val/specificity"] == pytest.approx(1 / 2)
    # PVC scores 0.9, 0.8, 0.3 against APB 0.7, 0.1: pairs won 2 + 2 + 1 = 5 of 6.
    assert metrics["val/auroc"] == pytest.approx(5 / 6)


def test_cinc_reports_the_four_class_macro_f1_beside_the_cinc_f1():
    scoring = Scoring.from_dataset(load_dataset("cinc2017"))
    y_true = np.array([0, 0, 1, 2, 3, 3])  # N N A O ~ ~
    predicted = np.array([0, 1, 1, 2, 3, 0])
    probabilities = np.eye(4)[predicted]
    metrics = classification_metrics(y_true=y_true, probabilities=probabilities,
                                      scoring=scoring)
    f1 = [metrics[f"val/f1_{key}"] for key in ("normal", "af", "other", "noisy")]
    assert metrics["val/f1_cinc"] == pytest.approx(np.mean(f1[:3]))
    assert metrics["val/f1_macro4"] == pytest.approx(np.mean(f1))
    assert metrics["val/f1_macro4"] != metrics["val/f1_cinc"]


def test_weighted_f1_precision_recall_weigh_classes_by_their_items_as_published():
    # the HADLN reproduction reports scikit-learn's average="weighted" (zero_division=0):
    # sum over classes of (items of the class) x metric / items, by hand:
    y_true = np.array([0, 0, 0, 0, 1, 1, 2])  # N x4, S x2, V x1; F and Q absent (weight 0)
    y_pred = np.array([0, 0, 0, 1, 1, 0, 0])  # one N -> S, one S -> N, the V -> N
    metrics = classification_metrics(y_true=y_true, probabilities=np.eye(5)[y_pred],
                                     scoring=BEATS)
    p_n, r_n = 3 / 5, 3 / 4  # N predicted for items 0, 1, 2, 5, 6: TP 3 of 5, 4 items
    f1_n = 2 * p_n * r_n / (p_n + r_n)
    p_s, r_s = 1 / 2, 1 / 2  # S predicted for items 3, 4: TP 1 of 2, 2 items
    f1_s = 0.5  # V never predicted: precision 0 (zero_division=0), recall 0, F1 0
    assert metrics["val/ppv_weighted"] == pytest.approx((4 * p_n + 2 * p_s + 0) / 7)
    assert metrics["val/sensitivity_weighted"] == pytest.approx((4 * r_n + 2 * r_s + 0) / 7)
    assert metrics["val/f1_weighted"] == pytest.approx((4 * f1_n + 2 * f1_s + 0) / 7)
    # macro F1 (our study metric) stays what it was: the mean over classes present
    assert metrics["val/f1_macro"] == pytest.approx((f1_n + f1_s + 0) / 3)
    assert "val/f1_weighted" not in classification_metrics(
        y_true=np.array([0, 1]), probabilities=np.eye(4)[[0, 1]], scoring=CINC)
