"""Synthetic single-lead ECG records with ground truth, shaped like CinC 2017 (N, A, O, ~).

Beats are sums of Gaussian waves (P, Q, R, S, T) in the manner of ECGSYN (McSharry et al.,
2003), placed in time rather than on a limit cycle so that each beat kind (sinus, AF-conducted,
premature atrial, premature ventricular) can be drawn and labelled on its own. Wave positions
and widths scale with the preceding RR interval. Rhythms, morphology, variation and noise are
numbers in `synthetic_params.json`; this module only holds the procedures.

Record ``i`` of a data set depends only on ``(seed, i)``, so a data set of 10 records is the
prefix of one of 1000. Ground truth comes with every record: the beat positions and kinds and a
per-sample mask of abnormal beats (ectopic beats in "O", every beat in "A").
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.signal import butter, sosfilt

from data_io.atomic import atomic_path
from data_io.cinc2017 import cinc_facts
from data_io.records import EcgArrays, pack_records

GENERATOR_VERSION = "1"
"""Bumped whenever the same (seed, index, parameters) would give a different record."""

MIN_FS_HZ = 100.0
"""Below this the narrowest waves (QRS) and the muscle-noise band are not representable."""

MIN_DURATION_S = 5.0
"""Shortest record the generator accepts (an "O" record needs room for an ectopic beat)."""

MASKS_FILE = "MASKS.npz"

Params = Mapping[str, Any]

# A beat this far before the record start still shows its T wave, one this far after the end
# its P wave, so records start and end mid-rhythm rather than on an empty baseline.
_LEAD_IN_S = 0.6
_LEAD_OUT_S = 0.4
# Gaussians are drawn out to 4 widths (negligible beyond); a beat's mask spans 2.5 widths
# either side of its first and last wave (>98% of each wave's area).
_DRAW_WIDTHS = 4.0
_SPAN_WIDTHS = 2.5
# Morphology scaling is clipped to physiological RR so that a pause does not stretch a T wave.
_RR_SCALE_RANGE_S = (0.25, 2.0)


@dataclass(frozen=True)
class SyntheticRecord:
    """One generated record and its ground truth.

    Attributes:
        signal_mv: the ECG in millivolts, float32, shape (n,).
        abnormal_mask: 1 over the span of every abnormal beat, else 0; uint8, shape (n,).
        beat_samples: sample index of each beat's R peak inside the record, int64, shape (b,).
        beat_kinds: kind of each beat ("sinus", "af", "pac", "pvc"), length b.
        label: CinC class of the record.
        fs_hz: sampling rate.
    """

    signal_mv: np.ndarray
    abnormal_mask: np.ndarray
    beat_samples: np.ndarray
    beat_kinds: tuple[str, ...]
    label: str
    fs_hz: float

    @property
    def duration_s(self) -> float:
        return self.signal_mv.shape[0] / self.fs_hz


@dataclass(frozen=True)
class _Beats:
    times_s: np.ndarray  # (b,), may start before 0 and end after the record
    kinds: tuple[str, ...]


@dataclass(frozen=True)
class _BeatShape:
    offset_s: np.ndarray  # (w,) one entry per wave, at RR = 1 s
    width_s: np.ndarray
    amplitude_mv: np.ndarray
    rr_exponent: np.ndarray
    abnormal: bool


def load_params() -> dict[str, Any]:
    """A fresh copy of the generator parameters shipped in `synthetic_params.json`."""
    text = resources.files("data_io").joinpath("synthetic_params.json").read_text("utf-8")
    return json.loads(text)


def record_id(index: int) -> str:
    """Name of the record at 0-based ``index``: 0 -> "S00001"."""
    return f"S{index + 1:05d}"


def record_rng(*, seed: int, index: int) -> np.random.Generator:
    """Random generator of record ``index``; independent of how many records are drawn."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def generate_record(
    *,
    label: str,
    duration_s: float,
    fs_hz: float,
    rng: np.random.Generator,
    params: Params | None = None,
) -> SyntheticRecord:
    """Generate one record of class ``label``.

    Args:
        label: CinC class, one of "N", "A", "O", "~".
        duration_s: record length; rounded to whole samples.
        fs_hz: sampling rate, at least `MIN_FS_HZ`.
        rng: source of all randomness of this record.
        params: generator parameters; `load_params()` when None.

    Raises:
        ValueError: on an unknown label, a too low rate or a too short duration.
    """
    if label not in _RECIPES:
        raise ValueError(f"unknown label {label!r}; known labels are {list(_RECIPES)}")
    if fs_hz < MIN_FS_HZ:
        raise ValueError(f"fs_hz must be at least {MIN_FS_HZ}, got {fs_hz}")
    if duration_s < MIN_DURATION_S:
        raise ValueError(f"duration_s must be at least {MIN_DURATION_S}, got {duration_s}")
    p = load_params() if params is None else params
    recipe = _RECIPES[label]
    n = round(duration_s * fs_hz)
    beats = recipe.rhythm(duration_s=n / fs_hz, p=p, rng=rng)
    shapes = _beat_shapes(p=p, rng=rng)
    heart, mask = _render_beats(beats=beats, shapes=shapes, n=n, fs_hz=fs_hz, p=p, rng=rng)
    heart += recipe.atrial(n=n, fs_hz=fs_hz, p=p, rng=rng)
    signal = heart * _record_gain(p=p, rng=rng) + _mild_noise(n=n, fs_hz=fs_hz, p=p, rng=rng)
    signal += recipe.artefacts(n=n, fs_hz=fs_hz, p=p, rng=rng)
    samples = np.round(beats.times_s * fs_hz).astype(np.int64)
    inside = (samples >= 0) & (samples < n)
    return SyntheticRecord(
        signal_mv=signal.astype(np.float32),
        abnormal_mask=mask,
        beat_samples=samples[inside],
        beat_kinds=tuple(k for k, keep in zip(beats.kinds, inside, strict=True) if keep),
        label=label,
        fs_hz=float(fs_hz),
    )


