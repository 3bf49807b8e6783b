"""Attention-gate space: where in the CNN trunk should attention gates sit, how many, and
should their paths be concatenated for one classifier or vote with one classifier each?

Which layers may be gated depends on the sampled depth, so the gates are not sampled as layer
indices. Instead ``space/n_gates`` and one relative position per gate in [0, 1]
(``space/gate_position_0`` for the highest gate, then each next one lower) are sampled and
mapped to distinct layer indices below the depth by `gate_layers`. The positions keep one
meaning and one distribution at every depth (1 = as high as possible), so TPE pools what it
learns across depths and never has to reject a sample. They live in the ``space`` section,
which `search_spaces.training_config` drops; the model gets ``model/gate_layers``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from optuna.trial import BaseTrial

from search_spaces._common import (
    smoke_settings,
    suggest_cnn_trunk,
    suggest_focal_gamma,
    suggest_lr,
)

__all__ = ["SMOKE", "define", "gate_layers"]

MAX_GATES = 3
AGGREGATIONS: tuple[str, ...] = ("concat", "mean_vote")

SMOKE = smoke_settings()


def gate_layers(depth: int, positions: Sequence[float]) -> list[int]:
    """Distinct 0-based layer indices below ``depth`` for relative gate positions.

    The first position places the highest gate, each next one a gate below the previous,
    always leaving room for the gates still to come: gate k lies in
    ``[n - 1 - k, previous - 1]`` (``previous = depth`` for the first), and a position p in
    [0, 1] picks the ``floor(p * size)``-th layer of that range (1 picks its top).

    Returns:
        The layers in ascending order.

    Raises:
        ValueError: for more gates than layers or a position outside [0, 1].
    """
    n_gates = len(positions)
    if not 1 <= n_gates <= depth:
        raise ValueError(f"need 1 to {depth} gate positions for depth {depth}, got {n_gates}")
    layers: list[int] = []
    above = depth
    for k, position in enumerate(positions):
        if not 0.0 <= position <= 1.0:
            raise ValueError(f"gate positions must lie in [0, 1], got {position}")
        low = n_gates - 1 - k
        size = above - low  # layers low .. above - 1
        above = low + min(int(position * size), size - 1)
        layers.append(above)
    return sorted(layers)


def define(trial: BaseTrial) -> dict[str, Any]:
    """Sample an attention-gated CNN configuration; returns the fixed values that go with it,
    among them the gated layers derived from the sampled positions."""
    depth, trunk = suggest_cnn_trunk(trial)
    n_gates = trial.suggest_int("space/n_gates", 1, MAX_GATES)
    positions = [trial.suggest_float(f"space/gate_position_{k}", 0.0, 1.0) for k in range(n_gates)]
    trial.suggest_categorical("model/aggregation", AGGREGATIONS)
    suggest_focal_gamma(trial)
    suggest_lr(trial)
    return {
        "model/name": "attention_gate",
        **trunk,
        "model/gate_layers": gate_layers(depth, positions),
    }
