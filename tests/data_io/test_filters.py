"""The attention-segmenter paper's noise and baseline-wander filtering (data_io.filters)
against its published settings: what passes, what is removed, and no delay."""

from __future__ import annotations

import numpy as np
import pytest

from data_io.datasets import load_dataset
from data_io.filters import kaiser_highpass_taps, noise_and_baseline

FS = 360.0
SPEC = load_dataset("mitdb-pvc-apb").facts["filters"]["lp20-hp4"]


def _sine(freq_hz: float, seconds: float = 20.0) -> np.ndarray:
    return np.sin(2 * np.pi * freq_hz * np.arange(int(seconds * FS)) / FS)


def _amplitude(x: np.ndarray) -> float:
    middle = x[len(x) // 4: 3 * len(x) // 4]  # away from the edge transients
    return float(np.sqrt(2) * middle.std())


def test_the_published_settings_are_the_data_sets_filter():
    # datasets/ecg_utils.py: butter(4, 20 Hz) filtfilt; kaiserord(60 dB, 5 Hz), firwin 4 Hz
    assert SPEC == {"lowpass_hz": 20.0, "lowpass_order": 4, "highpass_hz": 4.0,
                    "highpass_width_hz": 5.0, "highpass_ripple_db": 60.0}
    assert len(kaiser_highpass_taps(fs_hz=FS, cutoff_hz=4.0, width_hz=5.0,
                                    ripple_db=60.0)) == 263


@pytest.mark.parametrize(("freq_hz", "low", "high"), [
    (0.3, 0.0, 0.01),   # baseline wander: removed
    (12.0, 0.95, 1.05),  # QRS band: kept
    (60.0, 0.0, 0.01),   # mains and muscle noise: removed
])
def test_the_band_from_4_to_20_hz_passes_and_the_rest_is_removed(freq_hz, low, high):
    out = noise_and_baseline(_sine(freq_hz)[:, None], fs_hz=FS, spec=SPEC)[:, 0]
    assert low <= _amplitude(out) <= high


def test_the_fir_is_applied_without_delay_so_beats_stay_on_their_annotations():
    # the published lfilter delays by (263 - 1) / 2 = 131 samples; ours must not: a
    # QRS-like pulse keeps its peak on its sample
    t = np.arange(int(10 * FS))
    pulse = np.exp(-0.5 * ((t - 1800) / 4.0) ** 2)  # 11-ms sigma, peak at sample 1800
    out = noise_and_baseline(np.stack([pulse, -pulse], axis=1), fs_hz=FS, spec=SPEC)
    assert int(np.argmax(out[:, 0])) == 1800
    np.testing.assert_allclose(out[:, 1], -out[:, 0], atol=1e-5)  # each lead on its own


def test_invalid_samples_do_not_spread_nan():
    x = _sine(12.0, seconds=5.0)
    x[100] = np.nan
    assert np.isfinite(noise_and_baseline(x[:, None], fs_hz=FS, spec=SPEC)).all()
