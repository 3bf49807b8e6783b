"""MIT-BIH beats: one fixed-length MLII window per annotated beat, AAMI classes, record folds.

Each record's MLII lead is resampled to the data set's rate (125 Hz) once; every beat whose
symbol the AAMI mapping lists becomes one item ``<record>_<beat number>`` of
``window_samples`` samples: from the R peak over ``rr_multiple`` times the record's median RR
interval, zero-padded (option ``window=rpeak``, Kachuee et al. 2018), or centred on the R peak
(``window=centred``). A beat whose window would run past the record's edge is left out, and
the record gets one quarantine line saying how many and where. Items are stored in ADC units
at the data set's ``adc_gain``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import resample_poly

from data_io.errors import DatasetError
from data_io.folds import FoldPlan, grouped_folds, stratified_folds
from data_io.mitdb import MitbihRecord, list_records, read_records
from data_io.preprocess import resample_ratio
from data_io.records import EcgArrays, Quarantined, pack_records

_INT16 = np.iinfo(np.int16)


def check(directory: Path) -> None:
    """Raise `DatasetError` when ``directory`` holds no MIT-BIH record."""
    check_mitdb_directory(directory)


def check_mitdb_directory(directory: Path) -> list[str]:
    """The record names of an MIT-BIH folder, or `DatasetError` naming what is wrong."""
    try:
        names = list_records(directory)
    except FileNotFoundError:
        raise DatasetError(f"MIT-BIH directory {directory} does not exist; download it with "
                           f"`python -m data_io.fetch mitdb --dest {directory}`") from None
    if not names:
        raise DatasetError(f"{directory} holds no MIT-BIH record (no RECORDS file and no .hea "
                           "files); download the database with `python -m data_io.fetch mitdb`")
    return names


def selected_records(directory: Path, *, dataset: Any, options: dict[str, str]) -> list[str]:
    """The records to read: all of the folder but the paced ones unless ``paced=include``."""
    names = check_mitdb_directory(directory)
    if options.get("paced") == "include":
        return names
    paced = set(dataset.facts["paced_records"])
    return [n for n in names if n not in paced]


def symbol_classes(dataset: Any) -> dict[str, int]:
    """Beat symbol -> class index, from the data set's ``aami_classes`` mapping."""
    labels = dataset.labels
    return {symbol: labels.index(label)
            for label, symbols in dataset.facts["aami_classes"].items() for symbol in symbols}


def load(directory: Path, *, dataset: Any, options: dict[str, str], progress: bool) -> EcgArrays:
    """Every mapped beat of every selected record as one window (see the module docstring).

    Raises:
        DatasetError: the folder holds no record, or no beat could be taken from any record.
    """
    records, quarantined = read_records(
        directory=directory, records=selected_records(directory, dataset=dataset,
                                                       options=options))
    facts = dataset.facts
    signals: list[np.ndarray] = []
    ids: list[str] = []
    labels: list[int] = []
    classes_of = symbol_classes(dataset)
    for record in records:
        if facts["lead"] not in record.lead_names:
            quarantined.append(Quarantined(
                record=record.record, reason=f"{record.record}.hea: no lead {facts['lead']} "
                                             f"(leads {', '.join(record.lead_names)})"))
            continue
        windows, numbers, beat_labels, problem = beat_windows(
            record, classes_of=classes_of, fs_hz=dataset.fs_hz,
            window_samples=int(facts["window_samples"]),
            rr_multiple=float(facts["rr_multiple"]), centred=options["window"] == "centred",
            lead=facts["lead"])
        if problem:
            quarantined.append(Quarantined(record=record.record, reason=problem))
        digital = np.clip(np.rint(windows * float(facts["adc_gain"])), _INT16.min, _INT16.max)
        signals.extend(digital.astype(np.int16))
        ids.extend(f"{record.record}_{n:06d}" for n in numbers)
        labels.extend(beat_labels)
    if not ids:
        shown = "; ".join(q.reason for q in quarantined[:3]) or "no mapped beats"
        raise DatasetError(f"no beat of {directory} could be loaded: {shown}")
    return pack_records(digital_signals=signals, record_ids=ids, labels=labels,
                        classes=dataset.labels, fs_hz=dataset.fs_hz,
                        adc_gain=float(facts["adc_gain"]), quarantined=quarantined)


