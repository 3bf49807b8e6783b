"""A study's data: its data set loaded through the cache, and the items of each fold.

The driver and every trial call the same functions, so training and validation sides are
computed one way everywhere (search trials, cross-validation, artefacts, `study.json`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from data_io.cache import load_cached
from data_io.datasets import Dataset, load_dataset
from data_io.records import EcgArrays
from study.engine.metrics import Scoring
from study.engine.trainer import Split
from study.tune.spec import StudySpec


def load_arrays(spec: StudySpec, *, progress: bool = False) -> EcgArrays:
    """The study's data set at the study rate, from the node's cache."""
    return load_cached(spec.dataset, spec.data_dir, fs_hz=spec.fs_hz,
                       options=spec.dataset_options, cache_dir=spec.cache_dir,
                       progress=progress)


def scoring(spec: StudySpec) -> Scoring:
    return Scoring.from_dataset(load_dataset(spec.dataset))


def item_folds(arrays: EcgArrays, *, spec: StudySpec, dataset: Dataset) -> np.ndarray:
    """Fold of every item, -1 for items of held-out groups and of the test fold, shape
    (n_items,).

    Raises:
        ValueError: an item whose group (or id) has no fold and is not held out: the data
            changed since the study began.
    """
    groups = [dataset.group_of(i) for i in arrays.record_ids]
    keys = arrays.record_ids if spec.fold_unit == "item" else groups
    held_out = set(spec.held_out)
    folds = np.array([spec.folds.get(k, -1 if g in held_out else -2)
                      for k, g in zip(keys, groups, strict=True)])
    if np.any(folds == -2):
        missing = keys[int(np.flatnonzero(folds == -2)[0])]
        raise ValueError(f"{dataset.group_key} {missing} has no fold: the data changed since the "
                         "study began")
    if spec.test_fold is not None:
        folds[folds == spec.test_fold] = -1
    return folds


def fold_split(spec: StudySpec, *, fold: int) -> tuple[Split, Split]:
    """Training and validation items of ``fold`` (held-out groups in neither)."""
    arrays = load_arrays(spec)
    folds = item_folds(arrays, spec=spec, dataset=load_dataset(spec.dataset))
    return (
        Split(arrays, np.flatnonzero((folds != fold) & (folds >= 0))),
        Split(arrays, np.flatnonzero(folds == fold)),
    )


def final_split(spec: StudySpec) -> tuple[Split, Split]:
    """Training items (every fold but the test set's) and the test set: the test fold's and
    held-out groups' items, or the records of ``spec.test_dir``.

    Raises:
        ValueError: the study holds out no test set, or its test set is empty.
    """
    arrays = load_arrays(spec)
    folds = item_folds(arrays, spec=spec, dataset=load_dataset(spec.dataset))
    train = Split(arrays, np.flatnonzero(folds >= 0))
    if spec.test_dir is not None:
        test_arrays = load_cached(spec.dataset, spec.test_dir, fs_hz=spec.fs_hz,
                                  options=spec.dataset_options, cache_dir=spec.cache_dir)
        return train, Split(test_arrays, np.arange(len(test_arrays)))
    test = np.flatnonzero(folds == -1)
    if test.size == 0:
        raise ValueError("this study holds out no test set (no test fold, no held-out groups, "
                         "no --test-dir)")
    return train, Split(arrays, test)


def split_summary(arrays: EcgArrays, *, spec: StudySpec, dataset: Dataset) -> dict[str, Any]:
    """Which groups train and which validate on the search fold, which form the test set (the
    test fold's and the held-out groups), and any group on both sides of the search (non-empty
    only for an item-level split): recorded in study.json."""
    folds = item_folds(arrays, spec=spec, dataset=dataset)
    groups = np.array([dataset.group_of(i) for i in arrays.record_ids], dtype=object)
    train = sorted(set(groups[(folds != spec.fold) & (folds >= 0)]))
    validation = sorted(set(groups[folds == spec.fold]))
    return {
        "group_key": dataset.group_key,
        "fold_unit": spec.fold_unit,
        "validation_fold": spec.fold,
        "training_groups": train,
        "validation_groups": validation,
        "groups_in_both": sorted(set(train) & set(validation)),
        "held_out_groups": sorted(spec.held_out),
        "test_fold": spec.test_fold,
        "test_groups": sorted(set(groups[folds == -1])),
        "items": {"training": int(((folds != spec.fold) & (folds >= 0)).sum()),
                  "validation": int((folds == spec.fold).sum()),
                  "test": int((folds == -1).sum())},
    }


def mask_source(spec: StudySpec):
    """For a data set whose items carry abnormal-beat masks (its module has
    ``abnormal_masks``), a function ``(item_ids, *, fs_hz, n_samples) -> (B, n_samples)``
    uint8 masks at the study rate; None otherwise."""
    dataset = load_dataset(spec.dataset)
    if not hasattr(dataset.module, "abnormal_masks"):
        return None
    source_fs_hz = float(dataset.facts.get("source_fs_hz", dataset.fs_hz))

    def masks(item_ids: list[str], *, fs_hz: float, n_samples: int) -> np.ndarray:
        found = dataset.module.abnormal_masks(Path(spec.data_dir), dataset=dataset,
                                              item_ids=list(item_ids))
        # Sample i at fs_hz takes the source sample nearest in time.
        source = np.round(np.arange(n_samples) * (source_fs_hz / fs_hz)).astype(np.int64)
        out = np.zeros((len(item_ids), n_samples), dtype=np.uint8)
        for row, item in enumerate(item_ids):
            if item in found:
                inside = source < found[item].shape[0]
                out[row, inside] = found[item][source[inside]]
        return out

    return masks
