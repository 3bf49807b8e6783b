"""The attention_gate family: gate validation, gate maps, aggregation."""

from __future__ import annotations

import pytest
import torch

from models import build_model

# Models take the data set's shape explicitly; these tests use a CinC-like one.
SHAPE = {"n_classes": 4, "n_leads": 1}

BASE = {**SHAPE, "name": "attention_gate", "channels": [8, 8, 16], "kernel_size": 9,
        "attention_size": 4}


@pytest.mark.parametrize("gate_layers", [[3], [0, 5], [-1]])
def test_gate_layer_outside_the_trunk_raises(gate_layers):
    with pytest.raises(ValueError, match=r"gate_layers .* < depth 3"):
        build_model({**BASE, "gate_layers": gate_layers})


def test_gate_layer_rules_use_the_preset_depth():
    with pytest.raises(ValueError, match="< depth 7"):
        build_model({**SHAPE, "name": "attention_gate", "depth": 7, "gate_layers": [7]})
    with pytest.raises(ValueError, match="repeats"):
        build_model({**BASE, "gate_layers": [1, 1]})


def test_softmax_gate_maps_are_distributions_over_valid_steps(make_batch):
    model = build_model({**BASE, "gate_layers": [1, 2]}).eval()
    x, lengths = make_batch([1001, 1600])
    with torch.no_grad():
        outputs = model.trunk(x, lengths)
        _, weights, _ = model._gated_paths(x, lengths)
        maps = model.explain(x, lengths)["gate_maps"]
    assert maps.shape == (2, 2, 1600)
    for layer, w in zip([1, 2], weights, strict=True):
        features, steps = outputs[layer]
        assert w.shape == (2, 1, features.shape[-1])
        torch.testing.assert_close(w.sum(-1), torch.ones(2, 1))
        assert (w[0, 0, steps[0] :] == 0).all()
    assert (maps >= 0).all()


def test_sigmoid_gates_and_mean_vote(make_batch):
    model = build_model(
        {
            **BASE,
            "gate_layers": [0, 2],
            "gate_normalization": "sigmoid",
            "aggregation": "mean_vote",
        }
    ).eval()
    x, lengths = make_batch([500, 640])
    with torch.no_grad():
        pooled, _, _ = model._gated_paths(x, lengths)
        logits = model(x, lengths)
        maps = model.explain(x, lengths)["gate_maps"]
    heads = model.classifier.heads
    torch.testing.assert_close(logits, (heads[0](pooled[0]) + heads[1](pooled[1])) / 2)
    assert ((maps >= 0) & (maps <= 1)).all()


def test_unknown_aggregation_lists_the_options():
    with pytest.raises(ValueError, match=r"\['concat', 'mean_vote'\]"):
        build_model({**BASE, "gate_layers": [1], "aggregation": "sum"})
