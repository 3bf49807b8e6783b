"""`python -m study.train`: train one configuration without Ray and print its scores.

Trains on one fold of ``--data-dir`` (the data set's folds: stratified records for CinC 2017,
record-grouped for MIT-BIH; validating on that fold), or, with ``--eval-dir``, on all of
``--data-dir`` and evaluates on the other directory. Data is read through the data_io cache at
the model's rate. Progress goes to stderr, one line per
epoch; with ``--json`` stdout holds one JSON object with the final metrics.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from data_io.cache import load_cached
from data_io.datasets import dataset_names, load_dataset
from data_io.errors import DatasetError
from data_io.folds import DEFAULT_SEED, check_holdout, write_folds
from models import load_preset, preset_names
from models.listing import preset_table
from study.engine.config import merge_sections, resolve_config
from study.engine.metrics import Scoring
from study.engine.protocols import preset_config
from study.engine.trainer import Split, TrainResult, train
from study.tune.data import item_folds
from study.tune.plan import StudyError, parse_options
from study.tune.spec import StudySpec

DEFAULT_DATASET = "cinc2017"


def _preset_help() -> str:
    """The presets with their sizes for the default data set's classes and leads."""
    dataset = load_dataset(DEFAULT_DATASET)
    sizes = ", ".join(f"{row['preset']} ({row['parameters'] / 1e6:.2f} M)"
                      for row in preset_table(n_classes=dataset.n_classes,
                                              n_leads=dataset.n_leads))
    return (f"a named model preset (parameters for {dataset.name}: {dataset.n_classes} classes, "
            f"{dataset.n_leads} lead(s)): {sizes}; `python -m models.listing --n-classes "
            f"{dataset.n_classes} --n-leads {dataset.n_leads}` prints them as a table")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m study.train",
        description=(
            "Train one model configuration on one data set (PhysioNet/CinC 2017 by default) "
            "without Ray: one fold of the data set's k-fold split, or a hold-out evaluation on "
            "another directory."
        ),
    )
    what = parser.add_argument_group(
        "what to train (at least one; with both, the preset replaces the config's model; a "
        "preset alone trains with its published protocol where it has one, e.g. dualnet_* "
        "with study/configs/dualnet_published.json, else with the defaults)"
    )
    what.add_argument("--preset", choices=preset_names(), metavar="NAME", help=_preset_help())
    what.add_argument("--config", type=Path, metavar="FILE.json",
                      help="a training config (sections model, loss, optim, data, runtime, "
                           "epochs, pretrain_epochs, seed; defaults and ranges in "
                           "study/engine/config.py; the thesis' protocol in "
                           "study/configs/thesis_protocol.json) or a bare model config")
    parser.add_argument("--dataset", choices=dataset_names(), default=DEFAULT_DATASET,
                        metavar="NAME", help=f"data set: {', '.join(dataset_names())} "
                                             f"(default {DEFAULT_DATASET})")
    parser.add_argument("--data-dir", type=Path, required=True,
                        help="directory to train on (CinC 2017: .hea/.mat + REFERENCE.csv; "
                             "MIT-BIH: .hea/.dat/.atr)")
    parser.add_argument("--eval-dir", type=Path,
                        help="evaluate on this directory and train on all of --data-dir")
    parser.add_argument("--fold", type=int, default=0,
                        help="validation fold when --eval-dir is not given (default 0)")
    parser.add_argument("--n-folds", type=int,
                        help="number of folds (default: the data set's, 8 for CinC 2017)")
    parser.add_argument("--data-option", action="append", metavar="OPTION=VALUE",
                        help="a data-set option, repeatable (`python -m study.run "
                             "--show-dataset NAME` lists them), e.g. split=dualnet: CinC 2017 "
                             "validated on ECG-DualNet's share of the records (fold 0)")
    parser.add_argument("--epochs", type=int, help="training epochs (default from the config)")
    parser.add_argument("--fs-hz", type=float, help="resample records to this rate (default 150)")
    parser.add_argument("--seed", type=int, help="training seed (default 0)")
    parser.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--cache-dir", type=Path, help="data cache location")
    parser.add_argument("--out", type=Path,
                        help="write config.json, folds.csv, checkpoint.pt, metrics.json and "
                             "predictions.csv here; an existing checkpoint is resumed")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    return parser


