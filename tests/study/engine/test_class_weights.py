"""study.engine.class_weights: the loss' class-weight rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from study.engine.class_weights import complement_frequency, inverse_frequency


def test_class_weights_follow_inverse_frequency():
    weights = inverse_frequency(np.array([0, 0, 0, 1]), 3)
    assert weights[0] == pytest.approx(4 / 9) and weights[1] == pytest.approx(4 / 3)
    assert weights[2] == 0.0
    assert math.isclose(sum(w * c for w, c in zip(weights, (3, 1, 0), strict=True)), 4 * 2 / 3)


def test_complement_frequency_weights_are_one_minus_the_class_share():
    # the HADLN reproduction's weights: 1 - 72470/87553 for N, ... (hadln.ipynb, cell 11)
    weights = complement_frequency(np.array([0] * 8 + [1, 1]), 3)
    assert weights == pytest.approx([0.2, 0.8, 1.0])
