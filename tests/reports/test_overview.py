"""The report's opening: summary, leaderboard, learning curves, optimisation history and the
best configuration, on small studies whose answers are known (diverged and failed trials,
final_test.json present or not)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from opening_study import (
    METRIC,
    ORDER,
    final_test_record,
    make_study,
    write_storage,
)

from reports.best_config import best_config_section, best_scores
from reports.curves import (
    history_section,
    learning_curves,
    learning_curves_section,
    optimisation_history,
    trial_numbers,
)
from reports.importance import importance_section
from reports.overview import (
    epochs_spent,
    leaderboard,
    leaderboard_section,
    outcome_counts,
    study_summary,
    summary_section,
)
from reports.study_data import ReportError, StudyData, load_study


def test_outcomes_and_epochs_count_every_trial():
    study = make_study()
    assert outcome_counts(study) == {"completed": 2, "early_stopped": 1, "error": 1,
                                     "diverged": 1}
    assert epochs_spent(study) == (3 + 3 + 1 + 2 + 0, 5 * 3)


def test_a_study_without_recorded_wall_times_sums_its_epochs():
    """Studies written before trials.parquet held time_total_s (and stage_times.json)."""
    study = make_study()
    old = replace(study, trials=study.trials.drop(columns="time_total_s"), stage_times={})
    summary = study_summary(old).set_index("Item")["Value"]
    assert summary["Search time"] == "9 min 00 s summed over trials"  # 9 epochs of 60 s
    assert "Final training time" not in summary and "Explanation time" not in summary


def test_summary_table_says_what_ran_and_what_it_spent():
    summary = study_summary(make_study()).set_index("Item")["Value"]
    assert summary["Trials"] == "5: 2 completed, 1 stopped early, 1 failed, 1 diverged"
    assert summary["Epochs trained"] == "9 of 15 without early stopping (60%)"
    # trials' wall time, start and pre-training included: 3 x 60 + 30 twice, 90 and 150 s
    assert summary["Search time"] == "6 min 40 s wall; 11 min 00 s summed over trials"
    assert summary["Final training time"] == "2 min 00 s wall"
    assert summary["Explanation time"] == "1 min 35 s wall (in the driver)"
    assert "Cross-validation time" not in summary  # none ran
    # search and final trials: 660 + 120 s, x2 CPUs, x0.5 GPU
    assert summary["CPU-hours"] == "0.433 (2 CPU per trial, over the trial times above)"
    assert summary["GPU-hours"].startswith("0.108 ")
    assert summary["Data set"].startswith("cinc2017, 600 records at 150 Hz; search fold 0 of 4")
    assert "CNN depth" in summary["Search space"] and "model/depth" not in summary["Search space"]
    assert summary["Wall time"] == "not recorded"  # no result file on disk
    assert "Fixed in every trial" not in summary  # the study fixed nothing


def test_summary_lists_the_options_fixed_in_every_trial():
    study = make_study()
    study.record["space"] = {**study.record["space"],
                             "fixed": {"loss/focal_gamma": 0.0, "optim/batch_size": 8,
                                       "epochs": 3, "model/name": "cnn"},
                             "fixed_by_study": ["epochs", "loss/focal_gamma",
                                                "optim/batch_size"]}
    summary = study_summary(study).set_index("Item")["Value"]
    assert summary["Fixed in every trial"] == "focal loss gamma 0.0, batch size 8"


def test_leaderboard_ranks_completed_trials_and_reads_the_test_scores():
    board = leaderboard(make_study(final_test=final_test_record()))
    assert board["Trial"].tolist() == ["aaa", "bbb"]  # stopped, diverged and failed: unranked
    assert board.columns.tolist() == ["Rank", "Trial", "CNN depth", "learning rate",
                                      "CinC F1 search fold 0", "CinC F1 test"]
    assert board["CinC F1 search fold 0"].tolist() == pytest.approx([0.70, 0.55])
    assert board["CinC F1 test"].tolist() == pytest.approx([0.66, 0.52])
    assert board["learning rate"].tolist() == ["0.001", "0.003"]


def test_leaderboard_without_final_test_or_cv_says_the_search_fold_flatters():
    section = leaderboard_section(make_study())
    assert "CinC F1 test" not in section.tables[0].frame
    assert any("flatters" in n for n in section.notes)
    with_test = leaderboard_section(make_study(final_test=final_test_record()))
    assert any(n.startswith("Test: fold 3, 80 records, never seen") for n in with_test.notes)


def test_leaderboard_with_cv_shows_mean_and_sd_over_folds():
    rows = [{"trial_id": f"aaa-fold{f}", "config/candidate": "aaa", "fold": f, "epoch": 3,
             "stop_reason": "completed", METRIC: s} for f, s in enumerate([0.6, 0.7, 0.8, 0.7])]
    board = leaderboard(make_study(cv=pd.DataFrame(rows)))
    cell = board.set_index("Trial").loc["aaa", "CinC F1 CV mean ± sd"]
    assert cell == f"0.700 ± {np.std([0.6, 0.7, 0.8, 0.7], ddof=1):.3f} (4 folds)"
    assert board.set_index("Trial").loc["bbb", "CinC F1 CV mean ± sd"] == "–"


def test_summary_opens_with_the_answer():
    note = summary_section(make_study(final_test=final_test_record())).notes[0]
    assert note == ("Best configuration: trial aaa (CNN depth 7, learning rate 0.001): CinC F1 "
                    "0.700 on the search fold, 0.660 on the held-out test set.")
    nobody = make_study()
    nobody = StudyData(directory=nobody.directory, name="s", record=nobody.record,
                       trials=nobody.trials[nobody.trials["stop_reason"] != "completed"],
                       cv=None)
    assert summary_section(nobody).notes[0].startswith("No trial completed the full budget")
    assert leaderboard_section(nobody).notes[0].startswith("No leaderboard: no trial completed")


def test_learning_curves_leave_out_unmeasured_rows_and_mark_each_end():
    curves = learning_curves(make_study())
    assert set(curves["trial_id"]) == {"aaa", "bbb", "ccc", "ddd"}  # eee reported nothing
    diverged = curves[curves["trial_id"] == "ddd"]
    assert diverged["epoch"].tolist() == [1] and diverged["last"].tolist() == [True]
    assert curves.groupby("trial_id")["last"].sum().tolist() == [1, 1, 1, 1]


def test_learning_curves_figure_has_a_line_and_an_end_per_trial_and_the_milestones():
    section = learning_curves_section(make_study())
    figure = section.figures[0].figure
    assert len(figure.data) == 2 * 4
    ends = [t for t in figure.data if t.mode == "markers"]
    assert sorted(t.marker.symbol for t in ends) == ["circle", "circle", "triangle-down", "x"]
    assert [s.x0 for s in figure.layout.shapes] == [1]  # rung 0 at epoch 1, not the budget
    assert "epoch None" not in figure.to_json()


def test_optimisation_history_follows_the_sampler_order(tmp_path):
    write_storage(tmp_path)
    study = make_study(tmp_path)
    numbers = trial_numbers(study)
    assert numbers.sort_values().index.tolist() == ORDER
    history = optimisation_history(study, numbers)
    assert history["trial_id"].tolist() == [*ORDER[:4], "eee"]
    assert history["trial_number"].tolist() == [1, 2, 3, 4, 5]
    best = history["best_so_far"].tolist()
    assert best[:2] == pytest.approx([0.55, 0.70]) and best[2:] == pytest.approx([0.70] * 3)
    section = history_section(study)
    assert section.notes == ["The best full-budget score, 0.700, was found by the 2nd of 5 "
                             "trials (aaa)."]
    assert [f.name for f in section.figures] == ["optimisation-history"]


def test_optimisation_history_without_a_storage_says_why(tmp_path):
    section = history_section(make_study(tmp_path))
    assert section.figures == [] and section.notes[0].startswith("Not drawn: the order")


def test_best_configuration_uses_the_test_set_when_there_is_one():
    found = best_scores(make_study(final_test=final_test_record()))
    assert found.trial_id == "aaa" and found.where.startswith("held-out test set (fold 3")
    assert found.values["val/f1_af"] == pytest.approx(0.56)
    section = best_config_section(make_study(final_test=final_test_record()))
    table = section.tables[0].frame.set_index("Class")
    assert table.loc["A", "F1"] == pytest.approx(0.56)
    assert table["Items"].tolist() == [44, 9, 23, 3]  # confusion row sums
    heatmap = section.figures[0].figure.data[0]
    assert list(heatmap.x) == ["N", "A", "O", "~"]


def test_best_configuration_falls_back_to_the_best_trial_validation_row():
    section = best_config_section(make_study())
    assert "validation fold 0 at epoch 3" in section.tables[0].title
    assert "optimistic" in section.tables[0].title
    table = section.tables[0].frame.set_index("Class")
    assert table.loc["N", "F1"] == pytest.approx(0.70)
    assert table["Items"].tolist() == [55, 10, 26, 4]


def test_a_malformed_final_test_names_the_file_and_the_key(tmp_path):
    bad = final_test_record()
    del bad["candidates"][0]["metrics"]
    with pytest.raises(ReportError, match=r"final_test.json: candidate 0 has no metrics"):
        best_scores(make_study(tmp_path, final_test=bad))


def test_load_study_reads_final_test_json_and_tolerates_its_absence(tmp_path):
    study = make_study(tmp_path)
    (tmp_path / "study.json").write_text(json.dumps(study.record))
    study.trials.to_parquet(tmp_path / "trials.parquet")
    assert load_study(tmp_path).final_test is None
    (tmp_path / "final_test.json").write_text(json.dumps(final_test_record()))
    assert load_study(tmp_path).final_test["test"]["fold"] == 3


def test_a_diverged_trial_counts_but_never_scores():
    study = make_study()
    final = study.trials[study.trials["trial_id"] == "ddd"]
    assert math.isnan(final[METRIC].iloc[-1])  # recorded with its status and no score
    assert study.n_diverged == 1
    assert "ddd" not in set(study.at_epoch(1)["trial_id"])  # left out at every budget
    assert set(study.at_epoch(1)["trial_id"]) == {"aaa", "bbb", "ccc"}
    section = importance_section(study, n_bootstrap=5)
    assert section.figures == []  # 3 trials at epoch 1 without it: fewer than 4
    assert section.notes == ["Not computed: needs at least 4 trials scored at one ASHA "
                             "milestone; this study has 3."]
    assert "ddd" not in leaderboard(study)["Trial"].tolist()


def test_trial_order_comes_from_trials_parquet_when_the_study_recorded_it(tmp_path):
    study = make_study(tmp_path)  # no Optuna storage here
    started = {trial_id: 10 + 2 * k for k, trial_id in enumerate(reversed(ORDER))}
    study.trials["trial_number"] = study.trials["trial_id"].map(started)
    numbers = trial_numbers(study)
    assert numbers.sort_values().index.tolist() == list(reversed(ORDER))
    assert sorted(numbers.tolist()) == [1, 2, 3, 4, 5]


def test_a_study_of_fixed_configurations_opens_without_a_search():
    from reports.build import study_sections

    fixed = make_study(final_test=final_test_record())
    fixed.record["plan"]["presets"] = ["cnn7_gmp", "cnn4_gmp"]
    fixed = StudyData(directory=fixed.directory, name="s", record=fixed.record,
                      trials=pd.DataFrame(columns=["trial_id", "epoch"]), cv=None,
                      final_test=fixed.final_test)
    sections = {s.title: s for s in study_sections(fixed, n_bootstrap=5)}
    failed = [n for s in sections.values() for n in s.notes if "could not be computed" in n
              and s.title in OPENING_TITLES]
    assert failed == []
    summary = sections["Summary"].tables[0].frame.set_index("Item")["Value"]
    assert summary["Search"] == "none: fixed configurations cnn7_gmp, cnn4_gmp"
    assert sections["Leaderboard"].notes == [
        "No leaderboard: no fixed configuration reported a score."]  # no cv.parquet here
    assert sections["Best configuration: per-class scores and confusion matrix"].figures


OPENING_TITLES = ("Summary", "Leaderboard", "Learning curves", "Optimisation history",
                  "Best configuration: per-class scores and confusion matrix")
