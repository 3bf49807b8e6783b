"""Marginal effects and interactions, on synthetic studies with hand-computable answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reports.artifact import Section
from reports.marginals import (
    CURVE_COLUMNS,
    INTERACTION_COLUMNS,
    POINT_COLUMNS,
    interaction,
    interaction_figure,
    interaction_pairs,
    marginal_effects,
    marginal_figure,
    marginals_section,
    scored_trials,
)
from reports.study_data import StudyData

METRIC = "val/f1_cinc"

PARAMETERS = {
    "model/depth": {"distribution": "CategoricalDistribution", "choices": [4, 7, 15, 17],
                    "conditional": False},
    "model/n_rnn_layers": {"distribution": "IntDistribution", "low": 1, "high": 3, "log": False,
                           "step": 1, "conditional": False},
    "model/hidden_units": {"distribution": "IntDistribution", "low": 2, "high": 256, "log": True,
                           "step": 1, "conditional": False},
    "model/readout": {"distribution": "CategoricalDistribution",
                      "choices": ["last", "last_plus_pool"], "conditional": False},
    "model/pooling": {"distribution": "CategoricalDistribution", "choices": ["gap", "gmp", "lse"],
                      "conditional": True},
    "loss/focal_gamma": {"distribution": "FloatDistribution", "low": 0.0, "high": 3.0,
                         "log": False, "step": 0.5, "conditional": False},
    "optim/lr": {"distribution": "FloatDistribution", "low": 1e-4, "high": 1e-2, "log": True,
                 "step": None, "conditional": False},
}


def make_study(trials: pd.DataFrame, *, milestones: list[int] = (1, 3)) -> StudyData:
    record = {
        "plan": {"name": "synthetic", "space": "convlstm", "metric": METRIC, "mode": "max",
                 "max_epochs": milestones[-1]},
        "asha_milestones": list(milestones),
        "space": {"parameters": PARAMETERS},
    }
    return StudyData(directory=Path("."), name="synthetic", record=record, trials=trials, cv=None)


def random_configs(n: int, rng: np.random.Generator) -> pd.DataFrame:
    readout = rng.choice(["last", "last_plus_pool"], n)
    return pd.DataFrame({
        "trial_id": [f"t{i:03d}" for i in range(n)],
        "config/model/depth": rng.choice([4, 7, 15, 17], n),
        "config/model/n_rnn_layers": rng.integers(1, 4, n),
        "config/model/hidden_units": np.round(np.exp(rng.uniform(np.log(2), np.log(256), n))
                                              ).astype(int),
        "config/model/readout": readout,
        "config/model/pooling": pd.Series(
            np.where(readout == "last_plus_pool", rng.choice(["gap", "gmp", "lse"], n), None),
            dtype=object),
        "config/loss/focal_gamma": rng.integers(0, 7, n) * 0.5,
        "config/optim/lr": np.exp(rng.uniform(np.log(1e-4), np.log(1e-2), n)),
    })


def finished(configs: pd.DataFrame, scores: np.ndarray, *, epoch: int = 3) -> pd.DataFrame:
    """Every trial completed ``epoch`` epochs; one row each at epoch 1 (score - 0.3) and at
    ``epoch``."""
    early = configs.assign(epoch=1, stop_reason="completed", **{METRIC: scores - 0.3})
    final = configs.assign(epoch=epoch, stop_reason="completed", **{METRIC: scores})
    return pd.concat([early, final], ignore_index=True)


@pytest.mark.parametrize("slope", [1.0, -1.0])
def test_smoother_follows_a_linear_log_relation_in_its_direction(slope):
    rng = np.random.default_rng(0)
    configs = random_configs(40, rng)
    scores = 0.5 + 0.1 * slope * np.log10(configs["config/optim/lr"]) + rng.normal(0, 0.005, 40)
    effects = marginal_effects(make_study(finished(configs, scores)), n_bootstrap=50)
    curve = effects.curves[effects.curves["parameter"] == "optim/lr"]
    assert list(effects.curves.columns) == list(CURVE_COLUMNS)
    assert list(effects.points.columns) == list(POINT_COLUMNS)
    assert (np.sign(np.diff(curve["estimate"])) == np.sign(slope)).all()
    assert curve["x"].is_monotonic_increasing
    observed = configs["config/optim/lr"]
    assert curve["x"].iloc[0] == pytest.approx(observed.min())
    assert curve["x"].iloc[-1] == pytest.approx(observed.max())
    assert (curve["ci_low"] <= curve["ci_high"]).all()


def test_smoother_rises_across_a_step():
    rng = np.random.default_rng(1)
    configs = random_configs(60, rng)
    gamma = configs["config/loss/focal_gamma"].to_numpy()
    scores = np.where(gamma > 1.5, 0.7, 0.4) + rng.normal(0, 0.005, 60)
    effects = marginal_effects(make_study(finished(configs, scores)), n_bootstrap=20)
    curve = effects.curves[effects.curves["parameter"] == "loss/focal_gamma"]
    assert (np.diff(curve["estimate"]) >= -1e-9).all()
    assert curve["estimate"].iloc[0] < 0.45 and curve["estimate"].iloc[-1] > 0.65


def test_categorical_means_and_counts_equal_hand_computed_ones():
    configs = random_configs(6, np.random.default_rng(2))
    configs["config/model/depth"] = [4, 4, 7, 17, 17, 17]
    scores = np.array([0.1, 0.3, 0.5, 0.6, 0.7, 0.95])
    effects = marginal_effects(make_study(finished(configs, scores)), n_bootstrap=40)
    depth = effects.curves[effects.curves["parameter"] == "model/depth"].set_index("category")
    assert depth.index.tolist() == ["4", "7", "17"]  # choice order; 15 never sampled
    assert depth["estimate"].tolist() == pytest.approx([0.2, 0.5, 0.75])
    assert depth["n_trials"].tolist() == [2, 1, 3]
    assert depth.loc["7", "ci_low"] == depth.loc["7", "ci_high"] == pytest.approx(0.5)
    assert (depth["ci_low"] <= depth["estimate"]).all()
    assert (depth["estimate"] <= depth["ci_high"]).all()
    points = effects.points[effects.points["parameter"] == "model/depth"]
    assert points["x"].tolist() == [0, 0, 1, 3, 3, 3]  # positions among the choices


def test_conditional_parameter_uses_only_active_trials():
    configs = random_configs(20, np.random.default_rng(3))
    scores = np.linspace(0.2, 0.8, 20)
    effects = marginal_effects(make_study(finished(configs, scores)), n_bootstrap=10)
    active = configs["config/model/pooling"].notna()
    pooling = effects.points[effects.points["parameter"] == "model/pooling"]
    assert sorted(pooling["trial_id"]) == sorted(configs.loc[active, "trial_id"])
    counts = effects.curves[effects.curves["parameter"] == "model/pooling"]["n_trials"].sum()
    assert counts == active.sum()


def test_only_completed_full_budget_trials_count_and_otherwise_the_fallback_is_flagged():
    rng = np.random.default_rng(4)
    configs = random_configs(12, rng)
    trials = finished(configs, rng.uniform(0.4, 0.6, 12))
    stopped = random_configs(5, rng).assign(
        trial_id=[f"s{i}" for i in range(5)], epoch=1, stop_reason="early_stopped",
        **{METRIC: 0.99})
    study = make_study(pd.concat([trials, stopped], ignore_index=True))
    chosen = scored_trials(study)
    assert chosen.full_budget and chosen.budget_epoch == 3
    assert set(chosen.frame["trial_id"]) == set(configs["trial_id"])

    only_early = trials[trials["epoch"] == 1].assign(stop_reason="early_stopped")
    fallback = marginal_effects(make_study(only_early), n_bootstrap=5)
    assert not fallback.full_budget and fallback.budget_epoch == 1
    section = marginals_section(make_study(only_early), n_bootstrap=5)
    assert "NOT the full budget" in section.figures[0].figure.layout.yaxis.title.text


def test_few_finished_trials_fall_back_to_the_milestone_enough_trials_reached():
    # the showcase study's shape: 5 trials finished, 19 more stopped at the first rung; the
    # section draws the first rung's 24 trials (flagged), not "not computed" for the 5
    rng = np.random.default_rng(6)
    configs = random_configs(24, rng)
    scores = rng.uniform(0.4, 0.6, 24)
    rows = finished(configs, scores)
    stopped = configs["trial_id"].iloc[5:]
    rows = rows[~(rows["trial_id"].isin(stopped) & (rows["epoch"] == 3))]
    rows.loc[rows["trial_id"].isin(stopped), "stop_reason"] = "early_stopped"
    section = marginals_section(make_study(rows), n_bootstrap=5)
    assert section.figures, section.notes
    assert "epoch 1 (NOT the full budget)" in section.figures[0].figure.layout.yaxis.title.text
    assert any("describe the score after 1 epoch(s), not after training" in note
               for note in section.notes)


def test_interaction_cells_equal_hand_computed_means_and_counts():
    configs = random_configs(7, np.random.default_rng(5))
    configs["config/model/depth"] = [4, 4, 4, 17, 17, 17, 7]
    # log bins over [2, 256]: [2, 6.73) [6.73, 22.6) [22.6, 76.1) [76.1, 256]
    configs["config/model/hidden_units"] = [3, 5, 200, 10, 256, 80, 50]
    scores = np.array([0.2, 0.4, 0.9, 0.5, 0.6, 0.8, 0.3])
    table = interaction(make_study(finished(configs, scores)), x="model/depth",
                        y="model/hidden_units")
    assert list(table.columns) == list(INTERACTION_COLUMNS)
    assert len(table) == 4 * 4
    cells = table.set_index(["x_bin", "y_bin"])
    expected = {
        ("4", "[2, 6.73)"): (0.3, 2), ("4", "[76.1, 256]"): (0.9, 1),
        ("17", "[6.73, 22.6)"): (0.5, 1), ("17", "[76.1, 256]"): (0.7, 2),
        ("7", "[22.6, 76.1)"): (0.3, 1),
    }
    for cell, (mean, count) in expected.items():
        assert cells.loc[cell, "mean_score"] == pytest.approx(mean)
        assert cells.loc[cell, "n_trials"] == count
    empty = table[~table.set_index(["x_bin", "y_bin"]).index.isin(list(expected))]
    assert (empty["n_trials"] == 0).all() and empty["mean_score"].isna().all()
    with pytest.raises(ValueError, match="model/depth"):
        interaction(make_study(finished(configs, scores)), x="model/depht", y="model/depth")


def test_interaction_with_a_conditional_parameter_counts_active_trials_only():
    configs = random_configs(30, np.random.default_rng(6))
    scores = np.random.default_rng(7).uniform(size=30)
    table = interaction(make_study(finished(configs, scores)), x="model/depth",
                        y="model/pooling")
    active = configs["config/model/pooling"].notna()
    assert table["n_trials"].sum() == active.sum()
    hand = (pd.DataFrame({"depth": configs["config/model/depth"].astype(str),
                          "pooling": configs["config/model/pooling"], "score": scores})[active]
            .groupby(["depth", "pooling"])["score"].mean())
    got = table.set_index(["x_bin", "y_bin"])["mean_score"].dropna()
    pd.testing.assert_series_equal(got.sort_index(), hand.sort_index(), check_names=False)


def test_small_integer_ranges_get_one_bin_per_value():
    configs = random_configs(9, np.random.default_rng(8))
    configs["config/model/n_rnn_layers"] = [1, 1, 2, 2, 2, 3, 3, 3, 3]
    table = interaction(make_study(finished(configs, np.arange(9) / 10)),
                        x="model/n_rnn_layers", y="model/readout")
    per_value = table.groupby("x_bin")["n_trials"].sum()
    assert per_value.to_dict() == {"1": 2, "2": 3, "3": 4}


def test_same_seed_same_bands():
    configs = random_configs(15, np.random.default_rng(9))
    study = make_study(finished(configs, np.random.default_rng(10).uniform(size=15)))
    first = marginal_effects(study, n_bootstrap=20, seed=3)
    again = marginal_effects(study, n_bootstrap=20, seed=3)
    other = marginal_effects(study, n_bootstrap=20, seed=4)
    pd.testing.assert_frame_equal(first.curves, again.curves)
    assert not np.allclose(first.curves["ci_low"], other.curves["ci_low"], equal_nan=True)


def test_figures_have_the_expected_traces_and_the_section_one_per_parameter_and_pair():
    configs = random_configs(20, np.random.default_rng(11))
    study = make_study(finished(configs, np.random.default_rng(12).uniform(size=20)))
    effects = marginal_effects(study, n_bootstrap=5)

    def figure(name):
        return marginal_figure(effects.points[effects.points["parameter"] == name],
                               effects.curves[effects.curves["parameter"] == name],
                               parameter=name, description=PARAMETERS[name], score_title="F1")

    assert [t.type for t in figure("optim/lr").data] == ["scatter"] * 3
    assert figure("optim/lr").layout.xaxis.type == "log"
    assert [t.type for t in figure("model/depth").data] == ["box", "scatter"]
    heatmap = interaction_figure(interaction(study, x="model/depth", y="model/pooling"),
                                 score_title="F1")
    assert [t.type for t in heatmap.data] == ["heatmap"]
    assert np.shape(heatmap.data[0].z) == (3, 4)  # pooling choices x depth choices

    section = marginals_section(study, n_bootstrap=5)
    assert isinstance(section, Section)
    assert section.notes[0] == study.budget_verdict and "at most" in section.notes[0]
    assert interaction_pairs(study) == [("model/depth", "model/hidden_units"),
                                        ("model/depth", "model/pooling")]
    names = [f.name for f in section.figures]
    assert len(names) == len(PARAMETERS) + 2 and len(set(names)) == len(names)
    assert "interaction-model-depth-x-model-hidden_units" in names


def test_a_section_on_few_trials_says_why_in_one_line_and_draws_nothing():
    few = make_study(finished(random_configs(5, np.random.default_rng(1)),
                              np.random.default_rng(2).uniform(size=5)))
    many = make_study(finished(random_configs(20, np.random.default_rng(11)),
                               np.random.default_rng(12).uniform(size=20)))
    section = marginals_section(few, n_bootstrap=5)
    assert section.notes == ["Not computed: needs at least 10 trials scored at one budget; "
                             "this study has 5 (at epoch 3)."]
    assert section.figures == [] and section.tables == []
    drawn = marginals_section(many, n_bootstrap=5)
    assert not any(n.startswith("Not computed") for n in drawn.notes)
    assert drawn.figures and all("model/" not in f.title for f in drawn.figures)


def test_a_parameter_that_did_not_vary_gets_one_line_instead_of_a_figure():
    rng = np.random.default_rng(3)
    configs = random_configs(24, rng).assign(**{"config/loss/focal_gamma": 1.5})
    study = make_study(finished(configs, rng.uniform(0.4, 0.8, 24)))
    effects = marginal_effects(study, n_bootstrap=10)
    assert "loss/focal_gamma" not in set(effects.points["parameter"])
    assert "loss/focal_gamma: 1.5 in every trial scored at epoch 3 (not varied); no marginal" \
        in effects.notes
    section = marginals_section(study, n_bootstrap=10,
                                pairs=[("model/depth", "loss/focal_gamma")])
    assert not any("focal" in f.name for f in section.figures)  # no marginal, no interaction
    assert any("focal_gamma: 1.5 in every trial" in n for n in section.notes)
