"""Drill: a damaged data cache entry is detected, rebuilt and never silently used.

    python -m bench.drill_corrupt_cache [--data-dir ../shared/data/cinc2017] [--records 300]
                                        [--keep DIR]

Builds the cache entry of a CinC-format directory (a class-stratified subset of --records real
records when --data-dir holds them, else as many synthetic records from `data_io.synthesize`),
plus the entry of an older version of that directory (the same records but the last tenth).
Then damages the current entry on disk, one way at a time (bytes flipped in the middle of the
signal array, truncated or deleted files, damaged or edited metadata, files of the older entry
copied in), and checks after each that the next `load_cinc2017_cached`:
  - logs a warning naming the damaged file and the problem,
  - rebuilds the entry (and leaves it whole on disk, with no temporary directories left), and
  - returns arrays identical to a fresh parse (`data_io.cinc2017.load_cinc2017`, source rate).
Finally a `python -m study.run --dry-run` on a damaged entry shows the user sees the warning.
"""

from __future__ import annotations

import sys

if not __package__:
    sys.exit("run it from the repository root as: python -m bench.drill_corrupt_cache")

import argparse
import json
import logging
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import DEFAULT_DATA, link_records, real_subset, synthetic_set, work_directory
from data_io import cache
from data_io.cache import load_cinc2017_cached
from data_io.cinc2017 import load_cinc2017
from data_io.datasets import load_dataset
from data_io.records import EcgArrays
from data_io.reference import find_reference, read_reference

CINC_CLASSES = load_dataset("cinc2017").labels


@dataclass(frozen=True)
class Damage:
    """One way to damage the current entry, and what the warning must say."""

    what: str
    apply: Callable[[Path, Path], None]  # (current entry, older entry)
    expected: str


def _flip_middle(path: Path, *, n_bytes: int = 64) -> None:
    blob = bytearray(path.read_bytes())
    middle = len(blob) // 2
    blob[middle:middle + n_bytes] = bytes(b ^ 0xFF for b in blob[middle:middle + n_bytes])
    path.write_bytes(bytes(blob))


def _truncate(path: Path, *, fraction: float) -> None:
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * fraction)])


def _edit_meta(entry: Path, edit: Callable[[dict], dict]) -> None:
    path = entry / "meta.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text())), indent=1))


def _rename_first_record(meta: dict) -> dict:
    return {**meta, "record_ids": ["A99999", *meta["record_ids"][1:]]}


def _copy_all(source: Path, dest: Path) -> None:
    """Every file of the entry ``source`` over the same file of ``dest``."""
    for path in source.iterdir():
        shutil.copy(path, dest / path.name)


DAMAGES = (
    Damage("64 bytes flipped in the middle of signals.npy",
           lambda e, _: _flip_middle(e / "signals.npy"), "signals.npy fails its checksum"),
    Damage("signals.npy truncated to half its size",
           lambda e, _: _truncate(e / "signals.npy", fraction=0.5),
           "signals.npy is missing or unreadable"),
    Damage("signals.npy truncated to 0 bytes",
           lambda e, _: _truncate(e / "signals.npy", fraction=0.0),
           "signals.npy is missing or unreadable"),
    Damage("signals.npy deleted", lambda e, _: (e / "signals.npy").unlink(),
           "signals.npy is missing or unreadable"),
    Damage("bytes flipped in offsets.npy",
           lambda e, _: _flip_middle(e / "offsets.npy", n_bytes=8),
           "offsets.npy fails its checksum"),
    Damage("meta.json truncated (invalid JSON)",
           lambda e, _: _truncate(e / "meta.json", fraction=0.5),
           "meta.json is missing or unreadable"),
    Damage("meta.json edited: a record id renamed (valid JSON)",
           lambda e, _: _edit_meta(e, _rename_first_record), "meta.json fails its checksum"),
    Damage("meta.json edited: the checksums field removed",
           lambda e, _: _edit_meta(e, lambda m: {k: v for k, v in m.items() if k != "checksums"}),
           "meta.json lacks checksums"),
    Damage("meta.json replaced by a JSON list",
           lambda e, _: (e / "meta.json").write_text("[]"),
           "meta.json does not hold a JSON object"),
    Damage("meta.json deleted", lambda e, _: (e / "meta.json").unlink(),
           "meta.json is missing or unreadable"),
    Damage("signals.npy replaced by the older cache's",
           lambda e, old: shutil.copy(old / "signals.npy", e / "signals.npy"),
           "signals.npy fails its checksum"),
    Damage("meta.json replaced by the older cache's",
           lambda e, old: shutil.copy(old / "meta.json", e / "meta.json"),
           "meta.json belongs to another cache entry"),
    Damage("every file replaced by the older cache's (a whole, self-consistent entry)",
           lambda e, old: _copy_all(old, e), "meta.json belongs to another cache entry"),
)


