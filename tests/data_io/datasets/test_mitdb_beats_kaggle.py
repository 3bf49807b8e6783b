"""The Kaggle CSV reader: good rows load, malformed rows are quarantined naming file and row."""

from __future__ import annotations

import numpy as np
import pytest

from data_io.datasets import load_dataset
from data_io.errors import DatasetError

KAGGLE = load_dataset("mitdb-beats-kaggle")


def write_csv(path, rows):
    path.write_text("\n".join(",".join(str(v) for v in row) for row in rows) + "\n")


def good_row(label: int, seed: int) -> list:
    values = np.random.default_rng(seed).random(187).round(6).tolist()
    return [*values, f"{label:.1f}"]


def test_rows_load_and_bad_rows_are_quarantined_with_file_and_row(tmp_path):
    rows = [good_row(k % 5, k) for k in range(10)]
    rows[3] = [*rows[3][:-2], "0.0"]  # one value short
    rows[5] = [*rows[5][:-1], "7.0"]  # unknown class
    rows[7] = ["x", *rows[7][1:]]  # not a number
    write_csv(tmp_path / "mitbih_train.csv", rows)
    write_csv(tmp_path / "mitbih_test.csv", [good_row(1, 99), good_row(2, 98)])
    arrays = KAGGLE.load(tmp_path, options={}, progress=False)
    reasons = [q.reason for q in arrays.quarantined]
    assert reasons == ["mitbih_train.csv row 4: 187 fields, expected 187 values and a class",
                       "mitbih_train.csv row 6: class '7.0' is not one of 0-4",
                       "mitbih_train.csv row 8: a field is not a number"]
    assert len(arrays) == 7 + 2 and set(arrays.lengths) == {187}
    assert arrays.record_ids[0] == "train_000001"
    np.testing.assert_allclose(arrays.signal(0), np.asarray(rows[0][:187], float), atol=1e-4)
    plan = KAGGLE.fold_plan(arrays, n_folds=2, seed=0, options={})
    assert plan.unit == "item" and plan.held_out == ("test",)
    assert len(plan.table.record_ids) == 7 and "share patients" in plan.notes[0]


def test_a_directory_without_the_training_file_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match=r"has no mitbih_train\.csv"):
        KAGGLE.check(tmp_path)
