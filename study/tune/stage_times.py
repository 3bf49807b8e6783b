"""`stage_times.json`: the wall seconds of each stage of a study, as it ran.

The driver times the search, the cross-validation, the final training and the explanation
writing (each best trial apart); a resumed stage adds the seconds of its new run, so the file
says what the stages cost in all. The report reads it beside the trials' own wall times.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from data_io.atomic import write_text_atomic
from study.folder_format import STAGE_TIMES

STAGES = ("search", "cv", "final", "explanations")
"""What a study times: the search, cross-validation, final training and explanations."""


def read_stage_times(study_dir: Path) -> dict[str, float]:
    """Stage -> wall seconds so far (empty before the first stage ends)."""
    path = Path(study_dir) / STAGE_TIMES
    return json.loads(path.read_text()) if path.is_file() else {}


def add_stage_time(study_dir: Path, *, stage: str, seconds: float) -> None:
    """Add ``seconds`` to ``stage``'s total in `STAGE_TIMES` (written atomically)."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages: {STAGES}")
    times = read_stage_times(study_dir)
    times[stage] = round(times.get(stage, 0.0) + seconds, 1)
    write_text_atomic(Path(study_dir) / STAGE_TIMES, json.dumps(times, indent=2))


@contextmanager
def timed_stage(study_dir: Path, stage: str) -> Iterator[None]:
    """Time the block as ``stage``; recorded when it ends, also when it raises (a stage cut
    short by a full disk still cost its seconds), but not when the process is killed."""
    started = time.monotonic()
    try:
        yield
    finally:
        add_stage_time(study_dir, stage=stage, seconds=time.monotonic() - started)
