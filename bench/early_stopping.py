"""Benchmark: does early stopping pay? ASHA + TPE versus random search without early stopping.

    python -m bench.early_stopping [--benchmark synthetic real300] [--configs 12] [--max-epochs 9]

For each fixed small benchmark (300 synthetic records; 300 real CinC records, a stratified
subset of ``--data-dir``) three things run on the same data, folds and seed:

1. the study as users run it: ``python -m study.run`` with TPE and ASHA (grace period 1,
   reduction factor 3) over the ``cnn`` space, ``--configs`` configurations;
2. the baseline: the same command with ``--sampler random --scheduler fifo``, the same number
   of configurations, each trained for the full ``--max-epochs``;
3. every configuration ASHA stopped, trained to the full budget with the study's own trainer
   (same training config, fold and seed, no Ray), to learn whether ASHA stopped one that would
   have finished in the top 3 of its study.

Prints per benchmark the epochs each search spent, the best full-budget score of each, and the
audit of ASHA's decisions. Targets (issue 6): the ASHA study's best within 0.01 of the
baseline's, with at most a third of its epochs. The scores of 100-record validation folds are
noisy; read the difference against that noise.
"""

from __future__ import annotations

import sys

if not __package__:
    sys.exit("run it from the repository root as: python -m bench.early_stopping")

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from bench.common import DEFAULT_DATA, real_subset, run_study_cli, synthetic_set
from data_io.datasets import load_dataset
from study.engine.trainer import train
from study.tune.data import scoring
from study.tune.plan import load_plan
from study.tune.prepare import prepare_study
from study.tune.results import final_scores
from study.tune.trainable import fold_split, trial_config

METRIC = load_dataset("synthetic").metric.key
SUBSET_RECORDS = 300


DATA_SETS = {
    "synthetic": lambda dest, args: synthetic_set(dest=dest, n_records=SUBSET_RECORDS,
                                                  seed=args.seed),
    "real300": lambda dest, args: real_subset(source=args.data_dir, dest=dest,
                                              n_records=SUBSET_RECORDS, seed=args.seed),
}
"""Benchmark name -> builder of its data directory."""


def run_study(*, name: str, workdir: Path, data_dir: Path, args: argparse.Namespace,
              extra: list[str]) -> tuple[pd.DataFrame, float]:
    """One `python -m study.run` as users run it; returns its trials.parquet and wall time."""
    study_dir = workdir / name
    seconds = run_study_cli(log=workdir / f"{name}.log", args=[
        "--space", "cnn", "--dataset", "cinc2017", "--data-dir", str(data_dir),
        "--num-samples", str(args.configs), "--max-epochs", str(args.max_epochs),
        "--grace-period", str(args.grace_period), "--reduction-factor", "3", "--folds", "3",
        "--no-test",
        "--fs-hz", str(args.fs_hz), "--concurrency", "2", "--cpus-per-trial", "1",
        "--seed", str(args.seed), "--wandb-mode", "disabled", "--explain-top", "0",
        "--name", name, "--study-dir", str(study_dir), "--cache-dir", str(workdir / "cache"),
        *extra,
    ])
    return pd.read_parquet(study_dir / "trials.parquet"), seconds


def full_budget_scores(frame: pd.DataFrame, *, max_epochs: int) -> pd.Series:
    """trial id -> score at the full budget, for trials that trained it."""
    ranked = final_scores(frame, metric=METRIC, mode="max", max_epochs=max_epochs)
    return ranked.set_index("trial_id")[METRIC]


def trial_configs(study_dir: Path) -> dict[str, dict[str, Any]]:
    """trial id -> the sampled (nested) config, from Ray Tune's params.json of each trial."""
    configs = {}
    for params in study_dir.glob("*-tune/run_trial_*/params.json"):
        trial_id = params.parent.name.split("_")[2]
        configs[trial_id] = json.loads(params.read_text())
    return configs


