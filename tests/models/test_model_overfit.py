"""A small model of every family fits a tiny synthetic two-class batch (sines vs squares)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from models import build_model


def _sines_and_squares(n_per_class: int = 4, size: int = 256) -> tuple:
    t = torch.arange(size) / size
    signals, labels = [], []
    for i in range(n_per_class):
        frequency, phase = 3 + 2 * i, 0.7 * i
        wave = torch.sin(2 * math.pi * frequency * t + phase)
        signals += [wave, torch.sign(wave)]
        labels += [0, 1]
    return torch.stack(signals)[:, None, :], torch.tensor(labels)  # (8, 1, T), (8,)


def test_small_model_overfits_a_tiny_batch(family_config):
    torch.manual_seed(0)
    model = build_model({**family_config, "n_classes": 2})
    x, y = _sines_and_squares()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x).argmax(-1) == y).float().mean().item()
    assert accuracy == 1.0
