"""Whole-data-set preprocessing: resampling an `EcgArrays` and per-record normalizers.

Resampling runs once on the stored int16 arrays (so a 150 Hz data set costs half the memory and
half the compute of the 300 Hz original); normalizers run per record on float32 millivolts inside
the batching `Dataset`, after augmentation, so models see the same scale whatever the gain.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from fractions import Fraction
from types import MappingProxyType

import numpy as np
from scipy.signal import resample_poly
from tqdm import tqdm

from data_io.records import EcgArrays

Normalizer = Callable[[np.ndarray], np.ndarray]
"""Maps a float32 record (mV), (T,) or (n_leads, T), to a new float32 record of that shape."""

PROGRESS_MIN_RECORDS = 500
"""`resample_arrays` shows a progress bar above this many records (unless told otherwise)."""

_MAX_DENOMINATOR = 1000
_INT16_MIN, _INT16_MAX = np.iinfo(np.int16).min, np.iinfo(np.int16).max
_EPS = 1e-8  # below this spread a record is treated as constant (no division)


def resample_ratio(*, source_fs_hz: float, target_fs_hz: float) -> tuple[int, int]:
    """Polyphase factors ``(up, down)`` taking ``source_fs_hz`` to (about) ``target_fs_hz``.

    The ratio is approximated with a denominator of at most 1000, which is exact for every rate
    used with CinC 2017 and MIT-BIH (300, 360, 250, 150, 125, 128 Hz...).
    """
    if source_fs_hz <= 0 or target_fs_hz <= 0:
        raise ValueError(
            f"sampling rates must be positive, got {source_fs_hz} -> {target_fs_hz} Hz"
        )
    ratio = Fraction(target_fs_hz / source_fs_hz).limit_denominator(_MAX_DENOMINATOR)
    if ratio == 0:
        raise ValueError(f"cannot resample {source_fs_hz} Hz to {target_fs_hz} Hz")
    return ratio.numerator, ratio.denominator


def resample_arrays(
    arrays: EcgArrays, *, target_fs_hz: float, progress: bool | None = None
) -> EcgArrays:
    """Resample every record of ``arrays`` to ``target_fs_hz``.

    Each record goes through `scipy.signal.resample_poly` (anti-aliasing FIR, edges extended
    along the line through the first and last samples so a baseline offset does not ring), is
    rounded back to int16 digital units and clipped to the int16 range, so the result is an
    ordinary `EcgArrays` that can be cached and memory-mapped like the original.

    Args:
        arrays: the data set to resample.
        target_fs_hz: the wanted sampling rate. The stored ``fs_hz`` of the result is the rate
            actually reached, ``arrays.fs_hz * up / down`` (see `resample_ratio`).
        progress: show a tqdm bar on stderr; None shows it when there are more than
            `PROGRESS_MIN_RECORDS` records.

    Returns:
        ``arrays`` itself when its rate already equals ``target_fs_hz``, otherwise a new
        `EcgArrays` with the same ids, labels, classes, gain and quarantine list.
    """
    if float(arrays.fs_hz) == float(target_fs_hz):
        return arrays
    up, down = resample_ratio(source_fs_hz=arrays.fs_hz, target_fs_hz=target_fs_hz)
    if up == down:
        return arrays
    show = len(arrays) > PROGRESS_MIN_RECORDS if progress is None else progress
    resampled: list[np.ndarray] = []
    for i in tqdm(
        range(len(arrays)),
        desc=f"resample {arrays.fs_hz:g}->{target_fs_hz:g} Hz",
        unit="rec",
        file=sys.stderr,
        disable=not show,
    ):
        digital = arrays.digital(i).astype(np.float64)  # (T,) or (T, n_leads)
        if digital.size == 0:
            resampled.append(np.zeros((0, *digital.shape[1:]), dtype=np.int16))
            continue
        out = resample_poly(digital, up, down, axis=0, padtype="line")
        resampled.append(np.clip(np.rint(out), _INT16_MIN, _INT16_MAX).astype(np.int16))
    lengths = np.array([len(r) for r in resampled], dtype=np.int64)
    offsets = np.zeros(len(resampled) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    signals = (np.concatenate(resampled) if resampled
               else np.zeros((0, *arrays.signals.shape[1:]), dtype=np.int16))
    return EcgArrays(
        signals=signals,
        offsets=offsets,
        record_ids=arrays.record_ids,
        labels=arrays.labels.copy(),
        classes=arrays.classes,
        fs_hz=float(arrays.fs_hz) * up / down,
        adc_gain=arrays.adc_gain,
        quarantined=arrays.quarantined,
    )


def zscore(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit standard deviation per lead (last axis is time); a constant lead
    becomes all zeros."""
    x64 = np.asarray(x, dtype=np.float64)
    if x64.shape[-1] == 0:
        return x64.astype(np.float32)
    centred = x64 - x64.mean(axis=-1, keepdims=True)
    std = centred.std(axis=-1, keepdims=True)
    return np.where(std > _EPS, centred / np.where(std > _EPS, std, 1.0), centred).astype(
        np.float32
    )


def robust(x: np.ndarray) -> np.ndarray:
    """Zero median, unit interquartile range per lead: insensitive to a few huge artefacts or
    R peaks. A lead whose IQR is (nearly) zero is only centred.
    """
    x64 = np.asarray(x, dtype=np.float64)
    if x64.shape[-1] == 0:
        return x64.astype(np.float32)
    q25, median, q75 = np.percentile(x64, [25.0, 50.0, 75.0], axis=-1, keepdims=True)
    centred = x64 - median
    iqr = q75 - q25
    return np.where(iqr > _EPS, centred / np.where(iqr > _EPS, iqr, 1.0), centred).astype(
        np.float32
    )


def identity(x: np.ndarray) -> np.ndarray:
    """No normalization: millivolts as recorded (a float32 copy)."""
    return np.array(x, dtype=np.float32, copy=True)


NORMALIZERS: Mapping[str, Normalizer] = MappingProxyType(
    {"zscore": zscore, "robust": robust, "none": identity}
)
"""Normalizer name (as written in configs) -> function. Read-only."""


def normalizer(name: str) -> Normalizer:
    """The normalizer registered as ``name``.

    Raises:
        ValueError: ``name`` is unknown; the message lists the known names.
    """
    try:
        return NORMALIZERS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown normalization {name!r}; known: {', '.join(sorted(NORMALIZERS))}"
        ) from None
