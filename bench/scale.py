"""Benchmark: what a full 8-fold study of each search space costs in device-hours, and its
wall-clock on N devices, from per-epoch costs measured here ("scale on paper").

    python -m bench.scale [--device auto] [--records 8528] [--gpus 1 4 8 16]

For every space in `search_spaces.space_names()`, a few configurations are drawn with the
space's own define function (Optuna RandomSampler, seeded), turned into training configs the
way a trial does (`study.tune.trainable.trial_config`: 150 Hz, 12 epochs, the trainer's defaults)
and timed on ``--device``: a few training steps of `study.engine.trainer.train_epoch` (forward,
backward, optimizer; bf16 autocast where the device has it, as in the trainer) on the
trainer's own loader (`study.engine.trainer.split_loader`, so the training batching of the config:
30 s crops by default) and one evaluation pass (`study.engine.trainer.predict`, length-bucketed).
The time per computed (padded) sample is scaled to a full epoch with the number of samples
a loader computes per record over a random pool of real CinC records (synthetic ones when
the data are absent), i.e. with the measured records' length distribution.

One trial epoch = training on (folds-1)/folds of ``--records`` + evaluating the other fold.
The study = a search of S configurations with ASHA on one fold + the top K retrained on every
fold at the full budget. Figures are device-hours of the device it ran on: on a CPU machine
they are CPU-hours of that machine; run the same command on a GPU machine for GPU-hours.
No CPU -> GPU factor is assumed, and the throughput gain of sharing a GPU between trials is
an input (``--sharing-speedup``), not a measurement.
"""

from __future__ import annotations

import sys

if not __package__:
    sys.exit("run it from the repository root as: python -m bench.scale")

import argparse
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch

from data_io.cache import load_cinc2017_cached
from data_io.records import EcgArrays
from data_io.synthetic import generate_records, to_ecg_arrays
from search_spaces import space_names
from study.engine.runtime import select_runtime
from study.tune import estimate
from study.tune.estimate import ConfigCost
from study.tune.results import asha_milestones, expected_epochs
from study.tune.spec import StudySpec

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cinc2017"
FS_HZ = 150.0


@dataclass(frozen=True)
class StudyShape:
    """The study whose cost is projected."""

    records: int
    n_folds: int
    n_configs: int
    top_k: int
    max_epochs: int
    grace_period: int
    reduction_factor: float

    @property
    def milestones(self) -> list[int]:
        return asha_milestones(grace_period=self.grace_period,
                               reduction_factor=self.reduction_factor,
                               max_epochs=self.max_epochs)

    @property
    def expected_epochs(self) -> float:
        """E = r_0 + sum_i eta^-i (r_i - r_(i-1)): a fraction eta^-i of the configurations
        passes rung i (ASHA's top 1/eta at each rung)."""
        return expected_epochs(milestones=self.milestones,
                               reduction_factor=self.reduction_factor)


