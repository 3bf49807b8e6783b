"""Explanations of a trained trial on MIT-BIH windows with annotated abnormal beats.

With ``--mitdb-dir`` a study writes, for each best trial, `trials/<id>/mitdb_explanations.npz`:
the arrays of `explanations.npz` (signal, lengths, the family's own maps, occlusion, the shift
perturbation towards Normal; see `study.explain.artifacts.explain_records`) for up to
`MITDB_MAX_WINDOWS`
30-s windows of lead MLII resampled to the study rate (`data_io.mitdb.rhythm_windows`), each
holding at least one abnormal beat, plus the ground truth `reports` scores the maps against:

- ``mask``: (B, T) uint8, 1 over the span of every non-normal beat, aligned with ``signal``;
- ``window_start_s``: (B,) start of each window in seconds from its record's start;
- ``source_record``: (B,) the MIT-BIH record each window comes from.

Windows are taken round-robin over the records (the first abnormal window of every record,
then the second, ...), so a few records with many ectopic beats do not fill the cap. Every
window is labelled with the study data set's ``mitdb_window_class`` (CinC 2017: "O"): ectopic
beats in an otherwise regular rhythm are what CinC 2017 calls other rhythm, so ``y_true`` and
the true-class maps (CAM) refer to that class. Rhythm
annotations are not read: a window inside an AF episode (records 201, 202, 203, 210, 219,
221, 222) is labelled O too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_io.mitdb import MitbihRecord, list_records, read_record, rhythm_windows
from data_io.records import EcgArrays, Quarantined, pack_records
from study.cli_choices import MITDB_LEAD, MITDB_MAX_WINDOWS, MITDB_WINDOW_S
from study.engine.config import resolve_config
from study.explain.artifacts import explain_records, load_trained, write_npz
from study.folder_format import MITDB_EXPLANATIONS

ADC_GAIN = 1000.0
"""Digital units per millivolt of the packed windows: 1 uV steps, +-32 mV fit in int16."""


@dataclass(frozen=True)
class AbnormalWindows:
    """MIT-BIH windows holding at least one abnormal beat, packed for the explainers.

    Attributes:
        arrays: the windows, int16 at `ADC_GAIN` units per mV, all labelled ``window_label``,
            named ``<record>_<start>s``.
        masks: uint8, 1 over every non-normal beat's span, shape (n_windows, window_samples),
            row i belongs to record i of ``arrays``.
        start_s: window start in seconds from its record's start, shape (n_windows,).
        source_records: MIT-BIH record of each window.
        skipped: records left out (unreadable, or without the lead), with the reason.
    """

    arrays: EcgArrays
    masks: np.ndarray
    start_s: np.ndarray
    source_records: tuple[str, ...]
    skipped: tuple[Quarantined, ...]

    def __len__(self) -> int:
        return len(self.arrays)


@dataclass(frozen=True)
class _Window:
    record: str
    start_s: float
    signal: np.ndarray  # (T,) float32 mV
    mask: np.ndarray  # (T,) uint8


def abnormal_windows(
    directory: str | Path,
    *,
    fs_hz: float,
    classes: Sequence[str],
    window_label: str,
    max_windows: int = MITDB_MAX_WINDOWS,
    log: Callable[[str], None] | None = None,
) -> AbnormalWindows:
    """Up to ``max_windows`` `MITDB_WINDOW_S` windows of `MITDB_LEAD` with abnormal beats, at
    ``fs_hz``.

    Args:
        directory: MIT-BIH folder (`.hea`, `.dat`, `.atr`; a RECORDS file is optional).
        fs_hz: rate of the windows (the study's rate).
        classes: label alphabet of the model; must hold ``window_label``.
        window_label: the class every window is labelled with.
        max_windows: cap on the windows kept, taken round-robin over the records.
        log: receives one line per record read.

    Raises:
        FileNotFoundError: ``directory`` does not exist.
        ValueError: ``fs_hz`` cannot be reached exactly from a record's rate, or ``classes``
            lacks ``window_label``.
    """
    if window_label not in classes:
        raise ValueError(f"classes {tuple(classes)} have no {window_label!r} for the windows")
    if max_windows < 1:
        raise ValueError(f"max_windows must be at least 1, got {max_windows}")
    per_record: list[list[_Window]] = []
    skipped: list[Quarantined] = []
    for name in list_records(directory):
        try:
            record = read_record(directory=directory, record=name)
        except (FileNotFoundError, ValueError) as exc:  # RecordError is a ValueError
            skipped.append(Quarantined(record=name, reason=str(exc)))
            status = f"skipped ({exc})"
        else:
            if MITDB_LEAD in record.lead_names:
                per_record.append(_record_windows(record, fs_hz=fs_hz, max_windows=max_windows))
                status = f"{len(per_record[-1])} window(s) with abnormal beats kept"
            else:
                reason = f"no lead {MITDB_LEAD} (leads {', '.join(record.lead_names)})"
                skipped.append(Quarantined(record=name, reason=reason))
                status = f"skipped ({reason})"
        if log:
            log(f"MIT-BIH {name}: {status}")
    chosen = _round_robin(per_record, limit=max_windows)
    label = list(classes).index(window_label)
    arrays = pack_records(
        digital_signals=[_digital(w.signal) for w in chosen],
        record_ids=[f"{w.record}_{w.start_s:g}s" for w in chosen],
        labels=[label] * len(chosen),
        classes=tuple(classes),
        fs_hz=fs_hz,
        adc_gain=ADC_GAIN,
        quarantined=skipped,
    )
    width = max((len(w.mask) for w in chosen), default=0)
    masks = np.zeros((len(chosen), width), dtype=np.uint8)
    for row, window in enumerate(chosen):
        masks[row, : len(window.mask)] = window.mask
    return AbnormalWindows(
        arrays=arrays,
        masks=masks,
        start_s=np.array([w.start_s for w in chosen], dtype=np.float64),
        source_records=tuple(w.record for w in chosen),
        skipped=tuple(skipped),
    )


def _record_windows(record: MitbihRecord, *, fs_hz: float, max_windows: int) -> list[_Window]:
    """The first ``max_windows`` windows of one record with an abnormal beat and finite
    samples (a record cannot give more than the cap to the round-robin)."""
    windows = rhythm_windows(record, lead=MITDB_LEAD, window_s=MITDB_WINDOW_S, target_fs_hz=fs_hz)
    if not np.isclose(windows.fs_hz, fs_hz, rtol=0, atol=1e-6):
        raise ValueError(f"MIT-BIH {record.record}: the study rate {fs_hz:g} Hz is not "
                         f"reachable by rational resampling (got {windows.fs_hz} Hz)")
    keep = windows.masks.any(axis=1) & np.isfinite(windows.signals).all(axis=1)
    return [
        _Window(record=record.record, start_s=float(windows.start_s[w]), signal=windows.signals[w],
                mask=windows.masks[w])
        for w in np.flatnonzero(keep)[:max_windows]
    ]


def _round_robin(per_record: list[list[_Window]], *, limit: int) -> list[_Window]:
    chosen: list[_Window] = []
    depth = 0
    while len(chosen) < limit and any(depth < len(windows) for windows in per_record):
        chosen.extend(windows[depth] for windows in per_record if depth < len(windows))
        depth += 1
    return chosen[:limit]


def _digital(signal_mv: np.ndarray) -> np.ndarray:
    """Millivolts -> int16 at `ADC_GAIN` units per mV (clipped to the int16 range)."""
    info = np.iinfo(np.int16)
    return np.clip(np.rint(signal_mv * ADC_GAIN), info.min, info.max).astype(np.int16)


def mitdb_explanation_arrays(
    *,
    checkpoint_file: Path,
    mitdb_dir: str | Path,
    fs_hz: float,
    classes: Sequence[str],
    window_label: str,
    normal_class: int | None,
    max_windows: int = MITDB_MAX_WINDOWS,
    log: Callable[[str], None] | None = None,
) -> dict[str, np.ndarray] | None:
    """The arrays of `mitdb_explanations.npz` for one trained trial (see the module
    docstring), or None when no window of ``mitdb_dir`` holds an abnormal beat."""
    windows = abnormal_windows(mitdb_dir, fs_hz=fs_hz, classes=classes,
                               window_label=window_label, max_windows=max_windows, log=log)
    if not len(windows):
        return None
    if log:
        log(f"explaining {len(windows)} MIT-BIH window(s) from "
            f"{len(set(windows.source_records))} record(s) ...")
    model, config = load_trained(checkpoint_file)
    explained = explain_records(model, arrays=windows.arrays,
                                indices=np.arange(len(windows)), cfg=resolve_config(config),
                                normal_class=normal_class)
    # The loader may reorder the windows; record_ids name its rows.
    position = {record_id: i for i, record_id in enumerate(windows.arrays.record_ids)}
    order = np.array([position[str(r)] for r in explained["record_ids"]], dtype=np.int64)
    n_samples = explained["signal"].shape[-1]
    mask = np.zeros((len(order), n_samples), dtype=np.uint8)  # (B, T), zero in any padding
    width = min(n_samples, windows.masks.shape[1])
    mask[:, :width] = windows.masks[order, :width]
    return {
        **explained,
        "mask": mask,
        "window_start_s": windows.start_s[order],
        "source_record": np.array(windows.source_records)[order],
    }


def write_mitdb_explanations(
    *,
    checkpoint_file: Path,
    mitdb_dir: str | Path,
    fs_hz: float,
    out_dir: Path,
    classes: Sequence[str],
    window_label: str,
    normal_class: int | None,
    max_windows: int = MITDB_MAX_WINDOWS,
    log: Callable[[str], None] | None = None,
) -> Path | None:
    """Write `out_dir/mitdb_explanations.npz` for one trained trial; returns its path, or None
    (nothing written) when no window holds an abnormal beat.

    Args:
        checkpoint_file: the trial's trainer checkpoint.
        mitdb_dir: MIT-BIH folder; every record in it is read.
        fs_hz: the study's rate (the model's input rate).
        out_dir: the trial's artefact directory.
        classes: the model's label alphabet.
        window_label: the class the windows are labelled with.
        normal_class: target class of the shift perturbation (None: not run).
        max_windows: cap on the windows explained.
        log: receives progress lines.
    """
    arrays = mitdb_explanation_arrays(checkpoint_file=checkpoint_file, mitdb_dir=mitdb_dir,
                                      fs_hz=fs_hz, classes=classes,
                                      window_label=window_label, normal_class=normal_class,
                                      max_windows=max_windows, log=log)
    if arrays is None:
        if log:
            log(f"no MIT-BIH window in {mitdb_dir} holds an abnormal beat; "
                f"{MITDB_EXPLANATIONS} not written")
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / MITDB_EXPLANATIONS
    write_npz(path, arrays)
    return path