def finish_stopped(*, study_dir: Path, stopped: list[str], max_epochs: int) -> dict[str, float]:
    """Train each stopped trial's configuration to the full budget, as its trial would have.

    The training config is built exactly as `study.tune.trainable.run_trial` builds it (the study's
    overrides, rate, budget and seed) and trained on the study's own fold with one thread, as
    the study's 1-CPU trials train (Ray sets OMP_NUM_THREADS to a trial's CPUs; another thread
    count changes the floating-point sums and with them the scores a little).
    """
    torch.set_num_threads(1)
    plan = load_plan(study_dir)
    plan, spec = prepare_study(plan, write=False)
    train_split, val_split = fold_split(spec, fold=plan.fold)
    configs = trial_configs(study_dir)
    scores = {}
    for i, trial_id in enumerate(stopped, start=1):
        start = time.perf_counter()
        result = train(config=trial_config(configs[trial_id], spec=spec),
                       train_split=train_split, val_split=val_split, scoring=scoring(spec))
        scores[trial_id] = float(result.history[-1][METRIC]) if result.status == "completed" \
            else float("nan")
        print(f"    finished stopped trial {trial_id} ({i}/{len(stopped)}): "
              f"{METRIC} {scores[trial_id]:.3f} after {max_epochs} epochs "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    return scores


def audit_top3(*, asha: pd.DataFrame, finished: dict[str, float], max_epochs: int) -> dict:
    """How many of the 3 configurations that finish best had ASHA stopped."""
    full = full_budget_scores(asha, max_epochs=max_epochs).to_dict()
    every = {**full, **finished}
    top3 = sorted(every, key=lambda t: every[t], reverse=True)[:3]
    stopped_in_top3 = [t for t in top3 if t in finished]
    return {"top3": {t: round(every[t], 4) for t in top3}, "stopped_in_top3": stopped_in_top3,
            "stopped": len(finished)}


def run_benchmark(*, benchmark: str, workdir: Path, args: argparse.Namespace) -> dict:
    workdir.mkdir(parents=True)
    data = DATA_SETS[benchmark](workdir / "data", args)
    print(f"[{benchmark}] TPE + ASHA: {args.configs} configurations ...", flush=True)
    asha, asha_s = run_study(name="asha", workdir=workdir, data_dir=data, args=args, extra=[])
    print(f"[{benchmark}] random search, no early stopping ...", flush=True)
    rand, rand_s = run_study(name="random", workdir=workdir, data_dir=data, args=args,
                             extra=["--sampler", "random", "--scheduler", "fifo"])
    per_trial = asha.drop_duplicates("trial_id").set_index("trial_id")
    stopped = per_trial.index[per_trial["stop_reason"] == "early_stopped"].tolist()
    print(f"[{benchmark}] training the {len(stopped)} configurations ASHA stopped to the end ...",
          flush=True)
    finished = finish_stopped(study_dir=workdir / "asha", stopped=stopped,
                              max_epochs=args.max_epochs)
    shared = len(_config_set(asha) & _config_set(rand))
    checked, gap = reproduction_gap(asha=asha, baseline=rand, finished=finished,
                                    max_epochs=args.max_epochs)
    asha_best = full_budget_scores(asha, max_epochs=args.max_epochs).max()
    rand_best = full_budget_scores(rand, max_epochs=args.max_epochs).max()
    return {
        "benchmark": benchmark,
        "asha_epochs": int(per_trial["epochs_completed"].sum()),
        "random_epochs": int(rand.drop_duplicates("trial_id")["epochs_completed"].sum()),
        "asha_best": float(asha_best), "random_best": float(rand_best),
        "asha_wall_s": asha_s, "random_wall_s": rand_s, "shared_configs": shared,
        "reproduced": checked, "reproduction_gap": gap,
        **audit_top3(asha=asha, finished=finished, max_epochs=args.max_epochs),
    }


def _config_keys(frame: pd.DataFrame) -> dict[str, tuple]:
    """trial id -> its sampled configuration as a comparable tuple."""
    columns = sorted(c for c in frame.columns if c.startswith("config/"))
    rows = frame.drop_duplicates("trial_id").set_index("trial_id")[columns].astype(str)
    return {trial: tuple(values) for trial, values in zip(rows.index, rows.to_numpy().tolist(),
                                                          strict=True)}


def _config_set(frame: pd.DataFrame) -> set[tuple]:
    return set(_config_keys(frame).values())


def reproduction_gap(*, asha: pd.DataFrame, baseline: pd.DataFrame, finished: dict[str, float],
                     max_epochs: int) -> tuple[int, float]:
    """Self-check of the audit: for stopped configurations the baseline also trained, the
    largest difference between the two full-budget scores (0 when training is reproducible)."""
    by_config = {key: trial for trial, key in _config_keys(baseline).items()}
    scores = full_budget_scores(baseline, max_epochs=max_epochs)
    keys = _config_keys(asha)
    gaps = [abs(finished[t] - scores[by_config[keys[t]]]) for t in finished
            if keys[t] in by_config and by_config[keys[t]] in scores]
    return len(gaps), max(gaps, default=float("nan"))


def report(result: dict, *, configs: int) -> list[str]:
    epochs_ratio = result["asha_epochs"] / result["random_epochs"]
    gap = result["random_best"] - result["asha_best"]
    return [
        f"{result['benchmark']}: {configs} configurations each",
        f"  TPE + ASHA:          {result['asha_epochs']:4d} epochs, best {METRIC} "
        f"{result['asha_best']:.4f}, {result['asha_wall_s']:.0f} s",
        f"  random, no stopping: {result['random_epochs']:4d} epochs, best {METRIC} "
        f"{result['random_best']:.4f}, {result['random_wall_s']:.0f} s",
        f"  epochs ratio {epochs_ratio:.2f} (target <= 0.33: "
        f"{'met' if epochs_ratio <= 1 / 3 else 'missed'}); best-score gap random - ASHA "
        f"{gap:+.4f} (target <= 0.01: {'met' if gap <= 0.01 else 'missed'})",
        f"  {result['shared_configs']} configurations were sampled by both (TPE starts with "
        "random samples; with the same seed they are the baseline's)",
        f"  ASHA stopped {result['stopped']} configurations; trained to the end, "
        f"{len(result['stopped_in_top3'])} of them finish in the study's top 3 "
        f"{result['top3']}" + (f" (stopped: {result['stopped_in_top3']})"
                               if result["stopped_in_top3"] else ""),
        f"  audit self-check: {result['reproduced']} stopped configurations were also trained "
        f"by the baseline; largest score difference {result['reproduction_gap']:.4f}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", nargs="+", choices=DATA_SETS, default=list(DATA_SETS))
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA,
                        help="real CinC records the real300 subset is drawn from")
    parser.add_argument("--configs", type=int, default=12)
    parser.add_argument("--max-epochs", type=int, default=9)
    parser.add_argument("--grace-period", type=int, default=1,
                        help="epochs before ASHA may stop a trial (the study's default: 1)")
    parser.add_argument("--fs-hz", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="work here and keep the studies")
    args = parser.parse_args(argv)
    if "real300" in args.benchmark and not args.data_dir.is_dir():
        print(f"error: no real records at {args.data_dir} (pass --data-dir, or --benchmark "
              "synthetic)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-es-") as tmp:
        root = args.keep or Path(tmp)
        results = [run_benchmark(benchmark=b, workdir=root / b, args=args)
                   for b in args.benchmark]
    print()
    for result in results:
        print("\n".join(report(result, configs=args.configs)))
    print(f"(cnn space, {SUBSET_RECORDS} records, 3 folds, validation fold 0, {args.fs_hz:g} Hz, "
          f"{args.max_epochs} epochs, ASHA grace {args.grace_period} / reduction factor 3, "
          "2 trials at once)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
