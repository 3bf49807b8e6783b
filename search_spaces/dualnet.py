"""ECG-DualNet space: how much does the spectrogram encoder matter, and which size, variant,
STFT resolution, fusion and augmentation strength classify CinC 2017 best?

``model/encoders`` is the work's ablation as a parameter (both encoders, signal only,
spectrogram only), so the report's importance and marginal analyses answer "how much does the
spectrogram encoder matter" from one study. The size (S, M, L, XL) and the variant (plain or
"++" with axial attention in the spectrogram encoder) select a preset's channels
(``models/presets.json``, ``dualnet_<size>`` / ``dualnetpp_<size>``) through ``space/size``
and ``space/variant``; the STFT window and hop are sampled in samples at the study's rate.
``space/augment`` switches the ECG-DualNet augmentation pipeline on (scaling, noise, random
resampling and time warping, shift, sine baseline, low-pass, sample dropout, cutout) and
``data/augment/p`` is its strength: the probability of every step (the work's ``p_aug``).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from optuna.trial import BaseTrial

from search_spaces._common import smoke_settings, suggest_focal_gamma, suggest_lr

__all__ = ["SMOKE", "define"]

ENCODERS: tuple[str, ...] = ("both", "signal", "spectrogram")
SIZES: tuple[str, ...] = ("s", "m", "l", "xl")
VARIANTS: tuple[str, ...] = ("plain", "plus")
STFT_WINDOWS: tuple[int, ...] = (32, 64, 128)
HOP_FRACTIONS: tuple[float, ...] = (0.125, 0.25, 0.5)  # hop = window * fraction
FUSION_HEADS: tuple[int, ...] = (1, 2, 4, 8)
DROPOUT_RANGE: tuple[float, float] = (0.0, 0.4)
AUGMENT_P_RANGE: tuple[float, float] = (0.05, 0.5)
AUGMENT_PIPELINE = "ecg_dualnet"  # stored in data_io/augment_pipelines.json

# Channel series per (variant, size): the presets dualnet_<size> and dualnetpp_<size>.
_PRESET_PREFIX = MappingProxyType({"plain": "dualnet", "plus": "dualnetpp"})

SMOKE = smoke_settings()


def define(trial: BaseTrial) -> dict[str, Any]:
    """Sample an ECG-DualNet configuration; returns the fixed values that go with it, among
    them the preset whose channels the sampled size and variant select."""
    size = trial.suggest_categorical("space/size", SIZES)
    variant = trial.suggest_categorical("space/variant", VARIANTS)
    trial.suggest_categorical("model/encoders", ENCODERS)
    window = trial.suggest_categorical("model/stft_window", STFT_WINDOWS)
    hop_fraction = trial.suggest_categorical("space/stft_hop_fraction", HOP_FRACTIONS)
    trial.suggest_categorical("model/fusion_heads", FUSION_HEADS)
    trial.suggest_float("model/dropout", *DROPOUT_RANGE)
    augment = trial.suggest_categorical("space/augment", (False, True))
    fixed: dict[str, Any] = {
        "model/name": "dualnet",
        "model/preset": f"{_PRESET_PREFIX[variant]}_{size}",
        "model/stft_hop": max(1, int(window * hop_fraction)),
    }
    if augment:
        trial.suggest_float("data/augment/p", *AUGMENT_P_RANGE)
        fixed["data/augment/pipeline"] = AUGMENT_PIPELINE
    else:
        fixed["data/augment"] = None
    suggest_focal_gamma(trial)
    suggest_lr(trial)
    return fixed
