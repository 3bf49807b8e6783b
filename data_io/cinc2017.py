"""Loading a PhysioNet/CinC 2017 directory: WFDB `.hea` + `.mat` per record and a label file.

Every record is validated (see `data_io.wfdb_record`); a bad record is quarantined with a
reason naming the file and the problem, and the load goes on. Only a directory that cannot be
used at all (missing, no records, no label file, nothing loadable) raises `DatasetError`.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from data_io.datasets import load_dataset
from data_io.errors import DatasetError, RecordError
from data_io.records import EcgArrays, Quarantined, pack_records
from data_io.reference import REFERENCE_NAMES, find_reference, read_reference
from data_io.wfdb_record import SingleLead, read_single_lead

MANUAL_DOWNLOAD_HINT = (
    "download training2017.zip from https://physionet.org/content/challenge-2017/1.0.0/, "
    "unzip it and pass the folder holding A00001.hea, A00001.mat, ... and REFERENCE.csv "
    "(or run `python -m data_io.fetch cinc2017 --dest DIR` on a machine with internet)"
)


@dataclass(frozen=True)
class DirectoryListing:
    """What a CinC directory holds, by record id."""

    headers: frozenset[str]
    signals: frozenset[str]
    records_file: tuple[str, ...]
    reference: Path | None


def list_directory(directory: Path) -> DirectoryListing:
    """Scan ``directory`` once (no recursion) for headers, `.mat` files and index files."""
    headers: set[str] = set()
    signals: set[str] = set()
    with os.scandir(directory) as entries:
        for entry in entries:
            stem, _, ext = entry.name.rpartition(".")
            if ext == "hea":
                headers.add(stem)
            elif ext == "mat":
                signals.add(stem)
    records_path = directory / "RECORDS"
    records_file: tuple[str, ...] = ()
    if records_path.is_file():
        names = records_path.read_text(encoding="utf-8", errors="replace").split()
        records_file = tuple(Path(n).name for n in names)
    return DirectoryListing(
        headers=frozenset(headers),
        signals=frozenset(signals),
        records_file=records_file,
        reference=find_reference(directory),
    )


def cinc_facts() -> dict:
    """The facts of the ``cinc2017`` data set (classes, source rate), from its JSON."""
    return dict(load_dataset("cinc2017").facts)


def load_cinc2017(
    directory: str | Path,
    *,
    classes: tuple[str, ...] | None = None,
    expected_fs_hz: float | None = None,
    progress: bool = True,
) -> EcgArrays:
    """Read and validate every record of a CinC 2017 directory.

    Args:
        directory: folder with `<id>.hea`, `<id>.mat`, `REFERENCE.csv` and optionally `RECORDS`.
        classes: label alphabet in class-index order (default: the cinc2017 data set's).
        expected_fs_hz: records at any other rate are quarantined (default: the data set's
            source rate).
        progress: show a progress bar on stderr.

    Returns:
        The good records in id order, with the quarantined ones listed in ``quarantined``.

    Raises:
        DatasetError: the directory is missing, holds no records or no label file, or no
            record could be loaded.
    """
    if classes is None or expected_fs_hz is None:
        facts = cinc_facts()
        classes = classes or tuple(c["label"] for c in facts["classes"])
        expected_fs_hz = expected_fs_hz or float(facts["source_fs_hz"])
    directory = Path(directory).expanduser()
    listing = checked_listing(directory)
    reference = read_reference(
        listing.reference, classes=classes, known_records=listing.headers | listing.signals
    )
    quarantined: list[Quarantined] = list(reference.problems)
    unusable = {q.record for q in quarantined}
    candidates = sorted(
        (listing.headers | listing.signals | set(reference.labels) | set(listing.records_file))
        - unusable
    )
    loaded: dict[str, SingleLead] = {}
    for record in tqdm(
        candidates, desc=f"reading {directory.name}", unit="rec", disable=not progress,
        mininterval=0.5,
    ):
        try:
            _check_files(record, listing=listing, labels=reference.labels)
            loaded[record] = read_single_lead(directory, record, expected_fs_hz=expected_fs_hz)
        except RecordError as exc:
            quarantined.append(Quarantined(record=record, reason=str(exc)))
    loaded, gain_problems = _common_gain(loaded)
    quarantined.extend(gain_problems)
    if not loaded:
        raise DatasetError(_nothing_loaded_message(directory, quarantined))
    records = sorted(loaded)
    return pack_records(
        digital_signals=[loaded[r].digital for r in records],
        record_ids=records,
        labels=[classes.index(reference.labels[r]) for r in records],
        classes=tuple(classes),
        fs_hz=expected_fs_hz,
        adc_gain=next(iter(loaded.values())).adc_gain,
        quarantined=sorted(quarantined, key=lambda q: q.record),
    )


def checked_listing(directory: Path) -> DirectoryListing:
    """The listing of ``directory``, or `DatasetError` when it cannot be a CinC directory."""
    if not directory.exists():
        raise DatasetError(f"data directory {directory} does not exist; {MANUAL_DOWNLOAD_HINT}")
    if not directory.is_dir():
        raise DatasetError(f"{directory} is not a directory; {MANUAL_DOWNLOAD_HINT}")
    listing = list_directory(directory)
    if not listing.headers and not listing.signals:
        raise DatasetError(
            f"{directory} holds no WFDB records (no .hea or .mat files); {MANUAL_DOWNLOAD_HINT}"
        )
    if listing.reference is None:
        raise DatasetError(
            f"{directory} has no label file ({' or '.join(REFERENCE_NAMES)} with lines "
            "'record,label', labels N, A, O or ~)"
        )
    return listing


def _check_files(record: str, *, listing: DirectoryListing, labels: dict[str, str]) -> None:
    has_hea, has_mat = record in listing.headers, record in listing.signals
    label_file = listing.reference.name if listing.reference else "the label file"
    if record not in labels:
        present = " and ".join(
            name for name, ok in ((f"{record}.hea", has_hea), (f"{record}.mat", has_mat)) if ok
        )
        raise RecordError(f"{present or record} present but {record} has no label in {label_file}")
    if not has_hea:
        raise RecordError(f"{label_file} labels {record} but {record}.hea is missing")
    if not has_mat:
        raise RecordError(f"{label_file} labels {record} but {record}.mat is missing")


def _common_gain(
    loaded: dict[str, SingleLead],
) -> tuple[dict[str, SingleLead], list[Quarantined]]:
    """Keep records with the data set's usual gain, so one int16 array plus one gain holds all."""
    if not loaded:
        return loaded, []
    usual, _ = Counter(lead.adc_gain for lead in loaded.values()).most_common(1)[0]
    kept = {r: lead for r, lead in loaded.items() if np.isclose(lead.adc_gain, usual)}
    problems = [
        Quarantined(
            record=r,
            reason=f"{r}.hea: gain {lead.adc_gain:g}/{lead.units} differs from the data "
            f"set's {usual:g}/{lead.units}",
        )
        for r, lead in loaded.items()
        if r not in kept
    ]
    return kept, problems


def _nothing_loaded_message(directory: Path, quarantined: list[Quarantined]) -> str:
    shown = "; ".join(q.reason for q in quarantined[:5])
    more = f" (and {len(quarantined) - 5} more)" if len(quarantined) > 5 else ""
    return f"no record of {directory} could be loaded: {shown}{more}"
