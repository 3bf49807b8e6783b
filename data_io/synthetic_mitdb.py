"""Synthetic records in the MIT-BIH Arrhythmia Database layout (WFDB `.hea`, `.dat`, `.atr`).

Each record is one "patient" with its own heart rate and ectopic-beat mix (profiles in
``synthetic_mitdb.json``), two leads (MLII and V1) at 360 Hz in format 212, and beat
annotations with MIT-BIH symbols (N, A, V, F, Q), so the beat and segment data sets, the
inter-patient split and the bad-input handling run end to end without the real database.
Records are named after real MIT-BIH records (DS1 of the inter-patient split first, then
DS2), so the split's record lists apply to them.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import wfdb

from data_io.atomic import write_text_atomic
from data_io.datasets import load_dataset

PARAMS_FILE = "synthetic_mitdb.json"
MANIFEST_FILE = "SYNTHETIC.json"


def load_params() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath(PARAMS_FILE).read_text("utf-8"))


def max_records() -> int:
    """The most synthetic MIT-BIH records: one per non-paced record name (DS1 and DS2)."""
    return len(_all_names())


def _all_names() -> list[str]:
    splits = load_dataset("mitdb-beats").facts["splits"]
    return [*splits["DS1"], *splits["DS2"]]


def record_names(n_records: int) -> list[str]:
    """``n_records`` MIT-BIH record names: DS1 first, then DS2 (from the mitdb-beats facts)."""
    names = _all_names()
    if n_records > len(names):
        raise ValueError(f"at most {len(names)} synthetic MIT-BIH records (one per non-paced "
                         f"record name), asked for {n_records}")
    return names[:n_records]


def synthetic_record(*, index: int, seed: int, params: dict[str, Any]):
    """One record: (signals (n, 2) mV float64, R-peak samples, beat symbols)."""
    rng = np.random.default_rng([seed, index])
    fs = float(params["fs_hz"])
    n = round(float(params["duration_s"]) * fs)
    profile = params["profiles"][index % len(params["profiles"])]["symbols"]
    kinds = ["N", *profile]
    probs = np.array([1.0 - sum(profile.values()), *profile.values()])
    rr = rng.uniform(*params["rr_s"])
    peaks, symbols = [], []
    t = rng.uniform(0.3, 0.6)
    while t < n / fs - 0.5:
        kind = str(rng.choice(kinds, p=probs))
        t_beat = t - (1.0 - params["prematurity"][kind]) * rr if symbols else t
        peaks.append(round(t_beat * fs))
        symbols.append(kind)
        t = t_beat + rr * (1.25 if kind != "N" else 1.0) * rng.uniform(0.95, 1.05)
    time_s = np.arange(n) / fs
    lead = np.zeros(n)
    amplitude = rng.uniform(0.8, 1.2)
    for peak, kind in zip(peaks, symbols, strict=True):
        centre = peak / fs
        for offset, width, height in params["shapes"][kind]:
            lo = max(0, round((centre + offset - 4 * width) * fs))
            hi = min(n, round((centre + offset + 4 * width) * fs) + 1)
            lead[lo:hi] += amplitude * height * np.exp(
                -0.5 * ((time_s[lo:hi] - centre - offset) / width) ** 2)
    wander = 0.1 * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * time_s + rng.uniform(0, 6.3))
    noise = float(params["noise_mv"])
    mlii = lead + wander + rng.normal(0, noise, n)
    v1 = float(params["v1_scale"]) * lead + 0.5 * wander + rng.normal(0, noise, n)
    return np.stack([mlii, v1], axis=1), np.asarray(peaks, dtype=np.int64), symbols


def write_mitdb(*, out: Path, n_records: int, seed: int) -> dict[str, int]:
    """Write ``n_records`` records, a RECORDS file and SYNTHETIC.json into ``out``; returns
    the number of beats per symbol."""
    params = load_params()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = record_names(n_records)
    counts: dict[str, int] = {}
    for index, name in enumerate(names):
        signals, peaks, symbols = synthetic_record(index=index, seed=seed, params=params)
        n_leads = signals.shape[1]
        wfdb.wrsamp(name, fs=float(params["fs_hz"]), units=["mV"] * n_leads,
                    sig_name=list(params["leads"]), p_signal=signals, fmt=["212"] * n_leads,
                    adc_gain=[float(params["adc_gain"])] * n_leads,
                    baseline=[int(params["baseline"])] * n_leads, write_dir=str(out))
        wfdb.wrann(name, "atr", peaks, symbol=symbols, write_dir=str(out))
        for symbol in symbols:
            counts[symbol] = counts.get(symbol, 0) + 1
    write_text_atomic(out / "RECORDS", "\n".join(names) + "\n")
    write_text_atomic(out / MANIFEST_FILE, json.dumps(
        {"format": "mitdb", "seed": seed, "n_records": n_records, "fs_hz": params["fs_hz"],
         "beats": counts, "complete": True}, indent=2) + "\n")
    return counts
