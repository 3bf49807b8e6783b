"""Nesting flat ``section/key`` parameters as Ray Tune does, and dropping the space section."""

from __future__ import annotations

import pytest

from search_spaces import SPACE_SECTION, training_config, unflatten


def test_unflatten_nests_on_slashes():
    flat = {"model/name": "cnn", "model/depth": 7, "optim/lr": 1e-3, "epochs": 3, "a/b/c": 1}
    assert unflatten(flat) == {
        "model": {"name": "cnn", "depth": 7},
        "optim": {"lr": 1e-3},
        "epochs": 3,
        "a": {"b": {"c": 1}},
    }


def test_unflatten_copies_values():
    layers = [1, 2]
    nested = unflatten({"model/gate_layers": layers})
    nested["model"]["gate_layers"].append(3)
    assert layers == [1, 2]


@pytest.mark.parametrize(
    "flat",
    [
        {"model": "cnn", "model/depth": 7},
        {"model/depth": 7, "model": "cnn"},
        {"a/b": 1, "a/b/c": 2},
    ],
)
def test_a_key_cannot_be_both_a_value_and_a_section(flat):
    with pytest.raises(ValueError, match="both a value and a section"):
        unflatten(flat)


def test_training_config_drops_the_space_section():
    config = {"model": {"name": "cnn"}, SPACE_SECTION: {"n_gates": 2}, "epochs": 3}
    assert training_config(config) == {"model": {"name": "cnn"}, "epochs": 3}
    assert SPACE_SECTION in config
