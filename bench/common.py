"""Pieces the benchmarks share: their data sets and running `python -m study.run` as users do."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from data_io.cinc_format import write_reference
from data_io.datasets import load_dataset
from data_io.folds import stratified_folds
from data_io.reference import find_reference, read_reference

CINC_CLASSES = load_dataset("cinc2017").labels

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cinc2017"
"""The real CinC 2017 records beside a clone (``../shared/data/cinc2017``)."""


def real_subset(*, source: Path, dest: Path, n_records: int, seed: int) -> Path:
    """A class-stratified subset of ``source`` as symlinks plus its own REFERENCE.csv.

    The subset is one fold of a stratified split into ``len / n_records`` parts, so its class
    mix is the source's.
    """
    reference = find_reference(source)
    if reference is None:
        raise SystemExit(f"error: {source} has no REFERENCE.csv (pass --data-dir)")
    labels = read_reference(reference, classes=CINC_CLASSES).labels
    ids = sorted(labels)
    n_parts = max(1, round(len(ids) / n_records))
    table = stratified_folds(record_ids=ids, labels=[CINC_CLASSES.index(labels[r]) for r in ids],
                             n_folds=n_parts, seed=seed).as_dict()
    chosen = [r for r in ids if table[r] == 0]
    return link_records(source=source, dest=dest, labels={r: labels[r] for r in chosen})


def link_records(*, source: Path, dest: Path, labels: dict[str, str]) -> Path:
    """A new CinC-format directory ``dest`` of ``source``'s records in ``labels`` (symlinks to
    their .hea/.mat files) with its own REFERENCE.csv."""
    dest.mkdir(parents=True)
    for record in labels:
        for suffix in (".hea", ".mat"):
            (dest / f"{record}{suffix}").symlink_to((source / f"{record}{suffix}").resolve())
    write_reference(directory=dest, labels=labels)
    return dest


def synthetic_set(*, dest: Path, n_records: int, seed: int) -> Path:
    """``n_records`` synthetic CinC-format records (`python -m data_io.synthesize`)."""
    from data_io.synthesize import main as synthesize

    if synthesize(["--out", str(dest), "--records", str(n_records), "--seed", str(seed)]):
        raise SystemExit(f"error: could not write synthetic records to {dest}")
    return dest


def run_study_cli(*, args: list[str], log: Path, cwd: Path | None = None) -> float:
    """Run ``python -m study.run ARGS`` to the end, output to ``log``; returns its wall seconds.

    Raises:
        SystemExit: the study failed (the tail of its log is in the message).
    """
    start = time.perf_counter()
    with log.open("w") as out:
        code = subprocess.run([sys.executable, "-m", "study.run", *args], cwd=cwd,
                              stdout=out, stderr=subprocess.STDOUT,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"}).returncode
    seconds = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"error: study exited {code}; see {log}:\n{log.read_text()[-3000:]}")
    return seconds


class Checks:
    """A drill's PASS/FAIL lines as they are decided, and its final verdict line."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failed: list[str] = []
        self.total = 0

    def check(self, ok: bool, what: str, evidence: str = "") -> bool:
        self.total += 1
        if ok:
            print(f"PASS {what}", flush=True)
        else:
            self.failed.append(what)
            print(f"FAIL {what}: {evidence}", flush=True)
        return ok

    def verdict(self) -> int:
        """Print ``drill NAME: PASS`` or ``FAIL (n of m checks failed)``; the exit code."""
        if self.failed:
            print(f"drill {self.name}: FAIL ({len(self.failed)} of {self.total} checks failed)")
            return 1
        print(f"drill {self.name}: PASS")
        return 0


@contextmanager
def work_directory(*, prefix: str, keep: Path | None) -> Iterator[Path]:
    """A temporary work directory, removed afterwards, or moved to ``keep`` for inspection."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield work
    finally:
        if keep:
            shutil.move(work, keep)
            print(f"work directory kept in {keep}")
        else:
            shutil.rmtree(work, ignore_errors=True)
