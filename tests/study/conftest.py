"""Tiny learnable data sets and model configs for fast trainer tests."""

from __future__ import annotations

import numpy as np
import pytest

from data_io.records import CINC_CLASSES, EcgArrays, pack_records

TINY_CNN = {"name": "cnn", "channels": [4, 8, 8], "kernel_size": 5, "pooling": "gmp"}


def tiny_arrays(*, n_records: int = 48, seed: int = 0) -> EcgArrays:
    """Four easily told-apart waveforms (one per CinC class) of varying length at 50 Hz."""
    rng = np.random.default_rng(seed)
    signals, labels = [], []
    for i in range(n_records):
        label = i % 4
        n = int(rng.integers(150, 400))
        t = np.arange(n) / 50.0
        wave = (
            np.sin(2 * np.pi * 1.0 * t),
            np.sign(np.sin(2 * np.pi * 1.0 * t)),
            np.sin(2 * np.pi * 4.0 * t),
            rng.standard_normal(n),
        )[label]
        signals.append(np.round(1000 * (wave + 0.05 * rng.standard_normal(n))).astype(np.int16))
        labels.append(label)
    return pack_records(
        digital_signals=signals, record_ids=[f"T{i:04d}" for i in range(n_records)],
        labels=labels, classes=CINC_CLASSES, fs_hz=50.0, adc_gain=1000.0,
    )


@pytest.fixture(name="tiny_arrays")
def tiny_arrays_fixture():
    """`tiny_arrays` itself, so tests can ask for several sizes."""
    return tiny_arrays


@pytest.fixture
def tiny_config() -> dict:
    return {
        "model": dict(TINY_CNN),
        "optim": {"lr": 0.01, "batch_size": 8},
        "data": {"fs_hz": 50.0, "train_batching": "bucket", "eval_batching": "bucket"},
        "runtime": {"device": "cpu", "amp": False},
        "epochs": 3,
        "seed": 0,
    }
