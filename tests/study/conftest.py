"""Tiny learnable data sets and model configs for fast trainer tests."""

from __future__ import annotations

import numpy as np
import pytest

from data_io.datasets import load_dataset
from data_io.records import EcgArrays, pack_records

CINC_CLASSES = load_dataset("cinc2017").labels

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


def _plan_fields(**changes) -> dict:
    """Every `study.plan.Plan` field for a tiny synthetic CNN study, with ``changes`` applied."""
    fields = dict(
        name="p", space="cnn", dataset="synthetic", data_dir="/d", study_dir="/s",
        storage_path="/s", optuna_storage="sqlite:///:memory:", optuna_study_name="p-1",
        metric="val/f1_cinc", mode="max", num_samples=2, max_epochs=9, grace_period=1,
        reduction_factor=3.0, concurrency=1, cpus_per_trial=1.0, gpus_per_trial=0.0, fold=0,
        n_folds=3, seed=0, fs_hz=100.0, address=None, wandb_mode="disabled", smoke=False,
        synthetic_records=48, cv_top_k=0, explain_top=0, max_failures=0, cache_dir=None,
        resume=False,
    )
    return {**fields, **changes}


@pytest.fixture
def plan_fields():
    """`_plan_fields`: tests build `Plan` objects with the changes they need."""
    return _plan_fields
