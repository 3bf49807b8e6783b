"""The Kaggle CSV files of MIT-BIH beats: 187 values and a class index per row.

Each row of ``mitbih_train.csv`` / ``mitbih_test.csv`` is one beat window (Kachuee et al.'s
preprocessing: 125 Hz, amplitudes scaled to [0, 1], zero-padded) followed by its class
0-4 (N, S, V, F, Q). A row with another number of fields, a value that is not a finite number
or a class outside 0-4 is quarantined with a reason naming the file and the row; the rest
still loads. Item ids are ``train_<row>`` and ``test_<row>``; the rows carry no record, so
folds deal beats of the training file (patients on both sides, a note says so) and the test
file is held out.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from data_io.datasets import load_dataset
from data_io.errors import DatasetError
from data_io.folds import FoldPlan, stratified_folds
from data_io.records import EcgArrays, Quarantined, pack_records

_INT16 = np.iinfo(np.int16)


def check(directory: Path) -> None:
    """Raise `DatasetError` unless ``directory`` holds at least the training CSV."""
    files = load_dataset("mitdb-beats-kaggle").facts["files"]
    if not directory.is_dir():
        raise DatasetError(f"Kaggle MIT-BIH directory {directory} does not exist")
    if not (directory / files["train"]).is_file():
        raise DatasetError(f"{directory} has no {files['train']} (the Kaggle 'ECG Heartbeat "
                           f"Categorization' files: {files['train']}, {files['test']})")


def read_rows(path: Path, *, width: int, n_classes: int, prefix: str):
    """Good rows of one CSV as (ids, windows (n, width) float64, labels) and the bad ones."""
    ids, windows, labels, bad = [], [], [], []
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        for row_no, row in enumerate(csv.reader(handle), start=1):
            problem, values = _row_problem(row, width=width, n_classes=n_classes)
            item = f"{prefix}_{row_no:06d}"
            if problem:
                bad.append(Quarantined(record=item, reason=f"{path.name} row {row_no}: {problem}"))
                continue
            ids.append(item)
            windows.append(values[:width])
            labels.append(int(values[width]))
    return ids, windows, labels, bad


def _row_problem(row: list[str], *, width: int, n_classes: int) -> tuple[str, list[float]]:
    if len(row) != width + 1:
        return f"{len(row)} fields, expected {width} values and a class", []
    try:
        values = [float(v) for v in row]
    except ValueError:
        return "a field is not a number", []
    if not all(math.isfinite(v) for v in values):
        return "a value is not finite", []
    label = values[width]
    if label != int(label) or not 0 <= label < n_classes:
        return f"class {row[width]!r} is not one of 0-{n_classes - 1}", []
    return "", values


def load(directory: Path, *, dataset: Any, options: dict[str, str], progress: bool) -> EcgArrays:
    """Every good row of the training and (when present) test file."""
    width = int(dataset.facts["window_samples"])
    gain = float(dataset.facts["adc_gain"])
    ids, signals, labels, quarantined = [], [], [], []
    for prefix, name in dataset.facts["files"].items():
        path = directory / name
        if not path.is_file():
            continue
        rows = read_rows(path, width=width, n_classes=dataset.n_classes, prefix=prefix)
        ids += rows[0]
        signals += [np.clip(np.rint(np.asarray(w) * gain), _INT16.min, _INT16.max)
                    .astype(np.int16) for w in rows[1]]
        labels += rows[2]
        quarantined += rows[3]
    if not ids:
        raise DatasetError(f"no row of the CSV files in {directory} could be read: "
                           + "; ".join(q.reason for q in quarantined[:3]))
    return pack_records(digital_signals=signals, record_ids=ids, labels=labels,
                        classes=dataset.labels, fs_hz=dataset.fs_hz, adc_gain=gain,
                        quarantined=quarantined)


def fold_plan(arrays: EcgArrays, *, dataset: Any, n_folds: int, seed: int,
              options: dict[str, str]) -> FoldPlan:
    """Stratified beat-level folds over the training file; the test file held out."""
    train = np.array([dataset.group_of(i) == "train" for i in arrays.record_ids])
    table = stratified_folds(record_ids=[arrays.record_ids[i] for i in np.flatnonzero(train)],
                             labels=arrays.labels[train], n_folds=n_folds, seed=seed)
    note = ("Kaggle beat files carry no record ids: folds deal beats at random, so training "
            "and validation share patients and scores are optimistic (use mitdb-beats on the "
            "WFDB records for inter-patient folds)")
    held = ("test",) if (~train).any() else ()
    return FoldPlan(table=table, unit="item", held_out=held, notes=(note,))
