"""The numpy-records data set: a folder of .npy records, labels.csv and records.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from data_io.cache import load_cached
from data_io.datasets import load_dataset
from data_io.errors import DatasetError
from data_io.numpy_records import load_numpy_records

DATASET = load_dataset("numpy-records")
FS_HZ = 200.0


def write_folder(directory: Path, records: dict[str, tuple[np.ndarray, str]], *,
                 sidecar: dict | None = None) -> Path:
    """``records``: id -> (array, label); a sidecar with FS_HZ unless given."""
    directory.mkdir(parents=True, exist_ok=True)
    for record_id, (array, _) in records.items():
        np.save(directory / f"{record_id}.npy", array)
    (directory / "labels.csv").write_text(
        "record,label\n" + "".join(f"{r},{label}\n" for r, (_, label) in records.items()))
    (directory / "records.json").write_text(json.dumps(sidecar or {"fs_hz": FS_HZ}))
    return directory


def good_records(*, n_leads: int, n: int = 6, seconds: float = 5.0) -> dict:
    rng = np.random.default_rng(n_leads)
    shape = (int(seconds * FS_HZ),) if n_leads == 1 else (n_leads, int(seconds * FS_HZ))
    return {f"R{i:02d}": ((0.5 * rng.standard_normal(shape)).astype(np.float32), "NAO~"[i % 4])
            for i in range(n)}


def load(directory: Path):
    return load_numpy_records(directory, classes=DATASET.labels,
                              label_files=tuple(DATASET.facts["label_files"]),
                              min_record_s=float(DATASET.facts["min_record_s"]), progress=False)


@pytest.mark.parametrize("n_leads", [1, 2, 3])
def test_records_load_with_their_leads_rate_and_labels(tmp_path, n_leads):
    records = good_records(n_leads=n_leads)
    arrays = load(write_folder(tmp_path, records))
    assert arrays.n_leads == n_leads and arrays.fs_hz == FS_HZ and not arrays.quarantined
    assert arrays.record_ids == tuple(sorted(records))
    assert arrays.label_names == [records[r][1] for r in arrays.record_ids]
    for i, record_id in enumerate(arrays.record_ids):
        # Stored as int16 at 1000 units per mV: within half a unit of the input.
        np.testing.assert_allclose(arrays.signal(i), records[record_id][0], atol=0.5e-3 + 1e-7)


def test_the_registry_loads_a_folder_through_the_cache_at_the_study_rate(tmp_path):
    folder = write_folder(tmp_path / "data", good_records(n_leads=2))
    arrays = load_cached("numpy-records", folder, fs_hz=100.0, cache_dir=tmp_path / "cache",
                         progress=False)
    assert arrays.fs_hz == 100.0 and arrays.n_leads == 2
    assert int(arrays.lengths[0]) == 500  # 5 s at 100 Hz
    # The sidecar is a source file: another rate gives another cache entry.
    (folder / "records.json").write_text(json.dumps({"fs_hz": 2 * FS_HZ}))
    again = load_cached("numpy-records", folder, fs_hz=100.0, cache_dir=tmp_path / "cache",
                        progress=False)
    assert int(again.lengths[0]) == 250
    assert len(list((tmp_path / "cache").glob("numpy-records-*[!k]"))) == 2


BAD = {
    "wrong_ndim": (np.zeros((2, 2, 1000), np.float32), "N", r"wrong_ndim\.npy has shape "
                   r"\(2, 2, 1000\): expected \(T,\) for one lead or \(leads, T\)"),
    "transposed": (np.zeros((1000, 2), np.float32), "N", r"transposed\.npy .* not \(T, leads\)"),
    "has_nan": (np.where(np.arange(1000) % 7, 0.1, np.nan).reshape(1, 1000).repeat(2, 0), "N",
                r"has_nan\.npy holds 286 non-finite"),
    "unknown_label": (np.zeros((2, 1000), np.float32), "X",
                      r"labels\.csv line \d+: unknown label 'X' for unknown_label"),
    "too_short": (np.zeros((2, 300), np.float32), "N",
                  r"too_short\.npy is too short: 300 samples, 1\.5 s at 200 Hz"),
    "one_lead": (np.zeros(1000, np.float32), "N",
                 r"one_lead\.npy has 1 lead\(s\); the data set's records have 2"),
    "in_volts": (np.full((2, 1000), 40.0), "N", r"in_volts\.npy reaches 40 mV, beyond the int16"),
    "text": (np.array(["a", "b"]), "N", r"text\.npy holds <U1 values"),
}


@pytest.mark.parametrize("bad", sorted(BAD))
def test_a_bad_record_is_quarantined_with_its_file_and_problem(tmp_path, bad):
    array, label, reason = BAD[bad]
    records = {**good_records(n_leads=2), bad: (array, label)}
    arrays = load(write_folder(tmp_path, records))
    assert [q.record for q in arrays.quarantined] == [bad]
    assert re.search(reason, arrays.quarantined[0].reason), arrays.quarantined[0].reason
    assert len(arrays) == len(records) - 1 and arrays.n_leads == 2


def test_files_and_labels_that_do_not_match_are_quarantined(tmp_path):
    folder = write_folder(tmp_path, good_records(n_leads=1))
    np.save(folder / "unlabelled.npy", np.zeros(1000, np.float32))
    (folder / "labels.csv").write_text((folder / "labels.csv").read_text() + "absent,N\n")
    (folder / "garbage.npy").write_bytes(b"not an array")
    (folder / "labels.csv").write_text((folder / "labels.csv").read_text() + "garbage,N\n")
    reasons = {q.record: q.reason for q in load(folder).quarantined}
    assert reasons["unlabelled"] == "unlabelled.npy present but unlabelled has no label in " \
                                    "labels.csv"
    assert reasons["absent"] == "labels.csv labels absent but absent.npy is missing"
    assert reasons["garbage"].startswith("garbage.npy cannot be read as a NumPy array")


def test_the_sidecar_lead_count_wins_over_the_majority(tmp_path):
    records = {**good_records(n_leads=1, n=4), **{f"T{i}": (np.zeros((2, 1000)), "N")
                                                   for i in range(2)}}
    folder = write_folder(tmp_path, records, sidecar={"fs_hz": FS_HZ, "n_leads": 2})
    arrays = load(folder)
    assert arrays.record_ids == ("T0", "T1") and arrays.n_leads == 2
    assert all("has 1 lead(s); the data set's records have 2" in q.reason
               for q in arrays.quarantined)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: (d / "records.json").unlink(), r"has no records\.json"),
    (lambda d: (d / "records.json").write_text("{}"), r"records\.json lacks fs_hz"),
    (lambda d: (d / "records.json").write_text('{"fs_hz": -5}'),
     r"fs_hz must be a positive number, got -5"),
    (lambda d: (d / "records.json").write_text('{"fs_hz": 250, "rate": 1}'),
     r"unknown key\(s\) \['rate'\]"),
    (lambda d: (d / "records.json").write_text("[250]"), r"must hold a JSON object"),
    (lambda d: (d / "labels.csv").unlink(), r"has no label file \(labels\.csv\)"),
    (lambda d: [p.unlink() for p in d.glob("*.npy")], r"holds no \.npy records"),
])
def test_an_unusable_folder_is_refused_with_what_is_wrong(tmp_path, change, message):
    folder = write_folder(tmp_path / "data", good_records(n_leads=1))
    change(folder)
    with pytest.raises(DatasetError, match=message):
        DATASET.check(folder)
    with pytest.raises(DatasetError, match=message):
        load(folder)


def test_nothing_loadable_names_the_problems(tmp_path):
    folder = write_folder(tmp_path, {"R1": (np.zeros(10), "N")})
    with pytest.raises(DatasetError, match=r"no record of .* could be loaded: R1\.npy is too "):
        load(folder)
