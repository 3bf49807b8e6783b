"""In-memory form of a loaded ECG data set: one flat int16 signal array plus offsets.

Every reader (CinC 2017 directory, cache, synthetic generator) produces an `EcgArrays`, so
batching, folds and the trainer see one shape of data whatever its source. Signals stay in
digital (ADC) units as int16, which is what the files hold and what the cache memory-maps;
`signal(i)` converts one record to millivolts on demand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Quarantined:
    """A record left out of a load, with a reason that names the file and the problem."""

    record: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"record": self.record, "reason": self.reason}


@dataclass(frozen=True)
class EcgArrays:
    """Variable-length records (one or several leads) packed into one int16 array.

    Attributes:
        signals: all records concatenated along time, digital units, shape (total_samples,)
            for single-lead data or (total_samples, n_leads).
        offsets: record i is ``signals[offsets[i]:offsets[i + 1]]``, shape (n + 1,).
        record_ids: record names, e.g. ``"A00001"``, in storage order.
        labels: class index per record into ``classes``, shape (n,).
        classes: label alphabet, in class-index order (from the data set's definition).
        fs_hz: sampling rate of every record.
        adc_gain: digital units per millivolt (the WFDB header's gain).
        quarantined: records that failed validation and are not in the arrays.
    """

    signals: np.ndarray
    offsets: np.ndarray
    record_ids: tuple[str, ...]
    labels: np.ndarray
    classes: tuple[str, ...]
    fs_hz: float
    adc_gain: float
    quarantined: tuple[Quarantined, ...] = field(default=())

    def __post_init__(self) -> None:
        n = len(self.record_ids)
        if self.offsets.shape != (n + 1,):
            raise ValueError(f"offsets must have {n + 1} entries, got {self.offsets.shape}")
        if self.labels.shape != (n,):
            raise ValueError(f"labels must have {n} entries, got {self.labels.shape}")
        if n and int(self.offsets[-1]) != self.signals.shape[0]:
            raise ValueError("the last offset must equal the number of stored samples")

    def __len__(self) -> int:
        return len(self.record_ids)

    @property
    def n_leads(self) -> int:
        return 1 if self.signals.ndim == 1 else int(self.signals.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        """Samples per record, shape (n,)."""
        return np.diff(self.offsets)

    @property
    def label_names(self) -> list[str]:
        return [self.classes[k] for k in self.labels]

    def digital(self, index: int) -> np.ndarray:
        """Record ``index`` in digital units (a view into ``signals``, no copy)."""
        return self.signals[self.offsets[index] : self.offsets[index + 1]]

    def signal(self, index: int) -> np.ndarray:
        """Record ``index`` in millivolts as float32: (T,) single-lead, else (n_leads, T)."""
        mv = self.digital(index).astype(np.float32) / np.float32(self.adc_gain)
        return mv if mv.ndim == 1 else mv.T

    def index_of(self, record_id: str) -> int:
        try:
            return self.record_ids.index(record_id)
        except ValueError:
            raise KeyError(f"record {record_id!r} is not in this data set") from None

    def class_counts(self) -> dict[str, int]:
        """Records per class name, every class listed (zero when absent)."""
        counts = np.bincount(self.labels, minlength=len(self.classes))
        return {name: int(c) for name, c in zip(self.classes, counts, strict=True)}

    def subset(self, indices: np.ndarray | list[int]) -> EcgArrays:
        """A new `EcgArrays` holding only ``indices`` (copied into a compact array)."""
        indices = np.asarray(indices, dtype=np.int64)
        lengths = self.lengths[indices]
        offsets = np.zeros(len(indices) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        signals = np.empty((int(offsets[-1]), *self.signals.shape[1:]), dtype=self.signals.dtype)
        for out_i, src_i in enumerate(indices):
            signals[offsets[out_i] : offsets[out_i + 1]] = self.digital(int(src_i))
        return EcgArrays(
            signals=signals,
            offsets=offsets,
            record_ids=tuple(self.record_ids[i] for i in indices),
            labels=self.labels[indices].copy(),
            classes=self.classes,
            fs_hz=self.fs_hz,
            adc_gain=self.adc_gain,
            quarantined=self.quarantined,
        )


def pack_records(
    *,
    digital_signals: list[np.ndarray],
    record_ids: list[str],
    labels: list[int],
    classes: tuple[str, ...],
    fs_hz: float,
    adc_gain: float,
    quarantined: list[Quarantined] | tuple[Quarantined, ...] = (),
) -> EcgArrays:
    """Concatenate per-record int16 arrays, (T,) or (T, n_leads) each, into an `EcgArrays`."""
    lengths = np.array([len(s) for s in digital_signals], dtype=np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    signals = (
        np.concatenate(digital_signals).astype(np.int16, copy=False)
        if digital_signals
        else np.zeros(0, dtype=np.int16)
    )
    return EcgArrays(
        signals=signals,
        offsets=offsets,
        record_ids=tuple(record_ids),
        labels=np.asarray(labels, dtype=np.int64),
        classes=classes,
        fs_hz=float(fs_hz),
        adc_gain=float(adc_gain),
        quarantined=tuple(quarantined),
    )
