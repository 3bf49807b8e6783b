"""Benchmark: what running inside a study costs, one epoch in a Ray Tune trial versus the bare
single-trial trainer.

    python -m bench.study_overhead [--data-dir ../shared/data/cinc2017] [--records 600]

The same model (every parameter of the ``cnn`` space fixed with ``--set``), the same records,
fold, rate, seed and threads are trained twice for ``--epochs`` epochs:

1. as a study: ``python -m study.run`` with one trial of 2 CPUs, W&B offline (the laptop
   default), per-epoch checkpoints handed to Ray Tune;
2. bare: `study.engine.trainer.train` in this process with the same training config (built from the
   trial's own parameters the way the trial builds it), also writing its checkpoint every epoch.

An epoch's cost is the wall time between two consecutive epoch ends: inside the trial Ray
Tune's ``time_this_iter_s`` (training, validation, checkpoint, report), for the bare trainer the
time between its epoch callbacks. The first epoch (data and model set-up) is left out and the
median of the rest is compared; the fixed cost of a trial (Ray start, scheduling, worker
start-up) is printed separately. Target: at most 1.10x per epoch.
"""

from __future__ import annotations

import sys

if not __package__:
    sys.exit("run it from the repository root as: python -m bench.study_overhead")

import argparse
import json
import statistics
import tempfile
import time
from itertools import pairwise
from pathlib import Path

import torch

from bench.common import DEFAULT_DATA, real_subset, run_study_cli, synthetic_set
from study.engine.trainer import train
from study.tune.data import scoring
from study.tune.plan import load_plan
from study.tune.prepare import prepare_study
from study.tune.trainable import fold_split, trial_config

FIXED = ("model/depth=7", "model/pooling=\"gmp\"", "model/residual=false",
         "loss/focal_gamma=0", "optim/lr=0.001", "optim/batch_size=16")
"""Every parameter of the cnn space, fixed: both sides train the thesis' 7-layer CNN."""


def study_epochs(*, workdir: Path, data_dir: Path, args: argparse.Namespace) -> dict:
    """Run the one-trial study; its per-epoch seconds (Tune's) and wall time."""
    study_dir = workdir / "study"
    fixed = [arg for value in FIXED for arg in ("--set", value)]
    wall = run_study_cli(log=workdir / "study.log", args=[
        "--space", "cnn", "--dataset", "cinc2017", "--data-dir", str(data_dir),
        "--num-samples", "1", "--max-epochs", str(args.epochs),
        "--grace-period", str(args.epochs), "--folds", "2", "--no-test", "--fs-hz", str(args.fs_hz),
        "--concurrency", "1",
        "--cpus-per-trial", str(args.threads), "--wandb-mode", "offline", "--explain-top", "0",
        "--name", "overhead", "--study-dir", str(study_dir),
        "--cache-dir", str(workdir / "cache"), *fixed,
    ])
    (result,) = study_dir.glob("overhead-tune/run_trial_*/result.json")
    rows = [json.loads(line) for line in result.read_text().splitlines()]
    return {"epoch_s": [row["time_this_iter_s"] for row in rows], "wall_s": wall,
            "trial_s": rows[-1]["time_total_s"], "study_dir": study_dir}


def bare_epochs(*, study_dir: Path, threads: int) -> dict:
    """Train the trial's configuration with the bare trainer; per-epoch wall seconds."""
    torch.set_num_threads(threads)
    plan = load_plan(study_dir)
    plan, spec = prepare_study(plan, write=False)
    (params,) = study_dir.glob("overhead-tune/run_trial_*/params.json")
    config = trial_config(json.loads(params.read_text()), spec=spec)
    ends: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        train_split, val_split = fold_split(spec, fold=plan.fold)
        train(config=config, train_split=train_split, val_split=val_split,
              scoring=scoring(spec), checkpoint_path=Path(tmp) / "checkpoint.pt",
              on_epoch=lambda row, path: ends.append(time.perf_counter()))
    marks = [start, *ends]
    return {"epoch_s": [b - a for a, b in pairwise(marks)],
            "trial_s": ends[-1] - start}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA,
                        help="real CinC records (synthetic ones are written when absent)")
    parser.add_argument("--records", type=int, default=600, help="records (half train, half "
                                                                 "validation)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2, help="CPUs of the trial and threads "
                                                                "of the bare trainer")
    parser.add_argument("--fs-hz", type=float, default=150.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is set-up)")
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        workdir = Path(tmp)
        if args.data_dir.is_dir():
            data = real_subset(source=args.data_dir, dest=workdir / "data",
                               n_records=args.records, seed=args.seed)
            source = f"{args.records} real records from {args.data_dir}"
        else:
            data = synthetic_set(dest=workdir / "data", n_records=args.records, seed=args.seed)
            source = f"{args.records} synthetic records ({args.data_dir} absent)"
        print(f"study: 1 trial, {args.epochs} epochs, {source} ...", flush=True)
        study = study_epochs(workdir=workdir, data_dir=data, args=args)
        print("bare trainer: the same configuration ...", flush=True)
        bare = bare_epochs(study_dir=study["study_dir"], threads=args.threads)
    in_study = statistics.median(study["epoch_s"][1:])
    alone = statistics.median(bare["epoch_s"][1:])
    ratio = in_study / alone
    print(f"epoch seconds in the study trial: {[round(s, 2) for s in study['epoch_s']]}")
    print(f"epoch seconds, bare trainer:      {[round(s, 2) for s in bare['epoch_s']]}")
    print(f"per epoch (median of epochs 2-{args.epochs}): study {in_study:.2f} s, bare "
          f"{alone:.2f} s, ratio {ratio:.3f}x (target <= 1.10: "
          f"{'met' if ratio <= 1.10 else 'missed'})")
    print(f"whole run: study command {study['wall_s']:.1f} s (trial {study['trial_s']:.1f} s), "
          f"bare trainer {bare['trial_s']:.1f} s; fixed cost of the study "
          f"{study['wall_s'] - bare['trial_s']:.1f} s (Ray start, scheduling, worker start, "
          "data fingerprint, result files)")
    print(f"({args.fs_hz:g} Hz, cnn depth 7, batch 16, {args.threads} threads, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads here)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
