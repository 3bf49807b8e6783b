"""Parameter randomisation and deletion curves on a small CNN (no training needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models import build_model
from study.explain.explanation_checks import (
    deletion_curves,
    layer_groups,
    randomised,
    sanity_arrays,
)
from study.explain.explanation_methods import Batch, explain_batch, merge_settings

CONFIG = {"name": "cnn", "n_classes": 4, "n_leads": 1, "channels": [4, 8], "kernel_size": 5,
          "pooling": "gmp", "dropout_min": 0.0, "dropout_max": 0.0}
FS_HZ = 100.0


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_model(dict(CONFIG)).eval()


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(3, 1, 300, generator=generator)
    lengths = torch.tensor([300, 250, 200])
    x[1, :, 250:] = 0.0
    x[2, :, 200:] = 0.0
    return Batch(x=x, lengths=lengths, fs_hz=FS_HZ, normal_class=0)


def test_layers_come_from_the_output_down(model):
    names = [name for name, _ in layer_groups(model)]
    assert names == ["head", "trunk.blocks.1", "trunk.blocks.0"]


def test_randomised_changes_only_the_chosen_layers_and_not_the_original(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    head = dict(layer_groups(model))["head"]
    copy = randomised(model, head, seed=0)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key  # the original is untouched
    changed = {k for k, v in copy.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"head.weight", "head.bias"}
    again = randomised(model, head, seed=0)
    assert torch.equal(again.head.weight, copy.head.weight)  # seeded


def test_deleting_the_relevant_samples_first_drops_the_probability_faster(model, batch):
    # A map that ranks the samples by their effect on the predicted class' probability
    # (here: occlusion) must give a lower deletion AUC than its reverse.
    settings = merge_settings({"occlusion": {"window_s": 0.05, "stride_s": 0.01}})
    maps = explain_batch(model, batch, settings=settings, methods=("occlusion",))
    relevance = np.clip(maps["map/occlusion"][:, 0].astype(np.float64), 0, None)
    relevance[1, 250:] = relevance[2, 200:] = 0.0
    fractions = np.linspace(0, 1, 11)
    best = deletion_curves(model, batch, relevance, fractions=fractions)
    worst = deletion_curves(model, batch, relevance.max() - relevance, fractions=fractions)
    assert best.shape == (3, 11)
    np.testing.assert_allclose(best[:, 0], worst[:, 0])  # nothing blanked yet
    assert (best[:, 1:-1].mean(axis=1) < worst[:, 1:-1].mean(axis=1)).all()


def test_sanity_arrays_cover_every_scored_method_and_cam_depends_on_the_weights(model, batch):
    settings = merge_settings({"shift_perturbation": {"steps": 3},
                               "integrated_gradients": {"steps": 4, "max_steps": 4},
                               "occlusion": {"window_s": 0.2, "stride_s": 0.1}})
    arrays = explain_batch(model, batch, settings=settings)
    arrays.update(record_ids=np.array(["a", "b", "c"]), signal=batch.x.numpy(),
                  lengths=batch.lengths.numpy())
    out = sanity_arrays(model, batch, arrays, settings=settings, y_true=np.array([1, 2, 3]))
    assert out["randomisation_stages"].tolist() == ["head", "trunk.blocks.1", "trunk.blocks.0"]
    for method in ("cam", "occlusion", "integrated_gradients"):
        assert out[f"randomisation/{method}"].shape == (3, 3), method
        assert out[f"deletion/{method}"].shape == (3, len(out["deletion_fractions"])), method
    # A CAM is the head's weights times the features: a random head reorders it.
    assert np.nanmean(out["randomisation/cam"][:, 0]) < 0.9
    assert out["deletion_random"].shape == out["deletion/cam"].shape
