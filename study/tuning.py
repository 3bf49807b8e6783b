"""Building and running the Ray Tune experiment of a study: Optuna TPE + ASHA + W&B.

`study.run` composes; this module only knows Ray Tune and Optuna. The search function comes
from the space module (importable at top level, which Ray needs to restore the searcher), the
Optuna study lives in an RDB storage (SQLite by default) so `optuna.load_study` and
optuna-dashboard can read it, and ASHA compares trials on the per-epoch validation score.
"""

from __future__ import annotations

import os
from typing import Any

import optuna
from ray import tune
from ray.air.integrations.wandb import WandbLoggerCallback
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from search_spaces import load_space
from study.plan import Plan
from study.spec import StudySpec
from study.trainable import run_trial

# Per-epoch checkpoints otherwise print a warning about frequent experiment snapshots.
_QUIET_ENV = {"TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0"}


def trainable(plan: Plan, spec: StudySpec):
    """The trial function with the study spec bound and the per-trial resources attached."""
    return tune.with_resources(
        tune.with_parameters(run_trial, spec=spec),
        {"cpu": plan.cpus_per_trial, "gpu": plan.gpus_per_trial},
    )


def searcher(plan: Plan) -> ConcurrencyLimiter:
    """Seeded TPE over the space's define-by-run function, persisted in the RDB storage."""
    space = load_space(plan.space)
    search = OptunaSearch(
        space=space.define,
        metric=plan.metric,
        mode=plan.mode,
        sampler=optuna.samplers.TPESampler(seed=plan.seed),
        storage=optuna.storages.RDBStorage(plan.optuna_storage),
        study_name=plan.optuna_study_name,
    )
    return ConcurrencyLimiter(search, max_concurrent=plan.concurrency)


def scheduler(plan: Plan) -> ASHAScheduler:
    return ASHAScheduler(
        time_attr="training_iteration",
        metric=plan.metric,
        mode=plan.mode,
        max_t=plan.max_epochs,
        grace_period=plan.grace_period,
        reduction_factor=plan.reduction_factor,
    )


def callbacks(plan: Plan) -> list[Any]:
    if plan.wandb_mode == "disabled":
        return []
    return [
        WandbLoggerCallback(
            project="ecg-study",
            group=plan.name,
            tags=[plan.space, plan.dataset],
            mode=plan.wandb_mode,
            log_config=True,
            excludes=["val/confusion_json", "message"],
        )
    ]


def run_config(plan: Plan, *, name: str) -> tune.RunConfig:
    return tune.RunConfig(
        name=name,
        storage_path=plan.storage_path,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        failure_config=tune.FailureConfig(max_failures=plan.max_failures),
        callbacks=callbacks(plan),
        verbose=1,
    )


def search_tuner(plan: Plan, spec: StudySpec) -> tune.Tuner:
    """A new Tuner for the search, or the restored one when resuming."""
    os.environ.update(_QUIET_ENV)
    fn = trainable(plan, spec)
    experiment = f"{plan.name}-tune"
    if plan.resume and tune.Tuner.can_restore(plan.tune_dir):
        return tune.Tuner.restore(plan.tune_dir, trainable=fn, resume_errored=True)
    return tune.Tuner(
        fn,
        tune_config=tune.TuneConfig(
            search_alg=searcher(plan), scheduler=scheduler(plan), num_samples=plan.num_samples
        ),
        run_config=run_config(plan, name=experiment),
    )


def cv_tuner(plan: Plan, spec: StudySpec, candidates: list[dict[str, Any]]) -> tune.Tuner:
    """Every candidate configuration on every fold, full budget, no early stopping."""
    fn = trainable(plan, spec)
    experiment = f"{plan.name}-cv"
    cv_dir = f"{plan.storage_path.rstrip('/')}/{experiment}"
    if plan.resume and tune.Tuner.can_restore(cv_dir):
        return tune.Tuner.restore(cv_dir, trainable=fn, resume_errored=True)
    return tune.Tuner(
        fn,
        param_space={
            "candidate": tune.grid_search(candidates),
            "fold": tune.grid_search(list(range(plan.n_folds))),
        },
        tune_config=tune.TuneConfig(max_concurrent_trials=plan.concurrency),
        run_config=run_config(plan, name=experiment),
    )


def close_stale_optuna_trials(plan: Plan) -> int:
    """Mark Optuna trials still RUNNING after the search as FAIL; returns how many.

    A trial asked just before a driver was killed stays RUNNING in the Optuna storage forever
    after a restore (STACK-NOTES); once `fit` returns nothing runs, so any such trial is stale.
    """
    storage = optuna.storages.RDBStorage(plan.optuna_storage)
    try:
        study_id = storage.get_study_id_from_name(plan.optuna_study_name)
    except KeyError:
        return 0
    stale = storage.get_all_trials(study_id, states=(optuna.trial.TrialState.RUNNING,))
    for trial in stale:
        storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    return len(stale)
