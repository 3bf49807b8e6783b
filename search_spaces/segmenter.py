"""Segmenter space: does a U-Net that learns where to look (from record labels only) help
the classifier behind it, and which attention pooling and window make it work?

The questions: the variant (``joint``: the classifier sees the attended signal;
``cascaded``: it sees the attention alone; ``classifier_only``: no segmenter, the baseline),
the window pooling that turns the U-Net's map into attention (L2 norm or ReLU + max), its
window in samples at the data's rate (about half a beat, 45-60 samples at 150 Hz, lies inside
the 15-300 range), and the U-Net's depth and width. The segmenter's parameters exist only in
the variants that have one.
"""

from __future__ import annotations

from typing import Any

from optuna.trial import BaseTrial

from search_spaces._common import smoke_settings, suggest_focal_gamma, suggest_lr

__all__ = ["SMOKE", "define"]

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
    suggest_lr(trial)
    return {"model/name": "segmenter"}
