"""Per-epoch learning-rate schedules, chosen by name in the config's ``optim`` section.

``exponential`` is the reference thesis' protocol (x ``lr_decay`` per epoch); ``multistep``
ECG-DualNet's (x ``lr_decay`` after each of ``lr_milestones``, fractions of the epochs: its
``MultiStepLR`` at epochs E // 4, 2E // 4 and 3E // 4 with factor 0.1). ``cosine``
anneals every parameter group to ``lr_final_ratio`` of its own rate at the last epoch, so the
final epoch (the one a study records) is trained at a small learning rate and its score
fluctuates less. ``plateau`` is the HADLN reproduction's: every rate x ``lr_plateau_factor``
once the validation loss has not improved for ``lr_plateau_patience`` epochs; it is the one
schedule stepped with a loss (`step_schedule`). ``constant`` keeps every rate (the
attention-segmenter paper's Adam at 1e-5 throughout).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # study.engine.config checks schedule names against LR_SCHEDULES
    from study.engine.config import Optim

Scheduler = torch.optim.lr_scheduler.LRScheduler


def exponential(optimizer: torch.optim.Optimizer, optim: Optim, epochs: int) -> Scheduler:
    return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=optim.lr_decay)


def cosine(optimizer: torch.optim.Optimizer, optim: Optim, epochs: int) -> Scheduler:
    # A factor on each group's own rate: torch's CosineAnnealingLR takes one absolute eta_min,
    # which would end a group of lower rate (a pre-trained trunk, a wide convolution) at a
    # larger fraction of its rate, or raise it if it starts below eta_min.
    final, steps = optim.lr_final_ratio, max(epochs, 1)

    def factor(epoch: int) -> float:
        return final + (1.0 - final) * (1.0 + math.cos(math.pi * min(epoch, steps) / steps)) / 2

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=factor)


def multistep(optimizer: torch.optim.Optimizer, optim: Optim, epochs: int) -> Scheduler:
    milestones = sorted({int(fraction * epochs) for fraction in optim.lr_milestones})
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones,
                                                gamma=optim.lr_decay)


def plateau(optimizer: torch.optim.Optimizer, optim: Optim, epochs: int) -> Scheduler:
    # torch's ReduceLROnPlateau, as the published code uses it (mode min, default threshold):
    # the rate drops after ``patience`` epochs in a row without a new best loss.
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=optim.lr_plateau_factor,
        patience=optim.lr_plateau_patience)


def constant(optimizer: torch.optim.Optimizer, optim: Optim, epochs: int) -> Scheduler:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=_unchanged)


def _unchanged(epoch: int) -> float:
    return 1.0


LR_SCHEDULES: dict[str, Callable[[torch.optim.Optimizer, Optim, int], Scheduler]] = {
    "exponential": exponential,
    "cosine": cosine,
    "multistep": multistep,
    "plateau": plateau,
    "constant": constant,
}


def build_schedule(optimizer: torch.optim.Optimizer, *, optim: Optim, epochs: int):
    """The scheduler named by ``optim.lr_schedule``.

    Raises:
        ValueError: an unknown schedule name (the message lists the known ones).
    """
    name = optim.lr_schedule
    if name not in LR_SCHEDULES:
        raise ValueError(f"unknown lr_schedule {name!r}; known: {sorted(LR_SCHEDULES)}")
    return LR_SCHEDULES[name](optimizer, optim, epochs)


def step_schedule(scheduler: Scheduler, *, loss: float) -> None:
    """Advance ``scheduler`` by one epoch; ``loss`` (the epoch's validation loss) is what a
    plateau schedule watches, the others ignore it."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(loss)
    else:
        scheduler.step()


def load_schedule_state(scheduler: Scheduler, state: dict[str, Any]) -> None:
    """Restore a checkpoint's scheduler state, including one saved when ``cosine`` was torch's
    CosineAnnealingLR: its base rates and epoch carry over, and the schedule goes on as
    ``cosine`` is now."""
    if isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR) and "lr_lambdas" not in state:
        state = {key: value for key, value in state.items() if key not in ("T_max", "eta_min")}
        state["lr_lambdas"] = [None] * len(scheduler.base_lrs)
    scheduler.load_state_dict(state)
