"""Noise and baseline-wander filters of whole records, as the attention-segmenter paper's code
applies them before classifying MIT-BIH segments.

The published code (``datasets/ecg_utils.py``: ``lp_filter`` then ``baseline_fix``) low-passes
each lead with a 4th-order Butterworth filter at 20 Hz run forwards and backwards
(``filtfilt``, zero phase) and then removes the baseline with a Kaiser-window FIR high-pass at
4 Hz (60 dB stop-band attenuation, 5 Hz transition). It applies that FIR causally
(``lfilter``), which delays the signal by half the filter's length (131 samples, 0.36 s at
360 Hz) against its beat annotations; here the FIR is applied centred (the same magnitude
response, no delay), so segments, masks and beats stay aligned. Filter settings are data,
named in the data set's facts (``filters``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import signal


def butterworth_lowpass(x: np.ndarray, *, fs_hz: float, cutoff_hz: float, order: int) -> np.ndarray:
    """Zero-phase Butterworth low-pass along the first axis of x (T,) or (T, leads)."""
    b, a = signal.butter(order, cutoff_hz / (fs_hz / 2), "low")
    return signal.filtfilt(b, a, x, axis=0)


def kaiser_highpass_taps(*, fs_hz: float, cutoff_hz: float, width_hz: float,
                         ripple_db: float) -> np.ndarray:
    """Taps of the Kaiser-window FIR high-pass (``scipy.signal.kaiserord`` + ``firwin``);
    an even length is made odd, as a high-pass FIR must be (at 360 Hz it is odd already)."""
    nyquist = fs_hz / 2
    n_taps, beta = signal.kaiserord(ripple_db, width_hz / nyquist)
    n_taps += 1 - n_taps % 2
    return signal.firwin(n_taps, cutoff_hz / nyquist, window=("kaiser", beta), pass_zero=False)


def centred_fir(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Apply symmetric FIR ``taps`` (odd length) along the first axis without delay: the
    causal output shifted back by (len(taps) - 1) / 2 samples, zeros beyond either end."""
    columns = x.reshape(x.shape[0], -1)
    out = np.stack([np.convolve(column, taps, mode="same") for column in columns.T], axis=1)
    return out.reshape(x.shape)


def noise_and_baseline(x: np.ndarray, *, fs_hz: float, spec: Mapping[str, Any]) -> np.ndarray:
    """The published noise and baseline-wander filtering of one record (T,) or (T, leads) in
    mV; NaN samples (invalid in the record) are read as 0 before filtering.

    Args:
        x: the record.
        fs_hz: its sampling rate.
        spec: ``lowpass_hz``, ``lowpass_order``, ``highpass_hz``, ``highpass_width_hz``,
            ``highpass_ripple_db`` (the data set's ``filters`` entry).
    """
    clean = np.nan_to_num(np.asarray(x, dtype=np.float64))
    low = butterworth_lowpass(clean, fs_hz=fs_hz, cutoff_hz=float(spec["lowpass_hz"]),
                              order=int(spec["lowpass_order"]))
    taps = kaiser_highpass_taps(fs_hz=fs_hz, cutoff_hz=float(spec["highpass_hz"]),
                                width_hz=float(spec["highpass_width_hz"]),
                                ripple_db=float(spec["highpass_ripple_db"]))
    return centred_fir(low, taps).astype(np.float32)