def beat_windows(
    record: MitbihRecord,
    *,
    classes_of: dict[str, int],
    fs_hz: float,
    window_samples: int,
    rr_multiple: float,
    centred: bool,
    lead: str,
) -> tuple[np.ndarray, list[int], list[int], str]:
    """Windows of one record's mapped beats.

    Returns:
        float32 mV windows (n, window_samples), each beat's number among the record's beat
        annotations, its class index, and a problem line ('' when every beat fit).
    """
    up, down = resample_ratio(source_fs_hz=record.fs_hz, target_fs_hz=fs_hz)
    signal = np.nan_to_num(record.lead(lead).astype(np.float64))  # (n_samples,) mV
    x = resample_poly(signal, up, down, padtype="line").astype(np.float32)  # (n_new,)
    peaks = np.rint(record.beat_samples * (up / down)).astype(np.int64)
    rr = np.diff(peaks)
    median_rr = float(np.median(rr)) if rr.size else float(window_samples)
    span = window_samples if centred else min(window_samples, round(rr_multiple * median_rr))
    windows, numbers, labels, near_edge = [], [], [], []
    for n, (peak, symbol) in enumerate(zip(peaks, record.beat_symbols, strict=True)):
        if symbol not in classes_of:
            continue
        start = int(peak) - window_samples // 2 if centred else int(peak)
        if start < 0 or start + span > x.size:
            near_edge.append(int(record.beat_samples[n]))
            continue
        window = np.zeros(window_samples, dtype=np.float32)
        window[:span] = x[start:start + span]
        windows.append(window)
        numbers.append(n)
        labels.append(classes_of[symbol])
    problem = ""
    if near_edge:
        problem = (f"{record.record}.atr: {len(near_edge)} beat(s) too close to the record edge "
                   f"for a {window_samples}-sample window at {fs_hz:g} Hz, left out (at "
                   f"sample(s) {', '.join(map(str, near_edge[:3]))}"
                   f"{', ...' if len(near_edge) > 3 else ''})")
    stacked = np.stack(windows) if windows else np.zeros((0, window_samples), np.float32)
    return stacked, numbers, labels, problem


def fold_plan(arrays: EcgArrays, *, dataset: Any, n_folds: int, seed: int,
              options: dict[str, str]) -> FoldPlan:
    """Record-grouped folds over DS1 with DS2 held out, or (``split=beat-random``) beats dealt
    to stratified folds regardless of their record, with a note on the leakage."""
    groups = [dataset.group_of(i) for i in arrays.record_ids]
    if options.get("split") == "beat-random":
        table = stratified_folds(record_ids=arrays.record_ids, labels=arrays.labels,
                                 n_folds=n_folds, seed=seed)
        shared = sorted(set(groups))
        note = (f"beat-level random split (split=beat-random): beats of each of the "
                f"{len(shared)} records are dealt to several folds, so training and validation "
                "share patients and the scores are optimistic (inter-patient: split=inter-patient)")
        return FoldPlan(table=table, unit="item", notes=(note,))
    train_set = set(dataset.facts["splits"]["DS1"])
    in_train = [g for g in groups if g in train_set]
    held_out = tuple(sorted(set(groups) - train_set))
    if not in_train:
        raise DatasetError(f"none of the records loaded ({', '.join(sorted(set(groups))[:5])}) "
                           "is in DS1 of the inter-patient split; use --data-option "
                           "split=beat-random for other records")
    table = grouped_folds(groups=in_train, n_folds=n_folds, seed=seed)
    notes = ()
    if held_out:
        notes = (f"inter-patient split: {len(held_out)} record(s) outside DS1 held out of the "
                 f"search ({', '.join(held_out[:8])}{', ...' if len(held_out) > 8 else ''})",)
    return FoldPlan(table=table, unit="group", held_out=held_out, notes=notes)
