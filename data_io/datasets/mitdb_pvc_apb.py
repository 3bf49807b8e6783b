"""MIT-BIH PVC-vs-APB segments (`data_io.mitdb.build_segments`) on both leads, record folds.

Segments are cut once on the record's beats (lead-independent) and taken from MLII and the
record's other lead, stacked as two leads. Each record is first filtered as the paper's code
filters it (option ``filter``: noise and baseline wander, `data_io.filters`; ``none`` keeps
the raw signal). Item ids are ``<record>_<segment number>``; the
abnormal-beat mask of each segment is rebuilt on demand by `abnormal_masks` (the same
deterministic cut), so explanation scores use the real annotated beats.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from data_io.datasets.mitdb_beats import check, check_mitdb_directory
from data_io.errors import DatasetError
from data_io.filters import noise_and_baseline
from data_io.folds import FoldPlan, grouped_folds
from data_io.mitdb import BeatSegments, MitbihRecord, build_segments, read_records
from data_io.records import EcgArrays, Quarantined, pack_records

__all__ = ["abnormal_masks", "check", "filtered", "fold_plan", "load", "record_segments"]

ADC_GAIN = 200.0
"""Digital units per mV of the packed segments (MIT-BIH's own gain)."""
_INT16 = np.iinfo(np.int16)


def record_segments(record: MitbihRecord, *, dataset: Any) -> tuple[BeatSegments, np.ndarray]:
    """A record's kept segments and their signals on two leads, (n, samples, 2) mV.

    Raises:
        RecordError: the record lacks the first lead or has a single lead.
    """
    first = dataset.facts["lead"]
    others = [name for name in record.lead_names if name != first]
    if first not in record.lead_names or not others:
        raise ValueError(f"{record.record}.hea: needs lead {first} and a second lead "
                         f"(leads {', '.join(record.lead_names)})")
    samples = int(dataset.facts["segment_samples"])
    segments = build_segments(record, lead=first, max_samples=samples)
    second = build_segments(record, lead=others[0], max_samples=samples)
    return segments, np.stack([segments.signals, second.signals], axis=-1)


def filtered(record: MitbihRecord, *, dataset: Any, options: dict[str, str]) -> MitbihRecord:
    """``record`` with every lead filtered as option ``filter`` names (the data set's
    ``filters``; its default where ``options`` leave it out), or as it is for ``none``."""
    choice = dataset.resolve_options(options)["filter"]
    spec = dataset.facts.get("filters", {}).get(choice)
    if spec is None:
        return record
    return replace(record, signals=noise_and_baseline(record.signals, fs_hz=record.fs_hz,
                                                      spec=spec))


def load(directory: Path, *, dataset: Any, options: dict[str, str], progress: bool) -> EcgArrays:
    """Every kept segment of every readable record, filtered, at the source rate."""
    records, quarantined = read_records(directory=directory,
                                        records=check_mitdb_directory(directory))
    signals, ids, labels = [], [], []
    for record in records:
        record = filtered(record, dataset=dataset, options=options)
        try:
            segments, stacked = record_segments(record, dataset=dataset)
        except ValueError as exc:
            quarantined.append(Quarantined(record=record.record, reason=str(exc)))
            continue
        digital = np.clip(np.rint(stacked * ADC_GAIN), _INT16.min, _INT16.max).astype(np.int16)
        signals.extend(digital)  # (samples, 2) each
        ids.extend(f"{record.record}_{k:04d}" for k in range(len(segments)))
        labels.extend(dataset.labels.index(label) for label in segments.labels)
    if not ids:
        shown = "; ".join(q.reason for q in quarantined[:3]) or "no PVC or APB segment"
        raise DatasetError(f"no segment of {directory} could be built: {shown}")
    return pack_records(digital_signals=signals, record_ids=ids, labels=labels,
                        classes=dataset.labels, fs_hz=record.fs_hz, adc_gain=ADC_GAIN,
                        quarantined=quarantined)


def abnormal_masks(directory: Path, *, dataset: Any, item_ids: list[str]) -> dict[str, np.ndarray]:
    """Per item id its (segment_samples,) uint8 mask of abnormal beats at the source rate."""
    wanted: dict[str, set[int]] = {}
    for item in item_ids:
        record, _, number = item.partition("_")
        wanted.setdefault(record, set()).add(int(number))
    records, _ = read_records(directory=directory, records=sorted(wanted))
    masks = {}
    for record in records:
        segments, _ = record_segments(record, dataset=dataset)
        for k in wanted[record.record]:
            masks[f"{record.record}_{k:04d}"] = segments.masks[k]
    return masks


def fold_plan(arrays: EcgArrays, *, dataset: Any, n_folds: int, seed: int,
              options: dict[str, str]) -> FoldPlan:
    """Folds grouped by record: no record's segments in two folds."""
    groups = [dataset.group_of(i) for i in arrays.record_ids]
    return FoldPlan(table=grouped_folds(groups=groups, n_folds=n_folds, seed=seed),
                    unit="group")
