"""Tests for data_io.preprocess: resampling a whole EcgArrays, the normalizer registry and the
normalizers fitted on training records."""

from __future__ import annotations

import numpy as np
import pytest

from data_io.datasets import load_dataset
from data_io.preprocess import (
    NORMALIZERS,
    TrainingZscore,
    fit_normalizer,
    normalizer,
    resample_arrays,
    robust,
    zscore,
)
from data_io.records import EcgArrays, pack_records

CINC_CLASSES = load_dataset("cinc2017").labels

GAIN = 1000.0


def _arrays(signals_mv: list[np.ndarray], *, fs_hz: float) -> EcgArrays:
    return pack_records(
        digital_signals=[np.rint(s * GAIN).astype(np.int16) for s in signals_mv],
        record_ids=[f"A{i:05d}" for i in range(len(signals_mv))],
        labels=[i % len(CINC_CLASSES) for i in range(len(signals_mv))],
        classes=CINC_CLASSES,
        fs_hz=fs_hz,
        adc_gain=GAIN,
    )


def _sine(n: int, *, fs_hz: float, freq_hz: float, amplitude_mv: float = 1.0) -> np.ndarray:
    return amplitude_mv * np.sin(2 * np.pi * freq_hz * np.arange(n) / fs_hz)


def test_resample_300_to_150_halves_lengths_and_keeps_a_5_hz_sine() -> None:
    arrays = _arrays(
        [_sine(3000, fs_hz=300, freq_hz=5), _sine(2701, fs_hz=300, freq_hz=5)], fs_hz=300
    )
    out = resample_arrays(arrays, target_fs_hz=150)

    assert out.fs_hz == 150
    assert out.lengths.tolist() == [1500, 1351]
    assert out.signals.dtype == np.int16
    assert out.record_ids == arrays.record_ids
    assert out.labels.tolist() == arrays.labels.tolist()
    assert out.adc_gain == arrays.adc_gain
    for i in range(len(out)):
        got = out.signal(i)
        want = _sine(len(got), fs_hz=150, freq_hz=5)
        inner = slice(30, -30)  # the FIR's edge transient is a few samples long
        # Same amplitude and phase: a changed frequency would drift far out of this band.
        np.testing.assert_allclose(got[inner], want[inner], atol=0.02)
        assert abs(np.abs(got[inner]).max() - 1.0) < 0.02
        spectrum = np.abs(np.fft.rfft(got))
        assert np.fft.rfftfreq(len(got), d=1 / 150)[spectrum.argmax()] == pytest.approx(5, abs=0.2)


def test_resample_to_a_non_integer_ratio_uses_up_and_down_factors() -> None:
    arrays = _arrays([_sine(3000, fs_hz=300, freq_hz=5)], fs_hz=300)
    out = resample_arrays(arrays, target_fs_hz=250)  # up 5, down 6
    assert out.fs_hz == 250
    assert out.lengths.tolist() == [2500]
    np.testing.assert_allclose(
        out.signal(0)[30:-30], _sine(2500, fs_hz=250, freq_hz=5)[30:-30], atol=0.02
    )


def test_resample_is_the_identity_at_the_same_rate() -> None:
    arrays = _arrays([_sine(300, fs_hz=300, freq_hz=5)], fs_hz=300)
    assert resample_arrays(arrays, target_fs_hz=300.0) is arrays


def test_resample_clips_overshoot_instead_of_wrapping_around() -> None:
    # A full-scale square wave rings (Gibbs) past the int16 range when filtered.
    square = np.where(np.sin(2 * np.pi * 2 * np.arange(3000) / 300) >= 0, 32767, -32767)
    arrays = pack_records(
        digital_signals=[square.astype(np.int16)],
        record_ids=["A00001"],
        labels=[0],
        classes=CINC_CLASSES,
        fs_hz=300,
        adc_gain=GAIN,
    )
    out = resample_arrays(arrays, target_fs_hz=150).digital(0)
    high = square[::2] > 0
    assert out.max() == np.iinfo(np.int16).max
    assert out[high][5:-5].min() > 0  # wrapped-around overshoot would show up as negatives


def test_resample_rejects_non_positive_rates() -> None:
    arrays = _arrays([_sine(300, fs_hz=300, freq_hz=5)], fs_hz=300)
    with pytest.raises(ValueError, match="positive"):
        resample_arrays(arrays, target_fs_hz=0)


def test_resample_progress_bar_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    arrays = _arrays([_sine(300, fs_hz=300, freq_hz=5)] * 3, fs_hz=300)
    resample_arrays(arrays, target_fs_hz=150)
    assert capsys.readouterr().err == ""  # few records: no bar by default
    resample_arrays(arrays, target_fs_hz=150, progress=True)
    captured = capsys.readouterr()
    assert "resample" in captured.err
    assert captured.out == ""


@pytest.mark.parametrize("name", sorted(NORMALIZERS))
def test_every_normalizer_keeps_shape_dtype_and_input(name: str) -> None:
    rng = np.random.default_rng(0)
    x = (rng.normal(size=500) * 0.3 + 1.5).astype(np.float32)
    before = x.copy()
    out = normalizer(name)(x)
    assert out.dtype == np.float32
    assert out.shape == x.shape
    assert out is not x
    np.testing.assert_array_equal(x, before)
    constant = normalizer(name)(np.full(100, 2.0, dtype=np.float32))
    assert np.isfinite(constant).all()


