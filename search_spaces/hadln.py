"""HADLN space: how deep a residual CNN branch, how wide a full-resolution BiLSTM branch and
how large its attention layer the hybrid attention network needs, with the loss' class
weighting and focal gamma (the reproduction uses a weighted focal loss, gamma 2) and the
learning rate tuned alongside.
"""

from __future__ import annotations

from typing import Any

from optuna.trial import BaseTrial

from search_spaces._common import (
    smoke_settings,
    suggest_class_weights,
    suggest_focal_gamma,
    suggest_lr,
)

__all__ = ["SMOKE", "define"]

SMOKE = smoke_settings()


def define(trial: BaseTrial) -> dict[str, Any]:
    """Sample a HADLN configuration; returns the fixed values that go with it."""
    trial.suggest_int("model/residual_depth", 2, 6)
    trial.suggest_int("model/lstm_units", 8, 128, log=True)
    trial.suggest_int("model/attention_size", 16, 128, log=True)
    suggest_class_weights(trial)
    suggest_focal_gamma(trial)
    suggest_lr(trial)
    return {"model/name": "hadln"}
