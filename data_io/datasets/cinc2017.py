"""CinC 2017: records read by `data_io.cinc2017`, stratified record folds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from data_io.cinc2017 import checked_listing, load_cinc2017
from data_io.folds import FoldPlan, stratified_folds
from data_io.records import EcgArrays


def check(directory: Path) -> None:
    """Raise `DatasetError` when ``directory`` cannot be a CinC directory."""
    checked_listing(directory)


def load(directory: Path, *, dataset: Any, options: dict[str, str], progress: bool) -> EcgArrays:
    """Every valid record at the source rate (bad ones quarantined)."""
    return load_cinc2017(directory, classes=dataset.labels,
                         expected_fs_hz=float(dataset.facts["source_fs_hz"]), progress=progress)


def fold_plan(arrays: EcgArrays, *, dataset: Any, n_folds: int, seed: int,
              options: dict[str, str]) -> FoldPlan:
    """Record folds stratified by label (a record is its own group)."""
    table = stratified_folds(record_ids=arrays.record_ids, labels=arrays.labels,
                             n_folds=n_folds, seed=seed)
    return FoldPlan(table=table, unit="group")