def test_zscore_gives_zero_mean_unit_std_and_zeros_for_a_constant_record() -> None:
    x = (np.random.default_rng(1).normal(size=1000) * 0.4 + 3.0).astype(np.float32)
    out = zscore(x)
    assert abs(float(out.mean())) < 1e-5
    assert float(out.std()) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(zscore(np.full(50, 7.0, dtype=np.float32)), np.zeros(50))


def test_robust_gives_zero_median_unit_iqr_and_ignores_a_spike() -> None:
    x = np.random.default_rng(2).normal(size=1001).astype(np.float32) + 1.0
    out = robust(x)
    q25, median, q75 = np.percentile(out, [25, 50, 75])
    assert median == pytest.approx(0.0, abs=1e-6)
    assert q75 - q25 == pytest.approx(1.0, abs=1e-5)
    spiked = x.copy()
    spiked[500] = 1000.0  # an artefact that would wreck a z-score
    np.testing.assert_allclose(np.delete(robust(spiked), 500), np.delete(out, 500), atol=0.02)
    assert float(zscore(spiked).std()) == pytest.approx(1.0, abs=1e-5)
    assert float(np.abs(np.delete(zscore(spiked), 500)).max()) < 0.2  # squashed by the spike


def test_none_returns_millivolts_unchanged() -> None:
    x = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    np.testing.assert_array_equal(normalizer("none")(x), x)


def test_unknown_normalizer_lists_the_known_names() -> None:
    # the list includes the data-set-wide normalizations fitted on training records
    with pytest.raises(ValueError, match=r"'minmax'.*none, range, robust, train_zscore, "
                                         r"train_zscore_position, zscore"):
        normalizer("minmax")


def test_range_divides_each_lead_by_its_range_without_centring() -> None:
    # datasets/preprocess.py of the attention segmenter: ecg[k] / (ecg[k].max() - ecg[k].min())
    x = np.array([[1.0, 3.0, 2.0], [-2.0, 2.0, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(normalizer("range")(x), [[0.5, 1.5, 1.0], [-0.5, 0.5, 0.0]])


def _two_lead_arrays(signals_mv: list[np.ndarray]) -> EcgArrays:
    # each signal (T, 2) in mV
    return pack_records(
        digital_signals=[np.rint(s * GAIN).astype(np.int16) for s in signals_mv],
        record_ids=[f"r{i}" for i in range(len(signals_mv))], labels=[0] * len(signals_mv),
        classes=("N",), fs_hz=125.0, adc_gain=GAIN)


def test_train_zscore_uses_the_training_records_alone_one_mean_and_std_per_lead() -> None:
    rng = np.random.default_rng(3)
    train = [np.stack([rng.normal(1.0, 0.5, 300), rng.normal(-2.0, 2.0, 300)], axis=1)
             for _ in range(4)]
    far_away = np.full((300, 2), 9.0)  # a validation record: must not move the statistics
    arrays = _two_lead_arrays([*train, far_away])
    fitted = fit_normalizer("train_zscore", arrays=arrays, indices=np.arange(4))
    pooled = np.concatenate([arrays.signal(i) for i in range(4)], axis=1).astype(np.float64)
    assert isinstance(fitted, TrainingZscore) and fitted.mean.shape == (2, 1)
    np.testing.assert_allclose(fitted.mean[:, 0], pooled.mean(axis=1), rtol=1e-9)
    np.testing.assert_allclose(fitted.std[:, 0], pooled.std(axis=1), rtol=1e-9)
    out = np.concatenate([fitted(arrays.signal(i)) for i in range(4)], axis=1)
    np.testing.assert_allclose(out.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=1), 1.0, atol=1e-5)
    # the validation record keeps its offset from the training data: it is not re-centred
    assert float(fitted(arrays.signal(4))[0].mean()) == pytest.approx(
        (9.0 - fitted.mean[0, 0]) / fitted.std[0, 0], rel=1e-4)


def test_train_zscore_position_has_statistics_per_sample_position_as_published() -> None:
    # transform-data.py of the HADLN reproduction: np.mean(train_x, axis=0) over the beats
    rng = np.random.default_rng(4)
    beats = [np.stack([rng.normal(size=187) + np.linspace(0, 3, 187)] * 2, axis=1)
             for _ in range(6)]
    arrays = _two_lead_arrays(beats)
    fitted = fit_normalizer("train_zscore_position", arrays=arrays, indices=np.arange(6))
    stacked = np.stack([arrays.signal(i) for i in range(6)]).astype(np.float64)  # (6, 2, 187)
    np.testing.assert_allclose(fitted.mean, stacked.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(fitted.std, stacked.std(axis=0), rtol=1e-9)
    normalized = np.stack([fitted(arrays.signal(i)) for i in range(6)])
    np.testing.assert_allclose(normalized.mean(axis=0), 0.0, atol=1e-5)
    with pytest.raises(ValueError, match="187-sample items"):
        fitted(np.zeros((2, 100), dtype=np.float32))


def test_fitted_statistics_round_trip_and_per_position_refuses_mixed_lengths() -> None:
    arrays = _two_lead_arrays([np.ones((50, 2)), np.zeros((60, 2))])
    fitted = fit_normalizer("train_zscore", arrays=arrays, indices=np.arange(2))
    again = TrainingZscore.from_stats(fitted.stats())
    x = np.random.default_rng(5).normal(size=(2, 40)).astype(np.float32)
    np.testing.assert_array_equal(again(x), fitted(x))
    with pytest.raises(ValueError, match="one length"):
        fit_normalizer("train_zscore_position", arrays=arrays, indices=np.arange(2))
    with pytest.raises(ValueError, match="fitted on the training records"):
        normalizer("train_zscore")
