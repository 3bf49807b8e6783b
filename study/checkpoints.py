"""A study's footprint: when it ends, Tune checkpoints are kept for the best trials only.

While a study runs every trial keeps its two latest checkpoints (what a restart after a
worker or driver kill resumes from, `study.tuning.run_config`). Once the search and the
artefacts are written, only the ``--keep-checkpoints`` best trials still need theirs (to
explain or fine-tune them later); the rest are removed through the experiment's own file
system (a local directory or ``s3://...``), and the space freed is reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow.fs

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
    fs: pyarrow.fs.FileSystem = result.filesystem
    try:
        entries = fs.get_file_info(pyarrow.fs.FileSelector(result.path, allow_not_found=True))
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
