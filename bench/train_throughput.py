"""Benchmark: training samples/s of the 7-layer CNN, every record padded to 61 s versus
length-bucketed batches (each padded to its longest record).

    python -m bench.train_throughput [--data-dir ../shared/data/cinc2017] [--records 1500]

Both runs train the same model (`cnn7_gmp`) on the same records at 150 Hz for one epoch with
bf16 autocast on the CPU; the throughput counts real (unpadded) samples, so it measures how
much useful work each batching mode gets done per second. About half of the padded samples
are zeros on CinC, so expect close to 2x.
"""

from __future__ import annotations

import sys

if not __package__:
    sys.exit("run it from the repository root as: python -m bench.train_throughput")

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from data_io.batching import loader_padding_fraction, make_loader
from data_io.cache import load_cinc2017_cached
from models import build_model, load_preset
from models.losses import FocalLoss
from study.engine.runtime import select_runtime
from study.engine.trainer import train_epoch

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cinc2017"


def epoch_throughput(*, arrays, indices, batching: str, seed: int) -> tuple[float, float]:
    """(real samples per second, padding fraction) of one training epoch of the trainer's
    own epoch step."""
    torch.manual_seed(seed)
    runtime = select_runtime(device="auto", amp=True)
    model = build_model({**load_preset("cnn7_gmp"), "n_classes": len(arrays.classes),
                         "n_leads": arrays.n_leads}).to(runtime.device)
    loader = make_loader(arrays=arrays, indices=indices, batching=batching, batch_size=16,
                         shuffle=True, seed=seed)
    start = time.perf_counter()
    _, problem = train_epoch(
        model=model, loader=loader, loss_fn=FocalLoss(gamma=0.0, alpha=None),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
        scaler=torch.amp.GradScaler(runtime.device.type, enabled=runtime.use_grad_scaler),
        runtime=runtime,
    )
    seconds = time.perf_counter() - start
    if problem:
        raise RuntimeError(f"{batching}: {problem}")
    real = int(arrays.lengths[indices].sum())
    return real / seconds, loader_padding_fraction(loader)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--records", type=int, default=1500, help="records per epoch")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.data_dir.is_dir():
        print(f"error: no data at {args.data_dir} (pass --data-dir)", file=sys.stderr)
        return 2
    arrays = load_cinc2017_cached(args.data_dir, fs_hz=150.0, progress=False)
    rng = np.random.default_rng(args.seed)
    indices = np.sort(rng.choice(len(arrays), size=min(args.records, len(arrays)), replace=False))
    results = {}
    for batching in ("pad_fixed", "bucket"):
        rate, padding = epoch_throughput(arrays=arrays, indices=indices, batching=batching,
                                         seed=args.seed)
        results[batching] = rate
        print(f"{batching:>9}: {rate:,.0f} real samples/s, {padding:.0%} of the batch is padding")
    print(f"ratio bucket / pad_fixed: {results['bucket'] / results['pad_fixed']:.2f}x "
          f"({len(indices)} records, 150 Hz, batch 16, one epoch each)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
