"""Reading and validating one single-lead WFDB record stored as `.hea` + MATLAB `.mat`.

The header is parsed by wfdb and the signal by scipy.io.loadmat (the CinC files are MATLAB v4
files with a 24-byte preamble, the header's "16+24" format); the two are then checked against
each other. Every problem raises `RecordError` with a message naming the file, which the
directory loader turns into a quarantine entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
import wfdb

from data_io.errors import RecordError

INT16_MIN, INT16_MAX = -32768, 32767


@dataclass(frozen=True)
class SingleLead:
    """One validated record.

    Attributes:
        digital: samples in digital units with the header's baseline removed, int16.
        fs_hz: sampling rate from the header.
        adc_gain: digital units per physical unit.
        units: physical unit of the gain (``"mV"`` for CinC).
    """

    digital: np.ndarray
    fs_hz: float
    adc_gain: float
    units: str


def read_single_lead(directory: Path, record: str, *, expected_fs_hz: float) -> SingleLead:
    """Read ``directory/record.hea`` and its `.mat` signal, checking that they agree.

    Raises:
        RecordError: the header cannot be parsed, is not single-lead, has another sampling
            rate, names another record or file; the `.mat` is missing, truncated, holds another
            length than the header declares, non-finite or non-integer values.
    """
    header = _read_header(directory, record)
    _check_header(header, record=record, expected_fs_hz=expected_fs_hz)
    mat_path = directory / header.file_name[0]
    values = _read_mat(mat_path, record=record)
    if values.size != header.sig_len:
        raise RecordError(
            f"{mat_path.name} holds {values.size} samples but {record}.hea declares "
            f"{header.sig_len}: header and signal disagree (truncated or edited file)"
        )
    digital = _to_int16(values, baseline=int(header.baseline[0]), mat_name=mat_path.name)
    return SingleLead(
        digital=digital,
        fs_hz=float(header.fs),
        adc_gain=float(header.adc_gain[0]),
        units=str(header.units[0] or "mV"),
    )


def _read_header(directory: Path, record: str) -> wfdb.Record:
    hea = directory / f"{record}.hea"
    try:
        return wfdb.rdheader(str(directory / record))
    except Exception as exc:  # wfdb raises bare ValueErrors, IndexErrors and more
        raise RecordError(f"{hea.name}: cannot parse WFDB header ({exc})") from exc


def _check_header(header: wfdb.Record, *, record: str, expected_fs_hz: float) -> None:
    hea = f"{record}.hea"
    if header.record_name != record:
        raise RecordError(
            f"{hea}: header names record '{header.record_name}', not '{record}' "
            "(copied or renamed file: duplicate id)"
        )
    if header.n_sig != 1:
        raise RecordError(f"{hea}: {header.n_sig} signals, expected a single lead")
    if not np.isclose(float(header.fs), expected_fs_hz):
        raise RecordError(
            f"{hea}: sampling rate {float(header.fs):g} Hz, expected {expected_fs_hz:g} Hz"
        )
    if not header.sig_len:
        raise RecordError(f"{hea}: signal length is 0 (empty record)")
    if not header.file_name or not header.file_name[0].endswith(".mat"):
        raise RecordError(f"{hea}: signal file {header.file_name} is not a .mat file")
    if not header.adc_gain or float(header.adc_gain[0]) <= 0:
        raise RecordError(f"{hea}: ADC gain {header.adc_gain} is not positive")


def _read_mat(mat_path: Path, *, record: str) -> np.ndarray:
    if not mat_path.is_file():
        raise RecordError(f"{mat_path.name}: signal file named by {record}.hea is missing")
    try:
        contents = scipy.io.loadmat(str(mat_path), variable_names=["val"])
    except Exception as exc:  # scipy raises MatReadError, ValueError, OSError on damage
        raise RecordError(f"{mat_path.name}: cannot read MATLAB file, truncated? ({exc})") from exc
    if "val" not in contents:
        raise RecordError(f"{mat_path.name}: no variable 'val' (not a CinC/WFDB .mat file)")
    values = np.asarray(contents["val"])
    if values.ndim > 2 or (values.ndim == 2 and min(values.shape) != 1):
        raise RecordError(f"{mat_path.name}: signal of shape {values.shape}, expected one lead")
    return values.reshape(-1)


def _to_int16(values: np.ndarray, *, baseline: int, mat_name: str) -> np.ndarray:
    if values.size == 0:
        raise RecordError(f"{mat_name}: signal has no samples")
    if np.issubdtype(values.dtype, np.floating):
        n_bad = int(np.count_nonzero(~np.isfinite(values)))
        if n_bad:
            raise RecordError(
                f"{mat_name}: {n_bad} of {values.size} samples are NaN or infinite"
            )
        if not np.array_equal(values, np.round(values)):
            raise RecordError(f"{mat_name}: non-integer samples; expected digital ADC units")
    elif not np.issubdtype(values.dtype, np.integer):
        raise RecordError(f"{mat_name}: samples of type {values.dtype}, expected integers")
    shifted = values.astype(np.int64) - baseline
    if shifted.min() < INT16_MIN or shifted.max() > INT16_MAX:
        raise RecordError(f"{mat_name}: samples outside the 16-bit range of the format")
    return shifted.astype(np.int16)
