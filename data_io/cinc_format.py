"""Writer of CinC 2017-format WFDB files: `<id>.mat` + `<id>.hea`, REFERENCE.csv, RECORDS.

The layout copies the challenge files byte for byte where it can (MATLAB v4 `val` of shape
(1, n) int16 behind a 24-byte header, a two-line header with CRLF endings and trailing spaces),
so every reader of the real data set reads written records unchanged. Every file is written
under a temporary name in its own directory and moved into place, so a crash never leaves a
half-written file under the final name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import scipy.io

from data_io.atomic import atomic_path, write_text_atomic
from data_io.cinc2017 import cinc_facts

REFERENCE_FILE = "REFERENCE.csv"
RECORDS_FILE = "RECORDS"

# CinC headers carry a de-identified start time and date; a fixed one keeps output reproducible.
_BASE_TIME = "00:00:00"
_BASE_DATE = "1/01/2000"
# A MATLAB v4 header (20 bytes) plus the name "val\0" puts the samples at byte 24.
_MAT_BYTE_OFFSET = 24
_RECORD_ID = re.compile(r"[A-Za-z0-9_]+")
_UNITS = re.compile(r"[^\s/]+")


def wfdb_checksum(digital: np.ndarray) -> int:
    """WFDB's 16-bit signal checksum: the sum of the samples mod 65536, as a signed int16."""
    total = int(np.sum(digital, dtype=np.int64)) % 65536
    return total - 65536 if total > 32767 else total


def write_record(
    *,
    directory: str | os.PathLike[str],
    record_id: str,
    digital: np.ndarray,
    fs_hz: float,
    adc_gain: float,
    units: str = "mV",
) -> None:
    """Write one single-lead record as `<record_id>.mat` and `<record_id>.hea`.

    Args:
        directory: existing destination directory.
        record_id: WFDB record name (letters, digits, underscores).
        digital: samples in ADC units, int16, shape (n,).
        fs_hz: sampling rate.
        adc_gain: ADC units per ``units`` (1000 per mV in CinC 2017).
        units: physical unit of the signal.

    Raises:
        ValueError: on an invalid name, an empty or non-int16 signal, or a non-positive rate/gain.
    """
    _check_record_inputs(record_id=record_id, digital=digital, fs_hz=fs_hz, adc_gain=adc_gain)
    if not _UNITS.fullmatch(units):
        raise ValueError(f"units must be one word without '/', got {units!r}")
    directory = Path(directory)
    with atomic_path(directory / f"{record_id}.mat") as tmp, tmp.open("wb") as handle:
        scipy.io.savemat(handle, {"val": digital.reshape(1, -1)}, format="4")
    header = _header_text(
        record_id=record_id, digital=digital, fs_hz=fs_hz, adc_gain=adc_gain, units=units
    )
    write_text_atomic(directory / f"{record_id}.hea", header)


def write_reference(*, directory: str | os.PathLike[str], labels: Mapping[str, str]) -> None:
    """Write `REFERENCE.csv` (``record,label`` per line, no header) and `RECORDS` (one id a line).

    Raises:
        ValueError: on a label outside the CinC alphabet or an invalid record name.
    """
    classes = [c["label"] for c in cinc_facts()["classes"]]
    bad_labels = sorted({label for label in labels.values() if label not in classes})
    if bad_labels:
        raise ValueError(f"labels {bad_labels} are not CinC 2017 classes {classes}")
    bad_ids = [record_id for record_id in labels if not _RECORD_ID.fullmatch(record_id)]
    if bad_ids:
        raise ValueError(f"invalid record names {bad_ids[:5]}")
    directory = Path(directory)
    reference = "".join(f"{record_id},{label}\n" for record_id, label in labels.items())
    write_text_atomic(directory / REFERENCE_FILE, reference)
    write_text_atomic(directory / RECORDS_FILE, "".join(f"{rid}\n" for rid in labels))


def _check_record_inputs(
    *, record_id: str, digital: np.ndarray, fs_hz: float, adc_gain: float
) -> None:
    if not _RECORD_ID.fullmatch(record_id):
        raise ValueError(f"record name {record_id!r} must hold only letters, digits and '_'")
    if digital.dtype != np.int16 or digital.ndim != 1 or digital.size == 0:
        raise ValueError(
            f"record {record_id}: digital must be a non-empty 1-D int16 array, "
            f"got {digital.dtype} of shape {digital.shape}"
        )
    if not (fs_hz > 0 and adc_gain > 0):
        raise ValueError(f"record {record_id}: fs_hz and adc_gain must be positive")


def _header_text(
    *, record_id: str, digital: np.ndarray, fs_hz: float, adc_gain: float, units: str
) -> str:
    record_line = f"{record_id} 1 {_number(fs_hz)} {digital.size} {_BASE_TIME} {_BASE_DATE}"
    signal_line = (
        f"{record_id}.mat 16+{_MAT_BYTE_OFFSET} {_number(adc_gain)}/{units} 16 0 "
        f"{int(digital[0])} {wfdb_checksum(digital)} 0 ECG"
    )
    # The challenge headers end every line with a space and CRLF.
    return "".join(f"{line} \r\n" for line in (record_line, signal_line))


def _number(value: float) -> str:
    """300.0 -> "300", 360.5 -> "360.5" (WFDB header fields are plain decimals)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))
