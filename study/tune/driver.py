"""The study driver behind `python -m study.run`: plan, Ray, the search, CV, final training,
artefacts and the closing summary.

`study.run` parses the command line and answers the listings without importing this module
(it imports Ray, torch and Optuna); everything that runs a study starts here.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna

from data_io.atomic import write_parquet
from data_io.datasets import load_dataset
from data_io.errors import DatasetError
from study.explain import mitdb_explanations
from study.folder_format import (
    BEST_CONFIG,
    BEST_TRIAL,
    CV_TABLE,
    DIVERGED,
    EPOCH,
    STOP_REASON,
    TRIAL_ID,
    TRIALS_TABLE,
    trial_dir,
)
from study.library_internals import LibraryInternalsError, check_internals
from study.tune import optuna_storage
from study.tune.collect import (
    collect,
    cv_identity,
    report_command,
    result_by_trial,
    retrain_command,
    trial_id,
    write_best,
)
from study.tune.held_out_test import final_test_lines, final_test_record, write_final_test
from study.tune.plan import Plan, StudyError, make_plan, resolve_study_dir
from study.tune.prepare import milestones, prepare_study, render_plan
from study.tune.ray_address import check_reachable
from study.tune.results import final_scores
from study.tune.spec import StudySpec
from study.tune.stage_times import read_stage_times, timed_stage
from study.tune.storage_faults import (
    EXIT_STORAGE,
    StorageError,
    storage_fault_message,
    storage_problem,
    storage_state,
)
from study.tune.study_arg import study_plan
from study.tune.wandb_mode import offline_hint, resolve_mode


def run_command(args: argparse.Namespace) -> int:
    """Plan, check and run (or dry-run, or resume) the study the parsed arguments ask for;
    the exit status of `study.run`."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        plan = _plan(args)
        check_internals(features=() if plan.wandb_mode == "disabled" else ("wandb",))
        for line in (
            []
            if plan.fixed_configurations  # a study of presets samples nothing
            else optuna_storage.check(plan.optuna_storage)
        ):  # hook: before Ray starts
            print(line, file=sys.stderr)
        if plan.address:
            check_reachable(plan.address)
        plan, spec = prepare_study(plan, write=not args.dry_run)
        print(render_plan(plan, spec), flush=True)
        if args.dry_run:
            _check_resources(plan, connect=bool(plan.address))
            if not args.no_estimate:
                print(_estimate(plan, spec), flush=True)
            print("dry run: everything checked, nothing run")
            return 0
        return run_study(plan, spec)
    except (StudyError, DatasetError, LibraryInternalsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_STORAGE


def _estimate(plan: Plan, spec: StudySpec) -> str:
    """The dry run's cost estimate, from a probe of a few sampled configurations."""
    from study.tune.estimate import probe

    print(
        "timing "
        + ("each configuration" if plan.fixed_configurations else "a few sampled configurations")
        + " for the cost estimate ...",
        flush=True,
    )
    device = "auto" if plan.gpus_per_trial else "cpu"
    return "\n".join(probe(plan, spec, milestones=milestones(plan), device=device))


def _plan(args: argparse.Namespace) -> Plan:
    if args.resume:
        if not args.name and not args.study_dir:
            raise StudyError("--resume needs the --name (or --study-dir) of the study")
        try:
            plan = study_plan(resolve_study_dir(name=args.name, study_dir=args.study_dir))
        except StudyError as exc:
            raise StudyError(f"--resume: {exc}") from None
        return replace(plan, resume=True, address=args.address or plan.address)
    return make_plan(args, wandb_mode=resolve_mode(args.wandb_mode))


def _check_resources(plan: Plan, *, connect: bool) -> None:
    """Fail before any trial when one trial cannot fit (locally), or warn when a cluster
    lacks the resources now (its autoscaler may still add nodes)."""
    import ray

    if not connect:
        cpus = os.cpu_count() or 1
        if plan.cpus_per_trial > cpus:
            raise StudyError(
                f"--cpus-per-trial {plan.cpus_per_trial:g} but this machine has {cpus} CPUs"
            )
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
            print(
                f"warning: each trial asks for {wanted:g} {key} but the cluster has "
                f"{total.get(key, 0):g} now; trials wait until the autoscaler adds nodes",
                file=sys.stderr,
            )


def _runtime_env(plan: Plan) -> dict[str, Any]:
    # Workers on other nodes see W&B's mode only through the runtime environment.
    return {"env_vars": {"WANDB_MODE": plan.wandb_mode}}


def run_study(plan: Plan, spec: StudySpec) -> int:
    """Run (or resume) the search, then CV confirmation and artefacts; print a summary."""
    import ray

    from study.tune import progress, tuning

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
            ray.init(
                address="local",
                include_dashboard=False,
                log_to_driver=False,
                runtime_env=_runtime_env(plan),
            )
    try:
        if plan.fixed_configurations:
            return run_fixed(plan, spec)
        with progress.ray_output_to(ray_log), timed_stage(plan.study_dir, "search"):
            grid = tuning.search_tuner(plan, spec, milestones=milestones(plan)).fit()
        _raise_on_storage_errors(grid, plan=plan)
        return _finish_study(plan, spec, grid)
    except Exception as exc:  # a full or read-only disk surfaces as OSError, SQLite, Optuna...
        found = storage_problem(exc)
        if found is None:
            raise
        problem, filename = found
        path = filename or plan.study_dir
        raise StorageError(
            storage_fault_message(storage_state(path) or problem, path=path, plan=plan)
        ) from exc


def _finish_study(plan: Plan, spec: StudySpec, grid) -> int:
    """After the search: `trials.parquet`, best configuration, CV, artefacts, summary."""
    from study.tune import optuna_truth

    frame = collect(grid, milestones=milestones(plan))
    write_parquet(frame, Path(plan.study_dir) / TRIALS_TABLE)
    print(optuna_truth.close_and_compare(plan=plan, frame=frame))  # hook: study.tune.optuna_truth
    ranked = final_scores(frame, metric=plan.metric, mode=plan.mode, max_epochs=plan.max_epochs)
    best = write_best(plan, spec, ranked=ranked, grid=grid)
    candidates = _search_candidates(plan, ranked, grid)
    baseline = preset_candidates(plan.baseline, space=plan.space, baseline=True)
    if plan.cv_top_k and candidates:
        _run_cv(plan, spec, candidates[: plan.cv_top_k] + baseline)
    results = result_by_trial(grid)
    _write_artifacts(
        plan, spec, [(t, results[t]) for t in ranked[TRIAL_ID].head(plan.explain_top)]
    )
    final = (
        _run_final(plan, spec, candidates + baseline)
        if plan.test != "none" and candidates
        else None
    )
    print(summary(plan, frame, best))
    if final is not None:
        print("\n".join(final_test_lines(final)))
    print(_prune(plan, ranked, grid))
    print(next_steps(plan, best=best))
    return 0


def _search_candidates(plan: Plan, ranked, grid) -> list[dict[str, Any]]:
    """The configurations CV confirms and the test set scores: the ``--cv-top-k`` best
    full-budget trials (at least the best), best first."""
    results = result_by_trial(grid)
    return [
        {TRIAL_ID: t, "config": results[t].config, "search_score": float(score)}
        for t, score in zip(
            ranked[TRIAL_ID].head(max(plan.cv_top_k, 1)),
            ranked[plan.metric].head(max(plan.cv_top_k, 1)),
            strict=True,
        )
    ]


def preset_candidates(
    names: tuple[str, ...], *, space: str, baseline: bool = False
) -> list[dict[str, Any]]:
    """Fixed configurations, named by the preset. ``--presets``: each preset with its published
    training (`study.engine.protocols.study_preset_config`). A search's ``--baseline``: the preset's
    model only, so it trains as the chosen configurations do. The study's budget and
    overrides apply on top of both."""
    from models.presets import load_preset
    from study.engine.protocols import study_preset_config

    def config(name: str) -> dict[str, Any]:
        return {"model": load_preset(name)} if baseline else study_preset_config(name, space=space)

    return [
        {
            TRIAL_ID: name,
            "config": config(name),
            "search_score": None,
            **({"baseline": True} if baseline else {}),
        }
        for name in names
    ]


def run_fixed(plan: Plan, spec: StudySpec) -> int:
    """Fixed configurations: each preset on the cross-validation folds (`cv.parquet`), then,
    when a test set is held out, retrained on all non-test records and scored on it."""
    candidates = preset_candidates(plan.presets, space=plan.space)
    frame = _run_cv(plan, spec, candidates, explain=True)
    final = _run_final(plan, spec, candidates) if plan.test != "none" else None
    print(fixed_summary(plan, frame))
    if final is not None:
        print("\n".join(final_test_lines(final)))
    print(next_steps(plan, best=None))
    return 0


def fixed_summary(plan: Plan, frame) -> str:
    """Mean and sd over folds of each preset's last-epoch score."""
    last = frame.sort_values(EPOCH).drop_duplicates(TRIAL_ID, keep="last")
    folds = sorted({int(f) for f in last["fold"]}) if "fold" in last else []
    n = len(plan.presets)
    lines = [
        f"study {plan.name}: {n} fixed configuration{'s' if n != 1 else ''} on folds "
        f"{', '.join(map(str, folds))}, {plan.max_epochs} epochs"
    ]
    for name in plan.presets:
        scores = last.loc[last["config/candidate"] == name, plan.metric]
        lines.append(
            f"  {name}: {plan.metric} {scores.mean():.4f} +- {scores.std(ddof=1):.4f} "
            f"over {scores.notna().sum()} folds"
            if len(scores) > 1
            else f"  {name}: {plan.metric} {scores.mean():.4f} on 1 fold"
        )
    lines.append(f"per-fold results: {plan.study_dir}/cv.parquet")
    return "\n".join(lines)


def _prune(plan: Plan, ranked, grid) -> str:
    """Remove the checkpoints of all but the ``--keep-checkpoints`` best trials."""
    from study.tune.checkpoint_keeper import prune_checkpoints

    kept = list(ranked[TRIAL_ID].head(plan.keep_checkpoints))
    pruned = prune_checkpoints(result_by_trial(grid), keep=kept)
    where = f"kept for {', '.join(kept)}" if kept else "none kept"
    return f"checkpoints: {where} (--keep-checkpoints {plan.keep_checkpoints}); {pruned.describe()}"


def _raise_on_storage_errors(grid, *, plan: Plan) -> None:
    """Trials that failed because the storage is full or read-only (typically while saving
    a checkpoint) stop the study with one message listing them all."""
    problems = {}
    for result in grid:
        found = storage_problem(result.error)
        if found is not None:
            problems[trial_id(result)] = found
    if problems:
        problem, filename = next(iter(problems.values()))
        path = filename or plan.tune_dir
        raise StorageError(
            storage_fault_message(
                storage_state(path) or problem, path=path, plan=plan, trials=sorted(problems)
            )
        )


def _run_cv(
    plan: Plan, spec: StudySpec, candidates: list[dict[str, Any]], *, explain: bool = False
):
    """The candidates on the cross-validation folds; `cv.parquet`; returns its frame. With
    ``explain`` (a study of fixed configurations, which has no search trials), the
    ``--explain-top`` best candidates on the study's fold are explained as a search's best
    trials are, under their names (`trials/<preset>/`)."""
    from study.tune import progress, tuning

    with progress.ray_output_to(Path(plan.study_dir) / progress.RAY_LOG), \
            timed_stage(plan.study_dir, "cv"):
        cv_grid = tuning.cv_tuner(plan, spec, candidates).fit()
    _raise_on_storage_errors(cv_grid, plan=plan)
    frame = collect(cv_grid, milestones=[plan.max_epochs], identify=cv_identity)
    write_parquet(frame, Path(plan.study_dir) / CV_TABLE)
    if explain:
        _write_artifacts(plan, spec, best_on_fold(plan, frame=frame, grid=cv_grid))
    from study.tune.checkpoint_keeper import prune_checkpoints

    # The fold retrainings only confirm the scores; their models are not used later.
    cv_pruned = prune_checkpoints({result.path: result for result in cv_grid}, keep=())
    print(f"cross-validation checkpoints: {cv_pruned.describe()}", flush=True)
    return frame


def best_on_fold(plan: Plan, *, frame, grid) -> list[tuple[str, Any]]:
    """The ``--explain-top`` candidates with the best full-budget score on the study's fold
    (``--fold``), best first, each with its Tune result there."""
    last = frame[(frame[EPOCH] == plan.max_epochs) & (frame["fold"] == plan.fold)]
    ranked = last.dropna(subset=[plan.metric]).sort_values(
        plan.metric, ascending=plan.mode == "min", kind="stable"
    )
    results = {(r.config["candidate"][TRIAL_ID], r.config["fold"]): r for r in grid}
    return [
        (name, results[(name, plan.fold)])
        for name in ranked["config/candidate"].head(plan.explain_top)
    ]


def _run_final(plan: Plan, spec: StudySpec, candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """The candidates retrained on every non-test record, scored once on the test set;
    `final_test.json`. Their newest checkpoints are kept: they are the study's models."""
    from study.tune import progress, tuning
    from study.tune.checkpoint_keeper import prune_checkpoints
    from study.tune.data import final_split

    train_split, test_split = final_split(spec)
    dataset = load_dataset(plan.dataset)
    print(
        f"final training of {len(candidates)} configuration(s) on "
        f"{dataset.count(len(train_split.indices))}, scored once on the test set "
        f"({dataset.count(len(test_split.indices))}) ...",
        flush=True,
    )
    with progress.ray_output_to(Path(plan.study_dir) / progress.RAY_LOG), \
            timed_stage(plan.study_dir, "final"):
        grid = tuning.final_tuner(plan, spec, candidates).fit()
    _raise_on_storage_errors(grid, plan=plan)
    rows, errors = {}, {}
    for result in grid:
        name = result.config["candidate"][TRIAL_ID]
        rows[name] = dict(result.metrics or {})
        if result.error is not None:
            errors[name] = f"{type(result.error).__name__}: {result.error}"[:500]
    source = (
        "directory"
        if plan.test == "directory"
        else "fold"
        if plan.test_fold is not None
        else "held-out"
    )
    record = final_test_record(
        dataset=dataset,
        test={
            "source": source,
            "fold": plan.test_fold,
            "directory": plan.test_dir,
            "n_records": len(test_split.indices),
        },
        trained_on={"n_records": len(train_split.indices), "epochs": plan.max_epochs},
        candidates=[
            {k: c[k] for k in (TRIAL_ID, "config", "search_score", "baseline") if k in c}
            for c in candidates
        ],
        rows=rows,
        errors=errors,
    )
    write_final_test(Path(plan.study_dir), record)
    kept = prune_checkpoints(
        {result.path: result for result in grid}, keep=[result.path for result in grid]
    )
    print(f"final models: kept, the newest checkpoint of each of the {len(grid)} under "
          f"{plan.experiment_dir('final')}; older checkpoints: {kept.describe()}", flush=True)
    return record


def _write_artifacts(plan: Plan, spec: StudySpec, explained: list[tuple[str, Any]]) -> None:
    """Predictions and explanation arrays of each (name, Tune result) in ``explained``
    (the best trials, best first) into `trials/<name>/`, from its newest checkpoint."""
    from study.engine.metrics import Scoring
    from study.explain.artifacts import write_trial_artifacts
    from study.explain.explanation_methods import study_settings
    from study.tune import trainable
    from study.tune.checkpoint_keeper import checkpoint_exists
    from study.tune.data import mask_source

    dataset = load_dataset(plan.dataset)
    _, val_split = trainable.fold_split(spec, fold=plan.fold)
    settings = study_settings(smoke=plan.smoke)
    explained = [(name, result) for name, result in explained
                 if result.checkpoint is not None and checkpoint_exists(result.checkpoint)]
    # (a checkpoint is gone where --keep-checkpoints removed it before a resume)
    for k, (name, result) in enumerate(explained):
        checkpoint = result.checkpoint
        budget = _explanation_budget_s(plan, trials_left=len(explained) - k,
                                       final_s=_final_seconds(plan, result))
        print(f"writing predictions and explanation arrays of trial {name} ...", flush=True)
        if budget is not None:
            print(f"trial {name}: explanations within {budget:.0f} s, a quarter of the study "
                  "(--explain-records N or all: no budget)", flush=True)
        out_dir = trial_dir(plan.study_dir, name)
        with checkpoint.as_directory() as directory, \
                timed_stage(plan.study_dir, "explanations"):
            checkpoint_file = Path(directory) / trainable.CHECKPOINT_FILE
            write_trial_artifacts(
                checkpoint_file=checkpoint_file,
                split=val_split,
                fold=plan.fold,
                out_dir=out_dir,
                scoring=Scoring.from_dataset(dataset),
                normal_class=dataset.normal_index,
                masks=mask_source(spec) if spec is not None else None,
                score_records=(plan.explain_records
                               if isinstance(plan.explain_records, int) else None),
                budget_s=budget,
                sanity=plan.explain_sanity,
                settings=settings,
                progress=f"trial {name}",
                log=lambda line: print(line, flush=True),
            )
            if plan.mitdb_dir:
                mitdb_explanations.write_mitdb_explanations(
                    checkpoint_file=checkpoint_file,
                    mitdb_dir=plan.mitdb_dir,
                    fs_hz=plan.fs_hz,
                    out_dir=out_dir,
                    classes=val_split.arrays.classes,
                    window_label=dataset.facts["mitdb_window_class"],
                    normal_class=dataset.normal_index,
                    log=lambda line: print(line, flush=True),
                )


def _explanation_budget_s(plan: Plan, *, trials_left: int, final_s: float) -> float | None:
    """Seconds the next trial's explanations may take by default (``--explain-records``
    unset): its share of `study.tune.explanation_cost.EXPLANATION_SHARE` of the study (the
    stages timed so far and ``final_s``, the final training still to come), less the
    explanations already written; None with a fixed number or ``all``."""
    from study.tune.explanation_cost import explanation_budget_s

    if plan.explain_records is not None:
        return None
    times = read_stage_times(Path(plan.study_dir))
    before = sum(seconds for stage, seconds in times.items() if stage != "explanations")
    left = explanation_budget_s(before + final_s) - times.get("explanations", 0.0)
    return max(left, 0.0) / max(trials_left, 1)


def _final_seconds(plan: Plan, result: Any) -> float:
    """The final training still to come, from a search trial's own seconds per epoch: its
    waves (``--concurrency`` configurations at a time) of ``--max-epochs`` epochs; 0 without
    a test set."""
    from study.tune.estimate import n_final

    metrics = getattr(result, "metrics", None) or {}
    epochs = metrics.get("training_iteration") or 0
    if not epochs or not n_final(plan):
        return 0.0
    waves = -(-n_final(plan) // max(plan.concurrency, 1))
    return waves * plan.max_epochs * float(metrics.get("time_total_s", 0.0)) / epochs


def summary(plan: Plan, frame, best: dict[str, Any] | None) -> str:
    """The closing lines: trials per stop reason, where trials diverged, the best trial."""
    trials = frame.drop_duplicates(TRIAL_ID, keep="last")  # a diverged trial's last row
    reasons = trials[STOP_REASON].value_counts().to_dict()  # holds its message
    lines = [
        f"study {plan.name}: {len(trials)} trials "
        f"({', '.join(f'{k} {v}' for k, v in sorted(reasons.items()))})"
    ]
    diverged = trials[trials[STOP_REASON] == DIVERGED].to_dict("records")
    shown = 3
    lines += [
        f"  diverged: trial {row['trial_id']}: {row.get('message') or 'no message'}"
        for row in diverged[:shown]
    ]
    if len(diverged) > shown:
        lines.append(
            f"  ... and {len(diverged) - shown} more diverged trials (column 'message' "
            "of trials.parquet)"
        )
    if best is None:
        lines.append(
            f"no best trial: no trial completed the full budget of {plan.max_epochs} "
            "epochs, so no best_config.json was written"
        )
    else:
        lines.append(
            f"best: {best['trial_id']} {plan.metric} {best[plan.metric]:.4f} after "
            f"{best['epochs']} epochs; config in {plan.study_dir}/{BEST_CONFIG} "
            f"(trial details in {BEST_TRIAL})"
        )
    lines.append(f"per-epoch results: {plan.study_dir}/trials.parquet")
    return "\n".join(lines)


def next_steps(plan: Plan, *, best: dict[str, Any] | None) -> str:
    """The closing commands, as they paste: the report, then (after a search with a best
    trial) the best configuration's retraining."""
    lines = [f"next, the report:\n  {report_command(plan)}"]
    if best is not None:
        lines.append(
            f"retrain the best configuration alone (validated on fold {plan.fold} "
            f"as in the search; add --eval-dir DIR to train on all of --data-dir and "
            f"score records you hold out):\n  {retrain_command(plan)}"
        )
    return "\n".join(lines)
