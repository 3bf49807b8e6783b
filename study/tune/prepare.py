"""Before a study runs: its data (generated for a synthetic set), folds, `study.json` and the
trial spec, and the plan as printed."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any

from data_io.atomic import write_text_atomic
from data_io.cache import source_fingerprint
from data_io.datasets import Dataset, load_dataset
from data_io.errors import DatasetError
from data_io.folds import FoldPlan, read_folds, write_folds
from search_spaces import describe_space, flatten_options, load_space, unflatten
from study.engine.config import merge_sections
from study.folder_format import STUDY_RECORD
from study.tune import optuna_storage
from study.tune.data import load_arrays, split_summary
from study.tune.plan import Plan
from study.tune.spec import StudySpec

VERSIONED = ("ecg-study", "ray", "optuna", "torch", "numpy", "wfdb", "wandb", "pandas")
FOLDS_FILE = "folds.csv"


def prepare_study(plan: Plan, *, write: bool) -> tuple[Plan, StudySpec]:
    """Data (generated if synthetic), the fold table and `study.json`; returns the plan with
    its test set resolved (`held_out_test`) and the trial spec."""
    study_dir = Path(plan.study_dir)
    dataset = load_dataset(plan.dataset)
    if dataset.generates and not _present(dataset, plan.data_dir):
        if not write:
            print(f"dry run: {plan.synthetic_records} synthetic records would be written to "
                  f"{plan.data_dir}")
            return plan, _spec(plan, folds={})
        dataset.generate(Path(plan.data_dir), n_records=plan.synthetic_records, seed=plan.seed)
    spec = _spec(plan, folds={})
    arrays = load_arrays(spec, progress=True)
    if arrays.quarantined:
        print(f"warning: {dataset.count(len(arrays.quarantined))} quarantined (see python -m "
              f"data_io.inspect {plan.data_dir} --dataset {plan.dataset})", file=sys.stderr)
    folds = dataset.fold_plan(arrays, n_folds=plan.n_folds, seed=plan.seed,
                              options=plan.dataset_options)
    folds_path = study_dir / FOLDS_FILE
    table = read_folds(folds_path) if folds_path.is_file() else folds.table
    for note in folds.notes:
        print(f"note: {note}", file=sys.stderr)
    plan = held_out_test(plan, folds)
    spec = _spec(plan, folds=table.as_dict(), fold_plan=folds)
    if write:
        study_dir.mkdir(parents=True, exist_ok=True)
        if not folds_path.is_file():
            write_folds(folds_path, table)
        if not (study_dir / STUDY_RECORD).is_file():
            record = study_record(plan, folds_sha256=table.sha256(), n_records=len(arrays),
                                  dataset=dataset, folds=folds, spec=spec,
                                  split=split_summary(arrays, spec=spec, dataset=dataset))
            write_text_atomic(study_dir / STUDY_RECORD, json.dumps(record, indent=2))
    return plan, spec


def held_out_test(plan: Plan, folds: FoldPlan) -> Plan:
    """A data set with a held-out split of its own (mitdb-beats' DS2 records) tests on it
    rather than on a fold: every fold then serves the search and the cross-validation."""
    if plan.test != "fold" or not folds.held_out:
        return plan
    return replace(plan, test_fold=None)


def _present(dataset: Dataset, data_dir: str) -> bool:
    try:
        dataset.check(Path(data_dir))
    except DatasetError:
        return False
    return True


def _spec(plan: Plan, *, folds: dict[str, int], fold_plan: FoldPlan | None = None) -> StudySpec:
    """The trial spec: data, folds, budget and the config overrides of every trial (the data
    set's training settings, then with --smoke the space's and the data set's smoke settings,
    then --set), section by section."""
    dataset = load_dataset(plan.dataset)
    smoke = [dict(load_space(plan.space).SMOKE), dataset.smoke] if plan.smoke else []
    overrides = merge_sections(dataset.training, *smoke, unflatten(plan.fixed))
    return StudySpec(data_dir=plan.data_dir, cache_dir=plan.cache_dir, fs_hz=plan.fs_hz,
                     folds=folds, fold=plan.fold, max_epochs=plan.max_epochs, seed=plan.seed,
                     overrides=overrides, dataset=plan.dataset,
                     dataset_options=dict(plan.dataset_options),
                     fold_unit=fold_plan.unit if fold_plan else "group",
                     held_out=fold_plan.held_out if fold_plan else (),
                     test_fold=plan.test_fold, test_dir=plan.test_dir)


def study_record(plan: Plan, *, folds_sha256: str, n_records: int, dataset: Dataset,
                 folds: FoldPlan, split: dict[str, Any], spec: StudySpec) -> dict[str, Any]:
    """`study.json`: the resolved arguments and everything needed to reproduce the study.

    ``space`` describes the space as the study ran it: options the study fixed (``--set``,
    ``--smoke``, the data set's training settings, the budget) are no parameters there but
    ``fixed`` values, named in ``fixed_by_study``."""
    return {
        "plan": plan.to_dict(),
        "space": describe_space(plan.space, fixed=spec.fixed_options),
        "dataset": {**dataset.describe(), "options": dict(plan.dataset_options)},
        "git_sha": _git_sha(),
        "versions": _versions(),
        "python": platform.python_version(),
        "data": {"directory": plan.data_dir, "fingerprint": source_fingerprint(plan.data_dir),
                 "records": n_records, "fs_hz": plan.fs_hz},
        "folds": {"file": FOLDS_FILE, "n_folds": plan.n_folds, "sha256": folds_sha256,
                  "unit": folds.unit, "notes": list(folds.notes)},
        "split": split,
        "asha_milestones": milestones(plan),
        "asha_rung": dict(zip(("metric", "mode"), plan.rung, strict=True)),
        "created_unix": time.time(),
    }


def _git_sha() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _versions() -> dict[str, str]:
    versions = {}
    for package in VERSIONED:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def milestones(plan: Plan) -> list[int]:
    """Epochs at which the scheduler compares trials (only the budget without ASHA)."""
    return plan.milestones


def test_set_text(plan: Plan) -> str:
    """One line on what the study holds out as its test set."""
    if plan.test == "none" and plan.fixed_configurations and plan.cv_all_folds:
        return ("none: fixed configurations select nothing, so every fold is scored "
                "(--test-fold or --test-dir holds records out)")
    if plan.test == "none":
        return "none (--no-test): no score on records unseen by every decision"
    if plan.test == "directory":
        return f"the records of {plan.test_dir}"
    if plan.test_fold is None:
        return "the data set's held-out records"
    return f"fold {plan.test_fold}, seen by neither the search nor the cross-validation"


def fixed_text(spec: StudySpec) -> str:
    """The options every trial has fixed besides the budget (``--set``, ``--smoke``, the
    data set's training settings), flattened: ``optim/lr=0.001 loss/focal_gamma=0``."""
    budget = set(flatten_options(spec.budget))
    return " ".join(f"{name}={json.dumps(value)}" for name, value in spec.fixed_options.items()
                    if name not in budget)


def render_plan(plan: Plan, spec: StudySpec) -> str:
    rungs = milestones(plan)
    options = ", ".join(f"{k}={v}" for k, v in plan.dataset_options.items())
    what = (f"fixed configurations {', '.join(plan.presets)} on "
            + (f"folds {', '.join(map(str, plan.cv_folds))}" if plan.cv_all_folds
               else f"fold {plan.fold}") + f", {plan.max_epochs} epochs"
            if plan.fixed_configurations else
            f"space {plan.space}, {plan.num_samples} configurations ({plan.sampler}), "
            f"{plan.max_epochs} epochs max, "
            + (f"ASHA rungs at epochs {rungs}, ranked on {plan.rung[0]}"
               if plan.scheduler == "asha" else "no early stopping"))
    return "\n".join([
        f"study {plan.name} ({'resume' if plan.resume else 'new'}): {what}",
        *([f"fixed in every trial: {fixed_text(spec)}"] if spec.overrides else []),
        f"data: {plan.dataset} {plan.data_dir} at {plan.fs_hz:g} Hz, fold {plan.fold} of "
        f"{plan.n_folds}{', smoke settings' if plan.smoke else ''}"
        + (f" ({options})" if options else ""),
        f"metric: {plan.metric} ({plan.mode})",
        *([f"cross-validation: top {plan.cv_top_k}"
           + "".join(f" + {name}" for name in plan.baseline)
           + f" on folds {', '.join(map(str, plan.cv_folds))}"]
          if plan.cv_top_k and not plan.fixed_configurations else []),
        *([f"baseline: {', '.join(plan.baseline)}, trained and scored as the chosen "
           "configurations are"] if plan.baseline else []),
        f"test set: {test_set_text(plan)}",
        f"resources: {plan.concurrency} concurrent trials x {plan.cpus_per_trial:g} CPU, "
        f"{plan.gpus_per_trial:g} GPU; Ray {plan.address or 'local'}",
        f"study directory: {plan.study_dir}",
        f"Ray Tune experiment: "
        f"{plan.experiment_dir('cv' if plan.fixed_configurations else 'tune')}",
        *([] if plan.fixed_configurations else [
            f"Optuna: {optuna_storage.masked(plan.optuna_storage)} (study "
            f"{plan.optuna_study_name}; watch it with python -m study.dashboard {plan.name})"]),
        f"W&B: {plan.wandb_mode}",
        *([f"MIT-BIH explanations of the best trials: windows with abnormal beats from "
           f"{plan.mitdb_dir}"] if plan.mitdb_dir else []),
    ])
