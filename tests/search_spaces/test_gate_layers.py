"""Relative gate positions -> distinct gated layers below the CNN depth."""

from __future__ import annotations

import itertools

import pytest

from search_spaces._common import CNN_DEPTHS
from search_spaces.attention_gate import MAX_GATES, gate_layers

GRID = (0.0, 0.1, 0.33, 0.5, 0.7, 0.999, 1.0)


@pytest.mark.parametrize("depth", CNN_DEPTHS)
@pytest.mark.parametrize("n_gates", range(1, MAX_GATES + 1))
def test_every_position_gives_distinct_layers_below_the_depth(depth, n_gates):
    for positions in itertools.product(GRID, repeat=n_gates):
        layers = gate_layers(depth, positions)
        assert len(set(layers)) == n_gates, positions
        assert all(0 <= layer < depth for layer in layers), positions
        assert layers == sorted(layers)


@pytest.mark.parametrize("depth", CNN_DEPTHS)
def test_extremes_are_the_top_and_bottom_layers(depth):
    assert gate_layers(depth, [1.0]) == [depth - 1]
    assert gate_layers(depth, [0.0]) == [0]
    assert gate_layers(depth, [1.0, 1.0, 1.0]) == [depth - 3, depth - 2, depth - 1]
    assert gate_layers(depth, [0.0, 0.0, 0.0]) == [0, 1, 2]
    assert gate_layers(depth, [1.0, 0.0]) == [0, depth - 1]


@pytest.mark.parametrize("depth", CNN_DEPTHS)
def test_one_gate_reaches_every_layer_equally(depth):
    # Uniform positions: each layer gets the same share of [0, 1].
    counts = [0] * depth
    n = 1000 * depth
    for i in range(n):
        counts[gate_layers(depth, [(i + 0.5) / n])[0]] += 1
    assert counts == [1000] * depth


def test_worked_example():
    # depth 4, three gates: the first lies in [2, 3], the second below it, the third lowest.
    assert gate_layers(4, [0.5, 0.5, 0.5]) == [1, 2, 3]
    assert gate_layers(4, [0.0, 1.0, 1.0]) == [0, 1, 2]


@pytest.mark.parametrize(
    ("depth", "positions"), [(4, []), (2, [0.5, 0.5, 0.5]), (7, [1.5]), (7, [0.5, -0.1])]
)
def test_bad_positions_raise(depth, positions):
    with pytest.raises(ValueError):
        gate_layers(depth, positions)
