"""Reading a study directory: the only input of every report.

A study directory is written by `study.run` (see README): `study.json`, `trials.parquet`
(one row per trial and epoch), optionally `cv.parquet` and `final_test.json` (the best
configurations retrained and scored once on the held-out test set), the Optuna storage, and per
best trial
`trials/<id>/predictions.parquet` and `explanations.npz` (plus `mitdb_explanations.npz` when
the study ran with ``--mitdb-dir``). Reports never import torch, ray or the study code;
everything they need is in these files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from study.folder_format import (
    COMPLETED,
    CONFIG_PREFIX,
    CV_TABLE,
    DIVERGED,
    EPOCH,
    EXPLANATIONS,
    FINAL_TEST,
    MITDB_EXPLANATIONS,
    PREDICTIONS,
    SCORED_EXPLANATIONS,
    STAGE_TIMES,
    STOP_REASON,
    STUDY_RECORD,
    TRIAL_ID,
    TRIALS_DIR,
    TRIALS_TABLE,
)


class ReportError(RuntimeError):
    """A study directory cannot be reported on; the message names the file and the problem."""


@dataclass(frozen=True)
class TrialArtifacts:
    """Files a study wrote for one trained trial.

    Attributes:
        trial_id: Ray Tune's trial id (the folder name under `trials/`).
        predictions: `predictions.parquet`, per validation record.
        explanations: `explanations.npz`, a gallery of validation records.
        scored_explanations: `scored_explanations.npz`, the validation records with ground
            truth (all, or a sample: ``--explain-records``), explained for scoring apart from
            the gallery.
        mitdb_explanations: `mitdb_explanations.npz`, MIT-BIH windows with annotated abnormal
            beats and their masks (studies run with ``--mitdb-dir`` only).
    """

    trial_id: str
    predictions: Path | None
    explanations: Path | None
    mitdb_explanations: Path | None = None
    scored_explanations: Path | None = None


@dataclass(frozen=True)
class StudyData:
    """Everything a report reads from one study directory.

    Attributes:
        directory: the study directory.
        name: the study's name.
        record: the parsed `study.json`.
        trials: `trials.parquet`, one row per trial and epoch.
        cv: `cv.parquet` (cross-validation of the best configurations) or None.
        artifacts: predictions and explanation files of the best trials, by trial id.
        final_test: the parsed `final_test.json` (test-set scores of the best
            configurations), or None when the study wrote none.
        stage_times: `stage_times.json`, wall seconds per stage (search, cv, final,
            explanations); empty for a study that recorded none.
    """

    directory: Path
    name: str
    record: dict[str, Any]
    trials: pd.DataFrame
    cv: pd.DataFrame | None
    artifacts: dict[str, TrialArtifacts] = field(default_factory=dict)
    final_test: dict[str, Any] | None = None
    stage_times: dict[str, float] = field(default_factory=dict)

    @property
    def space(self) -> str:
        return self.record["plan"]["space"]

    @property
    def fixed_configurations(self) -> bool:
        """The study trained listed presets (``--presets``) instead of searching a space."""
        return bool(self.record["plan"].get("presets"))

    @property
    def metric(self) -> str:
        return self.record["plan"]["metric"]

    @property
    def mode(self) -> str:
        return self.record["plan"]["mode"]

    @property
    def dataset(self) -> dict[str, Any]:
        """The data set's definition as recorded in study.json (``{}`` for studies written
        before data sets were recorded)."""
        return self.record.get("dataset") or {}

    @property
    def classes(self) -> list[dict[str, str]]:
        """The data set's classes in class-index order: ``label``, ``key`` and ``name``."""
        return list(self.dataset.get("classes", []))

    @property
    def rung(self) -> tuple[str, str]:
        """(metric, mode) ASHA ranked the trials on at its rungs (``--rung-metric``). Studies
        whose study.json does not record it (written before 2026-12-01) count as ranked on the
        study metric."""
        rung = self.record.get("asha_rung") or {"metric": self.metric, "mode": self.mode}
        return rung["metric"], rung["mode"]

    @property
    def metric_display(self) -> str:
        """The study metric's name in tables (e.g. ``CinC F1``, ``macro F1``)."""
        return self.dataset.get("metric", {}).get("display", self.metric.rsplit("/", 1)[-1])

    @property
    def max_epochs(self) -> int:
        return int(self.record["plan"]["max_epochs"])

    @property
    def budget_verdict(self) -> str:
        """One sentence: the training budget under which the study's verdicts hold."""
        plan, data = self.record.get("plan", {}), self.record.get("data", {})
        rate = f" at {plan['fs_hz']:g} Hz" if plan.get("fs_hz") else ""
        records = f", {data['records']} records" if data.get("records") is not None else ""
        return (f"These verdicts hold under this study's budget: at most {self.max_epochs} "
                f"epochs per trial{rate} ({plan.get('dataset', '?')}{records}, search fold "
                f"{plan.get('fold', '?')} of {plan.get('n_folds', '?')}). A parameter whose "
                "effect grows with training, such as a deeper trunk that learns more slowly, "
                "can rank differently under a longer budget.")

    @property
    def milestones(self) -> list[int]:
        """ASHA's comparison epochs; the last one is the full budget."""
        return [int(m) for m in self.record["asha_milestones"]]

    @property
    def parameters(self) -> dict[str, dict[str, Any]]:
        """The space's sampled parameters (`search_spaces.describe_space` form), by name."""
        return self.record["space"]["parameters"]

    @property
    def fixed_options(self) -> dict[str, Any]:
        """Options the study fixed in every trial (``--set``, ``--smoke``, the data set's
        training settings, the budget), by flattened name; none of them is a parameter."""
        space = self.record["space"]
        return {name: space["fixed"].get(name) for name in space.get("fixed_by_study", ())}

    def unvaried(self, frame: pd.DataFrame) -> dict[str, Any]:
        """Sampled parameters that took one value in every row of ``frame`` where they are
        active (name -> that value): an analysis of them has nothing to compare, and says so
        instead of drawing it."""
        found = {}
        for name in self.parameters:
            column = self.parameter_column(name)
            values = frame[column].dropna() if column in frame else pd.Series(dtype=object)
            if len(values) and values.astype(str).nunique() == 1:
                found[name] = values.iloc[0]
        return found

    @property
    def optuna_storage(self) -> str:
        return self.record["plan"]["optuna_storage"]

    @property
    def data_dir(self) -> Path:
        return Path(self.record["plan"]["data_dir"])

    def parameter_column(self, name: str) -> str:
        """The `trials.parquet` column of a sampled parameter (``model/depth`` ->
        ``config/model/depth``)."""
        return CONFIG_PREFIX + name

    def at_epoch(self, epoch: int) -> pd.DataFrame:
        """One row per trial that reached ``epoch``, scored at that epoch (equal budget).

        Diverged trials are left out at every epoch: their training broke down, so no score
        of theirs is a measurement of the configuration (`n_diverged` counts them)."""
        rows = self.trials[self.trials[EPOCH] == epoch]
        if STOP_REASON in rows:
            rows = rows[rows[STOP_REASON] != DIVERGED]
        return rows.drop_duplicates(TRIAL_ID).reset_index(drop=True)

    @property
    def n_diverged(self) -> int:
        """Trials whose training diverged (non-finite loss)."""
        if STOP_REASON not in self.trials:
            return 0
        last = self.trials.drop_duplicates(TRIAL_ID, keep="last")
        return int((last[STOP_REASON] == DIVERGED).sum())

    def final(self) -> pd.DataFrame:
        """Trials that trained the full budget, scored at the last epoch."""
        rows = self.at_epoch(self.max_epochs)
        if STOP_REASON not in rows:  # no search (a study of fixed configurations)
            return rows.iloc[0:0]
        return rows[rows[STOP_REASON] == COMPLETED].reset_index(drop=True)


