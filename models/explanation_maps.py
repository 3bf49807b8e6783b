"""The explanation methods' computations, as the method specs name them
(``study/explanation_methods/*.json``: ``"compute": "models.explanation_maps:<function>"``).

Each function is ``function(model, batch, settings) -> {npz key: array}``: it turns a `Batch`
into arrays under its method's keys, with the method's settings (durations in seconds,
converted to samples at the batch's rate, so one setting serves every sampling rate).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from models.perturbation import explain_by_perturbation

Settings = Mapping[str, Any]


@dataclass(frozen=True)
class Batch:
    """A batch to explain: x (B, leads, T) zero-padded past lengths (B,), at ``fs_hz``;
    ``normal_class``: the data set's normal class (None: it has none)."""

    x: Tensor
    lengths: Tensor
    fs_hz: float
    normal_class: int | None


def _samples(seconds: float, fs_hz: float) -> int:
    return max(1, round(seconds * fs_hz))


def _numpy(maps: Mapping[str, Tensor], prefix: str) -> dict[str, np.ndarray]:
    return {f"{prefix}/{k}": v.detach().float().cpu().numpy() for k, v in maps.items()}


def family_maps(model: nn.Module, batch: Batch, settings: Settings) -> dict[str, np.ndarray]:
    """The family's own maps (`model.explain`), logits left out."""
    del settings
    with torch.no_grad():
        maps = model.explain(batch.x, lengths=batch.lengths)
    return _numpy({k: v for k, v in maps.items() if k != "logits"}, "map")


def occlusion_maps(model: nn.Module, batch: Batch, settings: Settings) -> dict[str, np.ndarray]:
    """Occlusion of the predicted class (`models.perturbation.occlusion`)."""
    maps = explain_by_perturbation(
        "occlusion", model, batch.x, lengths=batch.lengths,
        window_samples=_samples(settings["window_s"], batch.fs_hz),
        stride_samples=_samples(settings["stride_s"], batch.fs_hz),
        baseline=settings["baseline"], output=settings["output"],
    )
    return _numpy(maps, "map")


def integrated_gradient_maps(model: nn.Module, batch: Batch,
                             settings: Settings) -> dict[str, np.ndarray]:
    """Integrated gradients of the predicted class' logit from a zero signal
    (`models.perturbation.integrated_gradients`), with as many quadrature points as the
    batch needs: ``steps`` first, doubled while the completeness gap of the records'
    90th percentile exceeds ``tolerance``, up to ``max_steps``. The gap is
    |sum of the attributions - (logit(x) - logit(0))| / |logit(x) - logit(0)|: a deep
    CNN converges at 16 points, a ConvLSTM needs about 64 (docs/explanations.md). Each row
    records its points and its gap."""
    x, lengths = batch.x, batch.lengths
    with torch.no_grad():
        target = model(x, lengths).argmax(dim=1)
        # the path's ends as the attribution sees them: each record cropped to its length
        change = torch.stack([
            (model(x[b:b + 1, :, :n], None) - model(torch.zeros_like(x[b:b + 1, :, :n]), None))[
                0, target[b]]
            for b, n in enumerate(lengths.tolist())])  # (B,)
    steps = int(settings["steps"])
    while True:
        maps = explain_by_perturbation("integrated_gradients", model, x, lengths=lengths,
                                       target_class=target, steps=steps)
        total = maps["integrated_gradients"].sum(dim=(1, 2))  # (B,)
        gap = ((total - change).abs() / change.abs().clamp(min=1e-6)).cpu().numpy()
        if (float(np.quantile(gap, COMPLETENESS_QUANTILE)) <= settings["tolerance"]
                or steps * 2 > settings["max_steps"]):
            break
        steps *= 2
    return {**_numpy(maps, "map"),
            "integrated_gradients/steps": np.full(len(x), steps, np.int64),
            "integrated_gradients/completeness_gap": gap.astype(np.float32)}


COMPLETENESS_QUANTILE = 0.9
"""The share of a batch's records whose completeness gap must lie within the tolerance."""


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
