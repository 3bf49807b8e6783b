"""The ASHA audit on synthetic studies whose answers are known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from reports.early_stopping import (
    early_stopping_section,
    parameter_levels,
    rung_correlations,
    rung_pairs,
    spearman_with_ci,
    stopped_early_by_value,
    stopping_test,
    stopping_tests,
)
from reports.study_data import StudyData

METRIC = "val/f1_cinc"
DEPTH = {"distribution": "CategoricalDistribution", "choices": [4, 17]}
BIDIRECTIONAL = {"distribution": "CategoricalDistribution", "choices": [False, True]}


def make_study(rows: list[dict], *, milestones: list[int], parameters: dict | None = None
               ) -> StudyData:
    record = {
        "plan": {"name": "synthetic", "metric": METRIC, "mode": "max",
                 "max_epochs": milestones[-1], "n_folds": 4},
        "asha_milestones": milestones,
        "space": {"parameters": parameters or {}},
    }
    return StudyData(directory=Path("/nonexistent"), name="synthetic", record=record,
                     trials=pd.DataFrame(rows), cv=None)


def trial_rows(trial_id: str, scores: dict[int, float], *, milestones: list[int],
               stop_reason: str | None = None, config: dict | None = None) -> list[dict]:
    """Rows of one trial with the given score per epoch (epochs in ``scores``)."""
    last = max(scores)
    reason = stop_reason or ("completed" if last >= milestones[-1] else "early_stopped")
    max_rung = sum(m <= last for m in milestones) - 1
    return [
        {"trial_id": trial_id, "epoch": epoch, METRIC: score, "stop_reason": reason,
         "max_rung": max_rung, "rung": sum(m <= epoch for m in milestones) - 1,
         "at_milestone": epoch in milestones,
         **{f"config/{k}": v for k, v in (config or {}).items()}}
        for epoch, score in scores.items()
    ]


def ladder_study(transform, *, n: int = 12) -> StudyData:
    """``n`` trials at epoch 1; the better half goes on to epoch 3, the best 3 to epoch 9;
    epoch-3 and epoch-9 scores are ``transform`` of the epoch-1 score. Non-milestone epochs
    carry noise that must be ignored."""
    milestones = [1, 3, 9]
    rng = np.random.default_rng(1)
    rows = []
    for i in range(n):
        base = (i + 1) / (n + 1)
        scores = {1: base, 2: float(rng.uniform())}
        if i >= n // 2:
            scores[3] = transform(base, 3)
        if i >= n - 3:
            scores[5] = float(rng.uniform())
            scores[9] = transform(base, 9)
        rows += trial_rows(f"t{i:02d}", scores, milestones=milestones)
    return make_study(rows, milestones=milestones)


def test_rank_preserving_scores_give_rho_one():
    study = ladder_study(lambda s, e: s**2 + e)
    result = rung_correlations(study, n_bootstrap=200).set_index(["comparison", "epoch_from"])
    assert result["rho"].tolist() == pytest.approx([1.0] * 4)
    assert result.loc[("consecutive", 1), "epoch_to"] == 3
    assert result.loc[("to_final", 1), "epoch_to"] == 9


def test_reversed_scores_give_rho_minus_one():
    study = ladder_study(lambda s, e: -s)
    result = rung_correlations(study, n_bootstrap=200).set_index(["comparison", "epoch_from"])
    assert result.loc[("consecutive", 1), "rho"] == pytest.approx(-1.0)
    assert result.loc[("to_final", 1), "rho"] == pytest.approx(-1.0)
    # epoch 3 -> 9: both reversed, so the order is preserved again
    assert result.loc[("consecutive", 3), "rho"] == pytest.approx(1.0)


def test_only_trials_at_both_milestones_are_used():
    milestones = [1, 3, 9]
    rows = []
    for i in range(10):  # 10 at epoch 1, 6 at epoch 3, 4 at epoch 9 (one of them diverged)
        scores = {1: i / 10}
        if i >= 4:
            scores[3] = i / 10 + 0.1
        if i >= 6:
            scores[9] = i / 10 + 0.2
        rows += trial_rows(f"t{i}", scores, milestones=milestones,
                           stop_reason="diverged" if i == 9 else None)
    rows += trial_rows("late", {3: 0.5}, milestones=milestones)  # no epoch-1 score
    study = make_study(rows, milestones=milestones)
    counts = rung_correlations(study, n_bootstrap=0).set_index(["comparison", "epoch_from"])
    assert counts["n_trials"].to_dict() == {
        ("consecutive", 1): 6, ("consecutive", 3): 4, ("to_final", 1): 3, ("to_final", 3): 3,
    }
    pairs = rung_pairs(study)
    first = pairs[(pairs["comparison"] == "consecutive") & (pairs["epoch_from"] == 1)]
    assert set(first["trial_id"]) == {f"t{i}" for i in range(4, 10)}
    final = pairs[pairs["comparison"] == "to_final"]
    assert "t9" not in set(final["trial_id"])  # diverged: never completed the budget


def test_noisy_correlation_matches_scipy_and_intervals_contain_it():
    rng = np.random.default_rng(0)
    x = rng.normal(size=30)
    y = x + rng.normal(scale=1.0, size=30)
    result = spearman_with_ci(x, y, n_bootstrap=500, seed=3)
    assert result["rho"] == pytest.approx(stats.spearmanr(x, y).statistic)
    assert 0.2 < result["rho"] < 0.95
    assert result["ci_low"] < result["rho"] < result["ci_high"]
    assert result["boot_low"] < result["rho"] < result["boot_high"]
    # Fisher z with the Bonett-Wright SE, by hand
    se = np.sqrt((1 + result["rho"] ** 2 / 2) / (30 - 3))
    z = np.arctanh(result["rho"])
    assert result["ci_low"] == pytest.approx(np.tanh(z - 1.959964 * se), rel=1e-5)
    assert result["ci_high"] == pytest.approx(np.tanh(z + 1.959964 * se), rel=1e-5)


def test_too_few_or_constant_scores_give_nan():
    assert np.isnan(spearman_with_ci(np.array([1.0, 2.0]), np.array([1.0, 3.0]))["rho"])
    assert np.isnan(spearman_with_ci(np.ones(6), np.arange(6.0))["rho"])


def stopping_study(*, deep_always_stopped: bool, n: int = 40) -> StudyData:
    """Depth alternates 4/17 and bidirectional alternates in pairs; with
    ``deep_always_stopped`` depth 17 is stopped at the first rung and depth 4 completes,
    otherwise every second trial of each depth is stopped."""
    milestones = [1, 3, 9]
    rows = []
    for i in range(n):
        depth = 17 if i % 2 else 4
        stopped = depth == 17 if deep_always_stopped else (i // 2) % 2 == 0
        scores = {1: 0.5} if stopped else {1: 0.5, 3: 0.6, 9: 0.7}
        rows += trial_rows(f"t{i:02d}", scores, milestones=milestones,
                           config={"model/depth": depth, "model/bidirectional": (i // 2) % 2 == 1})
    return make_study(rows, milestones=milestones,
                      parameters={"model/depth": DEPTH, "model/bidirectional": BIDIRECTIONAL})


def test_always_stopped_deep_models_give_a_tiny_p_value_and_the_right_shares():
    shares = stopped_early_by_value(stopping_study(deep_always_stopped=True))
    depth = shares[shares["parameter"] == "model/depth"].set_index("value")
    assert depth.index.tolist() == ["4", "17"]
    assert depth["share_stopped"].tolist() == [0.0, 1.0]
    assert depth["n_trials"].tolist() == [20, 20]
    assert depth["n_stopped_first_rung"].tolist() == [0, 20]
    assert depth["overall_share"].iloc[0] == 0.5
    assert depth["test"].iloc[0] == "fisher_exact"
    assert depth["p_value"].iloc[0] < 1e-9
    assert depth["p_value"].iloc[0] == pytest.approx(
        stats.fisher_exact([[0, 20], [20, 0]]).pvalue)
    # bidirectional is balanced against stopping in this design
    bidirectional = shares[shares["parameter"] == "model/bidirectional"]
    assert bidirectional["p_value"].iloc[0] > 0.5
    tests = stopping_tests(shares)
    assert tests["parameter"].iloc[0] == "model/depth"
    assert tests["most_stopped_value"].iloc[0] == "17"
    assert tests["p_holm"].iloc[0] == pytest.approx(2 * tests["p_value"].iloc[0])


def test_balanced_stopping_gives_a_large_p_value():
    shares = stopped_early_by_value(stopping_study(deep_always_stopped=False))
    depth = shares[shares["parameter"] == "model/depth"]
    assert depth["share_stopped"].tolist() == [0.5, 0.5]
    assert depth["p_value"].iloc[0] > 0.5


def test_diverged_and_errored_trials_are_not_audited():
    study = stopping_study(deep_always_stopped=True, n=8)
    extra = [*trial_rows("div", {1: 0.1}, milestones=[1, 3, 9], stop_reason="diverged",
                         config={"model/depth": 4, "model/bidirectional": True}),
             *trial_rows("err", {1: 0.1}, milestones=[1, 3, 9], stop_reason="error",
                         config={"model/depth": 4, "model/bidirectional": True})]
    study = make_study([*study.trials.to_dict("records"), *extra], milestones=[1, 3, 9],
                       parameters=study.parameters)
    shares = stopped_early_by_value(study)
    assert set(shares["n_audited"]) == {8}
    notes = " ".join(early_stopping_section(study, n_bootstrap=0).notes)
    assert "1 diverged" in notes and "1 error" in notes


def test_chi_square_on_large_tables_and_permutation_on_small_ones():
    n_stopped, n_trials = np.array([10, 20, 30]), np.array([40, 40, 40])
    result = stopping_test(n_stopped, n_trials)
    table = np.column_stack([n_stopped, n_trials - n_stopped])
    expected = stats.chi2_contingency(table, correction=False)
    assert result["test"] == "chi2"
    assert result["statistic"] == pytest.approx(expected.statistic)
    assert result["p_value"] == pytest.approx(expected.pvalue)
    small = stopping_test(np.array([3, 0, 0]), np.array([3, 3, 3]), n_permutations=4000)
    assert small["test"] == "chi2_permutation"
    # exact: the 3 stopped trials all in one given level of 3: 3 of C(9,3) = 84 arrangements
    assert small["p_value"] == pytest.approx(3 / 84, abs=0.015)
    assert stopping_test(np.array([0, 0]), np.array([4, 4]))["test"] == "not_testable"


def test_log_parameters_are_cut_into_geometric_bins_and_inactive_is_a_level():
    spec = {"distribution": "FloatDistribution", "low": 1e-4, "high": 1e-2, "log": True,
            "step": None}
    values = pd.Series([1.1e-4, 9e-4, 1.1e-3, 5e-3, 1e-2, np.nan])
    levels = parameter_levels(values, spec, n_bins=2)
    assert list(levels.categories) == ["[0.0001, 0.001)", "[0.001, 0.01]", "(inactive)"]
    assert list(levels) == ["[0.0001, 0.001)", "[0.0001, 0.001)", "[0.001, 0.01]",
                            "[0.001, 0.01]", "[0.001, 0.01]", "(inactive)"]


def test_small_integer_ranges_keep_their_values_and_float_columns_find_int_choices():
    spec = {"distribution": "IntDistribution", "low": 1, "high": 3, "step": 1, "log": False}
    assert list(parameter_levels(pd.Series([3, 1, 2]), spec).categories) == ["1", "2", "3"]
    # an int parameter that is conditional is read back as float with NaN
    levels = parameter_levels(pd.Series([4.0, 17.0, np.nan]), DEPTH)
    assert list(levels) == ["4", "17", "(inactive)"]


def test_section_names_figures_and_tables():
    section = early_stopping_section(ladder_study(lambda s, e: s + e), n_bootstrap=50)
    assert [f.name for f in section.figures] == ["early_stop_rung_scatter"]
    assert "early_stop_rung_correlations" in [t.name for t in section.tables]
    scatter = section.figures[0].figure
    assert "ρ = 1.00" in scatter.layout.annotations[0].text
    shares = early_stopping_section(stopping_study(deep_always_stopped=True), n_bootstrap=0)
    assert [f.name for f in shares.figures][-1] == "early_stop_share"
    bars = [t for t in shares.figures[-1].figure.data if t.type == "bar"]
    assert list(bars[0].y) == [0.0, 1.0]


def test_a_single_milestone_gives_a_note():
    study = make_study(trial_rows("a", {1: 0.5, 2: 0.6}, milestones=[2]), milestones=[2])
    section = early_stopping_section(study)
    assert not section.figures and "single milestone" in section.notes[0]


def test_correlations_on_fewer_trials_than_they_need_are_marked():
    from reports.early_stopping import MIN_RANK_TRIALS

    study = ladder_study(lambda s, e: s**2 + e)
    result = rung_correlations(study, n_bootstrap=0)
    few = result["n_trials"] < MIN_RANK_TRIALS
    assert few.any()
    assert (result.loc[few, "caveat"] == f"too few trials (n < {MIN_RANK_TRIALS}): not "
                                           "evidence").all()
    assert (result.loc[~few, "caveat"] == "").all()


def two_rung_study(final_of, *, n: int = 30, survivors: int = 12) -> StudyData:
    """``n`` trials scored at epoch 1 (i / n); the ``survivors`` best go on to epoch 3 with
    score ``final_of(rank among survivors, epoch-1 score)``; the others are stopped at 1."""
    rows = []
    for i in range(n):
        scores = {1: i / n}
        if i >= n - survivors:
            scores[3] = final_of(i - (n - survivors), i / n)
        rows += trial_rows(f"t{i:02d}", scores, milestones=[1, 3])
    return make_study(rows, milestones=[1, 3])


def test_rungs_that_rank_as_the_full_budget_are_trustworthy():
    noise = np.random.default_rng(3).normal(0, 0.01, 12)
    study = two_rung_study(lambda k, s: s + 0.2 + noise[k])
    section = early_stopping_section(study, n_bootstrap=0)
    assert section.notes[0].startswith("Rungs trustworthy:")
    winners = next(t for t in section.tables if t.name == "early_stop_winner_ranks").frame
    assert winners["n_scored"].tolist() == [30]  # every trial, the 18 stopped ones included
    assert winners["n_stopped_here"].tolist() == [18]
    assert winners["kept_places"].tolist() == [10]
    assert bool(winners["winner_kept"].iloc[0])


def test_a_winner_that_ranked_outside_the_kept_places_makes_the_rungs_doubtful():
    # the weakest survivor at epoch 1 (rank 12 of 30, outside the 10 kept places) ends best
    study = two_rung_study(lambda k, s: 1.0 if k == 0 else s)
    section = early_stopping_section(study, n_bootstrap=0)
    assert section.notes[0].startswith("Rungs doubtful:")
    assert "ranked outside ASHA's kept places at epoch 1" in section.notes[0]
    winners = next(t for t in section.tables if t.name == "early_stop_winner_ranks").frame
    assert winners["winner_rank"].tolist() == [12]
    assert winners["best_stopped_score"].iloc[0] == pytest.approx(17 / 30)


def test_uncorrelated_rungs_are_doubtful_and_few_trials_cannot_be_judged():
    scrambled = np.random.default_rng(0).permutation(12) / 12
    doubtful = early_stopping_section(two_rung_study(lambda k, s: scrambled[k] + (k == 11)),
                                      n_bootstrap=0)
    assert doubtful.notes[0].startswith("Rungs doubtful: the rank correlation between epochs "
                                        "1 and 3 has a 95% interval reaching 0")
    few = early_stopping_section(two_rung_study(lambda k, s: s, n=3, survivors=2),
                                 n_bootstrap=0)
    assert few.notes[0] == ("Rungs cannot be judged: a rank correlation between milestones "
                            "needs at least 10 trials at both; this study has 2.")
    assert "range restriction" in few.notes[1]
    assert few.figures == []  # 2 pairs: no rho, no scatter; 3 trials: no stopping shares
    assert any(n.startswith("Rung scatter not drawn: needs at least 3") for n in few.notes)
    assert any("needs at least 10 completed or stopped trials; this study has 3" in n
               for n in few.notes)


def test_rungs_ranked_on_another_metric_are_audited_on_it():
    """ASHA ranked epoch 1 on the validation loss (lower is better) and the study selects on
    F1: the audit ranks epoch 1 on the loss and pairs a lower loss with a higher F1."""
    n, survivors = 30, 12
    noise = np.random.default_rng(3).normal(0, 0.05, n)  # swaps some neighbours' ranks
    rows = []
    for i in range(n):
        loss = 1.0 - i / n  # trial i: the (i + 1)-th worst loss at epoch 1
        scores = {1: 0.25}  # F1 at the rung: every trial still in one class, no ranking
        if i >= n - survivors:
            scores[3] = 0.5 + i / n + noise[i]
        trial = trial_rows(f"t{i:02d}", scores, milestones=[1, 3])
        trial[0]["val/loss"] = loss
        rows += trial
    study = make_study(rows, milestones=[1, 3])
    study.record["asha_rung"] = {"metric": "val/loss", "mode": "min"}
    correlations = rung_correlations(study, n_bootstrap=0).set_index("comparison")
    assert correlations.at["consecutive", "rho"] > 0.9
    section = early_stopping_section(study, n_bootstrap=0)
    assert section.notes[0].startswith("Rungs trustworthy:")
    assert any("ASHA ranked its rungs on val/loss" in note for note in section.notes)
    winners = next(t for t in section.tables if t.name == "early_stop_winner_ranks").frame
    assert winners[["ranked_on", "winner_rank"]].values.tolist() == [["val/loss", 1]]
    assert winners["winner_score"].iloc[0] == pytest.approx(1.0 - (n - 1) / n)
    scatter = next(f for f in section.figures if f.name == "early_stop_rung_scatter").figure
    assert scatter.layout.xaxis.title.text == "val/loss at epoch 1"
    assert scatter.layout.yaxis.title.text == "f1_cinc at epoch 3"
    assert len(scatter.data) == 1  # no diagonal between a loss and an F1


def test_who_asha_stops_leaves_out_a_parameter_that_did_not_vary():
    milestones = [1, 3, 9]
    rows = []
    for i in range(20):
        scores = {1: 0.5} if i % 2 else {1: 0.5, 3: 0.6, 9: 0.7}
        rows += trial_rows(f"t{i:02d}", scores, milestones=milestones,
                           config={"model/depth": 7, "model/bidirectional": i % 4 < 2})
    study = make_study(rows, milestones=milestones,
                       parameters={"model/depth": DEPTH, "model/bidirectional": BIDIRECTIONAL})
    shares = stopped_early_by_value(study)
    assert set(shares["parameter"]) == {"model/bidirectional"}
    notes = early_stopping_section(study, n_bootstrap=0).notes
    assert ("Who ASHA stops: model/depth was 7 in every audited trial (not varied); not tested"
            in notes)
