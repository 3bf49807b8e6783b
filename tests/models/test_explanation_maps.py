"""The explanation methods' computations: integrated gradients refine their quadrature until
complete."""

from __future__ import annotations

import numpy as np
import torch

from models.explanation_maps import Batch, integrated_gradient_maps


class WavyModel(torch.nn.Module):
    """Class 0's logit is sum(sin(3 x)): its path integral needs many quadrature points."""

    def forward(self, x, lengths=None):
        wavy = torch.sin(3.0 * x).sum(dim=(1, 2))
        return torch.stack([wavy + 100.0, torch.zeros_like(wavy)], dim=-1)


def _batch():
    x = torch.linspace(0.5, 2.0, 200, dtype=torch.float64).reshape(2, 1, 100)
    return Batch(x=x, lengths=torch.tensor([100, 100]), fs_hz=100.0, normal_class=None)


def test_integrated_gradients_double_their_points_until_complete():
    found = integrated_gradient_maps(WavyModel(), _batch(),
                                     {"steps": 2, "max_steps": 64, "tolerance": 0.01})
    assert (found["integrated_gradients/steps"] > 2).all()
    assert (found["integrated_gradients/completeness_gap"] <= 0.01).all()
    total = found["map/integrated_gradients"].sum(axis=(1, 2))
    x = _batch().x
    expected = torch.sin(3.0 * x).sum(dim=(1, 2)).numpy()  # logit(x) - logit(0)
    np.testing.assert_allclose(total, expected, rtol=0.01)


def test_integrated_gradients_stop_at_their_most_points_and_say_how_far_off():
    found = integrated_gradient_maps(WavyModel(), _batch(),
                                     {"steps": 2, "max_steps": 2, "tolerance": 0.01})
    assert (found["integrated_gradients/steps"] == 2).all()
    assert found["integrated_gradients/completeness_gap"].max() > 0.01
