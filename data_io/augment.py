"""Random ECG augmentations and the `Augmenter` that applies a JSON-configured set of them.

Every augmentation is a small function ``f(x, *, rng, fs_hz, **params) -> np.ndarray`` on one
float32 record in millivolts (applied before normalization, so amplitudes such as the baseline
wander's are physical). None modifies its input. `AUGMENTATIONS` maps config names to them.

A config is an object ``{name: {p: ..., parameter: ...}}``, applied in the order of
`AUGMENTATIONS` whatever the order of its keys, so one config always means one pipeline:
geometry first (stretch, warp, shift, delay), then amplitude, additive artefacts, the
acquisition filters, and sample dropout and cutout last so that zeroed samples stay exactly
zero; or a list ``[{"name": name, "p": ..., parameter: ...}, ...]`` applied in its own order
(a published pipeline's order).

Named pipelines (``augment_pipelines.json``; ``ecg_dualnet`` is ECG-DualNet's training
pipeline with its config values, in its order: cutout, sample drop, random resampling, resampling,
scaling, delay, sine baseline, band-pass) are selected in a config as
``{"pipeline": NAME, "p": P}``, where ``P`` (optional) replaces every step's probability: one
knob, the work's ``p_aug``, that a search space sweeps as the augmentation strength.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any

import numpy as np
from scipy.signal import butter, sosfilt, sosfiltfilt

Augmentation = Callable[..., np.ndarray]
"""``(x, *, rng, fs_hz, **params) -> np.ndarray``: one random transformation of a record."""


def _check_range(name: str, low: float, high: float, *, minimum: float = 0.0) -> None:
    if not minimum <= low <= high:
        raise ValueError(f"{name}: need {minimum} <= low <= high, got low={low}, high={high}")


def time_stretch(
    x: np.ndarray,
    *,
    rng: np.random.Generator,
    fs_hz: float,
    low: float = 0.9,
    high: float = 1.1,
) -> np.ndarray:
    """Stretch the record in time by a factor drawn from U(low, high) (linear interpolation).

    A factor of 1.1 makes the record 10% longer and the heart rate 10% slower; the length of
    the output changes accordingly (``round(len(x) * factor)`` samples).
    """
    _check_range("time_stretch", low, high, minimum=1e-3)
    factor = rng.uniform(low, high)
    n = len(x)
    if n < 2:  # nothing to interpolate between
        return np.array(x, dtype=np.float32, copy=True)
    m = max(2, round(n * factor))
    # Output sample j sits at input position j * (n - 1) / (m - 1): both ends are kept.
    positions = np.linspace(0.0, n - 1, m)
    return np.interp(positions, np.arange(n), x).astype(np.float32)


def time_warp(
    x: np.ndarray,
    *,
    rng: np.random.Generator,
    fs_hz: float,
    max_offset: float = 0.03,
    n_knots: int = 4,
) -> np.ndarray:
    """Resample the record on a smoothly, randomly warped time axis (same length).

    ``n_knots`` offsets drawn from U(-max_offset, max_offset), in units of half the record's
    duration, are linearly interpolated over the record; output sample j reads the input at
    ``j + offset(j)`` (clipped to the record), so the local heart rate speeds up and slows
    down a little while the record keeps its length (ECG-DualNet's random resampling).
    """
    if not 0.0 <= max_offset < 1.0 or n_knots < 2:
        raise ValueError(
            f"time_warp: need 0 <= max_offset < 1 and n_knots >= 2, got {max_offset}, {n_knots}"
        )
    n = len(x)
    knots = rng.uniform(-max_offset, max_offset, size=n_knots)
    if n < 2:
        return np.array(x, dtype=np.float32, copy=True)
    steps = np.arange(n, dtype=np.float64)
    offsets = np.interp(steps, np.linspace(0.0, n - 1, n_knots), knots) * (n - 1) / 2
    positions = np.clip(steps + offsets, 0.0, n - 1)
    return np.interp(positions, steps, x).astype(np.float32)


def shift(
    x: np.ndarray,
    *,
    rng: np.random.Generator,
    fs_hz: float,
    max_shift_s: float = 1.0,
    circular: bool = True,
) -> np.ndarray:
    """Shift the record by a uniform random lag in [-max_shift_s, max_shift_s].

    ``circular=True`` rolls the samples around; otherwise the vacated samples are zero.
    """
    if max_shift_s < 0:
        raise ValueError(f"shift: max_shift_s must be >= 0, got {max_shift_s}")
    max_lag = min(round(max_shift_s * fs_hz), len(x))
    lag = int(rng.integers(-max_lag, max_lag + 1))
    if circular:
        return np.roll(x, lag).astype(np.float32)
    out = np.zeros_like(x, dtype=np.float32)
    if lag >= 0:
        out[lag:] = x[: len(x) - lag]
    else:
        out[:lag] = x[-lag:]
    return out


def delay(
    x: np.ndarray,
    *,
    rng: np.random.Generator,
    fs_hz: float,
    max_delay_s: float = 1.0,
) -> np.ndarray:
    """Delay the record: prepend zeros for a lag drawn uniformly from [0, max_delay_s) (in
    whole samples); the record grows by the lag (ECG-DualNet's shift: 0-3,999 samples at
    300 Hz prepended to the record)."""
    if max_delay_s < 0:
        raise ValueError(f"delay: max_delay_s must be >= 0, got {max_delay_s}")
    lag = int(rng.integers(0, max(1, round(max_delay_s * fs_hz))))
    return np.concatenate([np.zeros(lag, dtype=np.float32), np.asarray(x, dtype=np.float32)])


def amplitude_scale(
    x: np.ndarray,
    *,
    rng: np.random.Generator,
    fs_hz: float,
    low: float = 0.8,
    high: float = 1.2,
) -> np.ndarray:
    """Multiply the record by a gain drawn from U(low, high) (electrode contact, body habitus)."""
    _check_range("amplitude_scale", low, high)
    return (x * np.float32(rng.uniform(low, high))).astype(np.float32)


def baseline_wander(
    x: np.ndarray,
    *,
    rng: np.random.Generator,
    fs_hz: float,
    amplitude_mv: float = 0.2,
    min_freq_hz: float = 0.05,
    max_freq_hz: float = 0.5,
    n_components: int = 2,
) -> np.ndarray:
    """Add a sum of slow sinusoids, as breathing and movement add to a real recording.

    Each of ``n_components`` sinusoids has a frequency from U(min_freq_hz, max_freq_hz), a
    random phase and an amplitude from U(0, amplitude_mv) millivolts.
    """
    if not 0 < min_freq_hz <= max_freq_hz < fs_hz / 2:
        raise ValueError(
            "baseline_wander: need 0 < min_freq_hz <= max_freq_hz < fs_hz / 2, got "
            f"{min_freq_hz}, {max_freq_hz} at {fs_hz} Hz"
        )
    if amplitude_mv < 0 or n_components < 1:
        raise ValueError(
            f"baseline_wander: need amplitude_mv >= 0 and n_components >= 1, got "
            f"{amplitude_mv}, {n_components}"
        )
    t_s = np.arange(len(x)) / fs_hz
    freqs = rng.uniform(min_freq_hz, max_freq_hz, size=n_components)
    phases = rng.uniform(0.0, 2 * np.pi, size=n_components)
    amps = rng.uniform(0.0, amplitude_mv, size=n_components)
    wander = (amps[:, None] * np.sin(2 * np.pi * freqs[:, None] * t_s + phases[:, None])).sum(0)
    return (x + wander).astype(np.float32)


def noise(
    x: np.ndarray,
    *,
    rng: np.random.Generator,
    fs_hz: float,
    snr_db: float = 20.0,
) -> np.ndarray:
    """Add white Gaussian noise at ``snr_db`` below the record's own standard deviation.

    The noise std is ``std(x) / 10 ** (snr_db / 20)``, so the augmentation means the same
    thing for every gain; a constant record is returned unchanged.
    """
    sigma = float(np.std(x)) / 10 ** (snr_db / 20) if len(x) else 0.0
    return (x + rng.normal(0.0, sigma, size=len(x))).astype(np.float32)


def low_pass(
    x: np.ndarray,
    *,
    rng: np.random.Generator,
    fs_hz: float,
    min_cutoff_hz: float = 20.0,
    max_cutoff_hz: float = 40.0,
    order: int = 2,
) -> np.ndarray:
    """Zero-phase Butterworth low-pass at a cutoff drawn from U(min_cutoff_hz, max_cutoff_hz).

    Mimics the band limit of another recording device. A cutoff at or above 0.45 * fs_hz is
    lowered to it (at low rates the upper range would leave no band to cut).
    """
    if not 0 < min_cutoff_hz <= max_cutoff_hz or order < 1:
        raise ValueError(
            f"low_pass: need 0 < min_cutoff_hz <= max_cutoff_hz and order >= 1, got "
            f"{min_cutoff_hz}, {max_cutoff_hz}, {order}"
        )
    cutoff_hz = min(rng.uniform(min_cutoff_hz, max_cutoff_hz), 0.45 * fs_hz)
    sos = butter(order, cutoff_hz, btype="low", fs=fs_hz, output="sos")
    padlen = 3 * (2 * len(sos) + 1)  # sosfiltfilt's default edge padding
    if len(x) <= padlen:  # too short to filter both ways
        return np.array(x, dtype=np.float32, copy=True)
    return sosfiltfilt(sos, x).astype(np.float32)


def band_pass(
    x: np.ndarray,
    *,
    rng: np.random.Generator,
    fs_hz: float,
    low_hz: float = 0.5,
    high_hz: float = 40.0,
    order: int = 4,
    zero_phase: bool = True,
) -> np.ndarray:
    """Butterworth band-pass of a fixed band (``order`` per edge, as scipy's ``butter``),
    zero-phase (forward and back) or causal (one pass, as ECG-DualNet filters: order 10,
    0.2-45 Hz). A high edge at or above 0.45 * fs_hz is lowered to it."""
    del rng  # a fixed filter: nothing is drawn
    high_hz = min(high_hz, 0.45 * fs_hz)
    if not 0 < low_hz < high_hz or order < 1:
        raise ValueError(f"band_pass: need 0 < low_hz < high_hz < 0.45 * fs_hz and order >= 1, "
                         f"got {low_hz}, {high_hz}, {order} at {fs_hz} Hz")
    sos = butter(order, (low_hz, high_hz), btype="bandpass", fs=fs_hz, output="sos")
    if not zero_phase:
        return sosfilt(sos, x).astype(np.float32)
    padlen = 3 * (2 * len(sos) + 1)  # sosfiltfilt's default edge padding
    if len(x) <= padlen:  # too short to filter both ways
        return np.array(x, dtype=np.float32, copy=True)
    return sosfiltfilt(sos, x).astype(np.float32)


def sample_dropout(
    x: np.ndarray,
    *,
    rng: np.random.Generator,
    fs_hz: float,
    rate: float = 0.025,
) -> np.ndarray:
    """Zero a random ``rate`` fraction of single samples (at least one): lost samples."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"sample_dropout: rate must lie in [0, 1], got {rate}")
    out = np.array(x, dtype=np.float32, copy=True)
    if len(x):
        n_dropped = max(1, int(len(x) * rate))
        out[rng.choice(len(x), size=min(n_dropped, len(x)), replace=False)] = 0.0
    return out


def cutout(
    x: np.ndarray,
    *,
    rng: np.random.Generator,
    fs_hz: float,
    n_windows: int = 1,
    max_window_s: float = 1.0,
    window_fraction: float = 0.0,
) -> np.ndarray:
    """Zero ``n_windows`` random windows (lead dropout), each 1 sample to ``max_window_s``
    long, or, with ``window_fraction`` > 0, each exactly that fraction of the record
    (``int(len * fraction)`` samples starting in [0, len - width), ECG-DualNet's cutout)."""
    if n_windows < 0 or max_window_s < 0 or not 0.0 <= window_fraction < 1.0:
        raise ValueError(
            f"cutout: need n_windows >= 0, max_window_s >= 0 and 0 <= window_fraction < 1, got "
            f"{n_windows}, {max_window_s}, {window_fraction}"
        )
    out = np.array(x, dtype=np.float32, copy=True)
    max_len = min(max(1, round(max_window_s * fs_hz)), len(x))
    for _ in range(n_windows if len(x) else 0):
        if window_fraction > 0:
            width = int(len(x) * window_fraction)
            start = int(rng.integers(0, max(1, len(x) - width)))
        else:
            width = int(rng.integers(1, max_len + 1))
            start = int(rng.integers(0, len(x) - width + 1))
        out[start : start + width] = 0.0
    return out


AUGMENTATIONS: Mapping[str, Augmentation] = MappingProxyType(
    {
        "time_stretch": time_stretch,
        "time_warp": time_warp,
        "shift": shift,
        "delay": delay,
        "amplitude_scale": amplitude_scale,
        "baseline_wander": baseline_wander,
        "noise": noise,
        "low_pass": low_pass,
        "band_pass": band_pass,
        "sample_dropout": sample_dropout,
        "cutout": cutout,
    }
)
"""Augmentation name (as written in configs) -> function, in the order an object config
applies them. Read-only."""

PIPELINE_KEY = "pipeline"
"""Config key that selects a named pipeline from ``augment_pipelines.json``."""

STEP_NAME_KEY = "name"
"""Key naming the augmentation of a step in a list config."""

AugmentConfig = Mapping[str, Mapping[str, Any]] | list[Mapping[str, Any]]
"""An object config ``{name: options}`` or a list config ``[{"name": name, **options}]``."""

_CALL_ARGS = frozenset({"rng", "fs_hz"})


@functools.cache
def _pipelines() -> dict[str, dict[str, dict[str, Any]]]:
    text = resources.files("data_io").joinpath("augment_pipelines.json").read_text("utf-8")
    return json.loads(text)


def pipeline_names() -> list[str]:
    """Names of the stored pipelines (``augment_pipelines.json``), sorted."""
    return sorted(_pipelines())


def resolve_pipeline(config: Mapping[str, Any] | list | None) -> AugmentConfig | None:
    """Expand ``{"pipeline": NAME, "p": P}`` into the stored pipeline's config (an object or,
    for a pipeline with its own order, a list of steps).

    ``p`` (optional, in [0, 1]) replaces every step's probability. Any other config is
    returned unchanged.

    Raises:
        ValueError: an unknown pipeline name (the message lists the stored ones), keys other
            than ``pipeline`` and ``p`` beside it, or ``p`` outside [0, 1].
    """
    if not config or not isinstance(config, Mapping) or PIPELINE_KEY not in config:
        return config
    extra = sorted(set(config) - {PIPELINE_KEY, "p"})
    if extra:
        raise ValueError(f"an augmentation config with 'pipeline' takes only 'p' beside it, "
                         f"got {extra}")
    name = config[PIPELINE_KEY]
    if name not in _pipelines():
        raise ValueError(f"unknown augmentation pipeline {name!r}; known: {pipeline_names()}")
    steps = copy.deepcopy(_pipelines()[name])
    if "p" in config:
        p = float(config["p"])
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"augmentation pipeline {name!r}: p must be in [0, 1], got {p}")
        for options in (steps.values() if isinstance(steps, dict) else steps):
            options["p"] = p
    return steps


def _named_steps(config: AugmentConfig) -> list[tuple[str, dict[str, Any]]]:
    """(name, options) of every step in order of application (see the module docstring).

    Raises:
        ValueError: a list step without a name, or a config that is neither form.
    """
    if isinstance(config, Mapping):  # registry order; unknown names last (they are rejected)
        order = [name for name in AUGMENTATIONS if name in config]
        order += [name for name in config if name not in AUGMENTATIONS]
        return [(name, dict(config[name] or {})) for name in order]
    if not isinstance(config, list):
        raise ValueError(f"an augmentation config is an object or a list, got {config!r}")
    steps = []
    for step in config:
        if not isinstance(step, Mapping) or STEP_NAME_KEY not in step:
            raise ValueError(f"every step of a list augmentation config needs "
                             f"'{STEP_NAME_KEY}', got {step!r}")
        options = dict(step)
        steps.append((options.pop(STEP_NAME_KEY), options))
    return steps
_PROBE_FS_HZ = 300.0  # a config is checked once on a 10 s sine at this rate


def augmentation_params(name: str) -> dict[str, Any]:
    """The tunable parameters of augmentation ``name`` with their defaults (``p`` excluded)."""
    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {name!r}; known: {', '.join(AUGMENTATIONS)}")
    params = inspect.signature(AUGMENTATIONS[name]).parameters.values()
    return {
        p.name: p.default
        for p in params
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in _CALL_ARGS
    }


@dataclass(frozen=True)
class _Step:
    name: str
    function: Augmentation
    p: float
    params: Mapping[str, Any]


@dataclass(frozen=True)
class Augmenter:
    """A fixed, configured sequence of augmentations, each applied with its own probability.

    Build it with `Augmenter.from_config`; an empty one is the identity. It holds no random
    state: the caller passes the generator, so a record's augmentation depends only on the
    generator's seed (the batching `Dataset` seeds one per record and epoch).
    """

    steps: tuple[_Step, ...] = ()

    @classmethod
    def from_config(cls, config: AugmentConfig | None) -> Augmenter:
        """Build from plain JSON data, e.g. ``{"noise": {"p": 0.3, "snr_db": 20}}``, a list
        ``[{"name": "cutout", "p": 0.2}, {"name": "noise"}]`` (applied in its order), or a
        named pipeline, e.g. ``{"pipeline": "ecg_dualnet", "p": 0.3}`` (`resolve_pipeline`).

        Each key (or step ``name``) names an augmentation in `AUGMENTATIONS`; its options hold
        ``p`` (probability of applying it to a record, default 1) and any of the function's
        parameters (the others keep their defaults). None, ``{}`` or ``[]`` give the
        identity.

        Raises:
            ValueError: an unknown augmentation or parameter (the message lists the known
                ones), ``p`` outside [0, 1], or values the function rejects (each configured
                augmentation is tried once on a 10 s probe sine at 300 Hz).
        """
        named = _named_steps(resolve_pipeline(config) or {})
        unknown = [name for name, _ in named if name not in AUGMENTATIONS]
        if unknown:
            raise ValueError(
                f"unknown augmentation(s) {unknown}; known: {', '.join(AUGMENTATIONS)} "
                f"(or {{'{PIPELINE_KEY}': NAME, 'p': P}}, NAME one of {pipeline_names()})"
            )
        probe = np.sin(np.linspace(0.0, 20 * np.pi, 10 * int(_PROBE_FS_HZ))).astype(np.float32)
        steps = []
        for name, options in named:
            function = AUGMENTATIONS[name]
            p = float(options.pop("p", 1.0))
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"augmentation {name!r}: p must be in [0, 1], got {p}")
            known = augmentation_params(name)
            bad = sorted(set(options) - set(known))
            if bad:
                raise ValueError(
                    f"augmentation {name!r}: unknown parameter(s) {bad}; "
                    f"known: {', '.join(['p', *known])}"
                )
            try:  # fail here on bad values, not in a loader worker at the first epoch
                function(probe, rng=np.random.default_rng(0), fs_hz=_PROBE_FS_HZ, **options)
            except (TypeError, ValueError) as error:
                raise ValueError(
                    f"augmentation {name!r}: bad parameters {options}: {error}"
                ) from None
            steps.append(_Step(name=name, function=function, p=p, params=options))
        return cls(steps=tuple(steps))

    @property
    def is_identity(self) -> bool:
        """True when no augmentation can ever fire (none configured, or every p is 0)."""
        return all(step.p == 0.0 for step in self.steps)

    @property
    def names(self) -> tuple[str, ...]:
        """Configured augmentations in order of application."""
        return tuple(step.name for step in self.steps)

    def __call__(self, x: np.ndarray, *, rng: np.random.Generator, fs_hz: float) -> np.ndarray:
        """Apply each step with its probability; returns a new float32 array (``x`` untouched).

        Each configured step takes one uniform draw from ``rng`` to decide whether it fires,
        then (if it fires) whatever draws its function needs.
        """
        out = np.asarray(x, dtype=np.float32)
        for step in self.steps:
            if rng.random() < step.p:
                out = step.function(out, rng=rng, fs_hz=fs_hz, **step.params)
        return out if out is not x else out.copy()
