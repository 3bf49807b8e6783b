"""Segmenter space: does a U-Net that learns where to look (from record labels only) help
the classifier behind it, and which attention pooling and window make it work?

The questions: the variant (``joint``: the classifier sees the attended signal;
``cascaded``: it sees the attention alone; ``classifier_only``: no segmenter, the baseline),
the window pooling that turns the U-Net's map into attention (L2 norm or ReLU + max), its
window in samples at the data's rate (about half a beat, 45-60 samples at 150 Hz, lies inside
the 15-300 range), and the U-Net's depth and width. The segmenter's parameters exist only in
the variants that have one. The loss' focal gamma (0: the published class-weighted NLL) and
the learning rate (the published 1e-5 lies in the range) are tuned alongside.

Every trial trains as published unless sampled (`PUBLISHED_TRAINING`: Adam at a constant
rate, batch 16, inverse-frequency class weights, each lead divided by its range; no warm-up
or per-layer rates); ``--max-epochs 120`` is the published budget.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from optuna.trial import BaseTrial

from search_spaces._common import WITHOUT_OUR_AIDS, smoke_settings, suggest_focal_gamma

__all__ = ["PUBLISHED_TRAINING", "SMOKE", "define"]

PUBLISHED_TRAINING = MappingProxyType({
    "optim/lr": 1e-5,
    "optim/batch_size": 16,
    "optim/lr_schedule": "constant",
    **WITHOUT_OUR_AIDS,
    "loss/focal_gamma": 0.0,
    "loss/class_weights": "inverse_frequency",
    "data/normalization": "range",
})
"""The paper's training as flattened config values (docs/fidelity.md gives each one's
source); a preset study of the family trains with all of them, a search with those it does
not sample."""

SAMPLED_TRAINING = frozenset({"loss/focal_gamma", "optim/lr"})
LR_RANGE: tuple[float, float] = (3e-6, 3e-3)  # holds the published 1e-5

VARIANTS: tuple[str, ...] = ("joint", "classifier_only", "cascaded")
VARIANTS_WITH_SEGMENTER = frozenset({"joint", "cascaded"})
WINDOW_POOLINGS: tuple[str, ...] = ("l2", "relu_max")
POOL_KERNEL_RANGE: tuple[int, int] = (15, 300)  # samples: 0.1-2 s at 150 Hz

SMOKE = smoke_settings()


def define(trial: BaseTrial) -> dict[str, Any]:
    """Sample a segmenter configuration; returns the fixed values that go with it."""
    variant = trial.suggest_categorical("model/variant", VARIANTS)
    if variant in VARIANTS_WITH_SEGMENTER:
        trial.suggest_categorical("model/window_pooling", WINDOW_POOLINGS)
        trial.suggest_int("model/pool_kernel", *POOL_KERNEL_RANGE, log=True)
        trial.suggest_int("model/unet_depth", 2, 5)
        trial.suggest_int("model/unet_width", 4, 16, log=True)
    suggest_focal_gamma(trial)
    trial.suggest_float("optim/lr", *LR_RANGE, log=True)
    unsampled = {k: v for k, v in PUBLISHED_TRAINING.items() if k not in SAMPLED_TRAINING}
    return {"model/name": "segmenter", **unsampled}
