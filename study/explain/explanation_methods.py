"""The explanation methods a study (and `study.explain_benchmark`) computes, by name.

Each method turns a batch into npz-ready arrays under its own keys: the model family's own
maps (``map/<key>``: CAM, gates, attention, decision over time), occlusion and integrated
gradients (Captum, ``map/occlusion``, ``map/integrated_gradients``) and the shift
perturbation towards Normal (``shift/*``). Their settings (window, stride, steps, knot
spacing) are data: `explanation_settings.json`, in seconds where they are durations, so
one setting serves every sampling rate. `reports.explanation_scores.SCORED_METHODS` says
how each key becomes a scored map.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from models import explain_by_perturbation

Settings = Mapping[str, Any]


@dataclass(frozen=True)
class Batch:
    """A batch to explain: x (B, leads, T) zero-padded past lengths (B,), at ``fs_hz``."""

    x: Tensor
    lengths: Tensor
    fs_hz: float
    normal_class: int | None


Method = Callable[[nn.Module, Batch, Settings], dict[str, np.ndarray]]


def _read_settings(name: str) -> dict[str, Any]:
    # a settings file of this package, without its "_comment"-style keys
    text = resources.files("study").joinpath(name).read_text("utf-8")
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def load_settings() -> dict[str, Any]:
    """A fresh copy of the default settings (`explanation_settings.json`)."""
    return _read_settings("explanation_settings.json")


def smoke_overrides() -> dict[str, Any]:
    """Cheaper settings for a ``--smoke`` study (`explanation_smoke.json`), to pass to
    `merge_settings`: enough to run every method, not to read the maps."""
    return _read_settings("explanation_smoke.json")


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


def _samples(seconds: float, fs_hz: float) -> int:
    return max(1, round(seconds * fs_hz))


def _numpy(maps: Mapping[str, Tensor], prefix: str) -> dict[str, np.ndarray]:
    return {f"{prefix}/{k}": v.detach().cpu().numpy() for k, v in maps.items()}


def family_maps(model: nn.Module, batch: Batch, settings: Settings) -> dict[str, np.ndarray]:
    """The family's own maps (`model.explain`), logits left out."""
    del settings
    with torch.no_grad():
        maps = model.explain(batch.x, lengths=batch.lengths)
    return {f"map/{k}": v.detach().float().cpu().numpy() for k, v in maps.items()
            if k != "logits"}


def occlusion_maps(model: nn.Module, batch: Batch, settings: Settings) -> dict[str, np.ndarray]:
    """Occlusion of the predicted class (`models.perturbation.occlusion`)."""
    maps = explain_by_perturbation(
        "occlusion", model, batch.x, lengths=batch.lengths,
        window_samples=_samples(settings["window_s"], batch.fs_hz),
        stride_samples=_samples(settings["stride_s"], batch.fs_hz),
        baseline=settings["baseline"],
    )
    return {k: v.astype(np.float32) for k, v in _numpy(maps, "map").items()}


def integrated_gradient_maps(model: nn.Module, batch: Batch,
                             settings: Settings) -> dict[str, np.ndarray]:
    """Integrated gradients of the predicted class' logit from a zero signal."""
    maps = explain_by_perturbation("integrated_gradients", model, batch.x,
                                   lengths=batch.lengths, steps=settings["steps"])
    return {k: v.astype(np.float32) for k, v in _numpy(maps, "map").items()}


def shift_maps(model: nn.Module, batch: Batch, settings: Settings) -> dict[str, np.ndarray]:
    """The thesis' shift perturbation towards Normal, for the records not predicted Normal
    (what must move for the record to look normal); other rows are zero with NaN
    probabilities and ``target_reached`` False. Nothing when the data set has no normal
    class."""
    if batch.normal_class is None:
        return {}
    x, lengths = batch.x, batch.lengths
    with torch.no_grad():
        predicted = model(x, lengths).argmax(dim=1)
    rows = torch.nonzero(predicted != batch.normal_class).flatten()
    size, n = x.shape[-1], x.shape[0]
    out = {
        "shift/mask": np.zeros((n, 1, size), np.float32),
        "shift/deformation": np.zeros((n, 1, size), np.float32),
        "shift/shifted_signal": x.cpu().numpy().astype(np.float32),
        "shift/target_probability_before": np.full(n, np.nan, np.float32),
        "shift/target_probability_after": np.full(n, np.nan, np.float32),
        "shift/target_reached": np.zeros(n, bool),
        "shift/target_class": np.full(n, batch.normal_class, np.int64),
    }
    if len(rows) == 0:
        return out
    shift = explain_by_perturbation(
        "shift_perturbation", model, x[rows], lengths=lengths[rows],
        target_class=batch.normal_class,
        grid_factor=_samples(settings["knot_spacing_s"], batch.fs_hz),
        l1_weight=settings["l1_weight"], tv_weight=settings["tv_weight"],
        steps=settings["steps"], lr=settings["lr"],
    )
    for key, value in shift.items():
        out[f"shift/{key}"][rows.cpu().numpy()] = value.detach().cpu().numpy()
    return out


METHODS: Mapping[str, Method] = MappingProxyType({
    "family": family_maps,
    "occlusion": occlusion_maps,
    "integrated_gradients": integrated_gradient_maps,
    "shift_perturbation": shift_maps,
})
"""Explanation methods by settings name; each returns npz arrays under its own keys."""

PRODUCED_BY: Mapping[str, str] = MappingProxyType({
    "occlusion": "occlusion",
    "integrated_gradients": "integrated_gradients",
    "shift_mask": "shift_perturbation",
})
"""Scored method (`reports.explanation_scores.SCORED_METHODS`) -> the method computing it;
scored methods not listed come from the family's own maps."""


def producer(scored_method: str) -> str:
    """The name in `METHODS` that computes ``scored_method``'s map."""
    return PRODUCED_BY.get(scored_method, "family")


def explain_batch(model: nn.Module, batch: Batch, *, settings: Settings,
                  methods: tuple[str, ...] | None = None,
                  on_method: Callable[[str], None] | None = None) -> dict[str, np.ndarray]:
    """Every method of ``methods`` (default: all of `METHODS`) on one batch, merged.

    Raises:
        ValueError: an unknown method name.
    """
    names = tuple(METHODS) if methods is None else methods
    unknown = sorted(set(names) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown explanation methods {unknown}; known: {sorted(METHODS)}")
    arrays: dict[str, np.ndarray] = {}
    for name in names:
        arrays.update(METHODS[name](model, batch, settings[name]))
        if on_method:
            on_method(name)
    return arrays
