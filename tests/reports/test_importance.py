"""Importance per ASHA budget, on synthetic studies whose answer is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reports.artifact import Section
from reports.importance import (
    ALL_TRIALS,
    COLUMNS,
    branch_labels,
    importance_bar_figure,
    importance_budget_figure,
    importance_by_budget,
    importance_section,
    rebuild_distributions,
)
from reports.study_data import ReportError, StudyData

METRIC = "val/f1_cinc"

PARAMETERS = {
    "model/depth": {"distribution": "CategoricalDistribution", "choices": [4, 7, 15, 17],
                    "conditional": False},
    "model/hidden_units": {"distribution": "IntDistribution", "low": 2, "high": 256, "log": True,
                           "step": 1, "conditional": False},
    "model/readout": {"distribution": "CategoricalDistribution",
                      "choices": ["last", "centre", "last_plus_pool"], "conditional": False},
    "model/pooling": {"distribution": "CategoricalDistribution", "choices": ["gap", "gmp", "lse"],
                      "conditional": True},
    "optim/lr": {"distribution": "FloatDistribution", "low": 1e-4, "high": 1e-2, "log": True,
                 "step": None, "conditional": False},
}

FAST = {"n_bootstrap": 4, "fanova_trees": 8}


def make_study(trials: pd.DataFrame, *, milestones: list[int], parameters=PARAMETERS,
               mode: str = "max") -> StudyData:
    record = {
        "plan": {"name": "synthetic", "space": "convlstm", "metric": METRIC, "mode": mode,
                 "max_epochs": milestones[-1]},
        "asha_milestones": milestones,
        "space": {"parameters": parameters},
    }
    return StudyData(directory=Path("."), name="synthetic", record=record, trials=trials, cv=None)


def sample_configs(n: int, rng: np.random.Generator) -> pd.DataFrame:
    readout = rng.choice(["last", "centre", "last_plus_pool"], n)
    pooling = np.where(readout == "last_plus_pool", rng.choice(["gap", "gmp", "lse"], n), None)
    return pd.DataFrame({
        "trial_id": [f"t{i:03d}" for i in range(n)],
        "config/model/depth": rng.choice([4, 7, 15, 17], n),
        "config/model/hidden_units": np.round(np.exp(rng.uniform(np.log(2), np.log(256), n))
                                              ).astype(int),
        "config/model/readout": readout,
        "config/model/pooling": pd.Series(pooling, dtype=object),
        "config/optim/lr": np.exp(rng.uniform(np.log(1e-4), np.log(1e-2), n)),
    })


def asha_rows(configs: pd.DataFrame, scores: dict[int, np.ndarray]) -> pd.DataFrame:
    """One row per trial and epoch; a trial has a row at an epoch when its score there is
    finite (NaN: it stopped before)."""
    rows = []
    last = max(scores)
    for epoch, values in scores.items():
        reached = np.isfinite(values)
        part = configs[reached].assign(epoch=epoch, **{METRIC: values[reached]})
        rows.append(part)
    frame = pd.concat(rows, ignore_index=True)
    finished = set(frame.loc[frame["epoch"] == last, "trial_id"])
    frame["stop_reason"] = np.where(frame["trial_id"].isin(finished), "completed",
                                    "early_stopped")
    return frame


def one_parameter_study(n: int, *, seed: int = 0) -> StudyData:
    """Scores depend on the learning rate only (peak at 1e-3); 1/3 of trials go on to epoch 3."""
    rng = np.random.default_rng(seed)
    configs = sample_configs(n, rng)
    quality = -np.abs(np.log10(configs["config/optim/lr"].to_numpy()) + 3.0)
    first = 0.5 + 0.2 * quality + rng.normal(0, 0.01, n)
    survivors = first >= np.quantile(first, 2 / 3)
    final = np.where(survivors, 0.7 + 0.2 * quality + rng.normal(0, 0.01, n), np.nan)
    return make_study(asha_rows(configs, {1: first, 3: final}), milestones=[1, 3])


@pytest.fixture(scope="module")
def one_parameter_table() -> pd.DataFrame:
    return importance_by_budget(one_parameter_study(60), **FAST)


def test_the_only_parameter_that_matters_ranks_first_by_every_method_at_every_budget(
        one_parameter_table):
    table = one_parameter_table[one_parameter_table["branch"] == ALL_TRIALS]
    assert list(table.columns) == list(COLUMNS)
    assert set(table["budget_epoch"]) == {1, 3}
    assert set(table["method"]) == {"ped_anova", "fanova"}
    for (epoch, method), rows in table.groupby(["budget_epoch", "method"]):
        ranked = rows.sort_values("importance", ascending=False)["parameter"].tolist()
        assert ranked[0] == "optim/lr", (epoch, method, ranked)
        assert rows["importance"].sum() == pytest.approx(1.0)


def test_conditional_parameter_is_reported_only_on_its_branch_with_its_trial_count(
        one_parameter_table):
    study = one_parameter_study(60)
    pooling = one_parameter_table[one_parameter_table["parameter"] == "model/pooling"]
    assert set(pooling["branch"]) == {"model/readout=last_plus_pool"}
    for epoch, rows in pooling.groupby("budget_epoch"):
        active = study.at_epoch(epoch)["config/model/pooling"].notna().sum()
        assert (rows["n_trials"] == active).all()
    unconditional = one_parameter_table[one_parameter_table["branch"] == ALL_TRIALS]
    assert "model/pooling" not in set(unconditional["parameter"])
    for epoch, rows in unconditional.groupby("budget_epoch"):
        assert (rows["n_trials"] == len(study.at_epoch(epoch))).all()


def test_inactive_values_are_never_imputed():
    """If NaN poolings were filled in (e.g. with a choice), the branch would hold every trial;
    here pooling is active in 8 of 24 trials and the branch fit must see those 8 only."""
    rng = np.random.default_rng(3)
    configs = sample_configs(24, rng)
    configs["config/model/readout"] = ["last_plus_pool"] * 8 + ["last"] * 16
    configs["config/model/pooling"] = pd.Series(["gap", "gmp", "lse", "gap", "gmp", "lse",
                                                 "gap", "gmp"] + [None] * 16, dtype=object)
    scores = rng.uniform(0.3, 0.7, 24)
    study = make_study(asha_rows(configs, {1: scores}), milestones=[1])
    table = importance_by_budget(study, **FAST)
    pooling = table[table["parameter"] == "model/pooling"]
    assert len(pooling) == 2  # one row per method
    assert (pooling["n_trials"] == 8).all()
    assert set(pooling["branch"]) == {"model/readout=last_plus_pool"}
    # the readout is constant inside the branch, so it is not part of that fit
    assert "model/readout" in set(table.loc[table["branch"] == ALL_TRIALS, "parameter"])


def test_branch_label_names_the_condition_or_says_it_is_unknown():
    rng = np.random.default_rng(4)
    configs = sample_configs(30, rng)
    study = make_study(asha_rows(configs, {1: rng.uniform(size=30)}), milestones=[1])
    assert branch_labels(study) == {"model/pooling": "model/readout=last_plus_pool"}
    configs["config/model/pooling"] = "gap"  # active in every trial: no condition to infer
    study = make_study(asha_rows(configs, {1: rng.uniform(size=30)}), milestones=[1])
    assert branch_labels(study) == {"model/pooling": "model/pooling active"}


def test_each_budget_uses_only_the_trials_that_reached_it():
    """At epoch 1 only depth matters; ASHA promotes the deep trials; at epoch 3 only the
    learning rate matters. Scoring every trial by its last report ranks depth first (it
    decides who got trained longer, so who has the high full-budget scores); the per-budget
    fit at epoch 3 must rank the learning rate first."""
    rng = np.random.default_rng(1)
    n = 45
    configs = sample_configs(n, rng)
    depth = configs["config/model/depth"].to_numpy()
    first = 0.2 + 0.01 * depth + rng.normal(0, 0.005, n)
    survivors = first >= np.quantile(first, 2 / 3)
    lr_quality = -np.abs(np.log10(configs["config/optim/lr"].to_numpy()) + 3.0)
    final = np.where(survivors, 0.8 + 0.1 * lr_quality + rng.normal(0, 0.005, n), np.nan)
    trials = asha_rows(configs, {1: first, 3: final})
    study = make_study(trials, milestones=[1, 3])

    table = importance_by_budget(study, **FAST)
    top = (table[table["branch"] == ALL_TRIALS].sort_values("importance", ascending=False)
           .groupby(["budget_epoch", "method"])["parameter"].first())
    assert (top.loc[1] == "model/depth").all()
    assert (top.loc[3] == "optim/lr").all()
    assert (table.loc[table["budget_epoch"] == 3, "n_trials"] <= survivors.sum()).all()

    # the same trials scored at their last report, as one budget: the ranking flips
    last = trials.sort_values("epoch").drop_duplicates("trial_id", keep="last").assign(epoch=3)
    mixed = importance_by_budget(make_study(last, milestones=[3]), **FAST)
    mixed_top = (mixed[mixed["branch"] == ALL_TRIALS].sort_values("importance", ascending=False)
                 .groupby("method")["parameter"].first())
    assert (mixed_top == "model/depth").all()


def test_intervals_are_reported_as_computed_and_shrink_with_more_trials():
    def widths(n: int) -> pd.DataFrame:
        table = importance_by_budget(one_parameter_study(n, seed=5), methods=("ped_anova",),
                                     n_bootstrap=30)
        # never widened to the estimate: the misses are counted, not hidden
        missed = ~((table["ci_low"] <= table["importance"])
                   & (table["importance"] <= table["ci_high"]))
        counted = [n for n in table.attrs["notes"] if "do not contain" in n]
        if missed.any():
            assert counted and counted[0].startswith(f"{int(missed.sum())} of {len(table)} ")
        else:
            assert counted == []
        rows = table[(table["budget_epoch"] == 1) & (table["branch"] == ALL_TRIALS)]
        return rows.set_index("parameter")["ci_high"] - rows.set_index("parameter")["ci_low"]

    small, large = widths(24), widths(120)
    assert large["optim/lr"] < small["optim/lr"]
    assert large.mean() < small.mean()


def test_same_seed_same_table_and_other_seed_other_intervals():
    study = one_parameter_study(30)
    first = importance_by_budget(study, seed=7, **FAST)
    again = importance_by_budget(study, seed=7, **FAST)
    other = importance_by_budget(study, seed=8, **FAST)
    pd.testing.assert_frame_equal(first, again)
    assert not np.allclose(first["ci_low"], other["ci_low"])


def test_too_few_trials_skip_the_budget_with_a_note():
    study = one_parameter_study(9)  # 3 trials reach epoch 3
    table = importance_by_budget(study, min_trials=4, **FAST)
    assert set(table["budget_epoch"]) == {1}
    assert any("epoch 3" in note for note in table.attrs["notes"])


def test_unknown_method_and_distribution_raise_with_the_known_names():
    with pytest.raises(ValueError, match="ped_anova"):
        importance_by_budget(one_parameter_study(12), methods=("shap",))
    with pytest.raises(ReportError, match="FloatDistribution"):
        rebuild_distributions({"x": {"distribution": "UniformDistribution", "low": 0, "high": 1}})


def test_figures_have_a_line_and_band_per_parameter_and_method_and_a_bar_per_method(
        one_parameter_table):
    labels = one_parameter_table[["parameter", "branch"]].drop_duplicates()
    lines = importance_budget_figure(one_parameter_table)
    assert len(lines.data) == 2 * 2 * len(labels)
    bars = importance_bar_figure(one_parameter_table)
    assert [trace.type for trace in bars.data] == ["bar", "bar"]
    assert len(bars.data[0].x) == len(labels)


def test_section_holds_both_figures_the_table_and_the_notes():
    section = importance_section(one_parameter_study(12), n_bootstrap=2, fanova_trees=4)
    assert isinstance(section, Section)
    assert [f.name for f in section.figures] == ["importance-by-budget", "importance-final-budget"]
    assert len(section.tables) == 1 and section.notes
    study = one_parameter_study(12)
    # the first note says under which budget the ranking holds
    assert section.notes[0] == study.budget_verdict
    assert section.notes[0].startswith(
        f"These verdicts hold under this study's budget: at most {study.max_epochs} epochs "
        "per trial")


def test_importance_on_fewer_trials_than_it_needs_is_marked():
    from reports.importance import MIN_IMPORTANCE_TRIALS

    section = importance_section(one_parameter_study(12), n_bootstrap=2, fanova_trees=4)
    (table,) = section.tables
    few = table.frame["n_trials"] < MIN_IMPORTANCE_TRIALS
    assert few.any()
    assert (table.frame.loc[few, "caveat"].str.startswith("too few trials")).all()
    assert (table.frame.loc[~few, "caveat"] == "").all()
    assert any("not evidence" in note for note in section.notes)


def test_a_none_choice_stored_as_missing_in_parquet_is_that_choice():
    """Parquet writes a sampled ``None`` (no class weighting) as a missing value."""
    rng = np.random.default_rng(3)
    n = 40
    weights = rng.choice(np.array([None, "inverse_frequency"], dtype=object), n)
    configs = pd.DataFrame({"trial_id": [f"t{i:03d}" for i in range(n)],
                            "config/loss/class_weights": pd.Series(weights, dtype="str"),
                            "config/optim/lr": np.exp(rng.uniform(np.log(1e-4), np.log(1e-2), n))})
    score = np.where(weights == None, 0.3, 0.8) + rng.normal(0, 0.01, n)  # noqa: E711
    parameters = {
        "loss/class_weights": {"distribution": "CategoricalDistribution",
                               "choices": [None, "inverse_frequency"], "conditional": False},
        "optim/lr": PARAMETERS["optim/lr"],
    }
    study = make_study(asha_rows(configs, {1: score}), milestones=[1], parameters=parameters)
    table = importance_by_budget(study, **FAST)
    assert configs["config/loss/class_weights"].isna().any()
    top = table.sort_values("importance").groupby("method").tail(1)
    assert set(top["parameter"]) == {"loss/class_weights"}


def test_a_parameter_that_did_not_vary_is_named_once_and_not_ranked():
    rng = np.random.default_rng(0)
    configs = sample_configs(30, rng).assign(**{"config/model/depth": 7})
    first = rng.uniform(0.4, 0.6, 30)
    study = make_study(asha_rows(configs, {1: first, 3: first + 0.1}), milestones=[1, 3])
    section = importance_section(study, **FAST)
    assert "model/depth: 7 in every trial (not varied); no importance" in section.notes
    table = importance_by_budget(study, **FAST)
    assert "model/depth" not in set(table["parameter"])
