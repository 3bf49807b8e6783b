"""Benchmark: training speed and memory of ECG-DualNet S against the 7-layer CNN, and the
cost of the ECG-DualNet augmentation pipeline per epoch.

    python -m bench.dualnet_throughput [--data-dir ../shared/data/cinc2017] [--records 240]

Each model trains one epoch with the trainer's own loader and epoch step (150 Hz, 30-s
random crops, batch 16, the trainer's default precision unless ``--no-amp``) on the same
records, each in a fresh process so that its peak resident memory is its own: the report
gives samples/s, the ratio, the peak RSS of the process and how much of it one training
batch adds (peak minus the RSS after the model and data were loaded). Two concurrent trials
need about twice the peak RSS, plus Ray's ~1 GB. The augmentation cost is the time to build
every training batch of one epoch (no model) with the pipeline off, at ``p`` = 0.2 and at
``p`` = 1 (every step on every record), set against the epoch time of each model.
"""

from __future__ import annotations

import sys

if not __package__:
    sys.exit("run it from the repository root as: python -m bench.dualnet_throughput")

import argparse
import multiprocessing
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data_io.cache import load_cinc2017_cached
from models import build_model, load_preset
from models.losses import FocalLoss
from study.config import resolve_config
from study.runtime import select_runtime
from study.trainer import Split, split_loader, train_epoch

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cinc2017"
MODELS = ("cnn7_gmp", "dualnet_s")
FS_HZ = 150.0
AUGMENT_SETTINGS: dict[str, dict[str, Any] | None] = {
    "off": None,
    "p=0.2": {"pipeline": "ecg_dualnet", "p": 0.2},
    "p=1.0": {"pipeline": "ecg_dualnet", "p": 1.0},
}


def _rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _split(data_dir: Path, n_records: int, seed: int) -> Split:
    arrays = load_cinc2017_cached(data_dir, fs_hz=FS_HZ, progress=False)
    rng = np.random.default_rng(seed)
    indices = np.sort(rng.choice(len(arrays), size=min(n_records, len(arrays)), replace=False))
    return Split(arrays, indices)


def train_one_epoch(job: dict[str, Any]) -> dict[str, float]:
    """In a fresh process: one training epoch of ``job["preset"]``; speed and memory."""
    torch.set_num_threads(job["threads"])
    split = _split(Path(job["data_dir"]), job["records"], job["seed"])
    cfg = resolve_config({"model": load_preset(job["preset"]), "seed": job["seed"],
                          "runtime": {"amp": job["amp"]}})
    runtime = select_runtime(device="cpu", amp=cfg["runtime"]["amp"])
    torch.manual_seed(job["seed"])
    model = build_model({"n_classes": len(split.arrays.classes), "n_leads": split.arrays.n_leads,
                         **cfg["model"]})
    loader = split_loader(split, cfg=cfg, training=True, epoch=0)
    before_mib = _rss_mib()
    start = time.perf_counter()
    _, problem = train_epoch(
        model=model, loader=loader, loss_fn=FocalLoss(gamma=0.0, alpha=None),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
        scaler=torch.amp.GradScaler("cpu", enabled=False), runtime=runtime,
    )
    seconds = time.perf_counter() - start
    if problem:
        raise RuntimeError(f"{job['preset']}: {problem}")
    n = len(split.indices)
    return {"samples_per_s": n / seconds, "epoch_s": seconds, "peak_mib": _rss_mib(),
            "batch_mib": _rss_mib() - before_mib,
            "parameters": sum(p.numel() for p in model.parameters())}


def augmentation_epoch_seconds(split: Split, augment: dict[str, Any] | None, seed: int) -> float:
    """Seconds to build every training batch of one epoch (30-s crops, batch 16)."""
    cfg = resolve_config({"data": {"augment": augment}, "seed": seed})
    start = time.perf_counter()
    for _ in split_loader(split, cfg=cfg, training=True, epoch=0):
        pass
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dualnet_throughput",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--records", type=int, default=240, help="records per epoch")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per model")
    parser.add_argument("--no-amp", action="store_true",
                        help="train in fp32 (bf16 autocast is the trainer's default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.data_dir.is_dir():
        print(f"error: no data at {args.data_dir} (pass --data-dir)", file=sys.stderr)
        return 2
    amp = not args.no_amp
    print(f"{args.records} records, {FS_HZ:.0f} Hz, 30-s crops, batch 16, "
          f"{'bf16 autocast' if amp else 'fp32'}, {args.threads} threads", flush=True)
    results: dict[str, dict[str, float]] = {}
    context = multiprocessing.get_context("spawn")
    for preset in MODELS:
        job = {"preset": preset, "data_dir": str(args.data_dir), "records": args.records,
               "seed": args.seed, "threads": args.threads, "amp": amp}
        with context.Pool(1) as pool:  # a fresh process: its own peak RSS
            results[preset] = pool.apply(train_one_epoch, (job,))
        r = results[preset]
        print(f"{preset:>10}: {r['parameters'] / 1e6:.2f} M parameters, "
              f"{r['samples_per_s']:.1f} records/s ({r['epoch_s']:.1f} s per epoch), "
              f"peak RSS {r['peak_mib']:,.0f} MiB, of which training batches "
              f"{r['batch_mib']:,.0f} MiB", flush=True)
    base, dual = results["cnn7_gmp"], results["dualnet_s"]
    print(f"ratio dualnet_s / cnn7_gmp: {dual['samples_per_s'] / base['samples_per_s']:.2f}x "
          f"speed, {dual['peak_mib'] / base['peak_mib']:.2f}x peak RSS; two concurrent "
          f"dualnet_s trials: ~{2 * dual['peak_mib'] / 1024 + 1:.1f} GiB with Ray's ~1 GB "
          f"(of 24 GiB)")
    split = _split(args.data_dir, args.records, args.seed)
    off = None
    for name, augment in AUGMENT_SETTINGS.items():
        seconds = augmentation_epoch_seconds(split, augment, args.seed)
        off = seconds if off is None else off
        print(f"batches with augmentation {name:>5}: {seconds:.2f} s per epoch "
              f"(+{seconds - off:.2f} s; {100 * (seconds - off) / dual['epoch_s']:.1f}% of a "
              f"dualnet_s epoch, {100 * (seconds - off) / base['epoch_s']:.1f}% of a cnn7_gmp "
              f"epoch)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
