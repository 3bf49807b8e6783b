"""Your own records as NumPy arrays (`data_io.numpy_records`), stratified record folds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from data_io.datasets import load_dataset
from data_io.datasets.cinc2017 import fold_plan
from data_io.numpy_records import check_folder, load_numpy_records
from data_io.records import EcgArrays

__all__ = ["check", "fold_plan", "load"]


def check(directory: Path) -> None:
    """Raise `DatasetError` when ``directory`` cannot be a NumPy record folder."""
    check_folder(directory, label_files=tuple(load_dataset("numpy-records").facts["label_files"]))


def load(directory: Path, *, dataset: Any, options: dict[str, str], progress: bool) -> EcgArrays:
    """Every valid record at the rate its ``records.json`` gives (bad ones quarantined)."""
    return load_numpy_records(directory, classes=dataset.labels,
                              label_files=tuple(dataset.facts["label_files"]),
                              min_record_s=float(dataset.facts["min_record_s"]),
                              progress=progress)
