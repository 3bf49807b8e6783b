"""mitdb-beats on synthetic MIT-BIH records: windows, AAMI classes, bad input, folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb

from data_io.cache import load_cached
from data_io.datasets import load_dataset
from data_io.errors import DatasetError
from data_io.mitdb import read_record
from data_io.synthetic_mitdb import load_params, synthetic_record

BEATS = load_dataset("mitdb-beats")


def load(directory: Path, **options):
    return BEATS.load(directory, options=BEATS.resolve_options(options), progress=False)


def test_every_mapped_beat_is_one_187_sample_window_of_its_aami_class(mitdb_dir):
    arrays = load(mitdb_dir)
    assert arrays.fs_hz == 125.0 and arrays.n_leads == 1
    assert set(arrays.lengths) == {187}
    expected = dict.fromkeys(BEATS.labels, 0)
    near_edge = 0
    for name in sorted({BEATS.group_of(i) for i in arrays.record_ids}):
        record = read_record(directory=mitdb_dir, record=name)
        for symbol in record.beat_symbols:
            label = next(k for k, v in BEATS.facts["aami_classes"].items() if symbol in v)
            expected[label] += 1
    for q in arrays.quarantined:
        near_edge += int(q.reason.split(": ")[1].split(" ")[0])
    counts = arrays.class_counts()
    assert sum(counts.values()) + near_edge == sum(expected.values())
    assert counts["S"] > 0 and counts["V"] > 0 and counts["F"] > 0 and counts["Q"] > 0


def test_rpeak_windows_start_at_the_r_peak_and_are_zero_padded(mitdb_dir):
    arrays = load(mitdb_dir)
    window = arrays.signal(0)
    assert np.argmax(np.abs(window[:10])) <= 2  # the R peak opens the window
    rr = np.median(np.diff(read_record(directory=mitdb_dir, record="101").beat_samples)) / 360
    span = round(1.2 * rr * 125)
    assert span < 187 and np.all(window[span:] == 0) and np.any(window[:span] != 0)


def test_centred_windows_put_the_r_peak_in_the_middle(mitdb_dir):
    arrays = load(mitdb_dir, window="centred")
    peaks = [int(np.argmax(arrays.signal(i))) for i in range(50)
             if arrays.labels[i] == BEATS.labels.index("N")]
    assert abs(np.median(peaks) - 93) <= 2


def test_beats_too_close_to_the_edge_are_left_out_with_a_line_naming_the_file(mitdb_dir):
    arrays = load(mitdb_dir, window="centred")
    reasons = [q.reason for q in arrays.quarantined]
    assert reasons and all(".atr: " in r and "too close to the record edge" in r for r in reasons)


def test_paced_records_are_excluded_unless_asked_for(mitdb_dir):
    signals, peaks, symbols = synthetic_record(index=0, seed=9, params=load_params())
    wfdb.wrsamp("102", fs=360.0, units=["mV", "mV"], sig_name=["MLII", "V5"], p_signal=signals,
                fmt=["212", "212"], adc_gain=[200.0, 200.0], baseline=[1024, 1024],
                write_dir=str(mitdb_dir))
    wfdb.wrann("102", "atr", peaks, symbol=["/"] * len(symbols), write_dir=str(mitdb_dir))
    (mitdb_dir / "RECORDS").unlink()  # list the .hea files instead
    default = load(mitdb_dir)
    assert "102" not in {BEATS.group_of(i) for i in default.record_ids}
    paced = load(mitdb_dir, paced="include")
    assert "102" in {BEATS.group_of(i) for i in paced.record_ids}
    assert paced.class_counts()["Q"] > default.class_counts()["Q"]


def test_missing_and_truncated_annotations_quarantine_one_record(mitdb_dir):
    (mitdb_dir / "101.atr").unlink()
    atr = mitdb_dir / "106.atr"
    atr.write_bytes(atr.read_bytes()[:7])
    arrays = load(mitdb_dir)
    reasons = {q.record: q.reason for q in arrays.quarantined}
    assert "101.atr" in reasons["101"] and "not found" in reasons["101"]
    assert "106.atr" in reasons["106"]
    assert {"101", "106"}.isdisjoint({BEATS.group_of(i) for i in arrays.record_ids})
    assert len(arrays) > 0  # the rest still loads


def test_a_directory_without_records_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="holds no MIT-BIH record"):
        BEATS.check(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        BEATS.check(tmp_path / "nowhere")


def test_inter_patient_folds_never_split_a_record(mitdb_dir):
    arrays = load(mitdb_dir)
    plan = BEATS.fold_plan(arrays, n_folds=3, seed=0, options=BEATS.resolve_options({}))
    assert plan.unit == "group"
    table = plan.table.as_dict()
    groups = {BEATS.group_of(i) for i in arrays.record_ids}
    assert set(table) == groups & set(BEATS.facts["splits"]["DS1"])
    assert sorted(set(table.values())) == [0, 1, 2]


def test_beat_random_split_says_patients_are_on_both_sides(mitdb_dir):
    arrays = load(mitdb_dir)
    plan = BEATS.fold_plan(arrays, n_folds=3, seed=0,
                           options=BEATS.resolve_options({"split": "beat-random"}))
    assert plan.unit == "item" and len(plan.table.record_ids) == len(arrays)
    assert "share patients" in plan.notes[0]


def test_cache_keeps_options_apart(mitdb_dir, tmp_path):
    rpeak = load_cached("mitdb-beats", mitdb_dir, fs_hz=125.0, cache_dir=tmp_path / "c",
                        progress=False)
    centred = load_cached("mitdb-beats", mitdb_dir, fs_hz=125.0, cache_dir=tmp_path / "c",
                          options={"window": "centred"}, progress=False)
    assert not np.array_equal(rpeak.signal(0), centred.signal(0))
    again = load_cached("mitdb-beats", mitdb_dir, fs_hz=125.0, cache_dir=tmp_path / "c",
                        progress=False)
    np.testing.assert_array_equal(again.signals, rpeak.signals)


@pytest.mark.shared_data
def test_record_100(shared_mitdb_dir):
    arrays = load(shared_mitdb_dir)
    assert arrays.class_counts() == {"N": 2237, "S": 33, "V": 1, "F": 0, "Q": 0}
    assert [q.record for q in arrays.quarantined] == ["100"]  # two beats at the edges
