"""A small study with known answers, as a study directory holds it: five trials (two
completed, one stopped early, one diverged, one failed), its Optuna storage and a
`final_test.json` of exactly the shape `study.run` writes. Shared by the report tests."""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pandas as pd

from data_io.datasets import load_dataset
from reports.study_data import StudyData

METRIC = "val/f1_cinc"
KEYS = ["normal", "af", "other", "noisy"]
PARAMETERS = {
    "model/depth": {"distribution": "CategoricalDistribution", "choices": [4, 7, 15, 17],
                    "conditional": False},
    "optim/lr": {"distribution": "FloatDistribution", "low": 1e-4, "high": 1e-2, "log": True,
                 "step": None, "conditional": False},
}
# trial id -> (depth, lr, scores per epoch, stop reason); epochs 1..3, milestones [1, 3]
TRIALS = {
    "aaa": (7, 1e-3, [0.40, 0.60, 0.70], "completed"),
    "bbb": (17, 3e-3, [0.45, 0.50, 0.55], "completed"),
    "ccc": (4, 1e-4, [0.20], "early_stopped"),
    "ddd": (15, 1e-2, [0.30, math.nan], "diverged"),  # epoch 2: the unmeasured last row
    "eee": (7, 5e-3, [], "error"),
}
ORDER = ["bbb", "aaa", "ccc", "ddd", "eee"]  # the order the sampler proposed them
CONFUSION = [[50, 2, 3, 0], [1, 8, 1, 0], [4, 1, 20, 1], [0, 0, 1, 3]]


def trial_rows() -> list[dict]:
    rows = []
    for trial_id, (depth, lr, scores, reason) in TRIALS.items():
        base = {"trial_id": trial_id, "config/model/depth": depth, "config/optim/lr": lr,
                "config/model/name": "cnn", "stop_reason": reason, "fold": 0,
                "epochs_completed": len(scores), "max_rung": int(len(scores) >= 3) if scores
                else -1}
        if not scores:
            rows.append({**base, "epoch": 0, "seconds": math.nan, "time_total_s": math.nan})
        for epoch, score in enumerate(scores, start=1):
            # time_total_s: Tune's wall time, 30 s of start and pre-training before epoch 1
            rows.append({**base, "epoch": epoch, METRIC: score, "seconds": 60.0,
                         "time_total_s": 30.0 + 60.0 * epoch,
                         **{f"val/f1_{k}": score + 0.01 * i for i, k in enumerate(KEYS)},
                         "val/confusion_json": json.dumps(CONFUSION)})
    return rows


def final_test_record() -> dict:
    """A final_test.json with exactly the shape the study writes."""
    def metrics(score: float) -> dict:
        return {"test/f1_cinc": score, "test/accuracy": 0.8, "test/auroc_macro": 0.9,
                **{f"test/f1_{k}": score - 0.1 * i for i, k in enumerate(KEYS)},
                "test/confusion": [[40, 1, 2, 1], [2, 6, 1, 0], [3, 1, 18, 1], [0, 0, 1, 2]]}
    return {"metric": "f1_cinc", "classes": ["N", "A", "O", "~"], "keys": KEYS,
            "test": {"source": "fold", "fold": 3, "directory": None, "n_records": 80},
            "trained_on": {"n_records": 480, "epochs": 3},
            "candidates": [
                {"rank": 2, "trial_id": "bbb", "config": {"model": {"depth": 17}},
                 "search_score": 0.55, "metrics": metrics(0.52)},
                {"rank": 1, "trial_id": "aaa", "config": {"model": {"depth": 7}},
                 "search_score": 0.70, "metrics": metrics(0.66)}]}


STAGE_TIMES = {"search": 400.0, "final": 120.0, "explanations": 95.0}
"""stage_times.json as the study writes it (this study ran no cross-validation)."""


def make_study(directory: Path = Path("/nonexistent/s"), *, final_test: dict | None = None,
               cv: pd.DataFrame | None = None) -> StudyData:
    record = {"plan": {"name": "s", "space": "cnn", "metric": METRIC, "mode": "max",
                       "max_epochs": 3, "fold": 0, "n_folds": 4, "reduction_factor": 3.0,
                       "cpus_per_trial": 2.0, "gpus_per_trial": 0.5, "sampler": "tpe",
                       "scheduler": "asha", "dataset": "cinc2017", "fs_hz": 150.0,
                       "data_dir": str(directory / "data"),
                       "optuna_storage": f"sqlite:///{directory / 'optuna.db'}",
                       "optuna_study_name": "s-1"},
              "asha_milestones": [1, 3], "space": {"parameters": PARAMETERS},
              "dataset": load_dataset("cinc2017").describe(), "data": {"records": 600},
              "created_unix": 1_700_000_000.0, "git_sha": "0123456789abcdef"}
    return StudyData(directory=directory, name="s", record=record,
                     trials=pd.DataFrame(trial_rows()), cv=cv, final_test=final_test,
                     stage_times=dict(STAGE_TIMES))


def write_storage(directory: Path) -> None:
    """The Optuna storage a study writes: trials tagged with their Tune ids, in ORDER."""
    storage = f"sqlite:///{directory / 'optuna.db'}"
    study = optuna.create_study(study_name="s-1", storage=storage, direction="maximize")
    for trial_id in ORDER:
        trial = study.ask()
        trial.set_user_attr("tune_trial_id", trial_id)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
