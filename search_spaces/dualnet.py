"""ECG-DualNet space: how much does each encoder matter, and which size, variant, STFT
resolution, dropout, rate and augmentation strength classify CinC 2017 best?

Every trial trains the published model (``models/dualnet.py``) with the published training
values: RAdam, learning rate x 0.1 after a quarter, half and three quarters of the epochs,
batch 24, cross-entropy weighted 0.4 / 0.7 / 0.9 / 0.9 for N / O / A / ~, whole records
(``study/configs/dualnet_published.json``; the study's budget sets the epochs).
``model/encoders`` is the work's ablation as a parameter (both encoders, signal only,
spectrogram only), so the report's importance and marginal analyses answer "how much does the
spectrogram encoder matter" from one study. The size (S, M, L, XL) and the variant (DualNet:
LSTM signal encoder; "++": Transformer signal encoder and axial attention in stages 3-5)
select a published preset (``dualnet_<size>`` / ``dualnetpp_<size>``) through ``space/size``
and ``space/variant``. The STFT window is sampled in samples with the published hop rule
(half the window; published: 64 and 32). ``space/augment`` switches the published
augmentation pipeline on and ``data/augment/p`` is its strength, the probability of every
step (the work's ``p_aug``, published 0.2).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from optuna.trial import BaseTrial

from search_spaces._common import smoke_settings, suggest_lr

__all__ = ["PUBLISHED_TRAINING", "SMOKE", "define"]

ENCODERS: tuple[str, ...] = ("both", "signal", "spectrogram")
SIZES: tuple[str, ...] = ("s", "m", "l", "xl")
VARIANTS: tuple[str, ...] = ("plain", "plus")
# hop = window // 2, as published; 5 poolings need at least 32 frequency bins (window >= 62)
STFT_WINDOWS: tuple[int, ...] = (64, 96, 128)
DROPOUT_RANGE: tuple[float, float] = (0.0, 0.3)  # published 0.05
AUGMENT_P_RANGE: tuple[float, float] = (0.05, 0.5)  # published 0.2
AUGMENT_PIPELINE = "ecg_dualnet"  # stored in data_io/augment_pipelines.json

PUBLISHED_TRAINING = MappingProxyType({
    "loss/focal_gamma": 0.0,
    "loss/class_weights": {"N": 0.4, "O": 0.7, "A": 0.9, "~": 0.9},
    "optim/optimizer": "radam",
    "optim/lr_schedule": "multistep",
    "optim/lr_decay": 0.1,
    "optim/lr_milestones": [0.25, 0.5, 0.75],
    "optim/batch_size": 24,
    "optim/weight_decay": 0.0,
    "optim/warmup_epochs": 0,
    "optim/conv_lr_fan_in": 0,
    "optim/lr_depth": 0,
    "optim/pool_mean_fraction": 0,
    "data/normalization": "zscore",
    "data/train_batching": "bucket",
    "data/eval_batching": "bucket",
})
"""The published training values every trial keeps (flattened; the same as
``study/configs/dualnet_published.json`` less the rate, the epochs and the augmentation,
which the space samples or the study sets; a test keeps the two equal)."""

# Channel series per (variant, size): the presets dualnet_<size> and dualnetpp_<size>.
_PRESET_PREFIX = MappingProxyType({"plain": "dualnet", "plus": "dualnetpp"})

SMOKE = smoke_settings()


def define(trial: BaseTrial) -> dict[str, Any]:
    """Sample an ECG-DualNet configuration; returns the fixed values that go with it: the
    preset the sampled size and variant select, the STFT hop and the published training."""
    size = trial.suggest_categorical("space/size", SIZES)
    variant = trial.suggest_categorical("space/variant", VARIANTS)
    trial.suggest_categorical("model/encoders", ENCODERS)
    window = trial.suggest_categorical("model/stft_window", STFT_WINDOWS)
    trial.suggest_float("model/dropout", *DROPOUT_RANGE)
    augment = trial.suggest_categorical("space/augment", (False, True))
    fixed: dict[str, Any] = {
        "model/name": "dualnet",
        "model/preset": f"{_PRESET_PREFIX[variant]}_{size}",
        "model/stft_hop": window // 2,
        **PUBLISHED_TRAINING,
    }
    if augment:
        trial.suggest_float("data/augment/p", *AUGMENT_P_RANGE)
        fixed["data/augment/pipeline"] = AUGMENT_PIPELINE
    else:
        fixed["data/augment"] = None
    suggest_lr(trial)
    return fixed
