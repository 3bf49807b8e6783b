"""Parsing of the CinC 2017 label file (`REFERENCE.csv`: `record,label`, one per line).

Real copies of the data set differ in small ways: a header line, CRLF line ends, a UTF-8 byte
order mark, spaces around fields, blank lines. Those are tolerated. Problems that make a label
untrustworthy (unknown label, a record listed twice, a malformed line) are returned as
quarantine entries naming the file and line, so the rest of the set still loads.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from data_io.records import Quarantined

REFERENCE_NAMES: tuple[str, ...] = ("REFERENCE.csv", "REFERENCE-v3.csv")
"""Label files looked for, in order (PhysioNet ships the final labels under either name)."""


@dataclass(frozen=True)
class Reference:
    """Labels read from a reference file.

    Attributes:
        path: the file read.
        labels: record id -> label, only for lines that passed every check.
        problems: records whose label could not be trusted, with the reason.
    """

    path: Path
    labels: dict[str, str]
    problems: tuple[Quarantined, ...]


def find_reference(directory: Path, *, names: tuple[str, ...] = REFERENCE_NAMES) -> Path | None:
    """The first of ``names`` (CinC's `REFERENCE_NAMES` by default) present in ``directory``,
    or None."""
    for name in names:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def read_reference(
    path: Path, *, classes: tuple[str, ...], known_records: set[str] | frozenset[str] = frozenset()
) -> Reference:
    """Read ``path`` into labels plus quarantine entries.

    Args:
        path: the reference file.
        classes: the label alphabet; any other label is a problem.
        known_records: ids that have files; a first line whose id is not one of them and whose
            label is not a class is taken for a header line and skipped.
    """
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    rows = list(csv.reader(io.StringIO(text)))
    seen: dict[str, list[tuple[int, str]]] = {}
    problems: list[Quarantined] = []
    for line_no, row in enumerate(rows, start=1):
        fields = [f.strip() for f in row]
        if not any(fields):
            continue
        if line_no == 1 and _is_header(fields, classes=classes, known_records=known_records):
            continue
        if len(fields) < 2 or not fields[0]:
            problems.append(
                Quarantined(
                    record=fields[0] or f"<line {line_no}>",
                    reason=f"{path.name} line {line_no}: expected 'record,label', got {row!r}",
                )
            )
            continue
        seen.setdefault(fields[0], []).append((line_no, fields[1]))

    labels: dict[str, str] = {}
    for record, entries in seen.items():
        problem = _entry_problem(path.name, record, entries, classes=classes)
        if problem is None:
            labels[record] = entries[0][1]
        else:
            problems.append(Quarantined(record=record, reason=problem))
    return Reference(path=path, labels=labels, problems=tuple(problems))


def _is_header(
    fields: list[str], *, classes: tuple[str, ...], known_records: set[str] | frozenset[str]
) -> bool:
    label = fields[1] if len(fields) > 1 else ""
    return label not in classes and fields[0] not in known_records


def _entry_problem(
    file_name: str, record: str, entries: list[tuple[int, str]], *, classes: tuple[str, ...]
) -> str | None:
    if len(entries) > 1:
        listed = ", ".join(f"line {n} '{label}'" for n, label in entries)
        return f"{file_name} lists {record} {len(entries)} times ({listed}): duplicate id"
    line_no, label = entries[0]
    if label not in classes:
        return (
            f"{file_name} line {line_no}: unknown label '{label}' for {record} "
            f"(expected one of {', '.join(classes)})"
        )
    return None
