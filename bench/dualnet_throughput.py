"""Benchmark: the training-step time of ECG-DualNet S and ECG-DualNet++ S against the 7-layer
CNN, as ratios measured in one run.

    python -m bench.dualnet_throughput [--steps 8] [--batch 16] [--seconds 30] [--fs-hz 150]

One step is what the trainer does per batch (`study.engine.trainer.train_epoch`): forward under the
trainer's precision (bf16 autocast where the CPU computes it, `study.engine.runtime`), the loss,
backward and an optimiser step, here on a fixed batch of ``--batch`` records of ``--seconds``
at ``--fs-hz`` (all of one length, so no padding; random normal samples, as z-scored records
look to the model). Each model gets its own preset's optimiser (`study.engine.protocols`). The
models take turns step by step, so load from other processes falls on all of them alike; the
median over ``--steps`` timed steps (after one warm-up step each) is reported, once with one
thread and once with the trainer's threads (torch's default unless the runtime config sets
``num_threads``). Targets (issue 35): dualnet_s / cnn7_gmp <= 1.0, dualnetpp_s / cnn7_gmp <= 2.0.
"""

from __future__ import annotations

import sys

if not __package__:
    sys.exit("run it from the repository root as: python -m bench.dualnet_throughput")

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from models import build_model
from models.losses import FocalLoss
from study.engine.config import resolve_config
from study.engine.protocols import preset_config
from study.engine.runtime import select_runtime
from study.engine.trainer import build_optimizer

BASELINE = "cnn7_gmp"
MODELS = (BASELINE, "dualnet_s", "dualnetpp_s")
TARGETS = {"dualnet_s": 1.0, "dualnetpp_s": 2.0}
N_CLASSES = 4


def make_step(preset: str, *, batch: int, samples: int, seed: int) -> Callable[[], None]:
    """One training step of ``preset`` on a fixed random batch, as a closure."""
    cfg = resolve_config(preset_config(preset))
    runtime = select_runtime(device="cpu", amp=cfg.runtime.amp)
    torch.manual_seed(seed)
    model = build_model({**cfg.model, "n_classes": N_CLASSES, "n_leads": 1}).train()
    optimizer = build_optimizer(model, cfg)
    loss_fn = FocalLoss(gamma=0.0, alpha=None)
    x = torch.randn(batch, 1, samples)
    lengths = torch.full((batch,), samples)
    y = torch.arange(batch) % N_CLASSES

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with runtime.autocast():
            logits = model(x, lengths=lengths)
        loss_fn(logits.float(), y).backward()
        optimizer.step()

    return step


def median_step_seconds(steps: dict[str, Callable[[], None]], *, n: int) -> dict[str, float]:
    """Median seconds per step of each model, the models taking turns step by step."""
    for step in steps.values():  # warm-up: allocators, oneDNN primitives
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(n):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dualnet_throughput",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="timed steps per model and setting")
    parser.add_argument("--batch", type=int, default=16, help="records per batch")
    parser.add_argument("--seconds", type=float, default=30.0, help="record length")
    parser.add_argument("--fs-hz", type=float, default=150.0, help="sampling rate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    samples = round(args.seconds * args.fs_hz)
    trainer_threads = resolve_config({}).runtime.num_threads or torch.get_num_threads()
    runtime = select_runtime(device="cpu", amp=resolve_config({}).runtime.amp)
    precision = "fp32" if runtime.amp_dtype is None else f"{runtime.amp_dtype} autocast"
    print(f"batch {args.batch} x {args.seconds:g} s at {args.fs_hz:g} Hz ({samples} samples), "
          f"{precision}, median of {args.steps} steps", flush=True)
    steps = {name: make_step(name, batch=args.batch, samples=samples, seed=args.seed)
             for name in MODELS}
    for threads in dict.fromkeys((1, trainer_threads)):
        torch.set_num_threads(threads)
        seconds = median_step_seconds(steps, n=args.steps)
        base = seconds[BASELINE]
        cells = [f"{name} {value:.3f} s" for name, value in seconds.items()]
        print(f"{threads} thread(s): " + ", ".join(cells), flush=True)
        for name, target in TARGETS.items():
            ratio = seconds[name] / base
            verdict = "meets" if ratio <= target else "MISSES"
            print(f"  {name} / {BASELINE}: {ratio:.2f} ({verdict} the target <= {target:g})",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
