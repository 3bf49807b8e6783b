"""Fragments shared by the search spaces: the CNN trunk, the loss and the optimiser.

Every ``suggest_*`` function samples flattened training-config parameters on an Optuna trial
(a `optuna.trial.Trial`, a `optuna.trial.FixedTrial` or Ray Tune's wrapper around a trial) and
returns what the calling space needs to branch on; fixed values that go with the samples are
returned as flattened ``{"section/key": value}`` dicts for the space's ``define`` to return.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from optuna.trial import BaseTrial

CNN_DEPTHS: tuple[int, ...] = (4, 7, 15, 17)
"""Depths with a channel preset in ``models/cnn_channels.json``."""

# Average pooling after every layer would shrink a 17-layer trunk's input by 2**16, so the
# deep presets (models/presets.json) pool after every second layer.
_POOL_EVERY_BY_DEPTH = MappingProxyType({4: 1, 7: 1, 15: 2, 17: 2})

# Recurrent steps of a 30-s crop at 150 Hz (the default training crop) after the trunk of each
# depth: how far back a recurrent head's chrono initialisation (`models.layers.RecurrentHead`)
# starts able to remember.
CROP_STEPS_BY_DEPTH = MappingProxyType({4: 562, 7: 70, 15: 35, 17: 17})

GLOBAL_POOLINGS: tuple[str, ...] = ("gap", "gmp", "lse")
"""Global pooling over time in the CNN families: average, max, log-sum-exp."""

FOCAL_GAMMA_MAX = 3.0
FOCAL_GAMMA_STEP = 0.5  # a grid that holds gamma = 0 (plain cross-entropy) exactly

LR_RANGE: tuple[float, float] = (1e-4, 3e-3)

WITHOUT_OUR_AIDS = MappingProxyType({
    "optim/weight_decay": 0.0,
    "optim/warmup_epochs": 0,
    "optim/conv_lr_fan_in": 0,
    "optim/lr_depth": 0,
    "optim/pool_mean_fraction": 0,
})
"""Our training aids switched off, as a published model's training had none of them: no
weight decay, no warm-up, no per-layer rates by fan-in or depth, no mean start of global
pooling (flattened config values, for a space's ``PUBLISHED_TRAINING``)."""


def suggest_cnn_trunk(trial: BaseTrial) -> tuple[int, dict[str, Any]]:
    """Sample the CNN trunk depth (``model/depth``) shared by the cnn, convlstm and
    attention_gate families.

    Returns:
        The depth, and the fixed trunk values that go with it (the pooling interval of the
        thesis' presets for that depth).
    """
    depth = trial.suggest_categorical("model/depth", CNN_DEPTHS)
    return depth, {"model/pool_every": _POOL_EVERY_BY_DEPTH[depth]}


def suggest_focal_gamma(trial: BaseTrial) -> float:
    """Focal loss gamma (``loss/focal_gamma``) on a 0.5 grid over [0, 3]; 0 is cross-entropy."""
    return trial.suggest_float("loss/focal_gamma", 0.0, FOCAL_GAMMA_MAX, step=FOCAL_GAMMA_STEP)


CLASS_WEIGHTINGS: tuple[str | None, ...] = (
    None, "sqrt_inverse_frequency", "inverse_frequency", "complement_frequency")
"""Loss class weighting: none, or a rule of `study.engine.trainer.CLASS_WEIGHTS` (rare classes gain
weight; the square root less extremely; 1 - class share, the HADLN reproduction's, only
lightens a dominant class)."""


def suggest_class_weights(trial: BaseTrial) -> str | None:
    """Class weighting of the loss (``loss/class_weights``), one of `CLASS_WEIGHTINGS`."""
    return trial.suggest_categorical("loss/class_weights", CLASS_WEIGHTINGS)


def suggest_lr(trial: BaseTrial) -> float:
    """Adam learning rate (``optim/lr``), log-uniform over `LR_RANGE`."""
    return trial.suggest_float("optim/lr", *LR_RANGE, log=True)


def smoke_settings() -> dict[str, Any]:
    """A fresh partial training config that makes a trial tiny: short crops at a low rate.

    100 Hz is the lowest rate `data_io.synthetic` renders; small batches keep a few synthetic
    records enough for several steps. Meant to be merged over a sampled config, section by
    section, so it wins over sampled values (e.g. ``optim/batch_size``).
    """
    return {
        "data": {"fs_hz": 100.0, "crop_s": 10.0},
        "optim": {"batch_size": 8},
        "epochs": 1,
    }
