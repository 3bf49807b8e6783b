"""The explanation stage's cost model: passes per method, the gallery and scored records, the
training epoch it is priced against."""

from __future__ import annotations

import numpy as np
import pytest

from data_io.datasets import load_dataset
from study.engine.config import Data, resolve_config
from study.explain.artifacts import with_abnormal_beats
from study.explain.explanation_methods import merge_settings, method_names
from study.explanation_specs import method_specs
from study.tune.data import fold_split, load_arrays, mask_source
from study.tune.explanation_cost import (
    COST_RULES,
    EXPLANATION_SHARE,
    STEP_PASSES,
    ExplanationEpochs,
    cost_rule,
    epoch_samples,
    explanation_load,
    trial_load,
)
from study.tune.spec import StudySpec

SETTINGS = {"family": {}, "occlusion": {"window_s": 0.3, "stride_s": 0.1, "baseline": "zero"},
            "integrated_gradients": {"steps": 32}, "shift_perturbation": {"steps": 60}}


def test_every_explanation_method_is_priced():
    assert {spec.cost for spec in method_specs().values()} <= set(COST_RULES)
    assert set(SETTINGS) == set(method_names())


def test_passes_per_record_follow_each_methods_settings():
    # 10 s at 100 Hz: a 30-sample window every 10 samples fits 98 times
    passes = {m: cost_rule(spec)(SETTINGS[m], samples=1000, fs_hz=100.0)
              for m, spec in method_specs().items()}
    assert passes == {"family": 1.0, "occlusion": 98.0,
                      "integrated_gradients": 32 * STEP_PASSES,
                      "shift_perturbation": 60 * STEP_PASSES}


def test_the_load_counts_the_gallery_the_scored_records_and_the_shift_share():
    load = explanation_load(settings=SETTINGS, fs_hz=100.0, record_samples=1000.0, n_classes=4,
                            n_val=100, scored=10, shift_share=0.5, epoch=1e6)
    # gallery: 4 classes x (2 correct + 2 misclassified) + 2 uncertain = 18
    assert load.records == 28
    assert load.samples_by_method["family"] == 28 * 1000
    assert load.samples_by_method["shift_perturbation"] == 28 * 0.5 * 1000 * 60 * STEP_PASSES
    assert load.epochs == pytest.approx(sum(load.samples_by_method.values()) / 1e6)
    small = explanation_load(settings=SETTINGS, fs_hz=100.0, record_samples=1000.0,
                             n_classes=4, n_val=5, scored=0, shift_share=0.0, epoch=1e6)
    assert small.records == 5 and small.samples_by_method["shift_perturbation"] == 0


def test_scored_records_stop_at_their_share_of_the_study_but_not_below_the_floor():
    assert EXPLANATION_SHARE == 0.25
    load = ExplanationEpochs(fixed=2.0, budgeted=50.0, floor=4.0)
    # 300 s of other stages allow 100 s of explanations: 20 s of gallery, 80 s of scoring
    assert load.seconds(per_epoch=10.0, before_s=300.0) == pytest.approx(100.0)
    # a short study still scores the floor (4 epochs), and never more than every record
    assert load.seconds(per_epoch=10.0, before_s=30.0) == pytest.approx(20.0 + 40.0)
    assert load.seconds(per_epoch=10.0, before_s=1e6) == pytest.approx(20.0 + 500.0)
    assert ExplanationEpochs(fixed=3.0).seconds(per_epoch=10.0, before_s=0.0) == 30.0


def test_epoch_samples_follow_the_batching_of_each_side():
    lengths = np.array([500, 1000, 1500, 3000])
    data = Data(train_batching="crop", eval_batching="bucket", crop_s=10.0, fixed_length_s=61.0)
    # training: every record cut or padded to 1000 samples, forward and backward; evaluation:
    # one bucket padded to its longest record, 3000
    found = epoch_samples(lengths=lengths, fs_hz=100.0, data=data, batch_size=4, n_train=8,
                          n_eval=4)
    assert found == pytest.approx(8 * 1000 * STEP_PASSES + 4 * 3000)
    fixed = epoch_samples(lengths=lengths, fs_hz=100.0,
                          data=data.model_copy(update={"train_batching": "pad_fixed"}),
                          batch_size=4,
                          n_train=8, n_eval=0)
    assert fixed == pytest.approx(8 * 6100 * STEP_PASSES)


@pytest.fixture(scope="module")
def synthetic_spec(tmp_path_factory) -> StudySpec:
    dataset = load_dataset("synthetic")
    path = tmp_path_factory.mktemp("synthetic")
    dataset.generate(path, n_records=40, seed=0)
    spec = StudySpec(data_dir=str(path), cache_dir=str(path / "cache"), fs_hz=100.0, folds={},
                     fold=0, max_epochs=1, seed=0, dataset="synthetic")
    table = dataset.fold_plan(load_arrays(spec), n_folds=4, seed=0, options={}).table
    return StudySpec(**{**spec.__dict__, "folds": table.as_dict()})


def test_a_trials_load_scores_the_validation_records_with_abnormal_beats(synthetic_spec):
    train, val = fold_split(synthetic_spec, fold=0)
    masks = mask_source(synthetic_spec)
    abnormal = int(with_abnormal_beats(val.arrays, indices=val.indices, masks=masks).sum())
    assert 0 < abnormal < len(val.indices)
    common = {"arrays": val.arrays, "sample": val.indices, "n_train": len(train.indices),
              "n_val": len(val.indices), "settings": merge_settings(None),
              "cfg": resolve_config(synthetic_spec.trial_config({})),
              "normal_class": load_dataset("synthetic").normal_index}
    gallery = min(len(val.indices), 4 * 4 + 2)
    every = trial_load(masks=masks, score_records=None, **common)
    assert every.records == gallery + abnormal
    assert trial_load(masks=masks, score_records=1, **common).records == gallery + 1
    assert trial_load(masks=masks, score_records=0, **common).records == gallery
    assert trial_load(masks=None, score_records=None, **common).records == gallery
    assert every.epochs > trial_load(masks=None, score_records=None, **common).epochs > 0


def test_the_drivers_budget_is_a_third_of_the_other_stages_final_training_included(
        tmp_path, plan_fields):
    from types import SimpleNamespace

    from study.tune.driver import _explanation_budget_s, _final_seconds
    from study.tune.plan import Plan
    from study.tune.stage_times import add_stage_time

    plan = Plan(**plan_fields(study_dir=str(tmp_path), test="fold", test_fold=2,
                              concurrency=2, max_epochs=4))
    add_stage_time(tmp_path, stage="search", seconds=180.0)
    # the search trial took 10 s per epoch: one final configuration, one wave of 4 epochs
    trial = SimpleNamespace(metrics={"training_iteration": 4, "time_total_s": 40.0})
    assert _final_seconds(plan, trial) == pytest.approx(40.0)
    budget = _explanation_budget_s(plan, trials_left=2, final_s=40.0)
    assert budget == pytest.approx((180.0 + 40.0) / 3 / 2)
    add_stage_time(tmp_path, stage="explanations", seconds=50.0)  # the first trial's
    assert _explanation_budget_s(plan, trials_left=1, final_s=40.0) == pytest.approx(
        (180.0 + 40.0) / 3 - 50.0)
    fixed = Plan(**plan_fields(study_dir=str(tmp_path), explain_records="all"))
    assert _explanation_budget_s(fixed, trials_left=1, final_s=40.0) is None
