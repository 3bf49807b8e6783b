"""Random samples of every search space, drawn once per test session."""

from __future__ import annotations

import copy
import functools
from typing import Any

import optuna
import pytest

from search_spaces import load_space, unflatten

N_TRIALS = 50


@functools.cache
def _samples(name: str) -> tuple[tuple[dict[str, Any], dict[str, Any]], ...]:
    space = load_space(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    samples = []
    for _ in range(N_TRIALS):
        trial = study.ask()
        fixed = space.define(trial)
        study.tell(trial, 0.0)
        # As Ray Tune's OptunaSearch does: sampled values, then the returned fixed values.
        samples.append((dict(trial.params), unflatten({**trial.params, **fixed})))
    return tuple(samples)


@pytest.fixture
def sampled():
    """``sampled(name)``: (params, nested config) of `N_TRIALS` random trials of a space."""
    return lambda name: copy.deepcopy(_samples(name))
