"""ConvLSTM space: does a recurrent head on the CNN trunk beat global pooling, and which head?

The thesis' ConvLSTM questions: LSTM or GRU, how many layers and units (2 to 256 per
direction), one or two directions, which readout (the last state, the centre step, or the
last state next to a global pooling of the CNN features), and whether pre-training the CNN
trunk with a max-pooling head first (then training it on at a scaled learning rate) helps.
An LSTM head starts from chrono initialisation over a training crop's steps, as the presets.
"""

from __future__ import annotations

from typing import Any

from optuna.trial import BaseTrial

from search_spaces._common import (
    CROP_STEPS_BY_DEPTH,
    GLOBAL_POOLINGS,
    smoke_settings,
    suggest_cnn_trunk,
    suggest_focal_gamma,
    suggest_lr,
)

__all__ = ["SMOKE", "define"]

CELLS: tuple[str, ...] = ("lstm", "gru")
CHRONO_CELL = "lstm"  # the cell whose gate biases start from chrono initialisation
READOUTS: tuple[str, ...] = ("last", "centre", "last_plus_pool")
POOLED_READOUT = "last_plus_pool"  # the only readout that uses ``model/pooling``
PRETRAIN_EPOCHS: tuple[int, ...] = (0, 2)  # 0: no CNN pre-training
CNN_LR_SCALE_RANGE: tuple[float, float] = (0.01, 1.0)

SMOKE = smoke_settings()


def define(trial: BaseTrial) -> dict[str, Any]:
    """Sample a ConvLSTM configuration; returns the fixed values that go with it."""
    depth, trunk = suggest_cnn_trunk(trial)
    cell = trial.suggest_categorical("model/cell", CELLS)
    trial.suggest_int("model/n_rnn_layers", 1, 3)
    trial.suggest_int("model/hidden_units", 2, 256, log=True)
    trial.suggest_categorical("model/bidirectional", (False, True))
    readout = trial.suggest_categorical("model/readout", READOUTS)
    if readout == POOLED_READOUT:
        trial.suggest_categorical("model/pooling", GLOBAL_POOLINGS)
    pretrain_epochs = trial.suggest_categorical("pretrain_epochs", PRETRAIN_EPOCHS)
    if pretrain_epochs > 0:
        trial.suggest_float("optim/cnn_lr_scale", *CNN_LR_SCALE_RANGE, log=True)
    suggest_focal_gamma(trial)
    suggest_lr(trial)
    fixed = {"model/name": "convlstm", **trunk}
    if cell == CHRONO_CELL:
        fixed["model/chrono_steps"] = CROP_STEPS_BY_DEPTH[depth]
    return fixed
