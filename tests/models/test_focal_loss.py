"""FocalLoss against values computed by hand and against torch's cross entropy."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from models import FocalLoss

# Logits that are log-probabilities give exactly these softmax probabilities.
PROBABILITIES = torch.tensor([[0.7, 0.2, 0.1], [0.25, 0.25, 0.5]])
LOGITS = PROBABILITIES.log()
TARGET = torch.tensor([0, 2])


def test_hand_computed_focal_loss():
    loss = FocalLoss(gamma=2.0, alpha=[1.0, 0.5, 3.0])(LOGITS, TARGET)
    first = -1.0 * (1 - 0.7) ** 2 * math.log(0.7)
    second = -3.0 * (1 - 0.5) ** 2 * math.log(0.5)
    assert loss.item() == pytest.approx((first + second) / (1.0 + 3.0), rel=1e-6)


def test_hand_computed_without_alpha():
    loss = FocalLoss(gamma=1.0, alpha=None)(LOGITS, TARGET)
    expected = (-(0.3) * math.log(0.7) - 0.5 * math.log(0.5)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("alpha", [None, [0.2, 1.0, 2.5, 0.7]])
def test_gamma_zero_is_weighted_cross_entropy(alpha):
    logits = torch.randn(16, 4)
    target = torch.randint(0, 4, (16,))
    weight = None if alpha is None else torch.tensor(alpha)
    expected = F.cross_entropy(logits, target, weight=weight)
    torch.testing.assert_close(FocalLoss(gamma=0.0, alpha=alpha)(logits, target), expected)


def test_focusing_down_weights_easy_samples_and_keeps_gradients_finite():
    logits = torch.tensor([[40.0, 0.0], [0.0, 0.3]], requires_grad=True)  # first: p rounds to 1
    target = torch.tensor([0, 1])
    focal = FocalLoss(gamma=2.0, alpha=None)(logits, target)
    assert focal.item() < F.cross_entropy(logits, target).item()
    focal.backward()
    assert torch.isfinite(logits.grad).all()


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="gamma"):
        FocalLoss(gamma=-1.0, alpha=None)
    with pytest.raises(ValueError, match="3 weights for 4 classes"):
        FocalLoss(gamma=1.0, alpha=[1.0, 1.0, 1.0])(torch.zeros(2, 4), torch.tensor([0, 1]))
    with pytest.raises(TypeError):
        FocalLoss(2.0)  # keyword-only