def iter_records(
    *,
    n_records: int,
    seed: int,
    fs_hz: float,
    class_weights: Mapping[str, float] | None = None,
    params: Params | None = None,
) -> Iterator[tuple[str, SyntheticRecord]]:
    """Yield ``(record_id, record)`` one at a time (constant memory for large data sets).

    Args:
        n_records: how many records.
        seed: data set seed; record i depends only on (seed, i).
        fs_hz: sampling rate (`data_io.synthesize`: the synthetic data set's ``source_fs_hz``).
        class_weights: relative class frequencies; CinC-like (params) when None.
        params: generator parameters; `load_params()` when None.
    """
    if n_records < 0:
        raise ValueError(f"n_records must be >= 0, got {n_records}")
    p = load_params() if params is None else params
    weights = p["class_weights"] if class_weights is None else class_weights
    classes, probs = normalised_weights(weights)  # here, so bad weights fail at the call
    return _iterate(n_records=n_records, seed=seed, fs_hz=fs_hz, classes=classes, probs=probs, p=p)


def _iterate(
    *,
    n_records: int,
    seed: int,
    fs_hz: float,
    classes: tuple[str, ...],
    probs: np.ndarray,
    p: Params,
) -> Iterator[tuple[str, SyntheticRecord]]:
    for index in range(n_records):
        rng = record_rng(seed=seed, index=index)
        label = str(rng.choice(classes, p=probs))
        duration_s = _draw_duration(p=p, rng=rng)
        yield (
            record_id(index),
            generate_record(label=label, duration_s=duration_s, fs_hz=fs_hz, rng=rng, params=p),
        )


