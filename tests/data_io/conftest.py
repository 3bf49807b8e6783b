"""Small CinC-format directories written in tmp_path, so the real loader is always exercised."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from data_io.cinc_format import write_record, write_reference

LABEL_CYCLE = ("N", "N", "A", "O", "N", "O", "~", "N")


def write_small_cinc(directory: Path, *, n_records: int = 16, fs_hz: float = 300.0) -> dict:
    """Write ``n_records`` sine-plus-noise records with CinC headers; return {id: label}."""
    rng = np.random.default_rng(7)
    labels = {}
    for i in range(n_records):
        record = f"A{i + 1:05d}"
        n = int(fs_hz * (9 + (i % 5) * 3))
        t = np.arange(n) / fs_hz
        mv = 0.8 * np.sin(2 * np.pi * 1.2 * t) + 0.05 * rng.standard_normal(n)
        write_record(
            directory=directory,
            record_id=record,
            digital=np.round(mv * 1000).astype(np.int16),
            fs_hz=fs_hz,
            adc_gain=1000.0,
        )
        labels[record] = LABEL_CYCLE[i % len(LABEL_CYCLE)]
    write_reference(directory=directory, labels=labels)
    return labels


@pytest.fixture
def small_cinc(tmp_path: Path) -> tuple[Path, dict]:
    directory = tmp_path / "cinc"
    directory.mkdir()
    return directory, write_small_cinc(directory)


@pytest.fixture
def make_cinc(tmp_path: Path) -> Callable[..., tuple[Path, dict]]:
    def make(name: str = "cinc", **kwargs) -> tuple[Path, dict]:
        directory = tmp_path / name
        directory.mkdir()
        return directory, write_small_cinc(directory, **kwargs)

    return make
