"""The explanation methods a study (and `study.explain_benchmark`) computes, from their specs.

Each method is a spec (`study.explanation_specs`: ``study/explanation_methods/<name>.json``)
naming its computation (``"module:function"``, e.g. in `models.explanation_maps`), its
settings and its ``--smoke`` overrides. This module merges the settings and runs the
computations on a batch; `reports` reads the same specs to score and draw the maps.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from torch import nn

from models.explanation_maps import Batch
from study.explanation_specs import MethodSpec, SpecError, method_specs

Method = Callable[[nn.Module, Batch, Mapping[str, Any]], dict[str, np.ndarray]]


def method_names() -> tuple[str, ...]:
    """Every method of the specs, in gallery order."""
    return tuple(method_specs())


def load_settings() -> dict[str, Any]:
    """A fresh copy of every method's default settings, by method."""
    return {name: copy.deepcopy(dict(spec.settings)) for name, spec in method_specs().items()}


def smoke_overrides() -> dict[str, Any]:
    """Cheaper settings for a ``--smoke`` study (each spec's ``smoke``), to pass to
    `merge_settings`: enough to run every method, not to read the maps."""
    return {name: dict(spec.smoke) for name, spec in method_specs().items() if spec.smoke}


def study_settings(*, smoke: bool) -> dict[str, Any]:
    """The settings a study explains its trials with: the defaults, or with ``--smoke`` the
    defaults under `smoke_overrides`."""
    return merge_settings(smoke_overrides() if smoke else None)


def merge_settings(overrides: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any]:
    """The defaults with ``overrides`` merged per method.

    Raises:
        ValueError: an unknown method or option (the message lists the known ones).
    """
    settings = load_settings()
    for method, values in (overrides or {}).items():
        if method not in settings:
            raise ValueError(f"unknown explanation method {method!r} in the settings; known: "
                             f"{sorted(settings)}")
        unknown = sorted(set(values) - set(settings[method]))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} of {method!r}; known: "
                             f"{sorted(settings[method])}")
        settings[method].update(copy.deepcopy(dict(values)))
    return settings


def computation(spec: MethodSpec) -> Method:
    """The function ``spec.compute`` names.

    Raises:
        SpecError: the module or function cannot be found (the message names the spec file).
    """
    module_name, _, function = spec.compute.partition(":")
    try:
        return getattr(importlib.import_module(module_name), function)
    except (ImportError, AttributeError) as exc:
        raise SpecError(f"{spec.path}: cannot load compute {spec.compute!r}: {exc}") from exc


def explain_batch(model: nn.Module, batch: Batch, *, settings: Mapping[str, Any],
                  methods: tuple[str, ...] | None = None,
                  on_method: Callable[[str], None] | None = None) -> dict[str, np.ndarray]:
    """Every method of ``methods`` (default: all of the specs) on one batch, merged.

    Raises:
        ValueError: an unknown method name.
    """
    specs = method_specs()
    names = tuple(specs) if methods is None else methods
    unknown = sorted(set(names) - set(specs))
    if unknown:
        raise ValueError(f"unknown explanation methods {unknown}; known: {sorted(specs)}")
    arrays: dict[str, np.ndarray] = {}
    for name in names:
        arrays.update(computation(specs[name])(model, batch, settings[name]))
        if on_method:
            on_method(name)
    return arrays
