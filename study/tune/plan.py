"""Turning `python -m study.run` arguments into a checked plan, before anything runs.

Every problem a user can make on the command line (unknown space, bad flag combinations, a
missing data directory, more GPUs than exist, an unwritable storage path, a resume without a
study) is found here and reported as one `StudyError` naming the problem, so no trial starts
on a plan that cannot finish.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from data_io.datasets import Dataset, dataset_names, load_dataset
from data_io.datasets.mitdb_beats import check_mitdb_directory
from data_io.errors import DatasetError
from search_spaces import describe_space, load_space, space_names, unflatten
from study.cli_choices import DEFAULT_SYNTHETIC_RECORDS, RUNG_METRICS
from study.engine.config import TrainConfig, resolve_config
from study.folder_format import STUDY_RECORD
from study.tune.results import asha_milestones

TEST_SETS = ("fold", "directory", "none")

"""Where a study's test set comes from: a fold of the split (or the data set's held-out
groups), a directory of separate records, or nowhere (``--no-test``)."""
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class StudyError(RuntimeError):
    """A study cannot start or continue; the message says why and what to do."""


@dataclass(frozen=True)
class Plan:
    """Everything a study run needs, resolved to absolute paths and checked."""

    name: str
    space: str
    dataset: str
    data_dir: str
    study_dir: str
    storage_path: str
    optuna_storage: str
    optuna_study_name: str
    metric: str
    mode: str
    num_samples: int
    max_epochs: int
    grace_period: int
    reduction_factor: float
    concurrency: int
    cpus_per_trial: float
    gpus_per_trial: float
    fold: int
    n_folds: int
    seed: int
    fs_hz: float
    address: str | None
    wandb_mode: str
    smoke: bool
    synthetic_records: int
    cv_top_k: int
    explain_top: int
    max_failures: int
    cache_dir: str | None
    resume: bool
    # Later fields need defaults: study.json files written before them still load.
    mitdb_dir: str | None = None
    sampler: str = "tpe"
    scheduler: str = "asha"
    fixed: dict[str, Any] = field(default_factory=dict)
    dataset_options: dict[str, str] = field(default_factory=dict)
    keep_checkpoints: int = 2
    test: str = "none"  # studies recorded before test sets existed held nothing out
    test_fold: int | None = None
    test_dir: str | None = None
    presets: tuple[str, ...] = ()
    cv_all_folds: bool = False
    explain_records: int | str | None = None
    explain_sanity: bool = False
    rung_metric: str = "auroc"
    baseline: tuple[str, ...] = ()
    cv_n_folds: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def rung(self) -> tuple[str, str]:
        """(metric key, mode) that ASHA compares trials on at its rungs."""
        return RUNG_METRICS[self.rung_metric] or (self.metric, self.mode)

    @property
    def milestones(self) -> list[int]:
        """Epochs at which the scheduler compares trials (only the budget without ASHA)."""
        if self.scheduler != "asha":
            return [self.max_epochs]
        return asha_milestones(grace_period=self.grace_period,
                               reduction_factor=self.reduction_factor, max_epochs=self.max_epochs)

    @property
    def fixed_configurations(self) -> bool:
        """The study trains the listed ``presets`` instead of searching a space."""
        return bool(self.presets)

    @property
    def cv_folds(self) -> list[int]:
        """The folds cross-validation trains on: every fold but the test fold, or with
        ``cv_n_folds`` (``--cv-folds``) the search fold and the next non-test folds."""
        folds = [k for k in range(self.n_folds) if k != self.test_fold]
        if self.cv_n_folds is None:
            return folds
        start = folds.index(self.fold) if self.fold in folds else 0
        return sorted((folds[start:] + folds[:start])[:self.cv_n_folds])

    @property
    def tune_dir(self) -> str:
        """Ray Tune's experiment directory (or URI) of the search."""
        return self.experiment_dir("tune")

    def experiment_name(self, stage: str) -> str:
        """Ray Tune's experiment name of one stage of the study: "tune" (the search), "cv"
        (cross-validation, or a fixed-configuration study's only stage) or "final" (the
        test-set retraining)."""
        return f"{self.name}-{stage}"

    def experiment_dir(self, stage: str) -> str:
        """Ray Tune's experiment directory (or URI) of one stage (`experiment_name`)."""
        return f"{self.storage_path.rstrip('/')}/{self.experiment_name(stage)}"


