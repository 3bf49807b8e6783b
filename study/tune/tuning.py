"""Building and running the Ray Tune experiment of a study: Optuna TPE + ASHA + W&B.

`study.run` composes; this module only knows Ray Tune and Optuna. The search function comes
from the space module (importable at top level, which Ray needs to restore the searcher), the
Optuna study lives in an RDB storage (SQLite by default) so `optuna.load_study` and
optuna-dashboard can read it, and ASHA compares trials on the per-epoch validation score.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import optuna
import pyarrow
import pyarrow.fs
from ray import tune
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import ConcurrencyLimiter

from search_spaces import define_fixed
from study.folder_format import CONFUSION_JSON, TRIAL_ID
from study.library_internals import (
    OUTCOME_PREFIX,
    HookedWandbLoggerCallback,
    RestorableASHA,
    SamplingOptunaSearch,
)
from study.tune.checkpoint_keeper import CheckpointKeeper
from study.tune.explanation_cost import ExplanationEpochs, fold_explanation_epochs
from study.tune.optuna_storage import open_storage
from study.tune.optuna_truth import OptunaRecorder, error_text
from study.tune.plan import Plan, StudyError
from study.tune.progress import FINAL_STAGE, StudyProgress
from study.tune.results import trial_outcome
from study.tune.spec import StudySpec
from study.tune.trainable import TEST_FOLD, run_trial, trial_config
from study.tune.whole_file_fs import WholeFileLocalFileSystem

RESULT_FILE = "result.json"
"""Tune's per-trial file of reported rows, one JSON object a line."""

# Per-epoch checkpoints otherwise print a warning about frequent experiment snapshots. Ray
# 2.60's new console output prints an experiment table and a TensorBoard hint whatever the
# verbosity; its legacy reporter at verbose=0 prints nothing (study.tune.progress reports instead).
_QUIET_ENV = {"TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
              "RAY_AIR_NEW_OUTPUT": "0"}


def trainable(plan: Plan, spec: StudySpec):
    """The trial function with the study spec bound and the per-trial resources attached.

    Every Tuner is built from it, so it also silences Tune's own console output (the search's
    and a fixed-configuration study's cross-validation alike)."""
    os.environ.update(_QUIET_ENV)
    return tune.with_resources(
        tune.with_parameters(run_trial, spec=spec),
        {"cpu": plan.cpus_per_trial, "gpu": plan.gpus_per_trial},
    )


SAMPLERS = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
}
"""`Plan.sampler` -> Optuna sampler class (each takes ``seed=``)."""


def searcher(plan: Plan, spec: StudySpec) -> ConcurrencyLimiter:
    """The seeded sampler over the space's define-by-run function, persisted in the RDB
    storage; `optuna_recorder` writes what the trials do. The options the study fixes are
    not sampled: they come back with the space's own fixed values, so a trial's config is the
    configuration it trains (`search_spaces.define_fixed`)."""
    search = SamplingOptunaSearch(
        space=functools.partial(define_fixed, space=plan.space, fixed=spec.fixed_options),
        metric=plan.metric,
        mode=plan.mode,
        sampler=SAMPLERS[plan.sampler](seed=plan.seed),
        storage=open_storage(plan.optuna_storage),
        study_name=plan.optuna_study_name,
    )
    return ConcurrencyLimiter(search, max_concurrent=plan.concurrency)


def optuna_recorder(plan: Plan, *, milestones: list[int]) -> OptunaRecorder:
    """The callback that keeps the Optuna storage as truthful as `trials.parquet`."""
    return OptunaRecorder(storage_url=plan.optuna_storage, study_name=plan.optuna_study_name,
                          metric=plan.metric, milestones=milestones)


def reported_results(trial: Any) -> list[dict[str, Any]]:
    """The rows a trial reported so far, read from its `result.json` in the experiment's
    storage (local or a URI); none for a new trial."""
    storage = getattr(trial, "storage", None)
    if storage is None or getattr(storage, "trial_dir_name", None) is None:
        return []  # a new trial: Tune names its directory when it first starts
    try:
        with storage.storage_filesystem.open_input_stream(
            f"{storage.trial_fs_path}/{RESULT_FILE}"
        ) as stream:
            text = stream.read().decode()
    except (FileNotFoundError, OSError):
        return []
    rows = []
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break  # the last line of a file cut short by the kill
    return rows


def _asha(plan: Plan) -> RestorableASHA:
    metric, mode = plan.rung
    return RestorableASHA(
        reported=reported_results,
        time_attr="training_iteration",
        metric=metric,
        mode=mode,
        max_t=plan.max_epochs,
        grace_period=plan.grace_period,
        reduction_factor=plan.reduction_factor,
    )


def _fifo(plan: Plan) -> FIFOScheduler:
    return FIFOScheduler()


