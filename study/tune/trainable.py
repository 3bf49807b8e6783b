"""The Ray Tune trainable: one trial = the single-trial trainer on one fold.

Ray schedules it; the trainer does the work. The sampled configuration arrives unflattened
(`model`, `loss`, `optim`, ... sections), is merged with the study's overrides and budget,
and trained on the study's fold (or the fold named in the config, for cross-validation).
After every epoch the trainer's checkpoint is handed to Ray with the metrics, so ASHA can stop
the trial and a restarted trial resumes where its last checkpoint left off. This module is
importable at top level, which Ray needs to restore a study (see STACK-NOTES).
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

import ray
from ray import tune

from study.engine.trainer import train
from study.folder_format import CONFUSION_JSON, TRIAL_STATUS
from study.tune.data import final_split, fold_split, scoring
from study.tune.results import SCORE_PREFIXES
from study.tune.spec import StudySpec

__all__ = ["CHECKPOINT_FILE", "diverged_report", "fold_split", "run_trial", "trial_config"]

CHECKPOINT_FILE = "checkpoint.pt"
TEST_FOLD = "test"
"""The ``fold`` of a final trial: trained on every non-test record, scored once on the test
set (`study.tune.data.final_split`)."""
REPORT_EXCLUDES = ("val/confusion",)


def trial_config(config: dict[str, Any], *, spec: StudySpec) -> dict[str, Any]:
    """The training config of a trial (`StudySpec.trial_config`): what the trainer builds
    the model and optimiser from and what every record of the trial shows.

    A cross-validation trial carries the configuration under ``candidate`` (see
    `study.tune.tuning.cv_tuner`); a search trial carries it directly.
    """
    if "candidate" in config:
        config = config["candidate"]["config"]
    return spec.trial_config(config)


def run_trial(config: dict[str, Any], *, spec: StudySpec) -> None:
    """Train one sampled configuration, reporting every epoch to Ray Tune."""
    fold = config.get("fold", spec.fold)
    final = fold == TEST_FOLD
    train_split, val_split = final_split(spec) if final else fold_split(spec, fold=int(fold))
    metrics = scoring(spec)
    workdir = Path(tempfile.mkdtemp(prefix="ecg-trial-"))
    checkpoint_path = workdir / CHECKPOINT_FILE
    restored = tune.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as directory:
            shutil.copy(Path(directory) / CHECKPOINT_FILE, checkpoint_path)
    # Node id, not host name: several Ray nodes can share one host.
    node = f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:12]}"

    def report(row: dict[str, Any], path: Path | None) -> None:
        metrics = _reportable(row, fold=fold, node=node, status="running")
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(path.parent)))

    try:
        result = train(
            config=trial_config(config, spec=spec),
            train_split=train_split,
            val_split=val_split,
            scoring=metrics,
            checkpoint_path=checkpoint_path,
            on_epoch=report,
            score_last_only=final,
        )
        if result.status == "diverged":
            last = result.history[-1] if result.history else {"epoch": 0}
            tune.report(diverged_report(last, study_metric=metrics.key, fold=fold, node=node,
                                        message=result.message))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def diverged_report(last: dict[str, Any], *, study_metric: str, fold: int | str, node: str,
                    message: str) -> dict[str, Any]:
    """What a trial whose loss diverged reports for the epoch that diverged: its status and
    message, and NaN for every score, the study metric and the one ASHA ranks its rungs on
    alike (``last``, the previous epoch's row, would otherwise pass its scores off as this
    epoch's). ASHA's rung cutoffs ignore NaN (nanpercentile); `study.tune.results` keeps it."""
    row = _reportable(last, fold=fold, node=node, status="diverged")
    unmeasured = {key: math.nan for key, value in row.items()
                  if key.startswith(SCORE_PREFIXES) and not isinstance(value, str)}
    return {**row, **unmeasured, study_metric: math.nan, "epoch": last["epoch"] + 1,
            "message": message}


def _reportable(row: dict[str, Any], *, fold: int | str, node: str, status: str) -> dict[str, Any]:
    metrics = {k: v for k, v in row.items() if k not in REPORT_EXCLUDES}
    if "val/confusion" in row:
        metrics[CONFUSION_JSON] = json.dumps(row["val/confusion"])
    return {**metrics, "fold": fold, "node": node, TRIAL_STATUS: status}
