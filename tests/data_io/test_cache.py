"""The memory-mapped data cache: fast, keyed by sources and settings, atomic, self-checking."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from data_io import cache
from data_io.cache import load_cinc2017_cached, resolve_cache_dir
from data_io.cinc2017 import load_cinc2017
from data_io.errors import DatasetError


def _entries(cache_dir: Path) -> list[Path]:
    return sorted(p for p in cache_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def test_cached_load_equals_parse_and_is_memory_mapped(small_cinc, tmp_path):
    directory, _ = small_cinc
    parsed = load_cinc2017(directory, progress=False)
    first = load_cinc2017_cached(directory, cache_dir=tmp_path / "c", progress=False)
    second = load_cinc2017_cached(directory, cache_dir=tmp_path / "c", progress=False)
    assert isinstance(second.signals, np.memmap)
    for arrays in (first, second):
        assert arrays.record_ids == parsed.record_ids
        np.testing.assert_array_equal(arrays.signals, parsed.signals)
        np.testing.assert_array_equal(arrays.offsets, parsed.offsets)
        np.testing.assert_array_equal(arrays.labels, parsed.labels)
        assert arrays.adc_gain == parsed.adc_gain and arrays.fs_hz == parsed.fs_hz
    assert len(_entries(tmp_path / "c")) == 1


def test_quarantine_survives_the_cache(small_cinc, tmp_path):
    directory, _ = small_cinc
    (directory / "A00002.mat").write_bytes(b"damaged")
    arrays = load_cinc2017_cached(directory, cache_dir=tmp_path / "c", progress=False)
    again = load_cinc2017_cached(directory, cache_dir=tmp_path / "c", progress=False)
    assert [q.record for q in again.quarantined] == ["A00002"]
    assert again.quarantined == arrays.quarantined


def test_a_changed_source_file_selects_a_new_entry(small_cinc, tmp_path):
    directory, _ = small_cinc
    before = load_cinc2017_cached(directory, cache_dir=tmp_path / "c", progress=False)
    label_file = directory / "REFERENCE.csv"
    label_file.write_text(label_file.read_text().replace("A00001,N", "A00001,O"))
    stamp = time.time() + 5
    os.utime(label_file, (stamp, stamp))
    after = load_cinc2017_cached(directory, cache_dir=tmp_path / "c", progress=False)
    assert before.label_names[0] == "N" and after.label_names[0] == "O"
    assert len(_entries(tmp_path / "c")) == 2


def test_a_changed_setting_selects_a_new_entry(small_cinc, tmp_path):
    directory, _ = small_cinc
    full = load_cinc2017_cached(directory, cache_dir=tmp_path / "c", progress=False)
    half = load_cinc2017_cached(directory, fs_hz=150.0, cache_dir=tmp_path / "c", progress=False)
    assert half.fs_hz == 150.0
    np.testing.assert_array_equal(half.lengths, full.lengths // 2)
    assert len(_entries(tmp_path / "c")) == 2


def test_a_corrupted_entry_is_detected_and_rebuilt(small_cinc, tmp_path, caplog):
    directory, _ = small_cinc
    first = load_cinc2017_cached(directory, cache_dir=tmp_path / "c", progress=False)
    good = np.array(first.signals)  # a copy: the corruption below rewrites the mapped file
    (entry,) = _entries(tmp_path / "c")
    with pytest.raises(DatasetError):
        blob = bytearray((entry / "signals.npy").read_bytes())
        blob[-10:] = b"\x7f" * 10
        (entry / "signals.npy").write_bytes(bytes(blob))
        cache.read_entry(entry)
    rebuilt = load_cinc2017_cached(directory, cache_dir=tmp_path / "c", progress=False)
    np.testing.assert_array_equal(rebuilt.signals, good)
    assert "fails its checksum" in caplog.text
    cache.read_entry(entry)  # the entry on disk is whole again


def test_a_build_killed_midway_leaves_nothing_behind(small_cinc, tmp_path):
    directory, _ = small_cinc
    parsed = load_cinc2017(directory, progress=False)

    def dying_build():
        raise KeyboardInterrupt  # stands for a kill during the build

    with pytest.raises(KeyboardInterrupt):
        cache.cached(
            name="t",
            key="k" * 32,
            build=dying_build,
            cache_dir=tmp_path / "c",
            source=str(directory),
            settings={},
        )
    assert _entries(tmp_path / "c") == []
    assert not [p for p in (tmp_path / "c").iterdir() if ".tmp-" in p.name]
    built = cache.cached(
        name="t",
        key="k" * 32,
        build=lambda: parsed,
        cache_dir=tmp_path / "c",
        source=str(directory),
        settings={},
    )
    assert built.record_ids == parsed.record_ids


def test_leftover_temporary_directory_is_removed_on_the_next_build(small_cinc, tmp_path):
    directory, _ = small_cinc
    cache_dir = tmp_path / "c"
    load_cinc2017_cached(directory, cache_dir=cache_dir, progress=False)
    (entry,) = _entries(cache_dir)
    leftover = cache_dir / f".{entry.name}.tmp-dead"
    leftover.mkdir()
    (entry / "meta.json").unlink()  # force a rebuild of this entry
    load_cinc2017_cached(directory, cache_dir=cache_dir, progress=False)
    assert not leftover.exists()


def test_cache_dir_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("ECG_STUDY_CACHE_DIR", str(tmp_path / "env"))
    assert resolve_cache_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert resolve_cache_dir() == tmp_path / "env"
    monkeypatch.delenv("ECG_STUDY_CACHE_DIR")
    assert "ecg-study" in str(resolve_cache_dir())


def test_missing_directory_error_names_it(tmp_path):
    with pytest.raises(DatasetError, match="nowhere does not exist"):
        load_cinc2017_cached(tmp_path / "nowhere", cache_dir=tmp_path / "c", progress=False)


def _edit_meta(entry: Path, edit) -> None:
    meta_path = entry / "meta.json"
    meta_path.write_text(json.dumps(edit(json.loads(meta_path.read_text()))))


def _rename_a_record(entry: Path) -> None:
    _edit_meta(entry, lambda m: {**m, "record_ids": ["A09999", *m["record_ids"][1:]]})


def _drop_a_field(entry: Path) -> None:
    _edit_meta(entry, lambda m: {k: v for k, v in m.items() if k != "checksums"})


def _meta_not_an_object(entry: Path) -> None:
    (entry / "meta.json").write_text("[]")


def _empty_signals(entry: Path) -> None:
    (entry / "signals.npy").write_bytes(b"")


@pytest.mark.parametrize(("damage", "message"), [
    (_rename_a_record, "meta.json fails its checksum"),
    (_drop_a_field, "meta.json lacks checksums"),
    (_meta_not_an_object, "meta.json does not hold a JSON object"),
    (_empty_signals, "signals.npy is missing or unreadable"),
])
def test_damaged_metadata_or_empty_array_is_named_and_rebuilt(small_cinc, tmp_path, caplog,
                                                              damage, message):
    directory, _ = small_cinc
    parsed = load_cinc2017(directory, progress=False)
    load_cinc2017_cached(directory, cache_dir=tmp_path / "c", progress=False)
    (entry,) = _entries(tmp_path / "c")
    damage(entry)
    rebuilt = load_cinc2017_cached(directory, cache_dir=tmp_path / "c", progress=False)
    assert message in caplog.text
    assert rebuilt.record_ids == parsed.record_ids
    np.testing.assert_array_equal(rebuilt.signals, parsed.signals)


def test_files_copied_from_another_entry_are_rejected(make_cinc, tmp_path, caplog):
    older, _ = make_cinc("older", n_records=8)
    current, _ = make_cinc("current", n_records=12)
    cache_dir = tmp_path / "c"
    load_cinc2017_cached(older, cache_dir=cache_dir, progress=False)
    (older_entry,) = _entries(cache_dir)
    load_cinc2017_cached(current, cache_dir=cache_dir, progress=False)
    (current_entry,) = [e for e in _entries(cache_dir) if e != older_entry]
    for path in older_entry.iterdir():  # a whole, self-consistent entry under the wrong key
        shutil.copy(path, current_entry / path.name)
    again = load_cinc2017_cached(current, cache_dir=cache_dir, progress=False)
    assert "meta.json belongs to another cache entry" in caplog.text
    assert len(again) == 12