class Captured(logging.Handler):
    """Collects what `data_io.cache` logs while it is attached."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == level]


def older_version(*, source: Path, dest: Path) -> Path:
    """``source`` without its last tenth of records (symlinks), as it was before they came."""
    labels = read_reference(find_reference(source), classes=CINC_CLASSES).labels
    keep = sorted(labels)[: max(1, len(labels) * 9 // 10)]
    return link_records(source=source, dest=dest, labels={r: labels[r] for r in keep})


def differences(got: EcgArrays, want: EcgArrays) -> list[str]:
    """What differs between two loads (empty when identical)."""
    problems = [name for name in ("signals", "offsets", "labels")
                if not np.array_equal(getattr(got, name), getattr(want, name))]
    problems += [name for name in ("record_ids", "classes", "fs_hz", "adc_gain", "quarantined")
                 if getattr(got, name) != getattr(want, name)]
    return problems


def entries(cache_dir: Path) -> list[Path]:
    return sorted(p for p in cache_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def leftovers(cache_dir: Path) -> list[str]:
    return sorted(p.name for p in cache_dir.iterdir() if p.name.startswith("."))


def check_damage(damage: Damage, *, data: Path, cache_dir: Path, entry: Path, older: Path,
                 parsed: EcgArrays, captured: Captured) -> str | None:
    """Damage ``entry``, load again; None when everything held, else the evidence."""
    damage.apply(entry, older)
    captured.records.clear()
    try:
        loaded = load_cinc2017_cached(data, cache_dir=cache_dir, progress=False)
    except Exception as exc:  # what the user would get: a traceback instead of a rebuild
        return f"the load raised {type(exc).__name__}: {exc}"
    warnings = captured.messages(logging.WARNING)
    rebuilt = any(m.startswith("building data cache") for m in captured.messages(logging.INFO))
    problems = []
    if not any(damage.expected in w for w in warnings):
        problems.append(f"no warning saying {damage.expected!r} (warnings: {warnings})")
    if not rebuilt:
        problems.append("the entry was not rebuilt")
    changed = differences(loaded, parsed)
    if changed:
        problems.append(f"loaded arrays differ from a fresh parse in {changed}")
    try:
        cache.read_entry(entry)
    except ValueError as exc:
        problems.append(f"entry on disk still damaged after the load: {exc}")
    if leftovers(cache_dir):
        problems.append(f"temporary directories left: {leftovers(cache_dir)}")
    return "; ".join(problems) or None


def check_user_sees_warning(*, data: Path, cache_dir: Path, entry: Path, work: Path) -> tuple[
        bool, str]:
    """Damage the entry, run a study dry run as a user would; its stderr must name the file."""
    _flip_middle(entry / "signals.npy")
    run = subprocess.run(
        [sys.executable, "-m", "study.run", "--space", "cnn", "--dataset", "cinc2017",
         "--data-dir", str(data), "--cache-dir", str(cache_dir), "--fs-hz", "300",
         "--name", "drill", "--wandb-mode", "disabled", "--dry-run"],
        cwd=work, capture_output=True, text=True, timeout=300,
    )
    lines = [line for line in run.stderr.splitlines() if "data cache" in line]
    ok = run.returncode == 0 and any("signals.npy fails its checksum" in line for line in lines)
    return ok, lines[0] if lines else f"exit {run.returncode}, stderr: {run.stderr[-500:]}"


def source_directory(args: argparse.Namespace, work: Path) -> Path:
    if (args.data_dir / "REFERENCE.csv").is_file():
        print(f"data: a stratified subset of ~{args.records} real records of {args.data_dir}")
        return real_subset(source=args.data_dir, dest=work / "data", n_records=args.records,
                           seed=0)
    print(f"data: {args.data_dir} has no records; {args.records} synthetic records instead")
    return synthetic_set(dest=work / "data", n_records=args.records, seed=0)


def run_drill(args: argparse.Namespace, work: Path) -> list[tuple[str, str | None]]:
    """Every check as (what, None when it passed, else the evidence)."""
    data = source_directory(args, work)
    cache_dir = work / "cache"
    older_data = older_version(source=data, dest=work / "older-data")
    start = time.perf_counter()
    parsed = load_cinc2017(data, progress=False)
    print(f"fresh parse: {len(parsed)} records, {len(parsed.quarantined)} quarantined, "
          f"{parsed.signals.nbytes / 1e6:.1f} MB of samples, {time.perf_counter() - start:.1f} s")
    load_cinc2017_cached(older_data, cache_dir=cache_dir, progress=False)
    (older,) = entries(cache_dir)
    load_cinc2017_cached(data, cache_dir=cache_dir, progress=False)
    (entry,) = [e for e in entries(cache_dir) if e != older]
    print(f"cache: current entry {entry.name}, older entry {older.name}")

    captured = Captured()
    logger = logging.getLogger(cache.__name__)
    logger.addHandler(captured)
    logger.setLevel(logging.INFO)
    results = []
    try:
        again = load_cinc2017_cached(data, cache_dir=cache_dir, progress=False)
        intact = (not captured.records and isinstance(again.signals, np.memmap)
                  and not differences(again, parsed))
        results.append(("an intact entry is used as it is (memory-mapped, no rebuild, no warning)",
                        None if intact else f"log: {[r.getMessage() for r in captured.records]}"))
        del again  # its memory map points into files damaged below
        for damage in DAMAGES:
            print(f"... {damage.what}", flush=True)
            evidence = check_damage(damage, data=data, cache_dir=cache_dir, entry=entry,
                                    older=older, parsed=parsed, captured=captured)
            seen = next(iter(captured.messages(logging.WARNING)), "(no warning)")
            results.append((f"{damage.what}: detected, rebuilt, equal to a fresh parse; "
                            f"user saw: {seen}", evidence))
    finally:
        logger.removeHandler(captured)
    print("... a study dry run on a damaged entry", flush=True)
    ok, seen = check_user_sees_warning(data=data, cache_dir=cache_dir, entry=entry, work=work)
    results.append((f"`python -m study.run --dry-run` prints the warning on stderr: {seen}",
                    None if ok else seen))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA,
                        help="CinC 2017 records (default: ../shared/data/cinc2017; synthetic "
                             "records are written when it holds none)")
    parser.add_argument("--records", type=int, default=300, help="records in the drill's copy")
    parser.add_argument("--keep", type=Path, help="keep the work directory here (must not exist)")
    args = parser.parse_args(argv)
    if args.keep and args.keep.exists():
        print(f"error: --keep {args.keep} exists; pass a new directory", file=sys.stderr)
        return 2
    start = time.perf_counter()
    with work_directory(prefix="drill-cache-", keep=args.keep) as work:
        results = run_drill(args, work)
    for what, evidence in results:
        print(f"PASS {what}" if evidence is None else f"FAIL {what}: {evidence}")
    failed = sum(evidence is not None for _, evidence in results)
    print(f"({time.perf_counter() - start:.0f} s)")
    print("drill corrupt_cache: PASS" if not failed
          else f"drill corrupt_cache: FAIL ({failed} of {len(results)} checks failed)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
