"""Cross-validation folds as data: a small `record,fold` table built once with a fixed seed.

Every trial and every node reads the same table, so a study's folds never depend on the order
records were listed or on which machine ran the trial. The assignment is stratified: within
each class, records are shuffled with the seed and dealt round-robin to the folds, starting
where the previous class stopped, so every fold holds each class's proportional share to
within one record and fold sizes differ by at most one.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_io.atomic import write_text_atomic
from data_io.errors import DatasetError
from data_io.records import EcgArrays

DEFAULT_N_FOLDS = 8
DEFAULT_SEED = 0


@dataclass(frozen=True)
class FoldTable:
    """Fold of every record. ``folds[i]`` is the fold of ``record_ids[i]``; ids are sorted."""

    record_ids: tuple[str, ...]
    folds: tuple[int, ...]
    n_folds: int

    def as_dict(self) -> dict[str, int]:
        return dict(zip(self.record_ids, self.folds, strict=True))

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["record", "fold"])
        writer.writerows(zip(self.record_ids, self.folds, strict=True))
        return out.getvalue()

    def sha256(self) -> str:
        """Hash of the CSV form, recorded with a study so its split can be checked later."""
        return hashlib.sha256(self.to_csv().encode()).hexdigest()


def stratified_folds(
    *,
    record_ids: Sequence[str],
    labels: Sequence[int] | np.ndarray,
    n_folds: int = DEFAULT_N_FOLDS,
    seed: int = DEFAULT_SEED,
) -> FoldTable:
    """Assign each record to one of ``n_folds`` folds, stratified by label.

    The result depends only on the set of (record, label) pairs and the seed, not on their
    order (why not scikit-learn's StratifiedKFold: its folds follow the order it is given, so
    a directory listed in another order would get other folds).
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    if len(record_ids) != len(labels):
        raise ValueError("record_ids and labels must have the same length")
    if len(set(record_ids)) != len(record_ids):
        raise ValueError("record ids must be unique to assign folds")
    order = np.argsort(np.asarray(record_ids, dtype=object), kind="stable")
    ids = [record_ids[i] for i in order]
    labs = np.asarray(labels)[order]
    rng = np.random.default_rng(seed)
    folds = np.empty(len(ids), dtype=np.int64)
    start = 0
    for label in np.unique(labs):
        members = rng.permutation(np.flatnonzero(labs == label))
        folds[members] = (start + np.arange(len(members))) % n_folds
        start = (start + len(members)) % n_folds
    return FoldTable(record_ids=tuple(ids), folds=tuple(int(f) for f in folds), n_folds=n_folds)


def grouped_folds(
    *,
    groups: Sequence[str],
    n_folds: int,
    seed: int = DEFAULT_SEED,
) -> FoldTable:
    """Assign whole groups (records, patients) to folds, balancing the items per fold.

    ``groups`` holds the group of every item. Groups are taken largest first (ties in a
    seeded random order) and each goes to the fold holding the fewest items so far, so no
    group is ever split and fold sizes stay close. The table lists groups, not items. (This
    is scikit-learn's GroupKFold greedy; ours breaks ties between groups of one size by the
    seed and returns the table a study writes, where GroupKFold breaks them by input order.)

    Raises:
        DatasetError: fewer groups than folds (a fold would be empty).
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    names, sizes = np.unique(np.asarray(groups, dtype=object), return_counts=True)
    if len(names) < n_folds:
        shown = ", ".join(map(str, names[:5])) + (", ..." if len(names) > 5 else "")
        raise DatasetError(
            f"{len(names)} groups ({shown}) cannot fill {n_folds} folds without splitting one; "
            f"use --folds {max(len(names), 2)} or fewer"
        )
    rng = np.random.default_rng(seed)
    tie_break = rng.permutation(len(names))
    order = np.lexsort((tie_break, -sizes))
    load = np.zeros(n_folds, dtype=np.int64)
    folds = np.empty(len(names), dtype=np.int64)
    for g in order:
        fold = int(np.argmin(load))
        folds[g] = fold
        load[fold] += sizes[g]
    ids = [str(n) for n in names]
    return FoldTable(record_ids=tuple(ids), folds=tuple(int(f) for f in folds), n_folds=n_folds)


@dataclass(frozen=True)
class FoldPlan:
    """How a data set's items are split for a study.

    Attributes:
        table: the fold of every group (``unit="group"``) or item (``unit="item"``).
        unit: what the table lists; ``item`` splits a group's items over folds (leakage).
        held_out: groups in no fold (e.g. a test set kept out of the search).
        notes: lines a study prints and records (e.g. the leakage of a beat-level split).
    """

    table: FoldTable
    unit: str
    held_out: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def folds_for(arrays: EcgArrays, *, n_folds: int = DEFAULT_N_FOLDS, seed: int = DEFAULT_SEED):
    """`stratified_folds` over a loaded data set."""
    return stratified_folds(
        record_ids=arrays.record_ids, labels=arrays.labels, n_folds=n_folds, seed=seed
    )


def write_folds(path: str | Path, table: FoldTable) -> None:
    """Write the table as `record,fold` CSV atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, table.to_csv())


def read_folds(path: str | Path) -> FoldTable:
    """Read a table written by `write_folds`, with errors naming the file and line."""
    path = Path(path)
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    except OSError as exc:
        raise DatasetError(f"cannot read fold table {path}: {exc}") from exc
    if not rows or [c.strip() for c in rows[0]] != ["record", "fold"]:
        raise DatasetError(f"{path}: expected a 'record,fold' header line")
    pairs: dict[str, int] = {}
    for line_no, row in enumerate(rows[1:], start=2):
        if len(row) != 2 or not row[1].strip().isdigit():
            raise DatasetError(f"{path} line {line_no}: expected 'record,fold', got {row!r}")
        if row[0] in pairs:
            raise DatasetError(f"{path} line {line_no}: record {row[0]} appears twice")
        pairs[row[0].strip()] = int(row[1])
    ids = sorted(pairs)
    folds = tuple(pairs[r] for r in ids)
    return FoldTable(record_ids=tuple(ids), folds=folds, n_folds=max(folds) + 1 if folds else 0)


@dataclass(frozen=True)
class Split:
    """Indices into one data set for training and validation."""

    train: np.ndarray
    val: np.ndarray


def fold_split(arrays: EcgArrays, table: FoldTable, *, fold: int) -> Split:
    """Train on every fold but ``fold``, validate on ``fold``.

    Raises:
        DatasetError: a loaded record has no fold in the table (the table was built for
            another data set), or ``fold`` is out of range.
    """
    if not 0 <= fold < table.n_folds:
        raise DatasetError(
            f"fold {fold} does not exist; the table has folds 0-{table.n_folds - 1}"
        )
    by_id = table.as_dict()
    missing = [r for r in arrays.record_ids if r not in by_id]
    if missing:
        raise DatasetError(
            f"{len(missing)} loaded records have no fold (e.g. {missing[0]}): the fold table "
            "was built for another data set; rebuild it"
        )
    record_folds = np.array([by_id[r] for r in arrays.record_ids])
    return Split(
        train=np.flatnonzero(record_folds != fold), val=np.flatnonzero(record_folds == fold)
    )


def check_holdout(train: EcgArrays, evaluation: EcgArrays) -> None:
    """Raise if the evaluation set shares record ids with the training set (leakage)."""
    shared = sorted(set(train.record_ids) & set(evaluation.record_ids))
    if shared:
        raise DatasetError(
            f"{len(shared)} records are in both the training and the evaluation directory "
            f"(e.g. {', '.join(shared[:3])}): a hold-out evaluation must use unseen records"
        )
