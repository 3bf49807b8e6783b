"""HADLN space: how deep a residual CNN branch, how wide a BiLSTM branch and how large an
attention layer the hybrid attention network needs, with the focal loss' gamma and the
learning rate tuned alongside.
"""

from __future__ import annotations

from typing import Any

from optuna.trial import BaseTrial

from search_spaces._common import METRIC, MODE, smoke_settings, suggest_focal_gamma, suggest_lr

__all__ = ["METRIC", "MODE", "SMOKE", "define"]

SMOKE = smoke_settings()


def define(trial: BaseTrial) -> dict[str, Any]:
    """Sample a HADLN configuration; returns the fixed values that go with it."""
    # Each residual block halves the time axis: 6 blocks leave ~70 steps of a 30 s crop.
    trial.suggest_int("model/residual_depth", 2, 6)
    trial.suggest_int("model/lstm_units", 8, 128, log=True)
    trial.suggest_int("model/attention_size", 16, 128, log=True)
    suggest_focal_gamma(trial)
    suggest_lr(trial)
    return {"model/name": "hadln"}
