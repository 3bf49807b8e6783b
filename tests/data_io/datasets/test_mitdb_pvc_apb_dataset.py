"""mitdb-pvc-apb on synthetic MIT-BIH records: two-lead segments, labels, masks, folds."""

from __future__ import annotations

import numpy as np
import pytest

from data_io.datasets import load_dataset
from data_io.mitdb import load_beat_groups, read_record

SEGMENTS = load_dataset("mitdb-pvc-apb")


def test_segments_hold_two_leads_of_2000_samples_with_one_kind_of_abnormal_beat(mitdb_dir):
    arrays = SEGMENTS.load(mitdb_dir, options={}, progress=False)
    assert arrays.n_leads == 2 and arrays.fs_hz == 360.0
    assert set(arrays.lengths) == {2000}
    assert arrays.signal(0).shape == (2, 2000)
    counts = arrays.class_counts()
    assert counts["PVC"] > 0 and counts["APB"] > 0


def test_masks_cover_the_abnormal_beats_of_their_segment(mitdb_dir):
    arrays = SEGMENTS.load(mitdb_dir, options={}, progress=False)
    ids = list(arrays.record_ids[:6])
    masks = SEGMENTS.module.abnormal_masks(mitdb_dir, dataset=SEGMENTS, item_ids=ids)
    groups = load_beat_groups()
    for item in ids:
        record = item.split("_")[0]
        assert masks[item].shape == (2000,) and masks[item].any()
        full = read_record(directory=mitdb_dir, record=record)
        assert any(groups.group_of[s] != "normal" for s in full.beat_symbols)
        assert 0 < masks[item].mean() < 1  # normal beats are in the segment too


def test_folds_are_grouped_by_record(mitdb_dir):
    arrays = SEGMENTS.load(mitdb_dir, options={}, progress=False)
    plan = SEGMENTS.fold_plan(arrays, n_folds=3, seed=0, options={})
    table = plan.table.as_dict()
    assert set(table) == {SEGMENTS.group_of(i) for i in arrays.record_ids}
    assert plan.unit == "group" and plan.held_out == ()


def test_more_folds_than_records_is_a_clear_error(mitdb_dir):
    from data_io.errors import DatasetError

    arrays = SEGMENTS.load(mitdb_dir, options={}, progress=False)
    with pytest.raises(DatasetError, match="cannot fill 40 folds without splitting one"):
        SEGMENTS.fold_plan(arrays, n_folds=40, seed=0, options={})


@pytest.mark.shared_data
def test_record_100_has_apb_segments_only(shared_mitdb_dir):
    arrays = SEGMENTS.load(shared_mitdb_dir, options={}, progress=False)
    assert arrays.class_counts()["APB"] > 0
    assert np.isfinite(arrays.signals).all()


def test_segments_are_filtered_by_default_and_raw_with_filter_none(mitdb_dir):
    # the paper filters noise and baseline wander; the masks and segments do not move
    default = SEGMENTS.load(mitdb_dir, options={}, progress=False)
    raw = SEGMENTS.load(mitdb_dir, options={"filter": "none"}, progress=False)
    assert default.record_ids == raw.record_ids
    np.testing.assert_array_equal(default.labels, raw.labels)
    assert SEGMENTS.resolve_options({}) == {"filter": "lp20-hp4"}
    assert not np.array_equal(default.signals, raw.signals)
    # a 4 Hz high-pass leaves (nearly) no offset in a segment's real samples
    offsets = [abs(float(default.signal(i)[0][default.signal(i)[0] != 0].mean()))
               for i in range(5)]
    assert max(offsets) < 0.05
