"""Tests of the CinC 2017 file writer and the `python -m data_io.synthesize` command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import wfdb

from data_io.cinc_format import (
    atomic_path,
    wfdb_checksum,
    write_record,
    write_reference,
)
from data_io.synthesize import main
from data_io.synthetic import generate_records, read_masks, to_digital

REAL_CINC_DIR = Path("/work/shared/data/cinc2017")


def _digital(n: int = 900, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-3000, 3000, size=n).astype(np.int16)


def test_written_record_reads_back_identically_with_wfdb(tmp_path: Path) -> None:
    digital = _digital()
    write_record(directory=tmp_path, record_id="X01", digital=digital, fs_hz=300, adc_gain=1000)
    record = wfdb.rdrecord(str(tmp_path / "X01"), physical=False)
    np.testing.assert_array_equal(record.d_signal[:, 0], digital)
    header = wfdb.rdheader(str(tmp_path / "X01"))
    assert (header.fs, header.sig_len, header.n_sig) == (300, 900, 1)
    assert header.fmt == ["16"] and header.byte_offset == [24]
    assert header.adc_gain == [1000.0] and header.units == ["mV"]
    assert header.init_value == [int(digital[0])]
    assert header.checksum == [wfdb_checksum(digital)]
    physical = wfdb.rdrecord(str(tmp_path / "X01")).p_signal[:, 0]
    np.testing.assert_allclose(physical, digital / 1000.0)


def test_files_have_the_challenge_layout(tmp_path: Path) -> None:
    digital = _digital(n=9000)
    write_record(directory=tmp_path, record_id="A00001", digital=digital, fs_hz=300, adc_gain=1000)
    mat = (tmp_path / "A00001.mat").read_bytes()
    assert len(mat) == 24 + 2 * digital.size  # 24-byte v4 header, then the samples
    np.testing.assert_array_equal(np.frombuffer(mat[24:], dtype="<i2"), digital)
    loaded = scipy.io.loadmat(tmp_path / "A00001.mat")["val"]
    assert loaded.dtype == np.int16 and loaded.shape == (1, 9000)
    lines = (tmp_path / "A00001.hea").read_bytes().split(b"\r\n")
    assert lines[2:] == [b""] and all(line.endswith(b" ") for line in lines[:2])
    assert lines[0].split()[:4] == [b"A00001", b"1", b"300", b"9000"]
    fields = lines[1].split()
    assert fields[:5] == [b"A00001.mat", b"16+24", b"1000/mV", b"16", b"0"]
    initial, checksum = str(digital[0]).encode(), str(wfdb_checksum(digital)).encode()
    assert fields[5:] == [initial, checksum, b"0", b"ECG"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A00001.hea", "A00001.mat"]


def test_checksum_is_the_signed_16_bit_sum() -> None:
    assert wfdb_checksum(np.array([1, 2, 3], np.int16)) == 6
    assert wfdb_checksum(np.array([32767, 1], np.int16)) == -32768
    assert wfdb_checksum(np.array([-1, -1], np.int16)) == -2
    assert wfdb_checksum(np.full(4, 30000, np.int16)) == 120000 % 65536 - 65536


@pytest.mark.shared_data
def test_rewriting_a_real_record_reproduces_it(tmp_path: Path) -> None:
    if not (REAL_CINC_DIR / "A00001.hea").is_file():
        pytest.skip(f"{REAL_CINC_DIR} is not available")
    val = scipy.io.loadmat(REAL_CINC_DIR / "A00001.mat")["val"][0]
    write_record(directory=tmp_path, record_id="A00001", digital=val, fs_hz=300, adc_gain=1000)
    assert (tmp_path / "A00001.mat").read_bytes() == (REAL_CINC_DIR / "A00001.mat").read_bytes()
    ours = (tmp_path / "A00001.hea").read_text().split("\n")
    real = (REAL_CINC_DIR / "A00001.hea").read_text().split("\n")
    assert len(ours) == len(real)
    for our_line, real_line in zip(ours, real, strict=True):
        assert len(our_line.split()) == len(real_line.split())
        assert our_line.endswith(" \r") == real_line.endswith(" \r")
    # Time and date differ, and the challenge files leave the checksum at 0.
    assert ours[0].split()[:4] == real[0].split()[:4]
    our_signal, real_signal = ours[1].split(), real[1].split()
    assert our_signal[:6] + our_signal[7:] == real_signal[:6] + real_signal[7:]
    ours_read = wfdb.rdrecord(str(tmp_path / "A00001"), physical=False)
    real_read = wfdb.rdrecord(str(REAL_CINC_DIR / "A00001"), physical=False)
    np.testing.assert_array_equal(ours_read.d_signal, real_read.d_signal)
    for attribute in ("fs", "sig_len", "fmt", "byte_offset", "adc_gain", "units", "init_value"):
        assert getattr(ours_read, attribute) == getattr(real_read, attribute), attribute


def test_write_record_rejects_what_it_cannot_write(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="int16"):
        write_record(
            directory=tmp_path, record_id="X", digital=np.zeros(5), fs_hz=300, adc_gain=1000
        )
    with pytest.raises(ValueError, match="record name"):
        write_record(
            directory=tmp_path, record_id="../X", digital=_digital(), fs_hz=300, adc_gain=1000
        )
    assert list(tmp_path.iterdir()) == []


def test_reference_and_records_files(tmp_path: Path) -> None:
    write_reference(directory=tmp_path, labels={"A00002": "N", "A00001": "~"})
    assert (tmp_path / "REFERENCE.csv").read_bytes() == b"A00002,N\nA00001,~\n"
    assert (tmp_path / "RECORDS").read_bytes() == b"A00002\nA00001\n"
    with pytest.raises(ValueError, match="not CinC 2017 classes"):
        write_reference(directory=tmp_path, labels={"A00003": "AF"})


def test_atomic_path_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "RECORDS"
    target.write_text("old\n")
    with pytest.raises(OSError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise OSError("disk full")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["RECORDS"]


def _run(tmp_path: Path, *args: str) -> int:
    return main(["--out", str(tmp_path / "syn"), *args])


def test_cli_writes_a_cinc_style_data_set_with_masks(tmp_path: Path, capsys) -> None:
    assert _run(tmp_path, "--records", "6", "--seed", "3") == 0
    out = tmp_path / "syn"
    expected = generate_records(n_records=6, seed=3, fs_hz=300.0)
    reference = (out / "REFERENCE.csv").read_text().splitlines()
    assert reference == [f"{rid},{r.label}" for rid, r in expected.items()]
    assert (out / "RECORDS").read_text().splitlines() == list(expected)
    for record_id, record in expected.items():
        read = wfdb.rdrecord(str(out / record_id), physical=False)
        digital = to_digital(record.signal_mv, adc_gain=1000.0)
        np.testing.assert_array_equal(read.d_signal[:, 0], digital)
    masks = read_masks(out)
    assert list(masks) == list(expected)
    for record_id, record in expected.items():
        np.testing.assert_array_equal(masks[record_id], record.abnormal_mask)
    manifest = json.loads((out / "SYNTHETIC.json").read_text())
    assert manifest["complete"] and manifest["seed"] == 3 and manifest["n_records"] == 6
    assert manifest["fs_hz"] == 300.0 and manifest["generator_version"]
    assert sum(manifest["class_counts"].values()) == 6
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1 and "6 records" in summary[0]


def test_cli_rerun_replaces_an_earlier_output(tmp_path: Path) -> None:
    assert _run(tmp_path, "--records", "5") == 0
    assert _run(tmp_path, "--records", "2", "--balanced", "--fs-hz", "250") == 0
    out = tmp_path / "syn"
    assert sorted(p.name for p in out.glob("S0*")) == [
        "S00001.hea",
        "S00001.mat",
        "S00002.hea",
        "S00002.mat",
    ]
    assert wfdb.rdheader(str(out / "S00001")).fs == 250
    manifest = json.loads((out / "SYNTHETIC.json").read_text())
    assert manifest["class_weights"] == {"N": 0.25, "A": 0.25, "O": 0.25, "~": 0.25}


@pytest.mark.parametrize(
    "args",
    [
        ["--records", "0"],
        ["--records", "many"],
        ["--records", "3", "--fs-hz", "50"],
        ["--seed", "1"],
    ],
)
def test_cli_rejects_bad_arguments(tmp_path: Path, capsys, args: list[str]) -> None:
    assert _run(tmp_path, *args) == 2
    assert "error" in capsys.readouterr().err
    assert not (tmp_path / "syn").exists()


def test_cli_refuses_a_foreign_directory(tmp_path: Path, capsys) -> None:
    foreign = tmp_path / "syn"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert _run(tmp_path, "--records", "2") == 2
    err = capsys.readouterr().err
    assert str(foreign) in err and "Traceback" not in err
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


def test_cli_refuses_a_file_as_output(tmp_path: Path, capsys) -> None:
    (tmp_path / "syn").write_text("")
    assert _run(tmp_path, "--records", "2") == 2
    assert str(tmp_path / "syn") in capsys.readouterr().err