"""The file in a study directory that holds the study's resolved plan (see `study.run`)."""


def load_plan(study_dir: Path) -> Plan:
    """The plan a study was started with, read from its `study.json`."""
    fields = json.loads((Path(study_dir) / STUDY_RECORD).read_text())["plan"]
    return Plan(**{**fields, "presets": tuple(fields.get("presets", ())),
                   "baseline": tuple(fields.get("baseline", ()))})


def default_study_dir(name: str) -> Path:
    return Path("runs").resolve() / name


def resolve_study_dir(*, name: str, study_dir: str | None) -> Path:
    """``study_dir`` when given (``--study-dir``), else runs/``name``."""
    return Path(study_dir).resolve() if study_dir else default_study_dir(name)


def make_plan(args: Any, *, wandb_mode: str) -> Plan:
    """Check ``args`` (parsed flags) and resolve them into a `Plan`.

    Raises:
        StudyError: the first problem found, in words a user can act on.
    """
    presets = parse_presets(args.presets)
    baseline = parse_presets(args.baseline, flag="--baseline")
    if presets and args.space is None:
        args.space = preset_space(presets)
    if args.space not in space_names():
        raise StudyError(f"unknown space {args.space!r}; known spaces: {', '.join(space_names())}")
    if args.dataset not in dataset_names():
        raise StudyError(f"unknown data set {args.dataset!r}; known data sets: "
                         f"{', '.join(dataset_names())} (see --list-datasets)")
    space = load_space(args.space)
    dataset = load_dataset(args.dataset)
    n_folds = args.folds if args.folds is not None else dataset.n_folds
    _check_numbers(args, n_folds=n_folds, dataset=dataset)
    try:
        options = dataset.resolve_options(parse_options(args.data_option or []))
    except DatasetError as exc:
        raise StudyError(f"--data-option: {exc}") from None
    test, test_fold = _test_set(args, n_folds=n_folds, presets=presets)
    _check_baseline(baseline, presets=presets, cv_top_k=args.cv_top_k, test=test)
    _check_cv_folds(args.cv_folds, n_folds=n_folds, test_fold=test_fold)
    name = args.name or f"{args.space}-{args.dataset}-{secrets.token_hex(3)}"
    if not NAME_PATTERN.fullmatch(name):
        raise StudyError(f"--name {name!r}: use letters, digits, '.', '_' and '-' only")
    study_dir = resolve_study_dir(name=name, study_dir=args.study_dir)
    if args.resume and not (study_dir / STUDY_RECORD).is_file():
        raise StudyError(f"--resume: no study at {study_dir} (study.json missing); "
                         "give the --name (and --study-dir) of the study to continue")
    if not args.resume and (study_dir / STUDY_RECORD).is_file():
        raise StudyError(f"a study already exists at {study_dir}; pass --resume to continue it "
                         "or choose another --name")
    data_dir = _data_dir(args, study_dir=study_dir, dataset=dataset)
    storage_path = _storage_path(args.storage_path, study_dir=study_dir)
    _check_gpus(args)
    fixed = parse_fixed(args.set or [])
    if not presets:
        check_fixed_in_space(args.space, fixed)
    return Plan(
        name=name,
        space=args.space,
        dataset=args.dataset,
        data_dir=data_dir,
        study_dir=str(study_dir),
        storage_path=storage_path,
        optuna_storage=args.optuna_storage or f"sqlite:///{study_dir / 'optuna.db'}",
        optuna_study_name=f"{name}-{secrets.token_hex(4)}",
        metric=dataset.metric.key,
        mode=dataset.metric.mode,
        num_samples=args.num_samples,
        max_epochs=args.max_epochs,
        grace_period=_grace_period(args, fixed=fixed),
        rung_metric=args.rung_metric,
        reduction_factor=args.reduction_factor,
        concurrency=args.concurrency,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        fold=args.fold,
        n_folds=n_folds,
        seed=args.seed,
        fs_hz=_fs_hz(args, smoke=space.SMOKE, dataset=dataset),
        address=args.address,
        wandb_mode=wandb_mode,
        smoke=args.smoke,
        synthetic_records=synthetic_records(args.synthetic_records, dataset=dataset),
        cv_top_k=args.cv_top_k,
        explain_top=args.explain_top,
        max_failures=args.max_failures,
        cache_dir=str(Path(args.cache_dir).resolve()) if args.cache_dir else None,
        resume=args.resume,
        mitdb_dir=_mitdb_dir(args.mitdb_dir, dataset=dataset),
        sampler=args.sampler,
        scheduler=args.scheduler,
        fixed=fixed,
        dataset_options=options,
        keep_checkpoints=args.keep_checkpoints,
        test=test,
        test_fold=test_fold,
        test_dir=_test_dir(args.test_dir, dataset=dataset, data_dir=data_dir),
        presets=presets,
        cv_all_folds=bool(args.cv),
        explain_records=args.explain_records,
        explain_sanity=args.explain_sanity,
        baseline=baseline,
        cv_n_folds=args.cv_folds,
    )


