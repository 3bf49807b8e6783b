"""mitdb-beats on synthetic MIT-BIH-format records written by `data_io.synthesize`."""

from __future__ import annotations

from pathlib import Path

from data_io.datasets.mitdb_beats import check, fold_plan, load

__all__ = ["check", "fold_plan", "generate", "load", "max_records"]


def max_records() -> int:
    """The most records `generate` can write (one per non-paced MIT-BIH record name)."""
    from data_io.synthetic_mitdb import max_records as limit

    return limit()


def generate(out: Path, *, n_records: int, seed: int) -> None:
    """Write ``n_records`` synthetic MIT-BIH-format records into ``out``."""
    from data_io.synthetic_mitdb import write_mitdb

    write_mitdb(out=out, n_records=n_records, seed=seed)
