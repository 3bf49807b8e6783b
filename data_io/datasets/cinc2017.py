"""CinC 2017: records read by `data_io.cinc2017`, stratified record folds, or ECG-DualNet's
split (``split=dualnet``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from data_io.cinc2017 import checked_listing, load_cinc2017
from data_io.errors import DatasetError
from data_io.folds import FoldPlan, FoldTable, stratified_folds
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
    """Record folds stratified by label (a record is its own group); with ``split=dualnet``
    ECG-DualNet's validation share as fold 0 (`dualnet_folds`)."""
    if options.get("split") == "dualnet":
        return dualnet_folds(arrays, split=dataset.facts["splits"]["dualnet"], n_folds=n_folds,
                             seed=seed)
    table = stratified_folds(record_ids=arrays.record_ids, labels=arrays.labels,
                             n_folds=n_folds, seed=seed)
    return FoldPlan(table=table, unit="group")


def dualnet_folds(arrays: EcgArrays, *, split: dict[str, Any], n_folds: int,
                  seed: int) -> FoldPlan:
    """ECG-DualNet's split in the proportion it was published with: fold 0 holds
    ``validation / (train + validation)`` of each class's records (1,528 of 8,528: 17.9 %),
    folds 1..n-1 the rest, stratified, so training on every other fold (``--no-test``) is
    the published protocol and a study may still hold one of them out as a test set.

    Raises:
        DatasetError: fewer than 3 folds (one validates, at least two train or test).
    """
    if n_folds < 3:
        raise DatasetError(f"split=dualnet needs --folds 3 or more, got {n_folds}")
    share = split["validation_records"] / (split["train_records"] + split["validation_records"])
    ids, labels = np.asarray(arrays.record_ids, dtype=object), np.asarray(arrays.labels)
    order = np.argsort(ids, kind="stable")  # independent of the listing order
    ids, labels = ids[order], labels[order]
    rng = np.random.default_rng(seed)
    validation = np.zeros(len(ids), dtype=bool)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        validation[members[: round(share * len(members))]] = True
    rest = stratified_folds(record_ids=list(ids[~validation]), labels=labels[~validation],
                            n_folds=n_folds - 1, seed=seed).as_dict()
    folds = [0 if v else rest[r] + 1 for r, v in zip(ids, validation, strict=True)]
    table = FoldTable(record_ids=tuple(str(r) for r in ids), folds=tuple(folds),
                      n_folds=n_folds)
    note = (f"split=dualnet: fold 0 validates on {int(validation.sum())} of {len(ids)} records "
            f"({100 * share:.1f} %, ECG-DualNet's {split['validation_records']:,} of "
            f"{split['train_records'] + split['validation_records']:,}); folds 1-{n_folds - 1} "
            "train (with --no-test all of them, the published protocol)")
    return FoldPlan(table=table, unit="group", notes=(note,))