SCHEDULERS = {"asha": _asha, "fifo": _fifo}
"""`Plan.scheduler` -> builder of the Ray Tune trial scheduler."""


def scheduler(plan: Plan) -> TrialScheduler:
    return SCHEDULERS[plan.scheduler](plan)


WANDB_KEY_VARIABLE = "WANDB_API_KEY"


class KeySafeWandbLoggerCallback(HookedWandbLoggerCallback):
    """Ray's W&B callback, except that the API key never enters a Ray runtime environment.

    Ray hands WANDB_API_KEY to its W&B logging actors as a runtime-environment variable, and
    Ray's runtime-env agent writes each environment it creates, key included, in plain text to
    `<ray session>/logs/runtime_env_agent.log` (found by `bench.drill_secrets`). Here the key
    is out of the driver's environment while Ray defines the actor, and reaches an online run
    as a `wandb.init` setting instead (offline and disabled runs need no key).
    """

    def start_logging_actor(self, trial: Any, exclude_results: list[str],
                            wandb_init_kwargs: dict[str, Any]) -> None:
        key = os.environ.pop(WANDB_KEY_VARIABLE, None)
        if key and wandb_init_kwargs.get("mode", "online") == "online":
            import wandb

            wandb_init_kwargs["settings"] = wandb.Settings(api_key=key)
        try:
            super().start_logging_actor(trial, exclude_results, wandb_init_kwargs)
        finally:
            if key is not None:
                os.environ[WANDB_KEY_VARIABLE] = key


WANDB_DIR = "wandb"
"""The directory `wandb.init` creates for its runs inside its ``dir``."""

