"""`python -m study.run`: a hyperparameter study with Ray Tune, Optuna (TPE) and ASHA.

Starts (or joins, with ``--address``) a Ray cluster, samples configurations from a search
space with Optuna's TPE, trains each with the single-trial trainer, lets ASHA stop the weak
ones, logs every trial to W&B and writes everything a report needs into one study directory:
`study.json`, `folds.csv`, the Optuna storage, Ray Tune's experiment, `trials.parquet` (one
row per trial and epoch), `best_config.json`, and predictions plus explanation arrays of the
best trials (with ``--mitdb-dir`` also on MIT-BIH windows with annotated abnormal beats).
``--resume`` continues a study whose driver was killed.

Exit status: 0 done, 2 bad input, 3 the storage filled up or turned read-only mid-study (one
`error:` line names the path and the problem; `--resume` continues once it is writable again).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any

import optuna

from data_io.atomic import write_text_atomic
from data_io.cache import load_cinc2017_cached, source_fingerprint
from data_io.errors import DatasetError
from data_io.folds import folds_for, read_folds, write_folds
from search_spaces import describe_space, load_space, space_names, unflatten
from study import mitdb_explanations
from study.cli_help import DefaultsHelpFormatter
from study.plan import (
    DATASETS,
    SAMPLERS,
    SCHEDULERS,
    Plan,
    StudyError,
    load_plan,
    make_plan,
)
from study.results import final_scores, trials_frame, write_parquet
from study.space_text import render_space, space_line
from study.spec import StudySpec
from study.storage_faults import (
    EXIT_STORAGE,
    StorageError,
    storage_fault_message,
    storage_problem,
    storage_state,
)
from study.wandb_mode import MODES, offline_hint, resolve_mode

# ray, the trainer and the artefact writer are imported inside the functions that run a study,
# so --help, --list-spaces, --show-space and bad-input errors answer in about a second.
VERSIONED = ("ecg-study", "ray", "optuna", "torch", "numpy", "wfdb", "wandb", "pandas")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m study.run",
        description=(
            "Run a hyperparameter study: Ray Tune schedules Optuna (TPE) trials of one search "
            "space, ASHA stops weak trials early, W&B logs them. Without --address a local "
            "Ray starts on this machine; results go to runs/NAME/ unless --study-dir is given."
        ),
        formatter_class=DefaultsHelpFormatter,
    )
    what = p.add_argument_group("what to study")
    what.add_argument("--space", help=f"search space: {', '.join(space_names())}")
    what.add_argument("--list-spaces", action="store_true", help="list the spaces and exit")
    what.add_argument("--show-space", metavar="NAME",
                      help="print a space's parameters, distributions and conditions and exit")
    what.add_argument("--json", action="store_true",
                      help="with --show-space: print the description as JSON")
    what.add_argument("--dataset", choices=DATASETS, default="cinc2017",
                      help="cinc2017 needs --data-dir; synthetic generates records in the "
                           "study directory")
    what.add_argument("--data-dir", help="CinC-format directory (.hea/.mat + REFERENCE.csv), "
                                         "present at this path on every node")
    what.add_argument("--synthetic-records", type=int, default=200,
                      help="records generated for --dataset synthetic")
    what.add_argument("--fs-hz", type=float,
                      help="records resampled to this rate (default 150, or the space's SMOKE "
                           "rate with --smoke)")
    what.add_argument("--smoke", action="store_true",
                      help="apply the space's SMOKE settings (tiny, fast trials for checks)")
    budget = p.add_argument_group("budget and early stopping")
    budget.add_argument("--num-samples", type=int, default=20, help="configurations to try")
    budget.add_argument("--max-epochs", type=int, default=12, help="full budget of a trial")
    budget.add_argument("--grace-period", type=int, default=1,
                        help="epochs before ASHA may stop a trial")
    budget.add_argument("--reduction-factor", type=float, default=3.0,
                        help="ASHA keeps 1/reduction-factor of the trials at each rung")
    budget.add_argument("--fold", type=int, default=0, help="validation fold of search trials")
    budget.add_argument("--folds", type=int, default=8, help="number of stratified folds")
    budget.add_argument("--cv-top-k", type=int, default=0,
                        help="retrain the K best configurations on every fold, full budget")
    budget.add_argument("--explain-top", type=int, default=1,
                        help="write predictions and explanation arrays of the N best trials")
    budget.add_argument("--keep-checkpoints", type=int, default=2, metavar="K",
                        help="when the study ends, keep the Tune checkpoints of the K best "
                             "trials and remove the others")
    mitdb = mitdb_explanations
    budget.add_argument("--mitdb-dir", metavar="DIR",
                        help="MIT-BIH Arrhythmia Database folder (python -m data_io.fetch mitdb): "
                             f"the best trials also explain up to {mitdb.MAX_WINDOWS} "
                             f"{mitdb.WINDOW_S:g}-s windows (lead {mitdb.LEAD}, at the study rate) "
                             "holding annotated abnormal beats, which the report scores against "
                             "the annotations")
    budget.add_argument("--seed", type=int, default=0, help="seed of the sampler and training")
    budget.add_argument("--sampler", choices=SAMPLERS, default="tpe",
                        help="Optuna sampler: tpe, or random for a baseline")
    budget.add_argument("--scheduler", choices=SCHEDULERS, default="asha",
                        help="asha stops weak trials early; fifo runs every trial to "
                             "--max-epochs (the baseline without early stopping)")
    budget.add_argument("--set", action="append", metavar="SECTION/OPTION=VALUE",
                        help="fix a training option in every trial, whatever the space samples "
                             "(repeatable; the value is JSON, e.g. --set loss/focal_gamma=0)")
    res = p.add_argument_group("resources and storage")
    res.add_argument("--concurrency", type=int, default=2, help="trials running at once")
    res.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs reserved per trial")
    res.add_argument("--gpus-per-trial", type=float, default=0.0,
                     help="GPUs per trial; fractions let several small trials share a GPU")
    res.add_argument("--max-failures", type=int, default=2,
                     help="retries of a raising trial from its last checkpoint")
    res.add_argument("--address", help="Ray cluster to join ('auto' on a cluster head); "
                                       "default: start a local Ray")
    res.add_argument("--name", help="study name (default: SPACE-DATASET-random)")
    res.add_argument("--study-dir", help="study directory (default: runs/NAME)")
    res.add_argument("--storage-path", help="where Ray Tune keeps the experiment: a local "
                                            "directory, a shared file system or s3://...; "
                                            "default: the study directory")
    res.add_argument("--optuna-storage", help="Optuna RDB URL (default: sqlite file in the "
                                              "study directory)")
    res.add_argument("--cache-dir", help="data cache on each node (default: user cache dir)")
    res.add_argument("--wandb-mode", choices=MODES,
                     help="default: online when logged in to W&B, else offline")
    run = p.add_argument_group("control")
    run.add_argument("--resume", action="store_true",
                     help="continue the study --name (its saved arguments are used)")
    run.add_argument("--dry-run", action="store_true",
                     help="check space, data, resources and storage, print the plan and an "
                          "estimate of the study's wall time and CPU/GPU-hours measured on a "
                          "few sampled configurations (about a minute), run nothing")
    run.add_argument("--no-estimate", action="store_true",
                     help="with --dry-run: skip the measured cost estimate")
    return p


def main(argv: list[str] | None = None) -> int:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_spaces:
        for name in space_names():
            print(space_line(name))
        return 0
    if args.show_space:
        try:
            description = describe_space(args.show_space)
            print(json.dumps(description, indent=2, default=str) if args.json
                  else render_space(description))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    if not args.space and not args.resume:
        parser.error("--space is required (see --list-spaces)")
    try:
        plan = _plan(args)
        if plan.address:
            check_reachable(plan.address)
        spec = prepare_study(plan, write=not args.dry_run)
        print(render_plan(plan, spec), flush=True)
        if args.dry_run:
            _check_resources(plan, connect=bool(plan.address))
            if not args.no_estimate:
                print(_estimate(plan, spec), flush=True)
            print("dry run: everything checked, nothing run")
            return 0
        return run_study(plan, spec)
    except (StudyError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_STORAGE


def _estimate(plan: Plan, spec: StudySpec) -> str:
    """The dry run's cost estimate, from a probe of a few sampled configurations."""
    from study.estimate import probe

    print("measuring a few sampled configurations for the cost estimate ...", flush=True)
    device = "auto" if plan.gpus_per_trial else "cpu"
    return "\n".join(probe(plan, spec, milestones=milestones(plan), device=device))


