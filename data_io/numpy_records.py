"""Loading a folder of NumPy records: one `.npy` per record, a label CSV and a JSON sidecar.

The layout (documented in docs/own-data.md)::

    DIR/<record>.npy    millivolts, shape (T,) for one lead or (leads, T)
    DIR/labels.csv      lines ``record,label`` (a header line is allowed)
    DIR/records.json    {"fs_hz": 250} and optionally "n_leads" and "adc_gain"

The sampling rate comes from the sidecar, never from a default: arrays carry no rate. Every
record is validated (readable, one or two dimensions, finite, long enough, the data set's lead
count, within the int16 range at the gain, a known label); a bad one is quarantined with a
reason naming the file and the problem, and the rest still loads. Only a folder that cannot be
used at all raises `DatasetError`.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from data_io.errors import DatasetError, RecordError
from data_io.records import EcgArrays, Quarantined, pack_records
from data_io.reference import find_reference, read_reference

SIDECAR_FILE = "records.json"
SIDECAR_KEYS = ("fs_hz", "n_leads", "adc_gain")
DEFAULT_ADC_GAIN = 1000.0
"""Digital units per mV in which records are stored (int16: +-32.767 mV)."""
LAYOUT_HINT = (
    "expected one <record>.npy per record (millivolts, shape (T,) or (leads, T)), a label "
    "file {labels} with lines 'record,label', and " + SIDECAR_FILE + " giving the sampling "
    "rate, e.g. {{\"fs_hz\": 250}}"
)


@dataclass(frozen=True)
class Sidecar:
    """What ``records.json`` says about the folder's records.

    Attributes:
        fs_hz: sampling rate of every record.
        n_leads: leads every record must have; None: the most common count in the folder.
        adc_gain: digital units per mV used to store the records as int16.
    """

    fs_hz: float
    n_leads: int | None
    adc_gain: float


def read_sidecar(directory: Path) -> Sidecar:
    """Parse and check ``directory/records.json``.

    Raises:
        DatasetError: the file is missing, not a JSON object, has unknown keys, or a rate,
            lead count or gain that is not a positive number (the message names the file).
    """
    path = directory / SIDECAR_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{directory} has no {SIDECAR_FILE}: write the sampling rate of "
                           "the records there, e.g. {\"fs_hz\": 250}") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path} cannot be read as JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise DatasetError(f"{path} must hold a JSON object such as {{\"fs_hz\": 250}}")
    unknown = sorted(set(data) - set(SIDECAR_KEYS))
    if unknown:
        raise DatasetError(f"{path}: unknown key(s) {unknown}; known: {', '.join(SIDECAR_KEYS)}")
    if "fs_hz" not in data:
        raise DatasetError(f"{path} lacks fs_hz, the sampling rate of the records in Hz")
    fs_hz = _positive(data["fs_hz"], name="fs_hz", path=path)
    n_leads = data.get("n_leads")
    if n_leads is not None and (isinstance(n_leads, bool) or not isinstance(n_leads, int)
                                or n_leads < 1):
        raise DatasetError(f"{path}: n_leads must be a whole number >= 1, got {n_leads!r}")
    adc_gain = _positive(data.get("adc_gain", DEFAULT_ADC_GAIN), name="adc_gain", path=path)
    return Sidecar(fs_hz=fs_hz, n_leads=n_leads, adc_gain=adc_gain)


def _positive(value: object, *, name: str, path: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
            or not np.isfinite(value):
        raise DatasetError(f"{path}: {name} must be a positive number, got {value!r}")
    return float(value)


def record_files(directory: Path) -> dict[str, Path]:
    """Record id -> ``.npy`` file, for every ``*.npy`` directly in ``directory``."""
    with os.scandir(directory) as entries:
        return {entry.name[: -len(".npy")]: Path(entry.path) for entry in entries
                if entry.name.endswith(".npy") and entry.is_file()}


def check_folder(directory: Path, *, label_files: tuple[str, ...]) -> None:
    """Raise `DatasetError` when ``directory`` cannot be a NumPy record folder."""
    hint = LAYOUT_HINT.format(labels=" or ".join(label_files))
    if not directory.is_dir():
        raise DatasetError(f"data directory {directory} does not exist or is not a directory; "
                           f"{hint}")
    if not record_files(directory):
        raise DatasetError(f"{directory} holds no .npy records; {hint}")
    if find_reference(directory, names=label_files) is None:
        raise DatasetError(f"{directory} has no label file ({' or '.join(label_files)}); {hint}")
    read_sidecar(directory)


def load_numpy_records(
    directory: str | Path,
    *,
    classes: tuple[str, ...],
    label_files: tuple[str, ...],
    min_record_s: float,
    progress: bool = True,
) -> EcgArrays:
    """Read and validate every record of a NumPy record folder.

    Args:
        directory: the folder (see the module docstring for its layout).
        classes: label alphabet in class-index order (the data set's).
        label_files: label file names looked for, in order.
        min_record_s: records shorter than this are quarantined.
        progress: show a progress bar on stderr.

    Returns:
        The good records in id order at the sidecar's rate: signals (total,) for single-lead
        folders, (total, n_leads) otherwise; the rest listed in ``quarantined``.

    Raises:
        DatasetError: the folder is missing, holds no records, no label file or no valid
            sidecar, or no record could be loaded.
    """
    directory = Path(directory).expanduser()
    check_folder(directory, label_files=label_files)
    sidecar = read_sidecar(directory)
    files = record_files(directory)
    label_path = find_reference(directory, names=label_files)
    reference = read_reference(label_path, classes=classes, known_records=frozenset(files))
    quarantined: list[Quarantined] = list(reference.problems)
    unusable = {q.record for q in quarantined}
    read: dict[str, np.ndarray] = {}  # record -> (leads, T) float64 millivolts
    for record in tqdm(sorted((set(files) | set(reference.labels)) - unusable),
                       desc=f"reading {directory.name}", unit="rec", disable=not progress,
                       mininterval=0.5):
        try:
            if record not in reference.labels:
                raise RecordError(f"{record}.npy present but {record} has no label in "
                                  f"{label_path.name}")
            if record not in files:
                raise RecordError(f"{label_path.name} labels {record} but {record}.npy is "
                                  "missing")
            read[record] = read_record(files[record], fs_hz=sidecar.fs_hz,
                                       min_record_s=min_record_s)
        except RecordError as exc:
            quarantined.append(Quarantined(record=record, reason=str(exc)))
    n_leads = sidecar.n_leads or _usual_leads(read)
    loaded: dict[str, np.ndarray] = {}
    for record, mv in read.items():
        try:
            loaded[record] = _to_digital(mv, file=files[record].name, n_leads=n_leads,
                                         adc_gain=sidecar.adc_gain)
        except RecordError as exc:
            quarantined.append(Quarantined(record=record, reason=str(exc)))
    if not loaded:
        shown = "; ".join(q.reason for q in quarantined[:5])
        raise DatasetError(f"no record of {directory} could be loaded: {shown}")
    records = sorted(loaded)
    return pack_records(
        digital_signals=[loaded[r] for r in records],
        record_ids=records,
        labels=[classes.index(reference.labels[r]) for r in records],
        classes=tuple(classes),
        fs_hz=sidecar.fs_hz,
        adc_gain=sidecar.adc_gain,
        quarantined=sorted(quarantined, key=lambda q: q.record),
    )


def read_record(path: Path, *, fs_hz: float, min_record_s: float) -> np.ndarray:
    """One record as float64 millivolts, shape (leads, T).

    Raises:
        RecordError: unreadable, not numeric, not (T,) or (leads, T), apparently transposed,
            non-finite or shorter than ``min_record_s`` (the message names the file).
    """
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise RecordError(f"{path.name} cannot be read as a NumPy array ({exc})") from exc
    if not isinstance(values, np.ndarray) or not (np.issubdtype(values.dtype, np.integer)
                                                  or np.issubdtype(values.dtype, np.floating)):
        raise RecordError(f"{path.name} holds {getattr(values, 'dtype', type(values))} values; "
                          "expected real numbers (millivolts)")
    if values.ndim not in (1, 2):
        raise RecordError(f"{path.name} has shape {values.shape}: expected (T,) for one lead "
                          "or (leads, T)")
    signal = values.reshape(1, -1) if values.ndim == 1 else values  # (leads, T)
    if signal.shape[0] > signal.shape[1]:
        raise RecordError(f"{path.name} has shape {values.shape}, more leads than samples: save "
                          "records as (leads, T), not (T, leads)")
    bad = int(np.count_nonzero(~np.isfinite(signal)))
    if bad:
        raise RecordError(f"{path.name} holds {bad} non-finite (NaN or infinite) samples")
    duration_s = signal.shape[1] / fs_hz
    if duration_s < min_record_s:
        raise RecordError(f"{path.name} is too short: {signal.shape[1]} samples, {duration_s:g} s "
                          f"at {fs_hz:g} Hz, below the minimum {min_record_s:g} s")
    return signal.astype(np.float64)


def _usual_leads(read: dict[str, np.ndarray]) -> int:
    """The most common lead count (the smaller one on a tie), 1 when nothing was read."""
    counts = Counter(mv.shape[0] for mv in read.values())
    return min(counts, key=lambda n: (-counts[n], n)) if counts else 1


def _to_digital(mv: np.ndarray, *, file: str, n_leads: int, adc_gain: float) -> np.ndarray:
    """(leads, T) millivolts -> int16: (T,) for one lead, (T, leads) otherwise."""
    if mv.shape[0] != n_leads:
        raise RecordError(f"{file} has {mv.shape[0]} lead(s); the data set's records have "
                          f"{n_leads}")
    digital = np.rint(mv * adc_gain)
    limit = float(np.abs(digital).max())
    if limit > np.iinfo(np.int16).max:
        raise RecordError(f"{file} reaches {limit / adc_gain:g} mV, beyond the int16 range at "
                          f"{adc_gain:g} units per mV: are the values in millivolts? (or set a "
                          f"smaller adc_gain in {SIDECAR_FILE})")
    digital = digital.astype(np.int16)
    return digital[0] if n_leads == 1 else np.ascontiguousarray(digital.T)