class StudyWandbLoggerCallback(KeySafeWandbLoggerCallback):
    """The study's W&B logging: one run per trial (id = Tune trial id, grouped by study,
    tagged with space and data set, job type ``search`` or ``cv``, the trial's training
    config as run config, one history row per epoch with the epoch as step) that ends with
    the trial's outcome in its summary.

    The run config is the config the trial trained with (`study.tune.trainable.trial_config`:
    sampled values, the study's overrides such as ``--smoke``'s, budget, sampling rate,
    seed), as in ``best_config.json``; a cross-validation trial's adds the search trial it
    retrains (``candidate``) and its ``fold``.

    The outcome (``trial/stop_reason``, ``trial/rung``, ``trial/epochs_completed``,
    ``trial/message``) is logged at the trial's last step, so W&B merges it into the last
    epoch's row and keeps it as the run's final summary.

    Where the run's files are written: Ray's callback writes them in the trial's driver staging
    directory (under /tmp/ray), which Ray copies to the study's storage at each experiment
    snapshot. Its last copy is made when the search ends, *before* Ray waits for the trials'
    `wandb.finish` (`Tuner.fit` snapshots, then calls the callbacks' ``on_experiment_end``),
    so the run of the last trial reached the study directory unfinished or empty. Here a run
    is written in the trial's directory in the storage itself when that is a file system path
    (``in_storage``), so it is complete once `Tuner.fit` returns; on a URI (``s3://``) it is
    uploaded once its `wandb.finish` has returned.
    """

    def __init__(self, *, milestones: list[int], spec: StudySpec, in_storage: bool,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.milestones = list(milestones)
        self.spec = spec
        self.in_storage = in_storage

    def init_kwargs(self, trial: Any, wandb_init_kwargs: dict[str, Any]) -> dict[str, Any]:
        wandb_init_kwargs["config"] = {**trial_config(trial.config, spec=self.spec),
                                       **cv_identity_config(trial.config)}
        if self.in_storage:
            # The logging actor runs on the driver's node, where the storage path is mounted.
            Path(trial.path).mkdir(parents=True, exist_ok=True)
            wandb_init_kwargs["dir"] = trial.path
        return super().init_kwargs(trial, wandb_init_kwargs)

    def run_finished(self, trial: Any) -> None:
        run_files = Path(trial.local_path) / WANDB_DIR
        if not self.in_storage and run_files.is_dir():
            pyarrow.fs.copy_files(str(run_files), f"{trial.path}/{WANDB_DIR}",
                                  destination_filesystem=trial.storage.storage_filesystem)

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        outcome = trial_outcome(
            history=[trial.last_result] if trial.last_result else [],
            error=error_text(trial) if failed else None, milestones=self.milestones)
        self.log_trial_result(0, trial, {
            "training_iteration": (trial.last_result or {}).get("training_iteration", 0),
            f"{OUTCOME_PREFIX}stop_reason": outcome.stop_reason,
            f"{OUTCOME_PREFIX}rung": outcome.max_rung,
            f"{OUTCOME_PREFIX}epochs_completed": outcome.epochs_completed,
            f"{OUTCOME_PREFIX}message": outcome.message[:2000],
        })
        super().log_trial_end(trial, failed=failed)


def cv_identity_config(config: dict[str, Any]) -> dict[str, Any]:
    """``candidate`` (search trial id) and ``fold`` of a cross-validation trial's config
    (see `cv_tuner`); nothing for a search trial."""
    if "candidate" not in config:
        return {}
    return {"candidate": config["candidate"][TRIAL_ID], "fold": config["fold"]}


def callbacks(plan: Plan, spec: StudySpec | None, *, milestones: list[int],
              job_type: str) -> list[Any]:
    if plan.wandb_mode == "disabled":
        return []
    return [
        StudyWandbLoggerCallback(
            milestones=milestones,
            spec=spec,
            in_storage=storage_is_local(plan),
            project="ecg-study",
            group=plan.name,
            job_type=job_type,
            tags=[plan.space, plan.dataset],
            mode=plan.wandb_mode,
            log_config=False,  # the config is the run's config, not a column of every row
            excludes=[CONFUSION_JSON, "message"],
        )
    ]


def storage_is_local(plan: Plan) -> bool:
    """Whether the study's storage is a path on a (mounted) file system, not a URI."""
    return "://" not in plan.storage_path


def storage_filesystem(plan: Plan) -> pyarrow.fs.FileSystem | None:
    """`WholeFileLocalFileSystem` for a storage path on a (mounted) file system; None, Ray's
    default, for a URI (``s3://...``: object stores never show half-written objects)."""
    if not storage_is_local(plan):
        return None
    return pyarrow.fs.PyFileSystem(WholeFileLocalFileSystem())


def check_restorable(experiment_dir: str) -> None:
    """Refuse to resume from a damaged Tune experiment state, which `Tuner.restore` would
    answer by dropping every trial and restarting the search.

    Raises:
        StudyError: the newest ``experiment_state-*.json`` does not parse.
    """
    if "://" in experiment_dir:
        return
    states = sorted(Path(experiment_dir).glob("experiment_state-*.json"))
    if not states:
        return
    try:
        json.loads(states[-1].read_text())
    except (ValueError, OSError) as exc:
        raise StudyError(
            f"cannot resume: Ray Tune's experiment state {states[-1]} is damaged ({exc}), "
            "e.g. cut short when the disk filled up. Ray Tune would restart the search and "
            "drop every finished trial; restore the file from a backup or start a new study"
        ) from exc


def run_config(plan: Plan, spec: StudySpec | None, *, name: str, milestones: list[int],
               job_type: str, extra_callbacks: list[tune.Callback] | None = None,
               progress: StudyProgress | None = None) -> tune.RunConfig:
    """Tune's run settings: the two latest checkpoints per running trial (the trainer's
    checkpoint holds everything a restart needs; with only one, a driver killed between a new
    checkpoint and Tune's next experiment snapshot resumes pointing at the deleted one), no
    tables of Tune's own (``verbose=0``): ``progress`` prints
    the study's lines instead. ``job_type``: the W&B job type of its trials' runs; ``spec``
    (None only with W&B disabled) resolves their configs."""
    return tune.RunConfig(
        name=name,
        storage_path=plan.storage_path,
        storage_filesystem=storage_filesystem(plan),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        failure_config=tune.FailureConfig(max_failures=plan.max_failures),
        callbacks=[*([progress] if progress else []),
                   *callbacks(plan, spec, milestones=milestones, job_type=job_type),
                   *(extra_callbacks or [])],
        verbose=0,
    )


def _progress(plan: Plan, *, label: str, n_trials: int, milestones: list[int],
              shown_as: str | None = None, rung_metric: str | None = None,
              fixed: list[str] | None = None,
              later_stages: tuple[tuple[str, int], ...] = (),
              explain_epochs: ExplanationEpochs | None = None) -> StudyProgress:
    return StudyProgress(label=label, n_trials=n_trials, metric=plan.metric, mode=plan.mode,
                         milestones=milestones, reduction_factor=plan.reduction_factor,
                         concurrency=plan.concurrency, shown_as=shown_as,
                         rung_metric=rung_metric, fixed=fixed or (),
                         later_stages=later_stages, explain_epochs=explain_epochs)


def later_stages(plan: Plan, *, after: str) -> tuple[tuple[str, int], ...]:
    """(stage, waves) of the full-budget runs a search trains after stage ``after``
    ("search" or "cv"): the CV of the ``--cv-top-k`` best and the baselines on every CV
    fold, then the final training of the best (at least one) and the baselines,
    ``--concurrency`` at a time; stages without runs left out."""
    from study.tune.estimate import n_cv, n_final

    def waves(runs: int) -> int:
        return -(-runs // max(plan.concurrency, 1))

    cv = waves(n_cv(plan) * len(plan.cv_folds)) if after == "search" else 0
    stages = (("cross-validation", cv), (FINAL_STAGE, waves(n_final(plan))))
    return tuple((name, n) for name, n in stages if n)


def search_tuner(plan: Plan, spec: StudySpec, *, milestones: list[int]) -> tune.Tuner:
    """A new Tuner for the search, or the restored one when resuming (Ray restores its
    callbacks, the Optuna recorder included). ``milestones``: the scheduler's rungs."""
    fn = trainable(plan, spec)
    experiment = plan.experiment_name("tune")
    if plan.resume and tune.Tuner.can_restore(plan.tune_dir):
        check_restorable(plan.tune_dir)
        return tune.Tuner.restore(plan.tune_dir, trainable=fn, resume_errored=True,
                                  storage_filesystem=storage_filesystem(plan))
    return tune.Tuner(
        fn,
        tune_config=tune.TuneConfig(
            search_alg=searcher(plan, spec), scheduler=scheduler(plan),
            num_samples=plan.num_samples
        ),
        run_config=run_config(
            plan, spec, name=experiment, milestones=milestones, job_type="search",
            extra_callbacks=[optuna_recorder(plan, milestones=milestones),
                             checkpoint_keeper(plan)],
            progress=_progress(plan, label="search", n_trials=plan.num_samples,
                               milestones=milestones, rung_metric=plan.rung[0],
                               fixed=sorted(spec.fixed_options),
                               later_stages=later_stages(plan, after="search"),
                               explain_epochs=fold_explanation_epochs(plan, spec))),
    )


def checkpoint_keeper(plan: Plan, *, keep: int | None = None) -> CheckpointKeeper:
    """Prunes checkpoints as trials end; the ``keep`` best finished trials keep their newest.
    By default (the search) as many as ``--keep-checkpoints`` or, while the study still
    writes their explanations, ``--explain-top`` (the study's end prunes down to
    ``--keep-checkpoints``)."""
    return CheckpointKeeper(metric=plan.metric, mode=plan.mode, max_epochs=plan.max_epochs,
                            keep=max(plan.keep_checkpoints, plan.explain_top)
                            if keep is None else keep)


def cv_tuner(plan: Plan, spec: StudySpec, candidates: list[dict[str, Any]]) -> tune.Tuner:
    """Every candidate configuration on every cross-validation fold (every fold but the test
    fold; only the search fold for fixed configurations without ``--cv``), full budget, no
    early stopping."""
    folds = plan.cv_folds if plan.cv_all_folds or not plan.fixed_configurations else [plan.fold]
    return candidates_tuner(plan, spec, candidates, folds=folds, stage="cv",
                            job_type="cv", label="cross-validation")


def final_tuner(plan: Plan, spec: StudySpec, candidates: list[dict[str, Any]]) -> tune.Tuner:
    """Every candidate retrained on all non-test records and scored once on the test set."""
    return candidates_tuner(plan, spec, candidates, folds=[TEST_FOLD],
                            stage="final", job_type="test",
                            label="final training, scored on the test set")


def candidates_tuner(plan: Plan, spec: StudySpec, candidates: list[dict[str, Any]], *,
                     folds: list[int | str], stage: str, job_type: str,
                     label: str) -> tune.Tuner:
    """A grid of candidates x folds at the full budget (restored when resuming)."""
    fn = trainable(plan, spec)
    directory = plan.experiment_dir(stage)
    if plan.resume and tune.Tuner.can_restore(directory):
        check_restorable(directory)
        return tune.Tuner.restore(directory, trainable=fn, resume_errored=True,
                                  storage_filesystem=storage_filesystem(plan))
    # A search's CV retrainings only confirm scores: a finished one keeps no checkpoint. A
    # study of fixed configurations explains its best ones from there, the final models are
    # the study's models: both keep theirs.
    keeper = ([checkpoint_keeper(plan, keep=0)]
              if stage == "cv" and not plan.fixed_configurations else [])
    return tune.Tuner(
        fn,
        param_space={
            "candidate": tune.grid_search(candidates),
            "fold": tune.grid_search(folds),
        },
        tune_config=tune.TuneConfig(max_concurrent_trials=plan.concurrency),
        run_config=run_config(
            plan, spec, name=plan.experiment_name(stage), milestones=[plan.max_epochs],
            job_type=job_type, extra_callbacks=keeper,
            progress=_progress(plan, label=label, n_trials=len(candidates) * len(folds),
                               milestones=[plan.max_epochs],
                               later_stages=(later_stages(plan, after="cv")
                                             if stage == "cv" and not plan.fixed_configurations
                                             else ()),
                               explain_epochs=(fold_explanation_epochs(plan, spec)
                                               if stage == "cv" else None),
                               shown_as=("test/" + plan.metric.removeprefix("val/")
                                         if TEST_FOLD in folds else None))),
    )
