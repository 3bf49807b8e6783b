"""Tests for data_io.mitdb: reading MIT-BIH records, PVC/APB segments and rhythm windows."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import wfdb

from data_io.errors import RecordError
from data_io.mitdb import (
    beat_boundaries,
    build_segments,
    list_records,
    load_beat_groups,
    read_record,
    read_records,
    rhythm_windows,
)

MITDB_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "mitdb"

# Synthetic record: 20 beats every 100 samples at 100 Hz, so beat i spans [100 i, 100 (i + 1)).
SYN_FS_HZ = 100
SYN_N_SAMPLES = 2000
SYN_PEAKS = np.arange(50, SYN_N_SAMPLES, 100)
# With max_samples=450 the beats pack four by four: segments start at 0, 400, ..., 1600.
SYN_SYMBOLS = (
    *("N", "N", "V", "N"),  # PVC segment, V spans [200, 300)
    *("L", "A", "N", "N"),  # APB segment (L is normal), A spans [500, 600)
    *("N", "V", "A", "N"),  # PVC and APB mixed: dropped
    *("N", "N", "N", "N"),  # normal only: dropped
    *("N", "F", "V", "N"),  # a fusion beat: dropped
)
SYN_NON_BEATS = {0: "+", 1000: "~", 1230: "|"}  # must not reach the record


def _write_synthetic(directory: Path, name: str = "syn") -> np.ndarray:
    """Write a two-lead record with ``SYN_SYMBOLS`` and a few non-beat annotations."""
    t = np.arange(SYN_N_SAMPLES) / SYN_FS_HZ
    signals = np.column_stack([0.5 * np.sin(2 * np.pi * t), np.linspace(-1, 1, SYN_N_SAMPLES)])
    wfdb.wrsamp(
        name,
        fs=SYN_FS_HZ,
        units=["mV", "mV"],
        sig_name=["MLII", "V5"],
        p_signal=signals,
        fmt=["16", "16"],
        adc_gain=[200.0, 200.0],
        baseline=[0, 0],
        write_dir=str(directory),
    )
    marks = sorted([*zip(SYN_PEAKS.tolist(), SYN_SYMBOLS, strict=True), *SYN_NON_BEATS.items()])
    wfdb.wrann(
        name,
        "atr",
        np.array([s for s, _ in marks]),
        symbol=[c for _, c in marks],
        write_dir=str(directory),
    )
    return signals


@pytest.fixture
def syn_dir(tmp_path: Path) -> Path:
    _write_synthetic(tmp_path)
    return tmp_path


# --- beat groups and edges ------------------------------------------------------------------


def test_beat_groups_hold_beats_only_and_label_pvc_apb():
    groups = load_beat_groups()
    assert dict(groups.segment_labels) == {"supraventricular": "APB", "ventricular": "PVC"}
    assert [groups.group_of[s] for s in "NAV"] == ["normal", "supraventricular", "ventricular"]
    assert not any(groups.is_beat(s) for s in '+~|![]x"')
    assert set(groups.group_of.values()) == {"normal", "supraventricular", "ventricular", "other"}


@pytest.mark.parametrize(
    ("peaks", "n_samples", "expected"),
    [
        ([20, 40, 80], 120, [10, 30, 60, 100]),  # midpoints; outer edges mirrored
        ([5, 30], 40, [0, 17, 40]),  # mirrored edges clipped to the record
        ([7], 40, [0, 40]),  # a lone beat spans the record
        ([], 40, [0]),
    ],
)
def test_beat_boundaries(peaks, n_samples, expected):
    edges = beat_boundaries(np.array(peaks, dtype=np.int64), n_samples=n_samples)
    np.testing.assert_array_equal(edges, expected)


# --- reader on a synthetic record -----------------------------------------------------------


def test_read_synthetic_keeps_beats_only(tmp_path):
    written = _write_synthetic(tmp_path)
    rec = read_record(directory=tmp_path, record="syn")
    assert rec.lead_names == ("MLII", "V5")
    assert rec.fs_hz == SYN_FS_HZ
    assert rec.signals.dtype == np.float32 and rec.signals.shape == (SYN_N_SAMPLES, 2)
    np.testing.assert_allclose(rec.signals, written, atol=0.5 / 200 + 1e-6)  # one ADC step
    np.testing.assert_array_equal(rec.beat_samples, SYN_PEAKS)
    assert rec.beat_samples.dtype == np.int64
    assert rec.beat_symbols == SYN_SYMBOLS


def test_header_with_comment_first_and_blank_lines_reads_the_same(syn_dir):
    plain = read_record(directory=syn_dir, record="syn")
    hea = syn_dir / "syn.hea"
    record_line, *signal_lines = hea.read_text().strip().splitlines()
    hea.write_text(
        "# comment before the record line\n"
        + record_line
        + "\n\n"
        + "\n\n".join(signal_lines)
        + "\n# 69 M\n"
    )
    edited = read_record(directory=syn_dir, record="syn")
    assert edited.lead_names == plain.lead_names
    np.testing.assert_array_equal(edited.signals, plain.signals)


def _drop(name):
    return lambda d: (d / name).unlink()


def _truncate_dat(d):
    dat = d / "syn.dat"
    dat.write_bytes(dat.read_bytes()[:1001])


def _garble(name, content):
    return lambda d: (d / name).write_bytes(content)


def _units_in_microvolts(d):
    hea = d / "syn.hea"
    hea.write_text(hea.read_text().replace("/mV", "/uV"))


def _beat_after_end(d):
    wfdb.wrann(
        "syn", "atr", np.array([50, SYN_N_SAMPLES + 10]), symbol=["N", "N"], write_dir=str(d)
    )


@pytest.mark.parametrize(
    ("damage", "error", "named"),
    [
        (_drop("syn.atr"), FileNotFoundError, "syn.atr"),
        (_drop("syn.hea"), FileNotFoundError, "syn.hea"),
        (_drop("syn.dat"), FileNotFoundError, "syn.dat"),
        (_truncate_dat, RecordError, "syn.dat"),
        (_garble("syn.hea", b"hello world foo\n"), RecordError, "syn.hea"),
        (_garble("syn.hea", b""), RecordError, "syn.hea"),
        (_garble("syn.atr", b"\x01\x02\x03"), RecordError, "syn.atr"),
        (_units_in_microvolts, RecordError, "syn.hea"),
        (_beat_after_end, RecordError, "syn.atr"),
    ],
    ids=[
        "no-atr",
        "no-hea",
        "no-dat",
        "short-dat",
        "bad-hea",
        "empty-hea",
        "bad-atr",
        "uV",
        "late",
    ],
)
def test_bad_files_raise_naming_the_file(syn_dir, damage, error, named):
    damage(syn_dir)
    with pytest.raises(error, match=named):
        read_record(directory=syn_dir, record="syn")


def test_signal_shorter_than_header_is_an_error(syn_dir, monkeypatch):
    # wfdb 4.3 raises on short files itself; this guards against a reader that pads or cuts.
    real = wfdb.rdrecord

    def short(*args, **kwargs):
        rec = real(*args, **kwargs)
        rec.p_signal = rec.p_signal[:-5]
        return rec

    monkeypatch.setattr(wfdb, "rdrecord", short)
    with pytest.raises(RecordError, match=r"syn\.dat.*1995 samples.*2000"):
        read_record(directory=syn_dir, record="syn")


def test_read_records_quarantines_bad_ones(syn_dir):
    _write_synthetic(syn_dir, name="ok")
    (syn_dir / "syn.atr").unlink()
    loaded, quarantined = read_records(directory=syn_dir)
    assert [r.record for r in loaded] == ["ok"]
    assert [q.record for q in quarantined] == ["syn"]
    assert "syn.atr" in quarantined[0].reason


def test_list_records_prefers_records_file(syn_dir):
    _write_synthetic(syn_dir, name="abc")
    assert list_records(syn_dir) == ["abc", "syn"]
    (syn_dir / "RECORDS").write_text("syn\n\n")
    assert list_records(syn_dir) == ["syn"]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_records(syn_dir / "nowhere")


def test_unknown_lead_lists_the_leads(syn_dir):
    rec = read_record(directory=syn_dir, record="syn")
    with pytest.raises(KeyError, match="MLII"):
        build_segments(rec, lead="II")


# --- segments on a synthetic record ---------------------------------------------------------


@pytest.mark.parametrize("max_samples", [400, 450])  # four beats fill 400 samples exactly
def test_segments_synthetic_exact(syn_dir, max_samples):
    rec = read_record(directory=syn_dir, record="syn")
    seg = build_segments(rec, max_samples=max_samples)
    # Mixed PVC+APB (800), normal-only (1200) and fusion (1600) segments are dropped.
    assert seg.labels == ("PVC", "APB")
    np.testing.assert_array_equal(seg.start_samples, [0, 400])
    np.testing.assert_array_equal(seg.lengths, [400, 400])
    assert seg.signals.shape == seg.masks.shape == (2, max_samples)
    assert seg.signals.dtype == np.float32 and seg.masks.dtype == np.uint8
    np.testing.assert_array_equal(seg.signals[0, :400], rec.lead("MLII")[:400])
    np.testing.assert_array_equal(seg.signals[1, :400], rec.lead("MLII")[400:800])
    assert not seg.signals[:, 400:].any() and not seg.masks[:, 400:].any()
    expected = np.zeros((2, max_samples), dtype=np.uint8)
    expected[0, 200:300] = 1  # the V beat
    expected[1, 100:200] = 1  # the A beat, at 500-600 in the record
    np.testing.assert_array_equal(seg.masks, expected)
    np.testing.assert_array_equal(seg.beat_positions[1], [50, 150, 250, 350])
    assert seg.beat_symbols[1] == ("L", "A", "N", "N")


def test_segments_one_beat_each_and_oversize_beats_skipped(syn_dir):
    rec = read_record(directory=syn_dir, record="syn")
    single = build_segments(rec, max_samples=150)  # two beats (200) never fit
    assert Counter(single.labels) == {"PVC": 3, "APB": 2}
    np.testing.assert_array_equal(single.start_samples, [200, 500, 900, 1000, 1800])
    assert single.masks.sum() == 5 * 100
    empty = build_segments(rec, max_samples=50)  # every beat overflows
    assert len(empty) == 0 and empty.signals.shape == (0, 50)


# --- rhythm windows on a synthetic record ---------------------------------------------------


def test_rhythm_windows_synthetic(syn_dir):
    rec = read_record(directory=syn_dir, record="syn")
    win = rhythm_windows(rec, window_s=5.0, target_fs_hz=150.0)  # 3/2: 2000 -> 3000 samples
    assert win.fs_hz == 150.0 and win.signals.shape == win.masks.shape == (4, 750)
    np.testing.assert_allclose(win.start_s, [0, 5, 10, 15])
    peaks = np.concatenate([p + 750 * w for w, p in enumerate(win.beat_samples)])
    np.testing.assert_array_equal(peaks, SYN_PEAKS * 3 // 2)
    assert sum(win.beat_symbols, ()) == SYN_SYMBOLS
    # Every non-normal beat (V, A, F) is marked over its span, 150 samples at the new rate.
    expected = np.zeros(3000, dtype=np.uint8)
    for i in np.flatnonzero([s not in "NL" for s in SYN_SYMBOLS]):
        expected[150 * i : 150 * (i + 1)] = 1
    np.testing.assert_array_equal(win.masks.reshape(-1), expected)
    # The 1 Hz sine survives resampling (away from the record's ends).
    t = np.arange(3000) / 150.0
    np.testing.assert_allclose(
        win.signals.reshape(-1)[100:-100], 0.5 * np.sin(2 * np.pi * t)[100:-100], atol=0.01
    )


def test_rhythm_windows_drop_the_incomplete_window(syn_dir):
    rec = read_record(directory=syn_dir, record="syn")
    win = rhythm_windows(rec, window_s=6.0, target_fs_hz=100.0)
    assert win.signals.shape == (3, 600)
    assert sum(len(p) for p in win.beat_samples) == 18  # beats before 1800


# --- record 100 of the real database --------------------------------------------------------

needs_mitdb = pytest.mark.skipif(
    not (MITDB_DIR / "100.hea").is_file(), reason=f"{MITDB_DIR} not present"
)


@pytest.fixture(scope="module")
def rec100():
    return read_record(directory=MITDB_DIR, record="100")


@pytest.mark.shared_data
@needs_mitdb
def test_record_100_beats_and_leads(rec100):
    assert Counter(rec100.beat_symbols) == {"N": 2239, "A": 33, "V": 1}
    assert rec100.fs_hz == 360.0 and rec100.lead_names == ("MLII", "V5")
    assert rec100.signals.shape == (650000, 2)


@pytest.mark.shared_data
@needs_mitdb
def test_record_100_segments(rec100):
    seg = build_segments(rec100, max_samples=2000)
    assert set(seg.labels) == {"APB", "PVC"}
    assert seg.labels.count("PVC") == 1
    assert (seg.lengths <= 2000).all() and (seg.lengths > 0).all()
    in_pvc = seg.beat_symbols[seg.labels.index("PVC")]
    assert in_pvc.count("V") == 1 and set(in_pvc) == {"V", "N"}
    n_a = 0
    for k in range(len(seg)):
        pos, sym = seg.beat_positions[k], np.array(seg.beat_symbols[k])
        assert (seg.masks[k, pos[sym != "N"]] == 1).all()
        assert (seg.masks[k, pos[sym == "N"]] == 0).all()
        assert not seg.signals[k, seg.lengths[k] :].any()
        assert not seg.masks[k, seg.lengths[k] :].any()
        start = seg.start_samples[k]
        np.testing.assert_array_equal(
            seg.signals[k, : seg.lengths[k]], rec100.lead("MLII")[start : start + seg.lengths[k]]
        )
        n_a += int((sym == "A").sum())
    assert n_a == 33  # every APB of the record lands in a kept segment


@pytest.mark.shared_data
@needs_mitdb
def test_record_100_rhythm_windows(rec100):
    win = rhythm_windows(rec100, window_s=30.0, target_fs_hz=300.0)
    assert win.fs_hz == 300.0 and win.signals.shape == (60, 9000)
    assert win.masks.shape == (60, 9000)
    np.testing.assert_allclose(win.start_s, np.arange(60) * 30.0)
    times_new = np.concatenate([(p + 9000 * w) / 300.0 for w, p in enumerate(win.beat_samples)])
    covered = rec100.beat_samples < 60 * 30 * 360
    times_old = rec100.beat_samples[covered] / 360.0
    assert times_new.shape == times_old.shape
    assert np.abs(times_new - times_old).max() <= 0.5 / 300.0 + 1e-9  # rounded, not cut
    assert sum(win.beat_symbols, ()) == rec100.beat_symbols[: int(covered.sum())]
    # The abnormal (A, V) R peaks are masked, the normal ones are not.
    flat_mask = win.masks.reshape(-1)
    peaks = np.rint(times_new * 300).astype(int)
    abnormal = np.array(sum(win.beat_symbols, ())) != "N"
    assert flat_mask[peaks[abnormal]].all() and not flat_mask[peaks[~abnormal]].any()