def _plan(args: argparse.Namespace) -> Plan:
    if args.resume:
        if not args.name and not args.study_dir:
            raise StudyError("--resume needs the --name (or --study-dir) of the study")
        study_dir = Path(args.study_dir or Path("runs") / args.name).resolve()
        saved = study_dir / "study.json"
        if not saved.is_file():
            raise StudyError(f"--resume: no study at {study_dir} (study.json missing)")
        plan = load_plan(study_dir)
        return replace(plan, resume=True, address=args.address or plan.address)
    return make_plan(args, wandb_mode=resolve_mode(args.wandb_mode))


def prepare_study(plan: Plan, *, write: bool) -> StudySpec:
    """Data (generated if synthetic), the fold table and `study.json`; returns the trial spec."""
    study_dir = Path(plan.study_dir)
    if plan.dataset == "synthetic" and not (Path(plan.data_dir) / "REFERENCE.csv").is_file():
        if not write:
            print(f"dry run: {plan.synthetic_records} synthetic records would be written to "
                  f"{plan.data_dir}")
            return _spec(plan, folds={})
        from data_io.synthesize import main as synthesize

        code = synthesize(["--out", plan.data_dir, "--records", str(plan.synthetic_records),
                           "--seed", str(plan.seed)])
        if code:
            raise StudyError(f"could not write synthetic records to {plan.data_dir}")
    arrays = load_cinc2017_cached(plan.data_dir, fs_hz=plan.fs_hz, cache_dir=plan.cache_dir)
    if arrays.quarantined:
        print(f"warning: {len(arrays.quarantined)} records quarantined "
              f"(see python -m data_io.inspect {plan.data_dir})", file=sys.stderr)
    folds_path = study_dir / "folds.csv"
    table = read_folds(folds_path) if folds_path.is_file() else folds_for(
        arrays, n_folds=plan.n_folds, seed=plan.seed
    )
    if write:
        study_dir.mkdir(parents=True, exist_ok=True)
        if not folds_path.is_file():
            write_folds(folds_path, table)
        if not (study_dir / "study.json").is_file():
            write_text_atomic(study_dir / "study.json", json.dumps(
                study_record(plan, folds_sha256=table.sha256(), n_records=len(arrays)),
                indent=2))
    return _spec(plan, folds=table.as_dict())


