"""A study's footprint: Tune checkpoints are kept for running trials and the best ones only.

A running trial keeps its two latest checkpoints (what a restart after a worker or driver
kill resumes from, `study.tune.tuning.run_config`). `CheckpointKeeper` prunes as trials end: a
stopped or diverged trial keeps nothing, a finished one its newest checkpoint while it ranks
among the best (``--keep-checkpoints``, or more while the best ones still need explaining),
a failed one its newest (``--resume`` retries it from there). When the study ends only the
``--keep-checkpoints`` best trials keep theirs; everything goes through the experiment's own
file system (a local directory or ``s3://...``), and the space freed is reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow.fs
from ray import tune

from study.folder_format import COMPLETED
from study.tune.results import stop_reason

CHECKPOINT_PREFIX = "checkpoint_"
"""Tune names a trial's checkpoint directories ``checkpoint_000003``."""


@dataclass(frozen=True)
class Pruned:
    """What `prune_checkpoints` removed."""

    trials: int
    checkpoints: int
    freed_bytes: int

    def describe(self) -> str:
        if not self.checkpoints:
            return "no checkpoint removed"
        return (f"removed {self.checkpoints} checkpoint(s) of {self.trials} trial(s), "
                f"freeing {human_bytes(self.freed_bytes)}")


def human_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KB"`` (powers of 1024, as du -h)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def trial_checkpoints(result: Any) -> list[str]:
    """Paths of the checkpoint directories in a Tune result's trial directory."""
    return _checkpoint_dirs(result.filesystem, result.path)


def _checkpoint_dirs(fs: pyarrow.fs.FileSystem, trial_path: str) -> list[str]:
    """Checkpoint directories under ``trial_path``, oldest first (zero-padded names)."""
    try:
        entries = fs.get_file_info(pyarrow.fs.FileSelector(trial_path, allow_not_found=True))
    except (FileNotFoundError, OSError):
        return []
    return sorted(e.path for e in entries
                  if e.type == pyarrow.fs.FileType.Directory
                  and e.base_name.startswith(CHECKPOINT_PREFIX))


def checkpoint_exists(checkpoint: Any) -> bool:
    """Whether a Tune checkpoint's directory is still there (not pruned)."""
    info = checkpoint.filesystem.get_file_info(checkpoint.path)
    return info.type == pyarrow.fs.FileType.Directory


def _size(fs: pyarrow.fs.FileSystem, path: str) -> int:
    entries = fs.get_file_info(pyarrow.fs.FileSelector(path, recursive=True))
    return sum(e.size or 0 for e in entries if e.type == pyarrow.fs.FileType.File)


def prune_checkpoints(results: Mapping[str, Any], *, keep: Iterable[str]) -> Pruned:
    """Remove every checkpoint of the trials in ``results`` (trial id -> Tune result) that
    are not in ``keep``, and all but the newest of those that are; returns counts and the
    bytes freed."""
    kept = set(keep)
    trials = checkpoints = freed = 0
    for trial_id, result in results.items():
        paths = trial_checkpoints(result)  # oldest first (zero-padded names)
        if trial_id in kept:
            paths = paths[:-1]
        for path in paths:
            freed += _size(result.filesystem, path)
            result.filesystem.delete_dir(path)
        checkpoints += len(paths)
        trials += bool(paths)
    return Pruned(trials=trials, checkpoints=checkpoints, freed_bytes=freed)


def _remove(fs: pyarrow.fs.FileSystem, paths: list[str]) -> int:
    """Delete ``paths`` (directories); the bytes freed."""
    freed = 0
    for path in paths:
        freed += _size(fs, path)
        fs.delete_dir(path)
    return freed


class CheckpointKeeper(tune.Callback):
    """Prunes a trial's checkpoints when it ends, so an interrupted study holds no more than
    the running trials' and the best finished ones' at any moment.

    Holds plain data (Ray pickles callbacks with the experiment); the file system is the
    ending trial's own.

    Args:
        metric, mode: what ranks finished trials (`study.tune.results.final_scores`' rule: only
            trials that trained ``max_epochs`` rank).
        max_epochs: the full budget.
        keep: finished trials that keep their newest checkpoint.
    """

    def __init__(self, *, metric: str, mode: str, max_epochs: int, keep: int) -> None:
        self.metric = metric
        self.mode = mode
        self.max_epochs = max_epochs
        self.keep = keep
        self.scores: dict[str, float] = {}  # finished trial id -> its final score
        self.paths: dict[str, str] = {}  # finished trial id -> its trial directory
        self.freed_bytes = 0

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        fs = trial.storage.storage_filesystem
        result = trial.last_result or {}
        reason = stop_reason(history=[result] if result else [], error=None,
                             max_epochs=self.max_epochs)
        score = result.get(self.metric)
        if reason != COMPLETED or score is None:
            self.freed_bytes += _remove(fs, _checkpoint_dirs(fs, trial.path))
            return
        self.scores[trial.trial_id] = float(score)
        self.paths[trial.trial_id] = trial.path
        ranked = sorted(self.scores, key=self.scores.__getitem__, reverse=self.mode == "max")
        for trial_id in ranked[self.keep:]:
            self.freed_bytes += _remove(fs, _checkpoint_dirs(fs, self.paths[trial_id]))
        if trial.trial_id in ranked[: self.keep]:
            self.freed_bytes += _remove(fs, _checkpoint_dirs(fs, trial.path)[:-1])
