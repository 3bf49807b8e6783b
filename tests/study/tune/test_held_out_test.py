"""The held-out test set: which items it holds, and that no search or CV split sees them."""

from __future__ import annotations

import numpy as np
import pytest

from data_io.datasets import load_dataset
from data_io.folds import FoldPlan
from study.tune.data import final_split, fold_split, item_folds, load_arrays
from study.tune.plan import Plan
from study.tune.prepare import held_out_test
from study.tune.spec import StudySpec


@pytest.fixture(scope="module")
def synthetic_dirs(tmp_path_factory):
    dataset = load_dataset("synthetic")
    dirs = []
    for seed in (0, 1):
        path = tmp_path_factory.mktemp(f"synthetic{seed}")
        dataset.generate(path, n_records=24, seed=seed)
        dirs.append(path)
    return dirs


def _spec(data_dir, tmp_path, **changes) -> StudySpec:
    dataset = load_dataset("synthetic")
    spec = StudySpec(data_dir=str(data_dir), cache_dir=str(tmp_path / "cache"), fs_hz=100.0,
                     folds={}, fold=0, max_epochs=1, seed=0, dataset="synthetic")
    arrays = load_arrays(spec)
    table = dataset.fold_plan(arrays, n_folds=3, seed=0, options={}).table
    return StudySpec(**{**spec.__dict__, "folds": table.as_dict(), **changes})


def test_the_test_fold_is_in_no_search_or_cv_split(synthetic_dirs, tmp_path):
    spec = _spec(synthetic_dirs[0], tmp_path, test_fold=2)
    plain = _spec(synthetic_dirs[0], tmp_path)
    folds = item_folds(load_arrays(plain), spec=plain, dataset=load_dataset("synthetic"))
    test_items = set(np.flatnonzero(folds == 2))
    assert test_items
    for fold in (0, 1):
        train, validation = fold_split(spec, fold=fold)
        assert not test_items & (set(train.indices) | set(validation.indices))
    train, test = final_split(spec)
    assert set(test.indices) == test_items
    assert set(train.indices) == set(np.flatnonzero(folds != 2))


def test_a_test_directory_is_scored_whole_and_every_fold_trains(synthetic_dirs, tmp_path):
    spec = _spec(synthetic_dirs[0], tmp_path, test_dir=str(synthetic_dirs[1]))
    train, test = final_split(spec)
    assert len(train.indices) == len(train.arrays) == 24
    assert test.arrays is not train.arrays and len(test.indices) == len(test.arrays) == 24


def test_without_a_test_set_final_split_says_so(synthetic_dirs, tmp_path):
    with pytest.raises(ValueError, match="holds out no test set"):
        final_split(_spec(synthetic_dirs[0], tmp_path))


def test_a_data_sets_own_held_out_split_replaces_the_test_fold(plan_fields):
    plan = Plan(**plan_fields(test="fold", test_fold=2))
    assert held_out_test(plan, FoldPlan(table=None, unit="group")).test_fold == 2
    ds2 = FoldPlan(table=None, unit="group", held_out=("100", "103"))
    assert held_out_test(plan, ds2).test_fold is None
    assert held_out_test(Plan(**plan_fields(test="none")), ds2).test == "none"


def test_the_test_summary_names_items_as_the_data_set_does():
    from study.tune.held_out_test import final_test_lines, final_test_record

    def lines(name: str) -> list[str]:
        dataset = load_dataset(name)
        record = final_test_record(
            dataset=dataset, test={"source": "fold", "fold": 4, "directory": None,
                                   "n_records": 961},
            trained_on={"n_records": 3840, "epochs": 2},
            candidates=[{"trial_id": "abc", "config": {}, "search_score": 0.5}],
            rows={"abc": {dataset.metric.key: 0.75}}, errors={})
        return final_test_lines(record)

    assert lines("mitdb-beats")[0] == "test set (fold 4, 961 beats), after training on 3840 beats:"
    assert lines("cinc2017")[0].startswith("test set (fold 4, 961 records), after training on")
    assert load_dataset("mitdb-pvc-apb").count(1) == "1 segment"