def _spec(plan: Plan, *, folds: dict[str, int]) -> StudySpec:
    overrides = dict(load_space(plan.space).SMOKE) if plan.smoke else {}
    for section, values in unflatten(plan.fixed).items():
        if isinstance(values, dict):
            overrides[section] = {**overrides.get(section, {}), **values}
        else:
            overrides[section] = values
    return StudySpec(data_dir=plan.data_dir, cache_dir=plan.cache_dir, fs_hz=plan.fs_hz,
                     folds=folds, fold=plan.fold, max_epochs=plan.max_epochs, seed=plan.seed,
                     overrides=overrides)


def study_record(plan: Plan, *, folds_sha256: str, n_records: int) -> dict[str, Any]:
    """`study.json`: the resolved arguments and everything needed to reproduce the study."""
    return {
        "plan": plan.to_dict(),
        "space": describe_space(plan.space),
        "git_sha": _git_sha(),
        "versions": _versions(),
        "python": platform.python_version(),
        "data": {"directory": plan.data_dir, "fingerprint": source_fingerprint(plan.data_dir),
                 "records": n_records, "fs_hz": plan.fs_hz},
        "folds": {"file": "folds.csv", "n_folds": plan.n_folds, "sha256": folds_sha256},
        "asha_milestones": milestones(plan),
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


def render_plan(plan: Plan, spec: StudySpec) -> str:
    rungs = milestones(plan)
    return "\n".join([
        f"study {plan.name} ({'resume' if plan.resume else 'new'}): space {plan.space}, "
        f"{plan.num_samples} configurations ({plan.sampler}), {plan.max_epochs} epochs max, "
        + (f"ASHA rungs at epochs {rungs}" if plan.scheduler == "asha"
           else "no early stopping"),
        *([f"fixed in every trial: {json.dumps(plan.fixed)}"] if plan.fixed else []),
        f"data: {plan.dataset} {plan.data_dir} at {plan.fs_hz:g} Hz, fold {plan.fold} of "
        f"{plan.n_folds}{', smoke settings' if plan.smoke else ''}",
        f"resources: {plan.concurrency} concurrent trials x {plan.cpus_per_trial:g} CPU, "
        f"{plan.gpus_per_trial:g} GPU; Ray {plan.address or 'local'}",
        f"study directory: {plan.study_dir}",
        f"Ray Tune experiment: {plan.tune_dir}",
        f"Optuna: {plan.optuna_storage} (study {plan.optuna_study_name})",
        f"W&B: {plan.wandb_mode}",
        *([f"MIT-BIH explanations of the best trials: windows with abnormal beats from "
           f"{plan.mitdb_dir}"] if plan.mitdb_dir else []),
    ])


def check_reachable(address: str) -> None:
    """Fail in seconds, before anything is written, when nothing answers at ``address``.

    ray.init retries an address where nothing answers (or a name that does not resolve) for
    many minutes, printing only log lines; one TCP connect (to the GCS, or to the Ray Client
    server for ray://) fails in seconds with the reason. ``auto`` is left to Ray.
    """
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not (host and port.isdigit()):
        return
    timeout_s = 5.0
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        reason = exc.strerror or str(exc)  # e.g. "Connection refused"
        if isinstance(exc, socket.gaierror):
            reason = f"host name {host} not found"
        elif isinstance(exc, TimeoutError):
            reason = f"no answer within {timeout_s:g} s"
        raise StudyError(
            f"cannot join the Ray cluster at {address}: {reason}. Check the address "
            f"(the head's `ray status` shows it) and that port {port} is open to this machine"
        ) from exc


def _check_resources(plan: Plan, *, connect: bool) -> None:
    """Fail before any trial when one trial cannot fit (locally), or warn when a cluster
    lacks the resources now (its autoscaler may still add nodes)."""
    import ray

    if not connect:
        cpus = os.cpu_count() or 1
        if plan.cpus_per_trial > cpus:
            raise StudyError(f"--cpus-per-trial {plan.cpus_per_trial:g} but this machine has "
                             f"{cpus} CPUs")
        return
    try:
        ray.init(address=plan.address, log_to_driver=False, runtime_env=_runtime_env(plan))
    except Exception as exc:  # ConnectionError, auth errors, timeouts
        raise StudyError(
            f"cannot join the Ray cluster at {plan.address}: {exc}. If the cluster uses token "
            "authentication (Ray's default), set RAY_AUTH_MODE=token and make the cluster's "
            "token available (RAY_AUTH_TOKEN or ~/.ray/auth_token)"
        ) from exc
    total = ray.cluster_resources()
    for key, wanted in (("CPU", plan.cpus_per_trial), ("GPU", plan.gpus_per_trial)):
        if wanted > total.get(key, 0):
            print(f"warning: each trial asks for {wanted:g} {key} but the cluster has "
                  f"{total.get(key, 0):g} now; trials wait until the autoscaler adds nodes",
                  file=sys.stderr)


def _runtime_env(plan: Plan) -> dict[str, Any]:
    # Workers on other nodes see W&B's mode only through the runtime environment.
    return {"env_vars": {"WANDB_MODE": plan.wandb_mode}}


def run_study(plan: Plan, spec: StudySpec) -> int:
    """Run (or resume) the search, then CV confirmation and artefacts; print a summary."""
    import ray

    from study import progress, tuning

    if plan.wandb_mode == "offline":
        print(offline_hint(plan.study_dir), file=sys.stderr)
    os.environ["WANDB_MODE"] = plan.wandb_mode
    os.environ.setdefault("WANDB_SILENT", "true")
    ray_log = Path(plan.study_dir) / progress.RAY_LOG
    print(f"Ray's own messages: {ray_log}", flush=True)
    if plan.address:
        _check_resources(plan, connect=True)
    else:
        _check_resources(plan, connect=False)
        # Worker output stays in Ray's logs: ASHA stopping a trial kills its process, which
        # prints a native stack dump that is noise; trial errors are collected from Tune.
        # address="local": always a new Ray of our own, never a cluster left running here.
        with progress.ray_output_to(ray_log):
            ray.init(address="local", include_dashboard=False, log_to_driver=False,
                     runtime_env=_runtime_env(plan))
    try:
        with progress.ray_output_to(ray_log):
            grid = tuning.search_tuner(plan, spec).fit()
        _raise_on_storage_errors(grid, plan=plan)
        return _finish_study(plan, spec, grid)
    except Exception as exc:  # a full or read-only disk surfaces as OSError, SQLite, Optuna...
        found = storage_problem(exc)
        if found is None:
            raise
        problem, filename = found
        path = filename or plan.study_dir
        raise StorageError(storage_fault_message(
            storage_state(path) or problem, path=path, plan=plan)) from exc


def _finish_study(plan: Plan, spec: StudySpec, grid) -> int:
    """After the search: `trials.parquet`, best configuration, CV, artefacts, summary."""
    from study import tuning

    stale = tuning.close_stale_optuna_trials(plan)
    if stale:
        print(f"marked {stale} Optuna trial(s) left RUNNING by a killed driver as FAIL")
    frame = collect(grid, plan=plan)
    write_parquet(frame, Path(plan.study_dir) / "trials.parquet")
    ranked = final_scores(frame, metric=plan.metric, mode=plan.mode, max_epochs=plan.max_epochs)
    best = _write_best(plan, spec, ranked, grid)
    if plan.cv_top_k and not ranked.empty:
        _run_cv(plan, spec, ranked, grid)
    _write_artifacts(plan, spec, ranked, grid)
    print(summary(plan, frame, best))
    print(_prune(plan, ranked, grid))
    return 0


def _prune(plan: Plan, ranked, grid) -> str:
    """Remove the checkpoints of all but the ``--keep-checkpoints`` best trials."""
    from study.checkpoints import prune_checkpoints

    kept = list(ranked["trial_id"].head(plan.keep_checkpoints))
    pruned = prune_checkpoints(_result_by_trial(grid), keep=kept)
    where = f"kept for {', '.join(kept)}" if kept else "none kept"
    return f"checkpoints: {where} (--keep-checkpoints {plan.keep_checkpoints}); " \
           f"{pruned.describe()}"


def _raise_on_storage_errors(grid, *, plan: Plan) -> None:
    """Trials that failed because the storage is full or read-only (typically while saving
    a checkpoint) stop the study with one message listing them all."""
    problems = {}
    for result in grid:
        found = storage_problem(result.error)
        if found is not None:
            problems[_trial_id(result)] = found
    if problems:
        problem, filename = next(iter(problems.values()))
        path = filename or plan.tune_dir
        raise StorageError(storage_fault_message(
            storage_state(path) or problem, path=path, plan=plan, trials=sorted(problems)))


def collect(grid, *, plan: Plan):
    """`trials.parquet` rows from a Ray Tune ResultGrid."""
    rungs = milestones(plan)
    trials = []
    for result in grid:
        frame = result.metrics_dataframe
        history = [] if frame is None else frame.to_dict("records")
        trials.append({
            "trial_id": _trial_id(result),
            "config": result.config,
            "history": history,
            "error": None if result.error is None else f"{type(result.error).__name__}: "
                                                        f"{result.error}"[:2000],
        })
    return trials_frame(trials, milestones=rungs)


def _trial_id(result) -> str:
    """Tune's short trial id (e.g. ``0b71eee8``), read from the trial directory's name."""
    name = Path(result.path).name  # run_trial_<id>_<n>_<params>_<date>
    parts = name.split("_")
    return parts[2] if name.startswith("run_trial_") and len(parts) > 2 else name


def _result_by_trial(grid) -> dict[str, Any]:
    return {_trial_id(result): result for result in grid}


def _write_best(plan: Plan, spec: StudySpec, ranked, grid) -> dict[str, Any] | None:
    """`best_config.json`: the best trial's training config, as `study.train --config` reads
    it; `best_trial.json` beside it: which trial, its score and its sampled parameters."""
    from study.trainable import trial_config

    if ranked.empty:
        return None
    row = ranked.iloc[0]
    result = _result_by_trial(grid)[row["trial_id"]]
    best = {"trial_id": row["trial_id"], plan.metric: float(row[plan.metric]),
            "epochs": int(row["epoch"]), "study": plan.name, "fold": plan.fold,
            "sampled": result.config, "config_file": BEST_CONFIG}
    study_dir = Path(plan.study_dir)
    write_text_atomic(study_dir / BEST_CONFIG,
                      json.dumps(trial_config(result.config, spec=spec), indent=2, default=str))
    write_text_atomic(study_dir / BEST_TRIAL, json.dumps(best, indent=2, default=str))
    return best


BEST_CONFIG = "best_config.json"
BEST_TRIAL = "best_trial.json"


def retrain_command(plan: Plan) -> str:
    """The command that retrains the best configuration on all the study's data and scores
    it on a held-out directory (docs/best-trial-to-test-score.md)."""
    return (f"python -m study.train --config {Path(plan.study_dir) / BEST_CONFIG} "
            f"--data-dir {plan.data_dir} --eval-dir TEST_DIR "
            f"--out {Path(plan.study_dir) / 'final'} --json")


def _run_cv(plan: Plan, spec: StudySpec, ranked, grid) -> None:
    from study import progress, tuning

    results = _result_by_trial(grid)
    candidates = [{"trial_id": t, "config": results[t].config}
                  for t in ranked["trial_id"].head(plan.cv_top_k)]
    with progress.ray_output_to(Path(plan.study_dir) / progress.RAY_LOG):
        cv_grid = tuning.cv_tuner(plan, spec, candidates).fit()
    _raise_on_storage_errors(cv_grid, plan=plan)
    milestones = [plan.max_epochs]
    rows = []
    for result in cv_grid:
        frame = result.metrics_dataframe
        rows.append({
            "trial_id": f"{result.config['candidate']['trial_id']}-fold{result.config['fold']}",
            "config": {"candidate": result.config["candidate"]["trial_id"],
                       **result.config["candidate"]["config"]},
            "history": [] if frame is None else frame.to_dict("records"),
            "error": None if result.error is None else str(result.error)[:2000],
        })
    write_parquet(trials_frame(rows, milestones=milestones), Path(plan.study_dir) / "cv.parquet")
    from study.checkpoints import prune_checkpoints

    # The fold retrainings only confirm the scores; their models are not used later.
    cv_pruned = prune_checkpoints(_result_by_trial(cv_grid), keep=())
    print(f"cross-validation checkpoints: {cv_pruned.describe()}", flush=True)


def _write_artifacts(plan: Plan, spec: StudySpec, ranked, grid) -> None:
    from study.artifacts import write_trial_artifacts
    from study.checkpoints import checkpoint_exists
    from study.trainable import CHECKPOINT_FILE, fold_split

    results = _result_by_trial(grid)
    _, val_split = fold_split(spec, fold=plan.fold)
    for trial_id in ranked["trial_id"].head(plan.explain_top):
        checkpoint = results[trial_id].checkpoint
        if checkpoint is None or not checkpoint_exists(checkpoint):
            continue  # removed by --keep-checkpoints when the study finished before a resume
        print(f"writing predictions and explanation arrays of trial {trial_id} ...", flush=True)
        out_dir = Path(plan.study_dir) / "trials" / trial_id
        with checkpoint.as_directory() as directory:
            checkpoint_file = Path(directory) / CHECKPOINT_FILE
            write_trial_artifacts(checkpoint_file=checkpoint_file, split=val_split,
                                  fold=plan.fold, out_dir=out_dir, progress=f"trial {trial_id}")
            if plan.mitdb_dir:
                mitdb_explanations.write_mitdb_explanations(
                    checkpoint_file=checkpoint_file, mitdb_dir=plan.mitdb_dir,
                    fs_hz=plan.fs_hz, out_dir=out_dir, classes=val_split.arrays.classes,
                    log=lambda line: print(line, flush=True),
                )


def summary(plan: Plan, frame, best: dict[str, Any] | None) -> str:
    """The closing lines: trials per stop reason, where trials diverged, the best trial."""
    trials = frame.drop_duplicates("trial_id", keep="last")  # a diverged trial's last row
    reasons = trials["stop_reason"].value_counts().to_dict()  # holds its message
    lines = [f"study {plan.name}: {len(trials)} trials "
             f"({', '.join(f'{k} {v}' for k, v in sorted(reasons.items()))})"]
    diverged = trials[trials["stop_reason"] == "diverged"].to_dict("records")
    shown = 3
    lines += [f"  diverged: trial {row['trial_id']}: {row.get('message') or 'no message'}"
              for row in diverged[:shown]]
    if len(diverged) > shown:
        lines.append(f"  ... and {len(diverged) - shown} more diverged trials (column 'message' "
                     "of trials.parquet)")
    if best is None:
        lines.append(f"no best trial: no trial completed the full budget of {plan.max_epochs} "
                     "epochs, so no best_config.json was written")
    else:
        lines.append(f"best: {best['trial_id']} {plan.metric} {best[plan.metric]:.4f} after "
                     f"{best['epochs']} epochs; config in {plan.study_dir}/{BEST_CONFIG} "
                     f"(trial details in {BEST_TRIAL})")
        lines.append(f"retrain it on all the data and score a test directory:\n  "
                     f"{retrain_command(plan)}")
    lines.append(f"per-epoch results: {plan.study_dir}/trials.parquet")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
