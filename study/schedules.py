"""Per-epoch learning-rate schedules, chosen by name in the config's ``optim`` section.

``exponential`` is the reference thesis' protocol (x ``lr_decay`` per epoch). ``cosine``
anneals to ``lr * lr_final_ratio`` at the last epoch, so the final epoch (the one a study
records) is trained at a small learning rate and its score fluctuates less.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

Scheduler = torch.optim.lr_scheduler.LRScheduler


def exponential(optimizer: torch.optim.Optimizer, optim: dict[str, Any], epochs: int) -> Scheduler:
    return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=optim["lr_decay"])


def cosine(optimizer: torch.optim.Optimizer, optim: dict[str, Any], epochs: int) -> Scheduler:
    # eta_min is absolute in torch; parameter groups with scaled rates keep their ratio only
    # approximately near the end, which is acceptable for a final-ratio of a few percent.
    return torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(epochs, 1), eta_min=optim["lr"] * optim["lr_final_ratio"]
    )


LR_SCHEDULES: dict[str, Callable[[torch.optim.Optimizer, dict[str, Any], int], Scheduler]] = {
    "exponential": exponential,
    "cosine": cosine,
}


def build_schedule(optimizer: torch.optim.Optimizer, *, optim: dict[str, Any], epochs: int):
    """The scheduler named by ``optim["lr_schedule"]``.

    Raises:
        ValueError: an unknown schedule name (the message lists the known ones).
    """
    name = optim["lr_schedule"]
    if name not in LR_SCHEDULES:
        raise ValueError(f"unknown lr_schedule {name!r}; known: {sorted(LR_SCHEDULES)}")
    return LR_SCHEDULES[name](optimizer, optim, epochs)
