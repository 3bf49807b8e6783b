"""Loading and validating CinC 2017 directories, including every kind of damaged copy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from data_io import inspect as inspect_cli
from data_io.cinc2017 import load_cinc2017
from data_io.errors import DatasetError


def test_loads_every_record_with_labels_and_lengths(small_cinc):
    directory, labels = small_cinc
    arrays = load_cinc2017(directory, progress=False)
    assert arrays.record_ids == tuple(sorted(labels))
    assert arrays.label_names == [labels[r] for r in arrays.record_ids]
    assert arrays.quarantined == ()
    assert arrays.fs_hz == 300.0
    assert arrays.lengths[0] == 9 * 300
    assert arrays.signal(0).dtype == np.float32
    assert abs(float(np.max(np.abs(arrays.signal(0)))) - 0.8) < 0.25


def test_tolerates_header_line_crlf_bom_and_no_records_file(small_cinc):
    directory, labels = small_cinc
    lines = [f"{r},{lab}" for r, lab in labels.items()]
    text = "\ufeffRecording,Label\r\n" + "\r\n".join(lines) + "\r\n\r\n"
    (directory / "REFERENCE.csv").write_bytes(text.encode("utf-8"))
    (directory / "RECORDS").unlink()
    arrays = load_cinc2017(directory, progress=False)
    assert len(arrays) == len(labels)
    assert arrays.quarantined == ()


def _truncate_mat(directory: Path, record: str) -> None:
    path = directory / f"{record}.mat"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _header_length_disagrees(directory: Path, record: str) -> None:
    path = directory / f"{record}.hea"
    first, rest = path.read_text().split("\n", 1)
    fields = first.split()
    fields[3] = str(int(fields[3]) + 300)
    path.write_text(" ".join(fields) + "\n" + rest)


def _wrong_sampling_rate(directory: Path, record: str) -> None:
    path = directory / f"{record}.hea"
    first, rest = path.read_text().split("\n", 1)
    fields = first.split()
    fields[2] = "250"
    path.write_text(" ".join(fields) + "\n" + rest)


def _nan_samples(directory: Path, record: str) -> None:
    path = directory / f"{record}.mat"
    values = scipy.io.loadmat(str(path))["val"].astype(np.float64)
    values[0, 100:110] = np.nan
    scipy.io.savemat(str(path), {"val": values}, format="4")


def _edit_reference(directory: Path, edit) -> None:
    path = directory / "REFERENCE.csv"
    path.write_text("".join(edit(line) + "\n" for line in path.read_text().splitlines()))


def _unknown_label(directory: Path, record: str) -> None:
    _edit_reference(directory, lambda line: f"{record},X" if line.startswith(record) else line)


def _label_without_files(directory: Path, record: str) -> None:
    (directory / f"{record}.hea").unlink()
    (directory / f"{record}.mat").unlink()


def _files_without_label(directory: Path, record: str) -> None:
    _edit_reference(directory, lambda line: "" if line.startswith(record) else line)


def _duplicate_id(directory: Path, record: str) -> None:
    with (directory / "REFERENCE.csv").open("a") as fh:
        fh.write(f"{record},O\n")


def _signal_missing(directory: Path, record: str) -> None:
    (directory / f"{record}.mat").unlink()


def _copied_header(directory: Path, record: str) -> None:
    # A header copied from another record keeps that record's name inside.
    shutil.copy(directory / "A00001.hea", directory / f"{record}.hea")


DAMAGES = {
    "truncated_mat": (_truncate_mat, ".mat"),
    "header_length_disagrees": (_header_length_disagrees, "declares"),
    "wrong_sampling_rate": (_wrong_sampling_rate, "sampling rate 250 Hz"),
    "nan_samples": (_nan_samples, "NaN"),
    "unknown_label": (_unknown_label, "unknown label 'X'"),
    "label_without_files": (_label_without_files, ".hea is missing"),
    "files_without_label": (_files_without_label, "has no label"),
    "duplicate_id": (_duplicate_id, "duplicate id"),
    "signal_missing": (_signal_missing, ".mat is missing"),
    "copied_header": (_copied_header, "header names record 'A00001'"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_record_is_quarantined_and_the_rest_loads(small_cinc, damage):
    directory, labels = small_cinc
    damage_fn, expected_words = DAMAGES[damage]
    victim = "A00005"
    damage_fn(directory, victim)
    arrays = load_cinc2017(directory, progress=False)
    assert victim not in arrays.record_ids
    assert len(arrays) == len(labels) - 1
    reasons = {q.record: q.reason for q in arrays.quarantined}
    assert list(reasons) == [victim]
    assert expected_words in reasons[victim]
    assert victim in reasons[victim] or "REFERENCE.csv" in reasons[victim]


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_inspect_reports_damage_and_exits_zero(small_cinc, damage, capsys):
    directory, labels = small_cinc
    DAMAGES[damage][0](directory, "A00003")
    assert inspect_cli.main([str(directory), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["records"] == len(labels) - 1
    assert [q["record"] for q in summary["quarantined"]] == ["A00003"]
    assert sum(summary["classes"].values()) == len(labels) - 1


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_cinc2017(tmp_path / "nowhere", progress=False)


def test_empty_directory_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="holds no WFDB records"):
        load_cinc2017(tmp_path, progress=False)


def test_directory_without_labels_is_a_clear_error(small_cinc):
    directory, _ = small_cinc
    (directory / "REFERENCE.csv").unlink()
    with pytest.raises(DatasetError, match="no label file"):
        load_cinc2017(directory, progress=False)


def test_nothing_loadable_is_a_clear_error(small_cinc):
    directory, labels = small_cinc
    for record in labels:
        _wrong_sampling_rate(directory, record)
    with pytest.raises(DatasetError, match=r"no record of .* could be loaded: A00001\.hea"):
        load_cinc2017(directory, progress=False)


def test_inspect_exits_nonzero_with_one_line_error(tmp_path, capsys):
    assert inspect_cli.main([str(tmp_path / "nowhere"), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: data directory") and "Traceback" not in captured.err


def test_inspect_on_the_shared_records(shared_cinc_dir, capsys):
    assert inspect_cli.main([str(shared_cinc_dir), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["records"] == 3000
    assert summary["classes"] == {"N": 1784, "A": 299, "O": 817, "~": 100}
    assert summary["quarantined"] == []
    assert summary["fs_hz"] == 300.0
    assert 9.0 <= summary["length_s"]["min"] < 10.0
    assert 60.0 < summary["length_s"]["max"] <= 61.0
    assert summary["length_s"]["median"] == 30.0