def sample_configs(space: str, *, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` resolved training configs drawn from the space as trials of a 150 Hz, 12-epoch
    study get them."""
    spec = StudySpec(data_dir="", cache_dir=None, fs_hz=FS_HZ, folds={}, fold=0,
                     max_epochs=12, seed=seed, overrides={})
    return estimate.sample_configs(space, n=n, seed=seed, spec=spec)


def load_pool(*, data_dir: Path, pool: int, seed: int) -> tuple[EcgArrays, np.ndarray, str]:
    """Records to measure on (real CinC at 150 Hz if present, else synthetic) and a random
    pool of their indices."""
    if data_dir.is_dir():
        arrays = load_cinc2017_cached(data_dir, fs_hz=FS_HZ, progress=False)
        source = f"real CinC 2017 records from {data_dir}"
    else:
        arrays = to_ecg_arrays(generate_records(n_records=pool, seed=seed, fs_hz=FS_HZ))
        source = f"synthetic records (no data at {data_dir})"
    rng = np.random.default_rng(seed)
    indices = np.sort(rng.choice(len(arrays), size=min(pool, len(arrays)), replace=False))
    rng.shuffle(indices)
    return arrays, indices, source


def wall_hours(*, search_s: float, trial_s: float, shape: StudyShape,
               n_devices: int, per_device: int, speedup: float) -> float:
    """Wall-clock of search then CV on ``n_devices`` running ``per_device`` trials each.

    A device running g trials delivers ``speedup`` times a lone trial's throughput (1.0: no
    gain), so each shared trial runs at speedup/g of its lone speed. The search packs
    perfectly but cannot end before one full-budget trial; the CV runs K*folds equal
    full-budget trials in waves of n_devices*g.
    """
    gain = speedup if per_device > 1 else 1.0
    slot_trial_s = trial_s * per_device / gain
    search = max(search_s / (n_devices * gain), slot_trial_s)
    waves = math.ceil(shape.top_k * shape.n_folds / (n_devices * per_device))
    return (search + waves * slot_trial_s) / 3600


def space_row(costs: list[ConfigCost], shape: StudyShape) -> dict[str, float]:
    """Device-seconds of one space's study from its measured configs (means over them)."""
    epoch = statistics.mean(c.epoch_s for c in costs)
    pretrain = statistics.mean(c.pretrain_s for c in costs)
    return {
        "epoch_mean": epoch,
        "epoch_sd": statistics.stdev(c.epoch_s for c in costs) if len(costs) > 1 else 0.0,
        "epoch_min": min(c.epoch_s for c in costs),
        "epoch_max": max(c.epoch_s for c in costs),
        "pretrain": pretrain,
        "search": shape.n_configs * (shape.expected_epochs * epoch + pretrain),
        "cv": shape.top_k * shape.n_folds * (shape.max_epochs * epoch + pretrain),
        "trial": shape.max_epochs * epoch + pretrain,
    }


def print_tables(rows: dict[str, dict[str, float]], *, shape: StudyShape, unit: str,
                 gpus: list[int], sharing: list[int], speedup: float) -> None:
    print(f"\nper space (s/epoch: mean, sd, min-max over the sampled configs; {unit}):")
    print(f"{'space':<15} {'s/epoch':>8} {'sd':>7} {'min-max':>15} {'pretrain s':>10} "
          f"{'search h':>9} {'CV h':>8} {'total h':>8}")
    for name, r in rows.items():
        spread = f"{r['epoch_min']:.0f}-{r['epoch_max']:.0f}"
        print(f"{name:<15} {r['epoch_mean']:>8.0f} {r['epoch_sd']:>7.0f} "
              f"{spread:>15} {r['pretrain']:>10.0f} "
              f"{r['search'] / 3600:>9.1f} {r['cv'] / 3600:>8.1f} "
              f"{(r['search'] + r['cv']) / 3600:>8.1f}")
    columns = [(n, g) for g in sharing for n in gpus]
    print(f"\nwall-clock hours on N devices with g trials per device (sharing speed-up "
          f"{speedup:g}; search packed perfectly, never shorter than one full trial; CV in "
          f"waves of N*g):")
    print(f"{'space':<15} " + " ".join(f"{f'N={n},g={g}':>11}" for n, g in columns)
          + f" {'1 full trial h':>14}")
    for name, r in rows.items():
        cells = [wall_hours(search_s=r["search"], trial_s=r["trial"],
                            shape=shape, n_devices=n, per_device=g, speedup=speedup)
                 for n, g in columns]
        print(f"{name:<15} " + " ".join(f"{c:>11.1f}" for c in cells)
              + f" {r['trial'] / 3600:>14.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--records", type=int, default=8528, help="records in the data set")
    parser.add_argument("--gpus", type=int, nargs="+", default=[1, 4, 8, 16],
                        help="device counts N for the wall-clock table")
    parser.add_argument("--sharing", type=int, nargs="+", default=[1, 4],
                        help="trials per device g (fractional sharing 1/g)")
    parser.add_argument("--sharing-speedup", type=float, default=1.0,
                        help="throughput of a device running g>1 trials relative to one "
                             "trial alone (not measured here; 1.0 = no gain)")
    parser.add_argument("--spaces", nargs="+", default=None, help="default: every space")
    parser.add_argument("--configs", type=int, default=6, help="sampled configs per space")
    parser.add_argument("--steps", type=int, default=8, help="timed training steps per config")
    parser.add_argument("--pool", type=int, default=512, help="records measured on")
    parser.add_argument("--samples", type=int, default=40, help="configurations searched (S)")
    parser.add_argument("--top-k", type=int, default=3, help="configs retrained on all folds")
    parser.add_argument("--folds", type=int, default=8)
    parser.add_argument("--max-epochs", type=int, default=12)
    parser.add_argument("--grace-period", type=int, default=1)
    parser.add_argument("--reduction-factor", type=float, default=3.0)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = args.spaces or space_names()
    unknown = sorted(set(names) - set(space_names()))
    if unknown or args.configs < 1 or args.steps < 1 or args.sharing_speedup <= 0:
        print(f"error: bad arguments (unknown spaces {unknown}, or --configs/--steps < 1, "
              f"or --sharing-speedup <= 0); spaces: {space_names()}", file=sys.stderr)
        return 2
    shape = StudyShape(records=args.records, n_folds=args.folds, n_configs=args.samples,
                       top_k=args.top_k, max_epochs=args.max_epochs,
                       grace_period=args.grace_period, reduction_factor=args.reduction_factor)
    try:
        runtime = select_runtime(device=args.device, amp=True)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    arrays, pool, source = load_pool(data_dir=args.data_dir, pool=args.pool, seed=args.seed)
    mean_s = float(arrays.lengths[pool].mean()) / arrays.fs_hz
    if runtime.device.type == "cuda":
        unit = f"GPU-hours of one {torch.cuda.get_device_name(runtime.device)}"
    else:
        unit = f"CPU-hours of this machine, {torch.get_num_threads()} torch threads"
    print(f"device: {runtime.device}, autocast {runtime.amp_dtype}; figures are {unit}")
    print(f"measured on {len(pool)} {source}; mean length {mean_s:.1f} s at {FS_HZ:g} Hz")
    started = time.perf_counter()
    rows = {}
    for name in names:
        costs = []
        for cfg in sample_configs(name, n=args.configs, seed=args.seed):
            cost = estimate.measure_config(cfg, arrays=arrays, pool=pool, steps=args.steps,
                                           runtime=runtime, records=shape.records,
                                           n_folds=shape.n_folds)
            print(f"  {name}: {cost.epoch_s:7.0f} s/epoch  pretrain {cost.pretrain_s:5.0f} s  "
                  f"{cost.summary}", flush=True)
            costs.append(cost)
        rows[name] = space_row(costs, shape)
    rungs = shape.milestones
    eta = shape.reduction_factor
    print(f"\nstudy: search S={shape.n_configs} configs with ASHA (grace {shape.grace_period}, "
          f"reduction factor {eta:g}, {shape.max_epochs} epochs; rungs {rungs}) on one fold, "
          f"then the top K={shape.top_k} on all {shape.n_folds} folds at {shape.max_epochs} "
          f"epochs; {shape.records} records; one epoch = train on "
          f"{shape.n_folds - 1}/{shape.n_folds}, evaluate 1/{shape.n_folds}")
    print(f"expected epochs per searched config E = r0 + sum_i eta^-i (r_i - r_(i-1)) = "
          f"{shape.expected_epochs:.3f} (no early stopping: {shape.max_epochs}); Ray's "
          f"asynchronous ASHA promotes early trials more often, so E is a lower bound")
    print("search = S * (E * s/epoch + pretrain); CV = K * folds * (max epochs * s/epoch + "
          "pretrain)")
    print_tables(rows, shape=shape, unit=unit, gpus=args.gpus, sharing=args.sharing,
                 speedup=args.sharing_speedup)
    if runtime.device.type != "cuda":
        print("\nThese are CPU-hours on this machine, not GPU-hours: run the same command on a "
              "GPU machine for GPU figures (no CPU->GPU factor is assumed). The N-device table "
              "reads as N such machines.")
    print(f"The gain of sharing a device between g trials is NOT measured here (--sharing-"
          f"speedup {args.sharing_speedup:g} is an input; 1.0 means g trials each run g times "
          f"slower). Timings come from {args.configs} configs x {args.steps} steps per space "
          f"on a shared machine: expect noise of tens of percent.")
    print(f"measurement took {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
