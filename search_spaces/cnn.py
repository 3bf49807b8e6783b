"""CNN space: which trunk depth and global pooling classify CinC 2017 best, and how much do
residual connections, the focal loss' gamma, the learning rate and the batch size matter?

The thesis' CNN questions: is a deeper trunk (4, 7, 15, 17 layers) better, and is global
max pooling (which localizes the decisive beat) better than average or log-sum-exp pooling?
"""

from __future__ import annotations

from typing import Any

from optuna.trial import BaseTrial

from search_spaces._common import (
    GLOBAL_POOLINGS,
    smoke_settings,
    suggest_cnn_trunk,
    suggest_focal_gamma,
    suggest_lr,
)

__all__ = ["SMOKE", "define"]

BATCH_SIZES: tuple[int, ...] = (8, 16, 32)

SMOKE = smoke_settings()


def define(trial: BaseTrial) -> dict[str, Any]:
    """Sample a CNN configuration; returns the fixed values that go with it."""
    _, trunk = suggest_cnn_trunk(trial)
    trial.suggest_categorical("model/pooling", GLOBAL_POOLINGS)
    trial.suggest_categorical("model/residual", (False, True))
    suggest_focal_gamma(trial)
    suggest_lr(trial)
    trial.suggest_categorical("optim/batch_size", BATCH_SIZES)
    return {"model/name": "cnn", **trunk}