def generate_records(
    *,
    n_records: int,
    seed: int,
    fs_hz: float,
    class_weights: Mapping[str, float] | None = None,
) -> dict[str, SyntheticRecord]:
    """All records of a data set by id ("S00001", ...), in order; see `iter_records`."""
    return dict(
        iter_records(n_records=n_records, seed=seed, fs_hz=fs_hz, class_weights=class_weights)
    )


def cinc_classes() -> tuple[str, ...]:
    """The CinC 2017 label alphabet the synthetic records use (from the data set's facts)."""
    return tuple(c["label"] for c in cinc_facts()["classes"])


def normalised_weights(weights: Mapping[str, float]) -> tuple[tuple[str, ...], np.ndarray]:
    """Classes in CinC order and their probabilities; absent classes get 0.

    Raises:
        ValueError: on an unknown class, a negative weight or an all-zero total.
    """
    classes = cinc_classes()
    unknown = sorted(set(weights) - set(classes))
    if unknown:
        raise ValueError(f"unknown classes {unknown}; known classes are {list(classes)}")
    raw = np.array([float(weights.get(c, 0.0)) for c in classes])
    if not np.all(np.isfinite(raw)) or np.any(raw < 0) or raw.sum() <= 0:
        raise ValueError(f"class weights must be finite, >= 0 and not all 0, got {dict(weights)}")
    return classes, raw / raw.sum()


def to_digital(signal_mv: np.ndarray, *, adc_gain: float) -> np.ndarray:
    """Millivolts to int16 ADC units, ``round(mV * gain)``, clipped.

    The clip stops at -32767 because WFDB format 16 reserves -32768 for "no sample".
    """
    scaled = np.round(np.asarray(signal_mv, dtype=np.float64) * adc_gain)
    return np.clip(scaled, -32767, 32767).astype(np.int16)


def to_ecg_arrays(records: Mapping[str, SyntheticRecord], *, adc_gain: float = 1000.0) -> EcgArrays:
    """Pack generated records into the common `EcgArrays` form (digital int16 units).

    Raises:
        ValueError: if there are no records or their sampling rates differ.
    """
    rates = {r.fs_hz for r in records.values()}
    if len(rates) != 1:
        raise ValueError(f"need records at one sampling rate, got rates {sorted(rates)}")
    return pack_records(
        digital_signals=[to_digital(r.signal_mv, adc_gain=adc_gain) for r in records.values()],
        record_ids=list(records),
        labels=[cinc_classes().index(r.label) for r in records.values()],
        classes=cinc_classes(),
        fs_hz=rates.pop(),
        adc_gain=adc_gain,
    )


@contextmanager
def mask_writer(path: str | os.PathLike[str]) -> Iterator[Callable[[str, np.ndarray], None]]:
    """Stream masks into an `.npz` archive; yields ``add(record_id, mask)``.

    The archive has the layout of `np.savez_compressed` (one ``<id>.npy`` member per record)
    but is written one record at a time, so a large data set never holds all masks in memory.
    The file appears under ``path`` only when the block finishes.
    """
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:

        def add(record_id: str, mask: np.ndarray) -> None:
            with archive.open(f"{record_id}.npy", "w", force_zip64=True) as member:
                array = np.ascontiguousarray(mask, dtype=np.uint8)
                np.lib.format.write_array(member, array, allow_pickle=False)

        yield add


