"""Cross-validation tables on a synthetic cv.parquet whose numbers are computed by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from data_io.datasets import load_dataset
from reports.cv_tables import (
    corrected_resampled_t,
    cv_section,
    cv_summary,
    fold_scores,
    holm_adjust,
    paired_tests,
    presentation_table,
    row_normalised,
    score_columns,
    summed_confusion,
)
from reports.study_data import ReportError, StudyData

METRIC = "val/f1_cinc"
# f1_cinc per fold (last epoch) of three candidates over 4 folds
CINC = {
    "aaa": [0.80, 0.82, 0.78, 0.84],  # mean 0.81, sd sqrt(0.002/3)
    "bbb": [0.70, 0.70, 0.70, 0.74],  # mean 0.71, sd 0.02
    "ccc": [0.85, 0.83, 0.87, 0.81],  # mean 0.84 (the best)
}
DEPTH = {"aaa": 7, "bbb": 17, "ccc": 4}


def confusion(candidate: str, fold: int) -> list[list[int]]:
    """A distinct 4 x 4 matrix per (candidate, fold)."""
    offset = ord(candidate[0]) - ord("a")
    return (np.arange(16).reshape(4, 4) + 10 * fold + offset).tolist()


def cv_rows(scores: dict[str, list[float]], *, with_stale_epoch: bool = True) -> list[dict]:
    rows = []
    for candidate, values in scores.items():
        for fold, score in enumerate(values):
            base = {"trial_id": f"{candidate}-fold{fold}", "config/candidate": candidate,
                    "config/model/depth": DEPTH.get(candidate, 7),
                    "config/model/name": "convlstm", "fold": fold,
                    "stop_reason": "completed",
                    # Ray's flattened copy of the CV grid config, as in real cv.parquet files
                    "config/candidate/trial_id": candidate,
                    "config/candidate/config/model/depth": DEPTH.get(candidate, 7),
                    "config/fold": fold}
            if with_stale_epoch:  # an earlier epoch that must not count
                rows.append({**base, "epoch": 1, METRIC: 0.0, "val/f1_af": 0.0,
                             "val/f1_normal": 0.0, "val/f1_other": 0.0, "val/f1_noisy": 0.0,
                             "val/confusion_json": json.dumps([[1000] * 4] * 4)})
            rows.append({**base, "epoch": 2, METRIC: score, "val/f1_af": score - 0.1,
                         "val/f1_normal": score + 0.1, "val/f1_other": score,
                         "val/f1_noisy": 0.5 + fold / 10,
                         "val/confusion_json": json.dumps(confusion(candidate, fold))})
    return rows


def make_study(cv: pd.DataFrame | None, *, n_folds: int = 4, mode: str = "max") -> StudyData:
    record = {"plan": {"name": "cvs", "metric": METRIC, "mode": mode, "max_epochs": 2,
                       "n_folds": n_folds},
              "asha_milestones": [1, 2], "space": {"parameters": {}},
              "dataset": load_dataset("cinc2017").describe()}
    trials = pd.DataFrame({"trial_id": ["x"], "epoch": [1], METRIC: [0.5]})
    return StudyData(directory=Path("/nonexistent/cvs"), name="cvs", record=record,
                     trials=trials, cv=cv)


@pytest.fixture
def study() -> StudyData:
    rows = cv_rows(CINC)
    # shuffle, so nothing relies on the file's row order
    return make_study(pd.DataFrame(rows).sample(frac=1.0, random_state=0))


def test_fold_scores_take_the_last_epoch(study):
    folds = fold_scores(study)
    assert len(folds) == 12
    assert set(folds["epoch"]) == {2}
    assert folds.loc[folds["candidate"] == "aaa", METRIC].tolist() == CINC["aaa"]


def test_summary_means_and_stds_match_hand_computation(study):
    summary = cv_summary(study).set_index("candidate")
    assert summary.index.tolist() == ["ccc", "aaa", "bbb"]  # best mean first
    assert summary["rank"].tolist() == [1, 2, 3]
    assert summary.loc["aaa", "f1_cinc_mean"] == pytest.approx(0.81)
    assert summary.loc["aaa", "f1_cinc_std"] == pytest.approx(math.sqrt(0.002 / 3))
    assert summary.loc["bbb", "f1_cinc_std"] == pytest.approx(0.02)
    assert summary.loc["aaa", "f1_af_mean"] == pytest.approx(0.71)
    assert summary.loc["aaa", "f1_normal_mean"] == pytest.approx(0.91)
    assert summary.loc["aaa", "f1_noisy_mean"] == pytest.approx(0.65)  # mean of .5 .6 .7 .8
    assert summary["n_folds"].tolist() == [4, 4, 4]
    # the config column that varies is kept; constant ones and the candidate id are not
    assert "config/model/depth" in summary and "config/model/name" not in summary
    assert [c for c in summary if c.startswith("config/")] == ["config/model/depth"]
    assert summary.loc["bbb", "config/model/depth"] == 17


def test_presentation_table_has_mean_pm_std_strings_in_thesis_order(study):
    table = presentation_table(cv_summary(study), columns=score_columns(study))
    assert table.columns.tolist() == ["Rank", "Candidate", "CNN depth", "F1 A", "F1 N",
                                      "F1 O", "F1 ~", "CinC F1", "Folds"]
    aaa = table[table["Candidate"] == "aaa"].iloc[0]
    assert aaa["CinC F1"] == "0.810 ± 0.026"
    assert table[table["Candidate"] == "bbb"].iloc[0]["CinC F1"] == "0.710 ± 0.020"


def test_mode_min_orders_lowest_first():
    summary = cv_summary(make_study(pd.DataFrame(cv_rows(CINC)), mode="min"))
    assert summary["candidate"].tolist() == ["bbb", "aaa", "ccc"]


def test_summed_confusion_equals_hand_sums(study):
    matrices = summed_confusion(study)
    assert list(matrices) == ["ccc", "aaa", "bbb"]
    aaa = matrices["aaa"]
    # sum over folds 0..3 of arange(16) + 10 * fold
    expected = 4 * np.arange(16).reshape(4, 4) + 10 * (0 + 1 + 2 + 3)
    np.testing.assert_array_equal(aaa.to_numpy(), expected)
    assert aaa.index.tolist() == ["N", "A", "O", "~"] and aaa.index.name == "true"
    assert aaa.columns.tolist() == ["N", "A", "O", "~"] and aaa.columns.name == "predicted"
    np.testing.assert_array_equal(matrices["ccc"].to_numpy(), expected + 4 * 2)


def test_row_normalised_rows_sum_to_one_and_empty_rows_stay_zero():
    matrix = pd.DataFrame([[3, 1], [0, 0]], index=["N", "A"], columns=["N", "A"])
    shares = row_normalised(matrix)
    assert shares.to_numpy().tolist() == [[0.75, 0.25], [0.0, 0.0]]


def test_corrected_t_matches_hand_computation_and_differs_from_naive():
    d = np.array([0.01, 0.03, -0.01, 0.02, 0.00])
    # mean 0.01, sample variance 0.001 / 4 = 2.5e-4, k = 5, n_test/n_train = 1/4:
    # t = 0.01 / sqrt((1/5 + 1/4) * 2.5e-4) = sqrt(8/9); naive t = 0.01 / sqrt(2.5e-4 / 5) = sqrt(2)
    corrected = corrected_resampled_t(d, test_train_ratio=0.25)
    naive = corrected_resampled_t(d, test_train_ratio=0.0)
    assert corrected["t"] == pytest.approx(math.sqrt(8 / 9))
    assert corrected["df"] == 4
    assert corrected["p_value"] == pytest.approx(2 * stats.t.sf(math.sqrt(8 / 9), 4))
    assert corrected["p_value"] == pytest.approx(0.3992, abs=1e-3)
    assert naive["t"] == pytest.approx(math.sqrt(2))
    assert naive["t"] == pytest.approx(stats.ttest_1samp(d, 0.0).statistic)
    assert naive["p_value"] < corrected["p_value"]


def test_paired_tests_against_the_best(study):
    tests = paired_tests(study).set_index("candidate")
    assert tests.index.tolist() == ["aaa", "bbb"]  # the best (ccc) is not tested against itself
    assert set(tests["best"]) == {"ccc"}
    d = np.array(CINC["aaa"]) - np.array(CINC["ccc"])  # [-.05, -.01, -.09, .03]
    ratio = 1 / (4 - 1)
    t = d.mean() / math.sqrt((1 / 4 + ratio) * d.var(ddof=1))
    assert tests.loc["aaa", "mean_difference"] == pytest.approx(-0.03)
    assert tests.loc["aaa", "t"] == pytest.approx(t)
    assert tests.loc["aaa", "p_value"] == pytest.approx(2 * stats.t.sf(abs(t), 3))
    assert tests.loc["aaa", "t_naive"] == pytest.approx(stats.ttest_rel(
        CINC["aaa"], CINC["ccc"]).statistic)
    assert tests.loc["aaa", "t"] != pytest.approx(tests.loc["aaa", "t_naive"])
    assert bool(tests.loc["bbb", "significant"]) == bool(tests.loc["bbb", "p_value"] < 0.05)
    assert bool(tests.loc["bbb", "significant"])  # 0.13 below the best, tight folds
    assert not bool(tests.loc["aaa", "significant"])
    holm = holm_adjust(tests["p_value"].to_numpy())
    np.testing.assert_allclose(tests["p_holm"], holm)


def test_paired_tests_pair_folds_and_skip_missing_ones():
    rows = [r for r in cv_rows(CINC) if r["trial_id"] != "aaa-fold3"]
    tests = paired_tests(make_study(pd.DataFrame(rows))).set_index("candidate")
    assert tests.loc["aaa", "n_folds"] == 3
    d = np.array(CINC["aaa"][:3]) - np.array(CINC["ccc"][:3])
    # the ratio still comes from the 4-fold partition: n_test / n_train = 1 / 3
    t = d.mean() / math.sqrt((1 / 3 + 1 / 3) * d.var(ddof=1))
    assert tests.loc["aaa", "t"] == pytest.approx(t)


def test_holm_adjustment_by_hand():
    adjusted = holm_adjust([0.01, 0.04, 0.03, np.nan])
    np.testing.assert_allclose(adjusted[:3], [0.03, 0.06, 0.06])
    assert np.isnan(adjusted[3])


def test_missing_cv_parquet_gives_the_note():
    study = make_study(None)
    section = cv_section(study)
    assert not section.figures and not section.tables
    assert "--cv-top-k" in section.notes[0] and "cv.parquet" in section.notes[0]
    with pytest.raises(ReportError, match="--cv-top-k"):
        cv_summary(study)


def test_section_has_tables_and_one_confusion_figure_per_candidate(study):
    section = cv_section(study)
    names = [t.name for t in section.tables]
    assert names[:3] == ["cv_summary", "cv_summary_data", "cv_paired_tests"]
    assert [f.name for f in section.figures] == [
        "cv_confusion_1_ccc", "cv_confusion_2_aaa", "cv_confusion_3_bbb"]
    heatmap = section.figures[1].figure.data[0]
    counts = summed_confusion(study)["aaa"].to_numpy()
    np.testing.assert_allclose(np.asarray(heatmap.z).sum(axis=1), 1.0)
    assert heatmap.text[0][0].startswith(f"{counts[0, 0]}<br>")
    assert set(section.figures[0].sources.trials) == {f"ccc-fold{k}" for k in range(4)}


def test_the_search_fold_is_marked_and_left_out_of_its_own_column():
    study = make_study(pd.DataFrame(cv_rows(CINC)))
    study.record["plan"]["fold"] = 1
    section = cv_section(study)
    tables = {t.name: t for t in section.tables}
    summary = tables["cv_summary"].frame.set_index("Candidate")
    kept = np.array(CINC["aaa"])[[0, 2, 3]]
    assert summary.loc["aaa", "CinC F1 without search fold 1"] == (
        f"{kept.mean():.3f} ± {kept.std(ddof=1):.3f}")
    assert summary.loc["aaa", "CinC F1"] == "0.810 ± 0.026"  # all folds, as before
    assert "fold 1 is the search fold" in tables["cv_summary"].title
    folds = tables["cv_fold_scores"].frame
    marked = folds[folds["Role"] != ""]
    assert set(marked["Fold"]) == {1} and len(marked) == 3  # one row per candidate
    assert folds["Candidate"].drop_duplicates().tolist() == ["ccc", "aaa", "bbb"]


def test_paired_tests_say_the_best_was_selected_on_the_same_folds(study):
    section = cv_section(study)
    tests = next(t for t in section.tables if t.name == "cv_paired_tests")
    assert "selected on these same folds" in tests.title
    assert any(n.startswith("Selection bias:") for n in section.notes)