def partial_config(args: argparse.Namespace) -> dict[str, Any]:
    """The configuration asked for on the command line over the data set's own training
    settings (e.g. length-bucketed batches of fixed-length beats, as a study uses them);
    defaults fill the rest later."""
    config: dict[str, Any] = {}
    if args.config is not None:
        try:
            config = json.loads(args.config.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read config {args.config}: {exc}") from exc
        if "name" in config:  # a bare model config
            config = {"model": config}
    if args.preset is not None and args.config is None:
        config = preset_config(args.preset)  # its published protocol, if it has one
    elif args.preset is not None:
        config["model"] = load_preset(args.preset)
    overrides = {"epochs": args.epochs, "seed": args.seed}
    config.update({k: v for k, v in overrides.items() if v is not None})
    if args.fs_hz is not None:
        config["data"] = {**config.get("data", {}), "fs_hz": args.fs_hz}
    if args.device is not None:
        config["runtime"] = {**config.get("runtime", {}), "device": args.device}
    return merge_sections(load_dataset(args.dataset).training, config)


def splits(args: argparse.Namespace, *, fs_hz: float) -> tuple[Split, Split]:
    """Training and evaluation items for this run."""
    dataset = load_dataset(args.dataset)
    if not dataset.resample:
        fs_hz = dataset.fs_hz  # fixed-length windows exist at their own rate only
    train_arrays = load_cached(args.dataset, args.data_dir, fs_hz=fs_hz,
                               cache_dir=args.cache_dir)
    if args.eval_dir is not None:
        eval_arrays = load_cached(args.dataset, args.eval_dir, fs_hz=fs_hz,
                                  cache_dir=args.cache_dir)
        check_holdout(train_arrays, eval_arrays)
        return (
            Split(train_arrays, np.arange(len(train_arrays))),
            Split(eval_arrays, np.arange(len(eval_arrays))),
        )
    n_folds = args.n_folds or dataset.n_folds
    if not 0 <= args.fold < n_folds:
        raise DatasetError(f"fold {args.fold} does not exist; the split has folds 0-{n_folds - 1}")
    options = dataset.resolve_options(parse_options(args.data_option or []))
    plan = dataset.fold_plan(train_arrays, n_folds=n_folds, seed=DEFAULT_SEED, options=options)
    if args.out is not None:
        write_folds(args.out / "folds.csv", plan.table)
    spec = StudySpec(data_dir=str(args.data_dir), cache_dir=None, fs_hz=fs_hz,
                     folds=plan.table.as_dict(), fold=args.fold, max_epochs=0, seed=0,
                     dataset=args.dataset, fold_unit=plan.unit, held_out=plan.held_out)
    folds = item_folds(train_arrays, spec=spec, dataset=dataset)
    return (Split(train_arrays, np.flatnonzero((folds != args.fold) & (folds >= 0))),
            Split(train_arrays, np.flatnonzero(folds == args.fold)))


def summary(result: TrainResult, *, classes: tuple[str, ...], seconds: float) -> dict[str, Any]:
    """The JSON object printed with ``--json``."""
    final = {k: v for k, v in result.final.items() if k not in ("epoch", "seconds", "lr")}
    return {
        "status": result.status,
        "message": result.message,
        "epochs_completed": len(result.history),
        "seconds": round(seconds, 1),
        **final,
        "classes": list(classes),
        "history": [
            {k: v for k, v in row.items() if k != "val/confusion"} for row in result.history
        ],
    }


UNDEFINED_REASON = ("not defined on this validation set (a class without records, or a score "
                    "of an epoch that diverged)")


def strict_json(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with every NaN or infinite number replaced by null, and the keys that held
    one listed under ``undefined`` with the reason, so the output parses as strict JSON."""
    undefined: list[str] = []

    def clean(value: Any, path: str) -> Any:
        if isinstance(value, dict):
            return {k: clean(v, f"{path}.{k}" if path else k) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, float) and not math.isfinite(value):
            undefined.append(path)
            return None
        return value

    cleaned = clean(payload, "")
    if undefined:
        cleaned["undefined"] = {"keys": undefined, "reason": UNDEFINED_REASON}
    return cleaned


def write_outputs(out: Path, result: TrainResult, payload: dict[str, Any]) -> None:
    """Metrics and per-record predictions next to the checkpoint."""
    (out / "config.json").write_text(json.dumps(result.config, indent=2))
    (out / "metrics.json").write_text(json.dumps(payload, indent=2, allow_nan=False))
    preds = result.predictions
    if not preds:
        return
    with (out / "predictions.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        n_classes = preds["probabilities"].shape[1]
        writer.writerow(["record", "y_true", *[f"p{k}" for k in range(n_classes)]])
        for rid, y, probs in zip(
            preds["record_ids"], preds["y_true"], preds["probabilities"], strict=True
        ):
            writer.writerow([rid, int(y), *[f"{p:.6f}" for p in probs]])


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.preset is None and args.config is None:
        parser.error("give --preset NAME, --config FILE.json, or both")
    started = time.perf_counter()
    try:
        config = partial_config(args)
        fs_hz = resolve_config(config).data.fs_hz
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
        train_split, val_split = splits(args, fs_hz=fs_hz)
        result = train(
            config=config,
            train_split=train_split,
            val_split=val_split,
            scoring=Scoring.from_dataset(load_dataset(args.dataset)),
            checkpoint_path=args.out / "checkpoint.pt" if args.out else None,
            log=lambda line: print(line, file=sys.stderr, flush=True),
            progress=True,
        )
    except (DatasetError, StudyError, ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    payload = strict_json(summary(
        result, classes=train_split.arrays.classes, seconds=time.perf_counter() - started
    ))
    if args.out is not None:
        write_outputs(args.out, result, payload)
    if args.json:
        print(json.dumps(payload, indent=2, allow_nan=False))
    else:
        metric = load_dataset(args.dataset).metric.key
        print(f"{result.status}: {metric} {result.final.get(metric, float('nan')):.4f}")
    return 0 if result.status == "completed" else 3


if __name__ == "__main__":
    raise SystemExit(main())