def parse_presets(text: str | None, *, flag: str = "--presets") -> tuple[str, ...]:
    """``"cnn7_gmp,cnn15_gmp"`` -> the preset names, checked against `models.presets`."""
    if not text:
        return ()
    from models.presets import preset_names

    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in preset_names()]
    if unknown or not names:
        raise StudyError(f"{flag}: unknown preset(s) {', '.join(unknown) or repr(text)}; "
                         f"presets: {', '.join(preset_names())}")
    if len(set(names)) != len(names):
        raise StudyError(f"{flag} {text}: a preset is listed twice")
    return names


def _check_baseline(baseline: tuple[str, ...], *, presets: tuple[str, ...], cv_top_k: int,
                    test: str) -> None:
    """A baseline stands beside a search's chosen configurations: in its cross-validation,
    on its test set, or both."""
    if not baseline:
        return
    if presets:
        raise StudyError("--baseline belongs to a search; with --presets list the baseline "
                         "among the presets")
    if not cv_top_k and test == "none":
        raise StudyError("--baseline needs --cv-top-k (to compare on the cross-validation "
                         "folds) or a test set (it is scored on it): with --no-test and no "
                         "--cv-top-k it would train nowhere")


def _check_cv_folds(cv_folds: int | None, *, n_folds: int, test_fold: int | None) -> None:
    available = n_folds - (test_fold is not None)
    if cv_folds is not None and cv_folds > available:
        raise StudyError(f"--cv-folds {cv_folds}: only {available} folds are not the test "
                         "fold")


def preset_space(presets: tuple[str, ...]) -> str:
    """The space of the presets' model family (its smoke settings and record), e.g. ``cnn``;
    presets of several families need ``--space``."""
    from models.presets import load_preset

    families = sorted({load_preset(n)["name"] for n in presets})
    if len(families) > 1:
        raise StudyError(f"--presets mixes model families ({', '.join(families)}): give --space "
                         "to choose whose smoke settings apply")
    return families[0]


def _test_set(args: Any, *, n_folds: int, presets: tuple[str, ...]) -> tuple[str, int | None]:
    """What the study holds out as its test set, and the test fold.

    By default the last fold (or another, ``--fold`` being the search's) is the test set; a
    data set with a held-out split of its own (mitdb-beats' DS2) uses that instead
    (`study.tune.prepare`). Fixed configurations with ``--cv`` select nothing, so their
    cross-validation uses every fold and no test fold is held out unless asked for.
    """
    if args.cv and not presets:
        raise StudyError("--cv belongs to --presets (a search confirms its best with "
                         "--cv-top-k)")
    chosen = [flag for flag, given in (("--test-fold", args.test_fold is not None),
                                       ("--test-dir", args.test_dir is not None),
                                       ("--no-test", args.no_test)) if given]
    if len(chosen) > 1:
        raise StudyError(f"{' and '.join(chosen)} exclude each other: choose one test set")
    if args.no_test:
        return "none", None
    if args.test_dir is not None:
        return "directory", None
    if args.test_fold is None and presets and args.cv:
        return "none", None
    fold = args.test_fold if args.test_fold is not None else (
        n_folds - 1 if args.fold != n_folds - 1 else 0)
    if not 0 <= fold < n_folds:
        raise StudyError(f"--test-fold must be between 0 and {n_folds - 1}")
    if fold == args.fold:
        raise StudyError(f"--test-fold {fold} is the search's validation fold (--fold): the "
                         "test set must be one no decision has seen")
    if n_folds < 3:
        raise StudyError(f"--folds {n_folds} leaves no fold to train on once one validates "
                         "the search and one is held out as the test set: use --folds 3 or "
                         "more, --test-dir, or --no-test")
    return "fold", fold


