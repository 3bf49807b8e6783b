"""Whole-data-set preprocessing: resampling an `EcgArrays`, per-record normalizers and
normalizers fitted on the training records.

Resampling runs once on the stored int16 arrays (so a 150 Hz data set costs half the memory and
half the compute of the 300 Hz original); normalizers run per record on float32 millivolts inside
the batching `Dataset`, after augmentation, so models see the same scale whatever the gain.
A per-record normalizer (`NORMALIZERS`) looks at the record alone; a data-set-wide one
(`FITTED_NORMALIZERS`, the HADLN reproduction's z-score) subtracts a mean and divides by a
standard deviation computed once over the training records, so it is fitted on the training
split (`fit_normalizer`) and its statistics travel with the trained model (`TrainingZscore`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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


def amplitude_range(x: np.ndarray) -> np.ndarray:
    """Each lead divided by its range (max - min), not centred: the attention-segmenter
    code's amplitude scaling (``datasets/preprocess.py``, ``normalize_ecg``). A lead whose
    range is (nearly) zero is left as it is."""
    x64 = np.asarray(x, dtype=np.float64)
    if x64.shape[-1] == 0:
        return x64.astype(np.float32)
    spread = x64.max(axis=-1, keepdims=True) - x64.min(axis=-1, keepdims=True)
    return (x64 / np.where(spread > _EPS, spread, 1.0)).astype(np.float32)


def identity(x: np.ndarray) -> np.ndarray:
    """No normalization: millivolts as recorded (a float32 copy)."""
    return np.array(x, dtype=np.float32, copy=True)


NORMALIZERS: Mapping[str, Normalizer] = MappingProxyType(
    {"zscore": zscore, "robust": robust, "range": amplitude_range, "none": identity}
)
"""Normalizer name (as written in configs) -> function. Read-only."""


@dataclass(frozen=True)
class TrainingZscore:
    """Z-score with statistics of the training records: ``(x - mean) / std`` per lead, with
    one mean and standard deviation per lead (over every sample of every training record) or
    per lead and sample position (fixed-length items: the HADLN reproduction's
    ``transform-data.py``, ``np.mean(train_x, axis=0)``). Where a standard deviation is
    (nearly) zero the values are only centred.

    Attributes:
        mean: float64 (n_leads, 1), or (n_leads, n_samples) per position.
        std: same shape as ``mean``.
    """

    mean: np.ndarray
    std: np.ndarray

    @property
    def per_position(self) -> bool:
        return self.mean.shape[-1] > 1

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """A float32 record (T,) or (n_leads, T) -> the same shape, normalized."""
        x64 = np.asarray(x, dtype=np.float64)
        leads = x64.reshape(-1, x64.shape[-1])  # (n_leads, T)
        if leads.shape[0] != self.mean.shape[0]:
            raise ValueError(f"a record of {leads.shape[0]} lead(s); the statistics were "
                             f"fitted on {self.mean.shape[0]}")
        if self.per_position and leads.shape[-1] != self.mean.shape[-1]:
            raise ValueError(f"a record of {leads.shape[-1]} samples; the per-position "
                             f"statistics were fitted on {self.mean.shape[-1]}-sample items")
        std = np.where(self.std > _EPS, self.std, 1.0)
        return ((leads - self.mean) / std).reshape(x64.shape).astype(np.float32)

    def stats(self) -> dict[str, list[list[float]]]:
        """The statistics as JSON-able lists (`from_stats` reads them back)."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_stats(cls, stats: Mapping[str, Sequence[Sequence[float]]]) -> TrainingZscore:
        mean = np.asarray(stats["mean"], dtype=np.float64)
        std = np.asarray(stats["std"], dtype=np.float64)
        if mean.ndim != 2 or mean.shape != std.shape:
            raise ValueError(f"normalization statistics need mean and std of one shape "
                             f"(n_leads, 1 or n_samples), got {mean.shape} and {std.shape}")
        return cls(mean=mean, std=std)


def _fit_zscore(arrays: EcgArrays, indices: np.ndarray, *, per_position: bool) -> TrainingZscore:
    if len(indices) == 0:
        raise ValueError("a data-set-wide normalization needs at least one training record")
    lengths = arrays.lengths[indices]
    if per_position and len(set(lengths.tolist())) > 1:
        raise ValueError(
            f"per-position statistics need items of one length; these have "
            f"{int(lengths.min())}-{int(lengths.max())} samples (use train_zscore)")
    total = total_sq = 0.0
    for index in indices:
        leads = np.asarray(arrays.signal(int(index)), dtype=np.float64).reshape(
            arrays.n_leads, -1)  # (n_leads, T)
        if per_position:
            total, total_sq = total + leads, total_sq + leads**2
        else:
            total = total + leads.sum(axis=-1, keepdims=True)
            total_sq = total_sq + (leads**2).sum(axis=-1, keepdims=True)
    count = len(indices) if per_position else int(lengths.sum())
    mean = np.asarray(total) / count
    variance = np.maximum(np.asarray(total_sq) / count - mean**2, 0.0)
    return TrainingZscore(mean=mean, std=np.sqrt(variance))


def train_zscore(arrays: EcgArrays, indices: np.ndarray) -> TrainingZscore:
    """One mean and standard deviation per lead over every sample of the records ``indices``."""
    return _fit_zscore(arrays, indices, per_position=False)


def train_zscore_position(arrays: EcgArrays, indices: np.ndarray) -> TrainingZscore:
    """One mean and standard deviation per lead and sample position over the records
    ``indices`` (all of one length)."""
    return _fit_zscore(arrays, indices, per_position=True)


FITTED_NORMALIZERS: Mapping[str, Callable[[EcgArrays, np.ndarray], TrainingZscore]] = (
    MappingProxyType({"train_zscore": train_zscore, "train_zscore_position": train_zscore_position})
)
"""Normalization name -> fit on (arrays, training indices). Read-only."""

NORMALIZATION_NAMES: frozenset[str] = frozenset(NORMALIZERS) | frozenset(FITTED_NORMALIZERS)
"""Every name a config's ``data.normalization`` may take."""


def normalizer(name: str) -> Normalizer:
    """The per-record normalizer registered as ``name``.

    Raises:
        ValueError: ``name`` is unknown (the message lists the known names), or is fitted on
            training records (`fit_normalizer` builds those).
    """
    if name in FITTED_NORMALIZERS:
        raise ValueError(f"normalization {name!r} is fitted on the training records: build it "
                         "with fit_normalizer (or TrainingZscore.from_stats)")
    try:
        return NORMALIZERS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown normalization {name!r}; known: {', '.join(sorted(NORMALIZATION_NAMES))}"
        ) from None


def fit_normalizer(name: str, *, arrays: EcgArrays, indices: np.ndarray) -> Normalizer:
    """The normalizer ``name``: fitted on records ``indices`` of ``arrays`` (the training
    split) when it is data-set-wide, the per-record function otherwise."""
    if name in FITTED_NORMALIZERS:
        return FITTED_NORMALIZERS[name](arrays, np.asarray(indices, dtype=np.int64))
    return normalizer(name)
