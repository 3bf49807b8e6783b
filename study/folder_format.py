"""The study folder's format: its file names, the columns of its tables, the stop reasons and
the metric keys that `study` writes and `reports` reads.

Both sides import these names instead of retyping the strings, so a rename is one edit. This
module imports only the standard library (an import-linter contract keeps it so): `reports`
may import it without pulling in torch or ray. docs/architecture.md shows a study folder's layout.
"""

from __future__ import annotations

from pathlib import Path

# Files at the top of a study folder.
STUDY_RECORD = "study.json"
TRIALS_TABLE = "trials.parquet"
CV_TABLE = "cv.parquet"
FINAL_TEST = "final_test.json"
STAGE_TIMES = "stage_times.json"
BEST_CONFIG = "best_config.json"
BEST_TRIAL = "best_trial.json"
TRIALS_DIR = "trials"

# Files under trials/<trial id>/ for each best trial.
PREDICTIONS = "predictions.parquet"
EXPLANATIONS = "explanations.npz"
SCORED_EXPLANATIONS = "scored_explanations.npz"
MITDB_EXPLANATIONS = "mitdb_explanations.npz"
EXPLANATION_SANITY = "explanation_sanity.npz"

# Columns of trials.parquet and cv.parquet.
TRIAL_ID = "trial_id"
TRIAL_NUMBER = "trial_number"
EPOCH = "epoch"
STOP_REASON = "stop_reason"
ERROR = "error"
RUNG = "rung"
CONFIG_PREFIX = "config/"
"""A sampled or fixed option's column: ``config/`` + its flattened name (``config/model/depth``)."""
CANDIDATE = CONFIG_PREFIX + "candidate"
"""cv.parquet: the search trial whose configuration a cross-validation row retrains."""

# Keys a trial reports each epoch (and columns of the tables).
TRIAL_STATUS = "trial_status"
"""Set to `DIVERGED` in the row a trial reports after its loss became non-finite."""
CONFUSION_JSON = "val/confusion_json"
"""The validation confusion matrix as JSON text (rows: true class, columns: predicted)."""

# Why a trial ended (`STOP_REASON`).
COMPLETED = "completed"
EARLY_STOPPED = "early_stopped"
DIVERGED = "diverged"
FAILED = "error"
STOP_REASONS = (COMPLETED, EARLY_STOPPED, DIVERGED, FAILED)


def trial_dir(study_dir: str | Path, trial_id: str) -> Path:
    """The folder of one best trial's artefacts: ``<study>/trials/<trial id>``."""
    return Path(study_dir) / TRIALS_DIR / trial_id
