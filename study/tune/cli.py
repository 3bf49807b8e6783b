"""The command line of `python -m study.run`: flags only (`study.tune.plan` checks them)."""

from __future__ import annotations

import argparse

from data_io.cli_types import whole_number
from data_io.datasets import dataset_names
from search_spaces import space_names
from study.cli_choices import (
    DEFAULT_SYNTHETIC_RECORDS,
    MITDB_LEAD,
    MITDB_MAX_WINDOWS,
    MITDB_WINDOW_S,
    RUNG_METRICS,
    SAMPLERS,
    SCHEDULERS,
)
from study.tune.cli_help import DefaultsHelpFormatter
from study.tune.wandb_mode import MODES


def records_or_all(text: str) -> int | str:
    """``--explain-records``: a whole number of records (0 or more) or ``all``."""
    return "all" if text == "all" else whole_number(at_least=0)(text)


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
    what.add_argument("--presets", metavar="A,B,...",
                      help="instead of searching a space, train these model presets (e.g. "
                           "cnn4_gmp,cnn7_gap,cnn7_gmp,cnn15_gmp: a published table's rows) "
                           "with the same trial machinery; --space defaults to their family")
    what.add_argument("--cv", action="store_true",
                      help="with --presets: train every preset on every fold (no test fold "
                           "is held out unless --test-fold or --test-dir asks for one)")
    what.add_argument("--dataset", choices=dataset_names(), default="cinc2017",
                      metavar="NAME",
                      help=f"data set: {', '.join(dataset_names())}; real sets need "
                           "--data-dir, synthetic ones generate records in the study "
                           "directory (see --list-datasets)")
    what.add_argument("--list-datasets", action="store_true",
                      help="list the data sets and exit")
    what.add_argument("--show-dataset", metavar="NAME",
                      help="print a data set's definition (classes, metric, folds, options) "
                           "and exit")
    what.add_argument("--data-dir", help="the data set's directory (CinC 2017: .hea/.mat + "
                                         "REFERENCE.csv; MIT-BIH: .hea/.dat/.atr), present at "
                                         "this path on every node")
    what.add_argument("--data-option", action="append", metavar="OPTION=VALUE",
                      help="a data set option (repeatable), e.g. window=centred or "
                           "split=beat-random for mitdb-beats (--show-dataset lists them)")
    what.add_argument("--synthetic-records", type=int,
                      help=f"records generated for a synthetic data set (default: "
                           f"{DEFAULT_SYNTHETIC_RECORDS}, or all the set can make when that is "
                           f"fewer: 44 for the synthetic MIT-BIH sets)")
    what.add_argument("--fs-hz", type=float,
                      help="records resampled to this rate (default: the data set's rate, "
                           "150 Hz for CinC 2017, or the space's SMOKE rate with --smoke where "
                           "the data set may be resampled)")
    what.add_argument("--smoke", action="store_true",
                      help="apply the space's SMOKE settings (tiny, fast trials for checks) and "
                           "coarse explanation settings (each method spec's smoke overrides)")
    budget = p.add_argument_group("budget and early stopping")
    budget.add_argument("--num-samples", type=int, default=20, help="configurations to try")
    budget.add_argument("--max-epochs", type=int, default=12, help="full budget of a trial")
    budget.add_argument("--grace-period", type=int,
                        help="epochs before ASHA may stop a trial (default: one epoch past the "
                             "trials' learning-rate warm-up, optim/warmup_epochs, so 2 with "
                             "the default warm-up; measured in "
                             "docs/lab-notes/early-stopping-on-real-records.md)")
    budget.add_argument("--rung-metric", choices=tuple(RUNG_METRICS), default="auroc",
                        help="what ASHA ranks trials on at its rungs: the macro AUROC "
                             "(default: it still ranks networks that put nearly every record "
                             "in one class, where F1 says little), the study metric or the "
                             "validation loss (selection and reports use the study metric; "
                             "measured in docs/lab-notes/early-stopping-on-real-records.md)")
    budget.add_argument("--reduction-factor", type=float, default=3.0,
                        help="ASHA keeps 1/reduction-factor of the trials at each rung")
    budget.add_argument("--fold", type=int, default=0, help="validation fold of search trials")
    budget.add_argument("--folds", type=int,
                        help="number of folds (default: the data set's, 8 for CinC 2017)")
    budget.add_argument("--test-fold", type=int, metavar="K",
                        help="fold held out as the test set, seen by neither the search nor "
                             "the cross-validation (default: the last fold; a data set with "
                             "its own held-out split, e.g. mitdb-beats' DS2, uses that)")
    budget.add_argument("--test-dir", metavar="DIR",
                        help="separate records of the same data set to use as the test set "
                             "(then every fold of --data-dir is searched and cross-validated)")
    budget.add_argument("--no-test", action="store_true",
                        help="hold out no test set (quick checks only: nothing then scores "
                             "the chosen configuration on unseen records)")
    budget.add_argument("--cv-top-k", type=int, default=0,
                        help="retrain the K best configurations on every fold but the test fold, "
                             "full budget; the K best are then retrained on all non-test "
                             "records and scored once on the test set (the best alone "
                             "without this option)")
    budget.add_argument("--cv-folds", type=whole_number(at_least=1), metavar="K",
                        help="cross-validate on K folds only: the search fold (--fold) and the "
                             "next K-1 non-test folds (default: every fold but the test fold); "
                             "fewer folds cost less and give a wider spread")
    budget.add_argument("--baseline", metavar="A,B,...",
                        help="model presets (e.g. cnn7_gmp) trained beside the search's best "
                             "configurations exactly as they are: on the same "
                             "cross-validation folds (paired, with --cv-top-k) and retrained "
                             "and scored on the same test set")
    budget.add_argument("--explain-top", type=int, default=1,
                        help="write predictions and explanation arrays of the N best trials")
    budget.add_argument("--explain-records", type=records_or_all, metavar="N|all",
                        help="score the explanations of a random sample of N validation "
                             "records with annotated abnormal beats, or 'all' of them (0: "
                             "none; data sets with abnormal-beat masks: synthetic, "
                             "mitdb-pvc-apb). Default: the gallery, then a random sample, "
                             "until the explanations take 25 %% of the study's time (at "
                             "least a gallery record per class and one scored record); N or "
                             "'all' lift that budget")
    budget.add_argument("--explain-sanity", action="store_true",
                        help="also run the explanation sanity checks (parameter "
                             "randomisation, deletion curves) on the explained trials")
    budget.add_argument("--keep-checkpoints", type=int, default=2, metavar="K",
                        help="when the study ends, keep the Tune checkpoints of the K best "
                             "trials and remove the others")
    budget.add_argument("--mitdb-dir", metavar="DIR",
                        help="MIT-BIH Arrhythmia Database folder (python -m data_io.fetch mitdb): "
                             f"the best trials also explain up to {MITDB_MAX_WINDOWS} "
                             f"{MITDB_WINDOW_S:g}-s windows (lead {MITDB_LEAD}, at the study rate) "
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