def read_masks(directory: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The abnormal-beat masks of a synthetic data set directory, by record id."""
    with np.load(Path(directory) / MASKS_FILE, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


# ---- rhythms: when the beats fall, and of which kind ------------------------------------------


def _sinus_intervals(*, span_s: float, p: Params, rng: np.random.Generator) -> np.ndarray:
    """RR intervals of sinus rhythm with respiratory, low-frequency and random variability."""
    s = p["sinus"]
    rr0 = 60.0 / _uniform(rng, s["hr_bpm_range"])
    n = int(np.ceil(span_s / (0.8 * rr0))) + 2  # variability stays well within +-20%
    t = np.arange(n) * rr0  # beat times to first order, enough to phase the oscillations
    rsa = _uniform(rng, s["rsa_fraction_range"]) * np.sin(
        2 * np.pi * _uniform(rng, s["resp_hz_range"]) * t + rng.uniform(0, 2 * np.pi)
    )
    lf = _uniform(rng, s["lf_fraction_range"]) * np.sin(
        2 * np.pi * _uniform(rng, s["lf_hz_range"]) * t + rng.uniform(0, 2 * np.pi)
    )
    jitter = _uniform(rng, s["jitter_fraction_range"]) * rng.standard_normal(n)
    return rr0 * (1.0 + rsa + lf + jitter)


def _beat_times(*, intervals: np.ndarray, duration_s: float, start_s: float) -> np.ndarray:
    times = start_s + np.concatenate(([0.0], np.cumsum(intervals)))
    return times[times < duration_s + _LEAD_OUT_S]


def _start_time(*, intervals: np.ndarray, rng: np.random.Generator) -> float:
    return -_LEAD_IN_S - rng.uniform(0.0, intervals[0])


def _sinus_beats(*, duration_s: float, p: Params, rng: np.random.Generator) -> _Beats:
    rr = _sinus_intervals(span_s=duration_s + _LEAD_IN_S + _LEAD_OUT_S, p=p, rng=rng)
    times = _beat_times(
        intervals=rr, duration_s=duration_s, start_s=_start_time(intervals=rr, rng=rng)
    )
    return _Beats(times_s=times, kinds=("sinus",) * len(times))


def _af_beats(*, duration_s: float, p: Params, rng: np.random.Generator) -> _Beats:
    """Irregularly irregular ventricular response: independent log-normal RR intervals."""
    a = p["af"]
    mean_rr = 60.0 / _uniform(rng, a["hr_bpm_range"])
    cv = _uniform(rng, a["rr_cv_range"])
    sigma = np.sqrt(np.log1p(cv**2))  # log-normal with mean mean_rr and this CV
    n = int(np.ceil((duration_s + _LEAD_IN_S + _LEAD_OUT_S) / a["min_rr_s"])) + 2
    rr = mean_rr * np.exp(sigma * rng.standard_normal(n) - sigma**2 / 2)
    rr = np.maximum(rr, a["min_rr_s"])  # refractory period of the AV node
    times = _beat_times(
        intervals=rr, duration_s=duration_s, start_s=_start_time(intervals=rr, rng=rng)
    )
    return _Beats(times_s=times, kinds=("af",) * len(times))


def _ectopic_beats(*, duration_s: float, p: Params, rng: np.random.Generator) -> _Beats:
    """Sinus rhythm with isolated premature ventricular and/or atrial beats.

    A PVC leaves the sinus node undisturbed, so the pause after it makes up the prematurity
    (fully compensatory); a PAC resets the sinus node, so the pause is about one RR.
    """
    e = p["ectopy"]
    rr = _sinus_intervals(span_s=duration_s + _LEAD_IN_S + _LEAD_OUT_S, p=p, rng=rng)
    start = _start_time(intervals=rr, rng=rng)
    sinus_times = start + np.concatenate(([0.0], np.cumsum(rr)))
    chosen = _choose_ectopic(sinus_times=sinus_times, duration_s=duration_s, e=e, rng=rng)
    pvc_share = rng.choice(e["pvc_share_choices"], p=_probabilities(e["pvc_share_weights"]))
    kinds = ["sinus"] * len(sinus_times)
    for k in np.flatnonzero(chosen):  # rr[k - 1] precedes beat k, rr[k] follows it
        if rng.random() < pvc_share:
            coupling = _uniform(rng, e["pvc_coupling_range"])
            rr[k] += (1.0 - coupling) * rr[k - 1]
            kinds[k] = "pvc"
        else:
            coupling = _uniform(rng, e["pac_coupling_range"])
            rr[k] *= _uniform(rng, e["pac_pause_range"])
            kinds[k] = "pac"
        rr[k - 1] *= coupling
    times = _beat_times(intervals=rr, duration_s=duration_s, start_s=start)
    return _Beats(times_s=times, kinds=tuple(kinds[: len(times)]))


def _choose_ectopic(
    *, sinus_times: np.ndarray, duration_s: float, e: Params, rng: np.random.Generator
) -> np.ndarray:
    """Isolated ectopic beats (never two in a row), at least one well inside the record."""
    n = len(sinus_times)
    chosen = rng.random(n) < _uniform(rng, e["fraction_range"])
    chosen[[0, -1]] = False  # an ectopic beat needs a sinus beat either side
    chosen[1:] &= ~chosen[:-1]
    margin = e["edge_margin_s"]
    inside = (sinus_times > margin) & (sinus_times < duration_s - margin)
    if not np.any(chosen & inside):
        k = rng.choice(np.flatnonzero(inside))
        chosen[k] = True
        chosen[[k - 1, k + 1]] = False
    return chosen


# ---- morphology: what each beat looks like ----------------------------------------------------


def _beat_shapes(*, p: Params, rng: np.random.Generator) -> dict[str, _BeatShape]:
    """This record's shape of every beat kind: the template waves with per-record variation."""
    v = p["record_variation"]
    waves = {}
    for name, w in p["waves"].items():
        factors = np.exp(
            rng.standard_normal(3)
            * [v["wave_offset_rel_sd"], v["wave_width_rel_sd"], v["wave_amplitude_rel_sd"]]
        )
        waves[name] = (
            w["offset_s"] * factors[0],
            w["width_s"] * factors[1],
            w["amplitude_mv"] * factors[2],
            w["rr_exponent"],
        )
    shapes = {}
    for kind, beat in p["beats"].items():
        sign = -1.0 if rng.random() < beat["flip_probability"] else 1.0
        rows = np.array([waves[name] for name in beat["waves"]])  # (w, 4)
        shapes[kind] = _BeatShape(
            offset_s=rows[:, 0],
            width_s=rows[:, 1],
            amplitude_mv=sign * rows[:, 2],
            rr_exponent=rows[:, 3],
            abnormal=bool(beat["abnormal"]),
        )
    return shapes


def _render_beats(
    *,
    beats: _Beats,
    shapes: Mapping[str, _BeatShape],
    n: int,
    fs_hz: float,
    p: Params,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The summed beat waveforms (mV, float64) and the abnormal-beat mask (uint8), both (n,)."""
    signal = np.zeros(n)
    mask = np.zeros(n, dtype=np.uint8)
    times = beats.times_s
    rr_before = np.clip(np.diff(times, prepend=2 * times[0] - times[1]), *_RR_SCALE_RANGE_S)
    beat_gain = 1.0 + p["record_variation"]["beat_amplitude_rel_sd"] * rng.standard_normal(
        len(times)
    )
    for time_s, kind, rr, gain in zip(times, beats.kinds, rr_before, beat_gain, strict=True):
        shape = shapes[kind]
        scale = rr**shape.rr_exponent
        centres = time_s + shape.offset_s * scale  # (w,)
        widths = shape.width_s * scale
        lo, hi = _sample_span(centres, widths, n_widths=_DRAW_WIDTHS, fs_hz=fs_hz, n=n)
        if lo < hi:
            t = np.arange(lo, hi) / fs_hz
            gauss = np.exp(-0.5 * ((t - centres[:, None]) / widths[:, None]) ** 2)  # (w, hi-lo)
            signal[lo:hi] += gain * (shape.amplitude_mv @ gauss)
        if shape.abnormal:
            lo, hi = _sample_span(centres, widths, n_widths=_SPAN_WIDTHS, fs_hz=fs_hz, n=n)
            mask[lo:hi] = 1
    return signal, mask


def _sample_span(
    centres: np.ndarray, widths: np.ndarray, *, n_widths: float, fs_hz: float, n: int
) -> tuple[int, int]:
    lo = int(np.floor(np.min(centres - n_widths * widths) * fs_hz))
    hi = int(np.ceil(np.max(centres + n_widths * widths) * fs_hz)) + 1
    return min(max(lo, 0), n), min(max(hi, 0), n)  # either may fall outside the record


def _record_gain(*, p: Params, rng: np.random.Generator) -> float:
    """Overall amplitude of the record; a few are inverted, as when the device is held reversed."""
    v = p["record_variation"]
    sign = -1.0 if rng.random() < v["inversion_probability"] else 1.0
    return sign * float(np.exp(v["gain_log_sd"] * rng.standard_normal()))


# ---- additive components: atrial activity and noise -------------------------------------------


def _silence(*, n: int, fs_hz: float, p: Params, rng: np.random.Generator) -> np.ndarray:
    return np.zeros(n)


def _fibrillatory_waves(*, n: int, fs_hz: float, p: Params, rng: np.random.Generator) -> np.ndarray:
    """AF f-waves: 4-9 Hz oscillation with drifting rate and waxing and waning amplitude."""
    a = p["af"]
    knots = a["fwave_knot_rate_hz"]
    freq = _uniform(rng, a["fwave_hz_range"]) + a["fwave_drift_hz"] * _smooth_noise(
        n=n, fs_hz=fs_hz, knot_rate_hz=knots, rng=rng
    )
    phase = 2 * np.pi * np.cumsum(freq) / fs_hz + rng.uniform(0, 2 * np.pi)
    # A second harmonic gives coarse f-waves their saw-tooth look.
    wave = np.sin(phase) + 0.3 * np.sin(2 * phase + rng.uniform(0, 2 * np.pi))
    envelope = 1.0 + a["fwave_modulation"] * _smooth_noise(
        n=n, fs_hz=fs_hz, knot_rate_hz=knots, rng=rng
    )
    return _uniform(rng, a["fwave_mv_range"]) * np.clip(envelope, 0.1, None) * wave


def _mild_noise(*, n: int, fs_hz: float, p: Params, rng: np.random.Generator) -> np.ndarray:
    """What every record has: slight baseline wander, wide-band noise and mains hum."""
    m = p["mild_noise"]
    t = np.arange(n) / fs_hz
    baseline = _uniform(rng, m["baseline_mv_range"]) * _smooth_noise(
        n=n, fs_hz=fs_hz, knot_rate_hz=m["baseline_knot_rate_hz"], rng=rng
    )
    white = _uniform(rng, m["white_mv_range"]) * rng.standard_normal(n)
    mains_hz = min(rng.choice(m["powerline_hz_choices"]), 0.45 * fs_hz)
    mains = _uniform(rng, m["powerline_mv_range"]) * np.sin(
        2 * np.pi * mains_hz * t + rng.uniform(0, 2 * np.pi)
    )
    return baseline + white + mains


def _heavy_noise(*, n: int, fs_hz: float, p: Params, rng: np.random.Generator) -> np.ndarray:
    """What makes a record "noisy": strong wander, muscle noise and motion artefacts."""
    h = p["heavy_noise"]
    baseline = _uniform(rng, h["baseline_mv_range"]) * _smooth_noise(
        n=n, fs_hz=fs_hz, knot_rate_hz=h["baseline_knot_rate_hz"], rng=rng
    )
    return (
        baseline
        + _muscle_noise(n=n, fs_hz=fs_hz, h=h, rng=rng)
        + _motion_steps(n=n, fs_hz=fs_hz, h=h, rng=rng)
        + _motion_bursts(n=n, fs_hz=fs_hz, h=h, rng=rng)
    )


def _muscle_noise(*, n: int, fs_hz: float, h: Params, rng: np.random.Generator) -> np.ndarray:
    """Band-limited EMG noise whose strength follows a slowly varying muscle tension."""
    low, high = h["emg_band_hz"]
    sos = butter(4, [low, min(high, 0.45 * fs_hz)], btype="bandpass", fs=fs_hz, output="sos")
    emg = sosfilt(sos, rng.standard_normal(n))
    emg /= np.std(emg)
    tension = np.abs(
        _smooth_noise(n=n, fs_hz=fs_hz, knot_rate_hz=h["emg_envelope_knot_rate_hz"], rng=rng)
    )
    return _uniform(rng, h["emg_mv_range"]) * (0.3 + tension) * emg


def _motion_steps(*, n: int, fs_hz: float, h: Params, rng: np.random.Generator) -> np.ndarray:
    """Electrode shifts: baseline jumps that decay back through the recorder's AC coupling."""
    t = np.arange(n) / fs_hz
    out = np.zeros(n)
    for _ in range(_integer(rng, h["n_steps_range"])):
        onset = rng.uniform(0.0, t[-1])
        height = _uniform(rng, h["step_mv_range"]) * rng.choice([-1.0, 1.0])
        after = t >= onset
        out[after] += height * np.exp(-(t[after] - onset) / _uniform(rng, h["step_decay_s_range"]))
    return out


def _motion_bursts(*, n: int, fs_hz: float, h: Params, rng: np.random.Generator) -> np.ndarray:
    """Short large low-frequency swings, as when the device or the fingers move."""
    out = np.zeros(n)
    for _ in range(_integer(rng, h["n_bursts_range"])):
        length = min(int(_uniform(rng, h["burst_s_range"]) * fs_hz), n)
        start = int(rng.integers(0, n - length + 1))
        t = np.arange(length) / fs_hz
        swing = np.sin(2 * np.pi * _uniform(rng, h["burst_hz_range"]) * t + rng.uniform(0, 6.3))
        amplitude = _uniform(rng, h["burst_mv_range"])
        out[start : start + length] += amplitude * np.hanning(length) * swing
    return out


@dataclass(frozen=True)
class _Recipe:
    """How a class is made: its rhythm, its atrial activity and its artefacts."""

    rhythm: Callable[..., _Beats]
    atrial: Callable[..., np.ndarray] = _silence
    artefacts: Callable[..., np.ndarray] = _silence


_RECIPES: Mapping[str, _Recipe] = MappingProxyType(
    {
        "N": _Recipe(rhythm=_sinus_beats),
        "A": _Recipe(rhythm=_af_beats, atrial=_fibrillatory_waves),
        "O": _Recipe(rhythm=_ectopic_beats),
        "~": _Recipe(rhythm=_sinus_beats, artefacts=_heavy_noise),
    }
)


# ---- small helpers ----------------------------------------------------------------------------


def _draw_duration(*, p: Params, rng: np.random.Generator) -> float:
    """CinC-like lengths: most records at the fixed length, the rest spread over the range."""
    d = p["duration"]
    if rng.random() < d["p_fixed"]:
        return float(d["fixed_s"])
    return _uniform(rng, d["range_s"])


def _smooth_noise(
    *, n: int, fs_hz: float, knot_rate_hz: float, rng: np.random.Generator
) -> np.ndarray:
    """A smooth random curve of about unit size varying on the time scale 1 / knot_rate_hz."""
    duration_s = n / fs_hz
    n_knots = max(int(np.ceil(duration_s * knot_rate_hz)) + 2, 4)
    knot_times = np.linspace(0.0, duration_s, n_knots)
    return CubicSpline(knot_times, rng.standard_normal(n_knots))(np.arange(n) / fs_hz)


def _uniform(rng: np.random.Generator, bounds: list[float]) -> float:
    low, high = bounds
    return float(rng.uniform(low, high))


def _integer(rng: np.random.Generator, bounds: list[int]) -> int:
    low, high = bounds
    return int(rng.integers(low, high + 1))


def _probabilities(weights: list[float]) -> np.ndarray:
    raw = np.asarray(weights, dtype=np.float64)
    return raw / raw.sum()