def _test_dir(value: str | None, *, dataset: Dataset, data_dir: str) -> str | None:
    if value is None:
        return None
    path = Path(value).expanduser().resolve()
    if path == Path(data_dir):
        raise StudyError(f"--test-dir {path} is the --data-dir: the test records must be "
                         "separate")
    try:
        dataset.check(path)
    except DatasetError as exc:
        raise StudyError(f"--test-dir: {exc}") from None
    return str(path)


def parse_options(assignments: list[str]) -> dict[str, str]:
    """``["window=centred"]`` -> ``{"window": "centred"}`` (checked by the data set)."""
    options = {}
    for text in assignments:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise StudyError(f"--data-option {text!r}: write OPTION=VALUE, e.g. window=centred")
        options[key.strip()] = value.strip()
    return options


def parse_fixed(assignments: list[str]) -> dict[str, Any]:
    """``["optim/lr=0.001", "loss/focal_gamma=0"]`` -> flattened training-config values that
    every trial uses whatever the space samples (a JSON value, else the text itself).

    Raises:
        StudyError: an assignment without ``=``, a section or option the trainer does not
            know, or a value outside the option's type or range (`study.engine.config`; model
            options are checked by the model when a trial builds it).
    """
    fixed: dict[str, Any] = {}
    for text in assignments:
        key, sep, raw = text.partition("=")
        if not sep or not key.strip():
            raise StudyError(f"--set {text!r}: write SECTION/OPTION=VALUE, e.g. optim/lr=0.001")
        try:
            fixed[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            fixed[key.strip()] = raw
    for key, flag in BUDGET_OPTIONS.items():
        if key in fixed:
            raise StudyError(f"--set {key}: the study's {flag} sets it in every trial")
    checked = {k: v for k, v in fixed.items() if not k.startswith("model/")}
    try:
        resolve_config(unflatten(checked))
    except ValueError as exc:
        raise StudyError(f"--set {exc}") from None
    return fixed


BUDGET_OPTIONS = {"data/fs_hz": "--fs-hz", "epochs": "--max-epochs", "seed": "--seed"}
"""Options every trial takes from the study's own flags, never from ``--set``."""


def check_fixed_in_space(space: str, fixed: dict[str, Any]) -> None:
    """Run the space with ``--set``'s options fixed, as the search will: a value the space
    cannot take (a choice it does not offer, which it may branch on) fails here, before any
    trial.

    Raises:
        StudyError: naming the option and the space's choices.
    """
    if not fixed:
        return
    try:
        describe_space(space, fixed=fixed, n_samples=20)
    except (ValueError, KeyError, TypeError) as exc:
        raise StudyError(f"--set: space {space} cannot run with {exc}") from None


def _fs_hz(args: Any, *, smoke: dict[str, Any], dataset: Dataset) -> float:
    """``--fs-hz``, else the space's smoke rate with ``--smoke``, else the data set's rate; a
    data set of fixed-rate windows (``resample: false``) runs at its own rate only."""
    if not dataset.resample:
        if args.fs_hz is not None and float(args.fs_hz) != dataset.fs_hz:
            raise StudyError(f"--fs-hz {args.fs_hz:g}: data set {dataset.name} is built at "
                             f"{dataset.fs_hz:g} Hz only (fixed-length windows)")
        return dataset.fs_hz
    if args.fs_hz is not None:
        return float(args.fs_hz)
    if args.smoke and "fs_hz" in smoke.get("data", {}):
        return float(smoke["data"]["fs_hz"])
    return dataset.fs_hz


def _grace_period(args: Any, *, fixed: dict[str, Any]) -> int:
    """``--grace-period``, or by default the first epoch after the trials' learning-rate
    warm-up (``optim/warmup_epochs`` from ``--set`` or its default, `study.engine.config`), at
    most the budget.

    A rung at the end of the warm-up ranks trials that have not yet trained at their own rate:
    on real records ASHA at grace period 1 stopped the best configuration in most start orders
    once the one-epoch warm-up was the default (figures:
    docs/lab-notes/early-stopping-on-real-records.md).
    """
    if args.grace_period is not None:
        return args.grace_period
    warmup = fixed.get("optim/warmup_epochs", TrainConfig().optim.warmup_epochs)
    return min(args.max_epochs, math.floor(warmup) + 1)


def _check_numbers(args: Any, *, n_folds: int, dataset: Dataset) -> None:
    checks = [
        (args.num_samples >= 1, "--num-samples must be at least 1"),
        (args.max_epochs >= 1, "--max-epochs must be at least 1"),
        (args.grace_period is None or 1 <= args.grace_period <= args.max_epochs,
         f"--grace-period must be between 1 and --max-epochs ({args.max_epochs})"),
        (args.reduction_factor > 1, "--reduction-factor must be greater than 1"),
        (args.concurrency >= 1, "--concurrency must be at least 1"),
        (args.cpus_per_trial > 0, "--cpus-per-trial must be positive"),
        (args.gpus_per_trial >= 0, "--gpus-per-trial must be zero or positive"),
        (n_folds >= 2, "--folds must be at least 2"),
        (0 <= args.fold < n_folds, f"--fold must be between 0 and {n_folds - 1}"),
        (args.cv_top_k >= 0, "--cv-top-k must be zero or positive"),
        (args.keep_checkpoints >= 0, "--keep-checkpoints must be zero or positive"),
        (args.cv_top_k <= args.num_samples, "--cv-top-k cannot exceed --num-samples"),
        (args.fs_hz is None or args.fs_hz > 0, "--fs-hz must be positive"),
    ]
    if dataset.generates and not args.data_dir:
        _check_synthetic_records(args.synthetic_records, dataset=dataset, n_folds=n_folds)
    for ok, message in checks:
        if not ok:
            raise StudyError(message)
    if not dataset.generates and not args.data_dir:
        hint = dataset.facts.get("fetch", "")
        raise StudyError(f"--dataset {dataset.name} needs --data-dir"
                         + (f" (get the data with `{hint}`)" if hint else ""))


def _data_dir(args: Any, *, study_dir: Path, dataset: Dataset) -> str:
    """The data directory: --data-dir (checked by the data set), or for a synthetic set
    without one, a folder in the study directory that the study fills."""
    if dataset.generates and not args.data_dir:
        return str(study_dir / "data")
    path = Path(args.data_dir).expanduser().resolve()
    if dataset.generates:
        return str(path)  # the study generates the records there when they are missing
    try:
        dataset.check(path)
    except DatasetError as exc:
        raise StudyError(f"--data-dir: {exc}") from None
    return str(path)


def _mitdb_dir(value: str | None, *, dataset: Dataset) -> str | None:
    if value is None:
        return None
    if dataset.facts.get("mitdb_window_class") is None:
        raise StudyError(f"--mitdb-dir: data set {dataset.name} names no class for MIT-BIH "
                         "rhythm windows (mitdb_window_class); its own items are explained")
    path = Path(value).expanduser().resolve()
    try:
        check_mitdb_directory(path)
    except DatasetError as exc:
        raise StudyError(f"--mitdb-dir: {exc}") from None
    return str(path)


def _storage_path(value: str | None, *, study_dir: Path) -> str:
    if value is None:
        return str(study_dir)
    if "://" in value:
        return value  # s3://, gs://, ... checked by Ray when the experiment starts
    path = Path(value).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    if not os.access(path, os.W_OK):
        raise StudyError(f"--storage-path {path} is not writable")
    return str(path)


def synthetic_records(given: int | None, *, dataset: Dataset) -> int:
    """The records a synthetic set generates: ``--synthetic-records``, else the default
    capped at what the set can make."""
    if given is not None:
        return given
    limit = dataset.max_generated
    return DEFAULT_SYNTHETIC_RECORDS if limit is None else min(DEFAULT_SYNTHETIC_RECORDS, limit)


def _check_synthetic_records(given: int | None, *, dataset: Dataset, n_folds: int) -> None:
    n_records = synthetic_records(given, dataset=dataset)
    limit = dataset.max_generated
    if limit is not None and n_records > limit:
        raise StudyError(f"--synthetic-records {n_records}: {dataset.name} generates at most "
                         f"{limit} records (one per MIT-BIH record name)")
    if n_records < 2 * n_folds:
        raise StudyError(f"--synthetic-records {n_records}: must be at least twice --folds "
                         f"({n_folds}), so that every fold has records")


def _check_gpus(args: Any) -> None:
    if args.gpus_per_trial == 0 or args.address:
        return  # on a cluster, the resource check happens once Ray is connected
    available = torch.cuda.device_count()
    if args.gpus_per_trial > available:
        raise StudyError(
            f"--gpus-per-trial {args.gpus_per_trial:g} but this machine has {available} GPU(s); "
            "use --gpus-per-trial 0 on a CPU machine or --address to join a GPU cluster"
        )