def load_study(directory: str | Path) -> StudyData:
    """Read a study directory.

    Raises:
        ReportError: the directory, `study.json` or `trials.parquet` (`cv.parquet` for a study
            of fixed configurations, which searches nothing) is missing or unreadable.
    """
    directory = Path(directory).expanduser().resolve()
    if not directory.is_dir():
        raise ReportError(f"study directory {directory} does not exist")
    record = _read_json(directory / STUDY_RECORD)
    fixed = bool(record.get("plan", {}).get("presets"))
    trials = (pd.DataFrame(columns=[TRIAL_ID, EPOCH]) if fixed
              else _read_parquet(directory / TRIALS_TABLE, required=True))
    cv = _read_parquet(directory / CV_TABLE, required=fixed)
    return StudyData(
        directory=directory,
        name=record.get("plan", {}).get("name", directory.name),
        record=record,
        trials=trials,
        cv=cv,
        artifacts=_artifacts(directory / TRIALS_DIR),
        final_test=_read_json(directory / FINAL_TEST) if (directory / FINAL_TEST).is_file()
        else None,
        stage_times=(_read_json(directory / STAGE_TIMES)
                     if (directory / STAGE_TIMES).is_file() else {}),
    )


def find_latest_study(runs: Path) -> Path:
    """The most recently modified finished study directory under ``runs`` (holding
    `trials.parquet`, or `cv.parquet` for fixed configurations)."""
    finished = {p.parent for pattern in ("*/trials.parquet", "*/cv.parquet")
                for p in runs.glob(pattern)}
    candidates = sorted(finished, key=lambda p: max(
        f.stat().st_mtime for f in p.glob("*.parquet")))
    if not candidates:
        raise ReportError(f"no finished study under {runs} (no */trials.parquet); "
                          "run `python -m study.run` first or pass --study DIR")
    return candidates[-1]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ReportError(f"{path} is missing: not a study directory") from None
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read {path}: {exc}") from exc


def _read_parquet(path: Path, *, required: bool) -> pd.DataFrame | None:
    if not path.is_file():
        if required:
            raise ReportError(f"{path} is missing: the study has not finished (or was killed "
                              "before writing it; `python -m study.run --resume` completes it)")
        return None
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types on damaged files
        raise ReportError(f"cannot read {path}: {exc}") from exc


def _artifacts(trials_dir: Path) -> dict[str, TrialArtifacts]:
    if not trials_dir.is_dir():
        return {}
    found = {}
    for trial_dir in sorted(p for p in trials_dir.iterdir() if p.is_dir()):
        found[trial_dir.name] = TrialArtifacts(
            trial_id=trial_dir.name,
            predictions=_file(trial_dir / PREDICTIONS),
            explanations=_file(trial_dir / EXPLANATIONS),
            mitdb_explanations=_file(trial_dir / MITDB_EXPLANATIONS),
            scored_explanations=_file(trial_dir / SCORED_EXPLANATIONS),
        )
    return found


def _file(path: Path) -> Path | None:
    return path if path.is_file() else None
