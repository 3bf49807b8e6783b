"""HADLN space: around the published HADLN (the reproduction's model and training are the
defaults), how wide a BiLSTM, how many residual blocks per stage and how much dropout the
hybrid attention network needs, with the loss' class weighting and focal gamma (the
reproduction: weights 1 - class share, gamma 2) and the learning rate tuned alongside.

Every trial trains as published unless sampled (`PUBLISHED_TRAINING`: Adam at batch 32, the
rate halved after a 5-epoch plateau of the validation loss, no warm-up, a data-set-wide
z-score fitted on the training split); ``--max-epochs 50`` is the published budget. The model
reads 187-sample beats (mitdb-beats); for 30-s records (cinc2017) add
``--set model/readout='"mean"' --set model/lstm_stride=16``.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from optuna.trial import BaseTrial

from search_spaces._common import (
    WITHOUT_OUR_AIDS,
    smoke_settings,
    suggest_class_weights,
    suggest_focal_gamma,
    suggest_lr,
)

__all__ = ["PUBLISHED_TRAINING", "SMOKE", "define"]

PUBLISHED_TRAINING = MappingProxyType({
    "optim/lr": 1e-3,
    "optim/batch_size": 32,
    "optim/lr_schedule": "plateau",
    "optim/lr_plateau_factor": 0.5,
    "optim/lr_plateau_patience": 5,
    **WITHOUT_OUR_AIDS,
    "loss/focal_gamma": 2.0,
    "loss/class_weights": "complement_frequency",
    "data/normalization": "train_zscore",
})
"""The reproduction's training as flattened config values (docs/fidelity.md gives each one's
source); a preset study of the family trains with all of them, a search with those it does
not sample."""

LSTM_UNITS_RANGE: tuple[int, int] = (16, 256)  # published 172
BLOCKS_PER_STAGE_RANGE: tuple[int, int] = (1, 4)  # published 4
DROPOUT_RANGE: tuple[float, float] = (0.0, 0.5)  # published 0.3
SAMPLED_TRAINING = frozenset({"loss/class_weights", "loss/focal_gamma", "optim/lr"})

SMOKE = smoke_settings()


def define(trial: BaseTrial) -> dict[str, Any]:
    """Sample a HADLN configuration; returns the published values it does not sample."""
    trial.suggest_int("model/lstm_units", *LSTM_UNITS_RANGE, log=True)
    trial.suggest_int("model/blocks_per_stage", *BLOCKS_PER_STAGE_RANGE)
    trial.suggest_float("model/dropout", *DROPOUT_RANGE)
    suggest_class_weights(trial)
    suggest_focal_gamma(trial)
    suggest_lr(trial)
    unsampled = {k: v for k, v in PUBLISHED_TRAINING.items() if k not in SAMPLED_TRAINING}
    return {"model/name": "hadln", **unsampled}
