"""Benchmark: loading the CinC 2017 records by parsing the WFDB files versus from the warm cache.

    python -m bench.data_io [--data-dir ../shared/data/cinc2017] [--repeats 5]

Prints the median of each over the repeats and their ratio (target: the cache at least 50x
faster). The warm-cache time includes everything a trial pays: fingerprinting the source
directory, reading the metadata, memory-mapping the arrays and verifying their checksums.

Then what a trial starting on a node pays before its first batch: `study.tune.trainable.fold_split`
(the first thing a trial does) at the study rate (150 Hz) with the node's cache empty (cold:
parse, resample, write the cache) versus filled by an earlier trial (warm).
"""

from __future__ import annotations

import sys

if not __package__:
    # Run as a file, this script's own name would shadow the data_io package.
    sys.exit("run it from the repository root as: python -m bench.data_io")

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from data_io.cache import load_cinc2017_cached
from data_io.cinc2017 import load_cinc2017
from data_io.folds import folds_for
from study.tune.spec import StudySpec
from study.tune.trainable import fold_split

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cinc2017"


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if not args.data_dir.is_dir():
        print(f"error: no data at {args.data_dir} (pass --data-dir)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as cache_dir:
        start = time.perf_counter()
        arrays = load_cinc2017_cached(args.data_dir, cache_dir=cache_dir, progress=False)
        build = time.perf_counter() - start
        parse = _median_seconds(lambda: load_cinc2017(args.data_dir, progress=False), args.repeats)
        warm = _median_seconds(
            lambda: load_cinc2017_cached(args.data_dir, cache_dir=cache_dir, progress=False),
            args.repeats,
        )
    print(f"records: {len(arrays)} ({arrays.signals.nbytes / 1e6:.1f} MB of int16 samples)")
    print(f"cold build (parse + write cache): {build:.3f} s")
    print(f"parse WFDB files:  {parse:.3f} s (median of {args.repeats})")
    print(f"warm cache load:   {warm * 1000:.1f} ms (median of {args.repeats})")
    print(f"ratio parse / warm cache: {parse / warm:.0f}x (target >= 50x)")
    cold_start, warm_start = trial_start_seconds(data_dir=args.data_dir, folds=folds_for(arrays),
                                                 repeats=args.repeats)
    print(f"trial start at 150 Hz (fold_split): cold cache {cold_start:.3f} s, warm cache "
          f"{warm_start * 1000:.1f} ms (median of {args.repeats}), "
          f"ratio {cold_start / warm_start:.0f}x")
    return 0


def trial_start_seconds(*, data_dir: Path, folds, repeats: int) -> tuple[float, float]:
    """Seconds until a trial has its training and validation records, on a node whose cache
    is empty and then on the same node once the first trial has filled it."""
    with tempfile.TemporaryDirectory() as cache_dir:
        spec = StudySpec(data_dir=str(data_dir), cache_dir=cache_dir, fs_hz=150.0,
                         folds=folds.as_dict(), fold=0, max_epochs=1, seed=0)
        start = time.perf_counter()
        fold_split(spec, fold=0)
        cold = time.perf_counter() - start
        return cold, _median_seconds(lambda: fold_split(spec, fold=0), repeats)


if __name__ == "__main__":
    raise SystemExit(main())
