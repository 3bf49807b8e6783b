"""Training configurations: plain JSON dicts merged over `train_defaults.json`.

A configuration holds everything one trial needs besides its data: the model config (for
`models.build_model`), the loss, the optimiser, the data pipeline, the runtime and the budget.
Search spaces and presets give partial configurations; `resolve_config` fills in the rest and
rejects keys that do not exist, so a misspelled option fails instead of being ignored.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

OPEN_SECTIONS = frozenset({"model"})
"""Sections whose keys are not checked here (the model's constructor checks its own)."""


def default_config() -> dict[str, Any]:
    """A fresh copy of `study/train_defaults.json`."""
    return json.loads(resources.files("study").joinpath("train_defaults.json").read_text())


def merge_sections(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers over earlier ones, key by key at every depth (``{"optim": {"lr": ..}}``
    changes the rate and keeps the other optimiser options); a value that is not a dict on
    either side is replaced. Nothing is shared with the inputs.

    The one merge of partial configurations: a trial's sampled values, the data set's training
    settings, ``--smoke``'s, ``--set``'s and the budget (`study.spec.StudySpec.trial_config`).
    """
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
                merged[key] = merge_sections(merged[key], value)
            else:
                merged[key] = copy.deepcopy(dict(value) if isinstance(value, Mapping)
                                            else value)
    return merged


def resolve_config(partial: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``partial`` over the defaults, section by section.

    The ``model`` section replaces the default model wholesale (a model config is one unit).

    Raises:
        ValueError: a section or key that the defaults do not have.
    """
    merged = default_config()
    for key, value in partial.items():
        if key not in merged:
            raise ValueError(f"unknown configuration section {key!r}; known: {sorted(merged)}")
        if key in OPEN_SECTIONS or not isinstance(merged[key], dict):
            merged[key] = copy.deepcopy(value)
            continue
        if not isinstance(value, Mapping):
            raise ValueError(f"configuration section {key!r} must be an object, got {value!r}")
        unknown = sorted(set(value) - set(merged[key]))
        if unknown:
            raise ValueError(
                f"unknown option(s) {unknown} in section {key!r}; known: {sorted(merged[key])}"
            )
        merged[key].update(copy.deepcopy(dict(value)))
    return merged
