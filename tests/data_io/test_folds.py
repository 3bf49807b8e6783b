"""Stratified folds stored as a `record,fold` table."""

from __future__ import annotations

import numpy as np
import pytest

from data_io.cinc2017 import load_cinc2017
from data_io.errors import DatasetError
from data_io.folds import (
    check_holdout,
    fold_split,
    folds_for,
    read_folds,
    stratified_folds,
    write_folds,
)


def _labels(counts: dict[int, int], seed: int = 3) -> tuple[list[str], np.ndarray]:
    labels = np.concatenate([np.full(n, k) for k, n in counts.items()])
    labels = np.random.default_rng(seed).permutation(labels)
    return [f"R{i:05d}" for i in range(len(labels))], labels


def _assert_stratified(table, labels_by_id: dict[str, int], n_folds: int) -> None:
    folds = np.array(table.folds)
    labels = np.array([labels_by_id[r] for r in table.record_ids])
    for label in np.unique(labels):
        share = np.count_nonzero(labels == label) / n_folds
        per_fold = np.bincount(folds[labels == label], minlength=n_folds)
        assert np.all(np.abs(per_fold - share) < 1.0), (label, per_fold, share)
    sizes = np.bincount(folds, minlength=n_folds)
    assert sizes.max() - sizes.min() <= 1


@pytest.mark.parametrize("n_folds", [2, 5, 8, 10])
def test_each_class_within_one_record_of_its_share(n_folds):
    ids, labels = _labels({0: 1784, 1: 299, 2: 817, 3: 100})
    table = stratified_folds(record_ids=ids, labels=labels, n_folds=n_folds, seed=0)
    _assert_stratified(table, dict(zip(ids, labels, strict=True)), n_folds)


def test_same_seed_same_folds_whatever_the_input_order():
    ids, labels = _labels({0: 50, 1: 11, 2: 23, 3: 5})
    order = np.random.default_rng(1).permutation(len(ids))
    a = stratified_folds(record_ids=ids, labels=labels, seed=4)
    b = stratified_folds(record_ids=[ids[i] for i in order], labels=labels[order], seed=4)
    c = stratified_folds(record_ids=ids, labels=labels, seed=5)
    assert a == b
    assert a.sha256() == b.sha256()
    assert a.folds != c.folds


def test_round_trip_through_csv(tmp_path):
    ids, labels = _labels({0: 30, 1: 9})
    table = stratified_folds(record_ids=ids, labels=labels, n_folds=4)
    write_folds(tmp_path / "folds.csv", table)
    assert (tmp_path / "folds.csv").read_text().startswith("record,fold\n")
    assert read_folds(tmp_path / "folds.csv") == table


def test_bad_tables_are_reported_with_file_and_line(tmp_path):
    path = tmp_path / "folds.csv"
    path.write_text("record,fold\nA1,0\nA2,x\n")
    with pytest.raises(DatasetError, match=r"folds\.csv line 3"):
        read_folds(path)
    path.write_text("A1,0\n")
    with pytest.raises(DatasetError, match="header"):
        read_folds(path)


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="at least 2"):
        stratified_folds(record_ids=["a", "b"], labels=[0, 1], n_folds=1)
    with pytest.raises(ValueError, match="unique"):
        stratified_folds(record_ids=["a", "a"], labels=[0, 1], n_folds=2)


def test_fold_split_partitions_a_loaded_set(small_cinc):
    directory, _ = small_cinc
    arrays = load_cinc2017(directory, progress=False)
    table = folds_for(arrays, n_folds=4, seed=0)
    seen = []
    for fold in range(4):
        split = fold_split(arrays, table, fold=fold)
        assert set(split.train).isdisjoint(split.val)
        assert len(split.train) + len(split.val) == len(arrays)
        seen.extend(split.val.tolist())
    assert sorted(seen) == list(range(len(arrays)))
    with pytest.raises(DatasetError, match="fold 4 does not exist"):
        fold_split(arrays, table, fold=4)
    other = stratified_folds(record_ids=["Z1", "Z2"], labels=[0, 1], n_folds=2)
    with pytest.raises(DatasetError, match="no fold"):
        fold_split(arrays, other, fold=0)


def test_holdout_refuses_shared_records(make_cinc):
    a, _ = make_cinc("a", n_records=4)
    b, _ = make_cinc("b", n_records=4)
    train, evaluation = load_cinc2017(a, progress=False), load_cinc2017(b, progress=False)
    with pytest.raises(DatasetError, match="both the training and the evaluation"):
        check_holdout(train, evaluation)
    check_holdout(train, evaluation.subset([]))


def test_shared_records_give_eight_stratified_folds(shared_cinc_dir):
    arrays = load_cinc2017(shared_cinc_dir, progress=False)
    table = folds_for(arrays)
    assert table.n_folds == 8
    _assert_stratified(table, dict(zip(arrays.record_ids, arrays.labels, strict=True)), 8)
    assert table == folds_for(arrays)
