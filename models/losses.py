"""Classification losses for imbalanced classes: the focal loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017) with per-class weights.

    Per sample, ``l_i = -alpha[y_i] * (1 - p_i) ** gamma * log(p_i)`` with ``p_i`` the softmax
    probability of the true class ``y_i``. The mean is normalized like torch's weighted cross
    entropy: ``sum_i l_i / sum_i alpha[y_i]``, so with ``gamma = 0`` the loss equals
    ``F.cross_entropy(logits, target, weight=alpha)`` exactly (plain cross entropy when
    ``alpha`` is None).

    Args:
        gamma: focusing parameter (>= 0); 0 is cross entropy.
        alpha: one weight per class, or None for equal weights.
    """

    def __init__(self, *, gamma: float = 2.0, alpha: Sequence[float] | None = None) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)
        self.alpha: Tensor | None
        self.register_buffer(
            "alpha", None if alpha is None else torch.tensor(alpha, dtype=torch.float32)
        )

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Logits (B, K) and class indices (B,) -> scalar loss."""
        if self.alpha is not None and self.alpha.shape[0] != logits.shape[-1]:
            raise ValueError(
                f"alpha has {self.alpha.shape[0]} weights for {logits.shape[-1]} classes"
            )
        log_p = F.log_softmax(logits, dim=-1).gather(1, target[:, None]).squeeze(1)  # (B,)
        # Clamped away from 0 so that (1 - p) ** gamma has a finite gradient when p rounds to 1.
        modulation = (1 - log_p.exp()).clamp(min=1e-12).pow(self.gamma)
        weight = (
            torch.ones_like(log_p) if self.alpha is None else self.alpha.to(log_p.dtype)[target]
        )
        return -(weight * modulation * log_p).sum() / weight.sum()

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}"
