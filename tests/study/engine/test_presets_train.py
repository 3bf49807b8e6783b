"""Every model family and every named preset trains on synthetic ECG and explains itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data_io.datasets import load_dataset
from data_io.preprocess import resample_arrays
from data_io.synthetic import generate_records, to_ecg_arrays
from models import build_model, load_preset, preset_names
from study.engine.metrics import Scoring
from study.engine.trainer import Split, train

SCORING = Scoring.from_dataset(load_dataset("cinc2017"))


@pytest.fixture(scope="module")
def synthetic_arrays():
    records = generate_records(n_records=8, seed=3, fs_hz=300.0)
    return resample_arrays(to_ecg_arrays(records), target_fs_hz=100.0, progress=False)


@pytest.mark.parametrize("preset", preset_names())
def test_preset_trains_one_epoch_and_produces_explanations(preset, synthetic_arrays):
    split = Split(synthetic_arrays, np.arange(len(synthetic_arrays)))
    fixed = getattr(build_model({**load_preset(preset), "n_classes": 4, "n_leads": 1}),
                    "fixed_input_samples", None)
    if fixed is not None:
        pytest.skip(f"reads {fixed}-sample beats only, not 10-s records (its forward, backward "
                    "and maps at that length: tests/models/test_model_forward.py)")
    samples = 1000
    config = {
        "model": load_preset(preset),
        "optim": {"batch_size": 4},
        "data": {"fs_hz": 100.0, "train_batching": "crop", "crop_s": samples / 100.0},
        "runtime": {"device": "cpu", "amp": True},
        "epochs": 1,
    }
    result = train(config=config, train_split=split, val_split=split, scoring=SCORING)
    assert result.status == "completed"
    assert np.isfinite(result.history[0]["train/loss"])
    x = torch.from_numpy(np.stack([synthetic_arrays.signal(i)[:samples] for i in range(2)]))
    x = x[:, None, :]  # (B, 1, T)
    lengths = torch.tensor([samples, 700])
    with torch.no_grad():
        maps = result.model.eval().explain(x, lengths=lengths)
    maps.pop("logits")
    assert maps, f"{preset} returned no explanation arrays"
    for name, array in maps.items():
        assert array.shape[0] == 2 and array.shape[-1] == samples, (name, tuple(array.shape))
        assert torch.isfinite(array).all(), name
