"""Tests of the synthetic ECG generator: determinism, lengths, classes, ground truth, physiology."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy.signal import welch

from data_io.datasets import load_dataset
from data_io.synthetic import (
    SyntheticRecord,
    generate_record,
    generate_records,
    load_params,
    mask_writer,
    read_masks,
    record_rng,
    to_digital,
    to_ecg_arrays,
)

CINC_CLASSES = load_dataset("cinc2017").labels
FS_HZ = 300.0
N_PER_CLASS = 12


@pytest.fixture(scope="module")
def by_class() -> dict[str, list[SyntheticRecord]]:
    """Twelve 30 s records of every class."""
    params = load_params()
    return {
        label: [
            generate_record(
                label=label,
                duration_s=30.0,
                fs_hz=FS_HZ,
                rng=record_rng(seed=5, index=i),
                params=params,
            )
            for i in range(N_PER_CLASS)
        ]
        for label in CINC_CLASSES
    }


@pytest.fixture(scope="module")
def dataset() -> dict[str, SyntheticRecord]:
    return generate_records(n_records=400, seed=11, fs_hz=300.0)


def _assert_same(a: SyntheticRecord, b: SyntheticRecord) -> None:
    np.testing.assert_array_equal(a.signal_mv, b.signal_mv)
    np.testing.assert_array_equal(a.abnormal_mask, b.abnormal_mask)
    np.testing.assert_array_equal(a.beat_samples, b.beat_samples)
    assert (a.beat_kinds, a.label, a.fs_hz) == (b.beat_kinds, b.label, b.fs_hz)


def test_same_seed_gives_identical_records_and_a_prefix_of_larger_sets() -> None:
    small = generate_records(n_records=6, seed=7, fs_hz=300.0)
    large = generate_records(n_records=15, seed=7, fs_hz=300.0)
    assert list(small) == [f"S{i:05d}" for i in range(1, 7)]
    assert list(large)[:6] == list(small)
    for record_id, record in small.items():
        _assert_same(record, large[record_id])
    other_seed = generate_records(n_records=6, seed=8, fs_hz=300.0)
    assert not all(np.array_equal(small[k].signal_mv, other_seed[k].signal_mv) for k in small)


def test_records_have_the_documented_types() -> None:
    record = next(iter(generate_records(n_records=1, seed=0, fs_hz=300.0).values()))
    n = record.signal_mv.shape[0]
    assert record.signal_mv.dtype == np.float32
    assert record.abnormal_mask.dtype == np.uint8 and record.abnormal_mask.shape == (n,)
    assert record.beat_samples.dtype == np.int64
    assert len(record.beat_kinds) == record.beat_samples.shape[0]
    assert np.all(np.diff(record.beat_samples) > 0)
    assert np.all((record.beat_samples >= 0) & (record.beat_samples < n))


def test_lengths_are_cinc_like(dataset: dict[str, SyntheticRecord]) -> None:
    durations = np.array([r.duration_s for r in dataset.values()])
    assert durations.min() >= 9.0 and durations.max() <= 61.0
    at_30_s = np.isclose(durations, 30.0)
    assert 0.55 < at_30_s.mean() < 0.85
    others = durations[~at_30_s]
    assert others.min() < 20.0 and others.max() > 50.0  # spread over the range


def test_class_proportions_follow_the_weights(dataset: dict[str, SyntheticRecord]) -> None:
    weights = load_params()["class_weights"]
    counts = Counter(r.label for r in dataset.values())
    n = len(dataset)
    for label, weight in weights.items():
        tolerance = 4 * np.sqrt(weight * (1 - weight) / n)
        assert abs(counts[label] / n - weight) < tolerance, (label, counts)


def test_class_weights_can_be_changed() -> None:
    records = generate_records(n_records=60, seed=2, fs_hz=300.0,
                               class_weights={"A": 1.0, "~": 1.0})
    counts = Counter(r.label for r in records.values())
    assert set(counts) == {"A", "~"} and min(counts.values()) > 15


def test_beat_kinds_match_the_class(by_class: dict[str, list[SyntheticRecord]]) -> None:
    kinds = {
        label: {k for r in records for k in r.beat_kinds} for label, records in by_class.items()
    }
    assert kinds["N"] == kinds["~"] == {"sinus"}
    assert kinds["A"] == {"af"}
    assert kinds["O"] == {"sinus", "pvc", "pac"}
    assert all(set(r.beat_kinds) - {"sinus"} for r in by_class["O"])  # every O record has one


def test_masks_are_zero_without_abnormal_beats(by_class: dict[str, list[SyntheticRecord]]) -> None:
    for record in by_class["N"] + by_class["~"]:
        assert not record.abnormal_mask.any()


def test_masks_cover_exactly_the_ectopic_beats(
    by_class: dict[str, list[SyntheticRecord]],
) -> None:
    for record in by_class["O"]:
        mask = record.abnormal_mask.astype(bool)
        kinds = np.array(record.beat_kinds)
        ectopic = record.beat_samples[kinds != "sinus"]
        assert mask[ectopic].all()
        assert not mask[record.beat_samples[kinds == "sinus"]].any()
        # One masked run per ectopic beat, each a P/QRS-T span (< 0.6 s), not a stretch of
        # rhythm; a run without an R peak is a beat cut by the record's start or end.
        edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        holds_peak = np.array(
            [np.any((ectopic >= s) & (ectopic < e)) for s, e in zip(starts, ends, strict=True)]
        )
        assert holds_peak.sum() == len(ectopic)
        cut = (starts == 0) | (ends == mask.shape[0])
        assert np.all(holds_peak | cut)
        assert np.all(ends - starts < 0.6 * FS_HZ)


def test_af_masks_cover_every_beat(by_class: dict[str, list[SyntheticRecord]]) -> None:
    for record in by_class["A"]:
        assert record.abnormal_mask[record.beat_samples].all()
        assert 0.3 < record.abnormal_mask.mean() < 1.0


def test_beat_samples_mark_r_peaks(by_class: dict[str, list[SyntheticRecord]]) -> None:
    half = int(0.03 * FS_HZ)
    for record in by_class["N"]:
        x = np.abs(record.signal_mv - np.median(record.signal_mv))
        beats = record.beat_samples[(record.beat_samples >= half)]
        beats = beats[beats + half < x.shape[0]]
        peaks = np.array([b - half + np.argmax(x[b - half : b + half]) for b in beats])
        assert np.mean(np.abs(peaks - beats) <= 2) > 0.9


def _rr_cv(record: SyntheticRecord) -> float:
    rr = np.diff(record.beat_samples)
    return float(rr.std() / rr.mean())


def test_af_rr_is_much_more_irregular_than_sinus(
    by_class: dict[str, list[SyntheticRecord]],
) -> None:
    cv_n = [_rr_cv(r) for r in by_class["N"]]
    cv_a = [_rr_cv(r) for r in by_class["A"]]
    assert np.median(cv_a) > 3 * np.median(cv_n)
    assert min(cv_a) > max(cv_n)


def _p_wave_height(record: SyntheticRecord) -> float:
    """Largest deflection 100-240 ms before the R peak in the beat-averaged signal, over QRS.

    Averaging over beats keeps what is locked to the QRS (a P wave) and cancels what is not
    (f-waves); only beats after an RR over 0.6 s are used so the previous T wave stays out.
    NaN when a record (a fast one) has fewer than three such beats.
    """
    x = record.signal_mv.astype(np.float64)
    before, after = int(0.3 * FS_HZ), int(0.1 * FS_HZ)
    beats = record.beat_samples[1:][np.diff(record.beat_samples) > 0.6 * FS_HZ]
    beats = beats[(beats >= before) & (beats + after < x.shape[0])]
    if len(beats) < 3:
        return float("nan")  # fast AF: too few long RR intervals to measure
    average = np.mean([x[b - before : b + after] for b in beats], axis=0)
    t = np.arange(-before, after) / FS_HZ
    baseline = average[(t >= -0.09) & (t <= -0.06)].mean()
    p_window = np.abs(average[(t >= -0.24) & (t <= -0.1)] - baseline).max()
    qrs = np.abs(average[np.abs(t) < 0.02] - baseline).max()
    return float(p_window / qrs)


def test_p_waves_are_absent_in_af(by_class: dict[str, list[SyntheticRecord]]) -> None:
    p_n = np.array([_p_wave_height(r) for r in by_class["N"]])
    p_a = np.array([_p_wave_height(r) for r in by_class["A"]])
    assert min(np.isfinite(p_n).sum(), np.isfinite(p_a).sum()) >= N_PER_CLASS // 2
    assert np.nanmedian(p_n) > 0.08
    assert np.nanmedian(p_a) < np.nanmedian(p_n) / 3


def _band_power(record: SyntheticRecord, *, low_hz: float, high_hz: float) -> float:
    f, psd = welch(record.signal_mv, fs=FS_HZ, nperseg=1024)
    return float(psd[(f >= low_hz) & (f < high_hz)].sum())


@pytest.mark.parametrize(("low_hz", "high_hz"), [(0.0, 1.0), (50.0, 150.0)])
def test_noisy_records_have_more_out_of_band_power(
    by_class: dict[str, list[SyntheticRecord]], low_hz: float, high_hz: float
) -> None:
    power_n = [_band_power(r, low_hz=low_hz, high_hz=high_hz) for r in by_class["N"]]
    power_noisy = [_band_power(r, low_hz=low_hz, high_hz=high_hz) for r in by_class["~"]]
    assert np.median(power_noisy) > 10 * np.median(power_n)


def test_other_sampling_rates_scale_the_record() -> None:
    rng_a, rng_b = record_rng(seed=1, index=0), record_rng(seed=1, index=0)
    low = generate_record(label="N", duration_s=20.0, fs_hz=250.0, rng=rng_a)
    high = generate_record(label="N", duration_s=20.0, fs_hz=500.0, rng=rng_b)
    assert low.signal_mv.shape == (5000,) and high.signal_mv.shape == (10000,)
    # Same draws, so the same beats, at twice the sample index.
    np.testing.assert_allclose(high.beat_samples, 2 * low.beat_samples, atol=1)


def test_to_ecg_arrays_packs_digital_signals() -> None:
    records = generate_records(n_records=5, seed=4, fs_hz=300.0)
    arrays = to_ecg_arrays(records, adc_gain=1000.0)
    assert arrays.record_ids == tuple(records)
    assert arrays.label_names == [r.label for r in records.values()]
    assert arrays.fs_hz == FS_HZ and arrays.adc_gain == 1000.0
    for i, record in enumerate(records.values()):
        expected = np.round(record.signal_mv.astype(np.float64) * 1000.0).astype(np.int16)
        np.testing.assert_array_equal(arrays.digital(i), expected)
        np.testing.assert_allclose(arrays.signal(i), record.signal_mv, atol=0.5e-3 + 1e-6)


def test_to_digital_clips_short_of_the_wfdb_missing_value() -> None:
    digital = to_digital(np.array([100.0, -100.0, 0.0012, -0.0016]), adc_gain=1000.0)
    np.testing.assert_array_equal(digital, np.array([32767, -32767, 1, -2], dtype=np.int16))


def test_masks_round_trip_through_the_archive(tmp_path) -> None:
    masks = {"S00001": np.array([0, 1, 1, 0], np.uint8), "S00002": np.zeros(7, np.uint8)}
    with mask_writer(tmp_path / "MASKS.npz") as add:
        for record_id, mask in masks.items():
            add(record_id, mask)
    read = read_masks(tmp_path)
    assert list(read) == list(masks)
    for record_id, mask in masks.items():
        np.testing.assert_array_equal(read[record_id], mask)
        assert read[record_id].dtype == np.uint8


def test_a_failed_mask_archive_leaves_no_file(tmp_path) -> None:
    with pytest.raises(RuntimeError), mask_writer(tmp_path / "MASKS.npz") as add:
        add("S00001", np.ones(3, np.uint8))
        raise RuntimeError("generation failed")
    assert list(tmp_path.iterdir()) == []


def test_invalid_requests_raise_with_the_known_names() -> None:
    rng = record_rng(seed=0, index=0)
    with pytest.raises(ValueError, match="known labels"):
        generate_record(label="X", duration_s=30.0, fs_hz=FS_HZ, rng=rng)
    with pytest.raises(ValueError, match="fs_hz"):
        generate_record(label="N", duration_s=30.0, fs_hz=50.0, rng=rng)
    with pytest.raises(ValueError, match="known classes"):
        generate_records(n_records=2, seed=0, fs_hz=300.0, class_weights={"AF": 1.0})
    with pytest.raises(ValueError, match="not all 0"):
        generate_records(n_records=2, seed=0, fs_hz=300.0, class_weights={"N": 0.0})
    with pytest.raises(ValueError, match="one sampling rate"):
        to_ecg_arrays({})


def test_parameter_file_is_consistent() -> None:
    params = load_params()
    assert set(params["class_weights"]) == set(CINC_CLASSES)
    assert np.isclose(sum(params["class_weights"].values()), 1.0)
    for kind, beat in params["beats"].items():
        assert set(beat["waves"]) <= set(params["waves"]), kind
    load_params()["waves"].clear()  # a caller's copy, not shared state
    assert load_params()["waves"]
