"""MIT-BIH explanations of a trained trial: window selection, the npz and its ground truth,
and the ``--mitdb-dir`` wiring of `study.run`."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow.fs
import pytest
import torch
import wfdb

from data_io.datasets import load_dataset
from data_io.mitdb import read_record, rhythm_windows
from study import run
from study.engine.metrics import Scoring
from study.engine.trainer import Split, train
from study.explain.artifacts import load_trained
from study.explain.mitdb_explanations import ADC_GAIN, abnormal_windows, write_mitdb_explanations
from study.folder_format import MITDB_EXPLANATIONS
from study.tune import driver
from study.tune import plan as plan_module
from study.tune.plan import Plan

SCORING = Scoring.from_dataset(load_dataset("cinc2017"))

CINC_CLASSES = load_dataset("cinc2017").labels
WINDOWS = {"classes": CINC_CLASSES, "window_label": "O"}
EXPLAIN = {**WINDOWS, "normal_class": 0}

FS_HZ = 50.0  # the tiny study's rate (tests/study/conftest.py)
WINDOW = 1500  # 30 s at 50 Hz
EXPLANATION_KEYS = {"record_ids", "y_true", "signal", "lengths", "fs_hz", "classes",
                    "map/cam", "map/occlusion", "shift/mask", "shift/target_probability_before"}
O_CLASS = CINC_CLASSES.index("O")

# Synthetic records at 100 Hz, one beat a second (R peak at 0.5 s + i), 95 s: three whole
# 30-s windows. "syn": window 0 normal, a PVC in window 1 (beat 40), an APB in window 2
# (beat 75). "syn2": APBs in windows 0 (beat 10) and 1 (beat 50). "vonly": no MLII lead.
SOURCE_FS_HZ = 100
N_BEATS = 95
ABNORMAL = {"syn": {40: "V", 75: "A"}, "syn2": {10: "A", 50: "A"}, "vonly": {40: "V"}}


def _write_record(directory: Path, name: str, abnormal: dict[int, str], *,
                  leads: tuple[str, ...] = ("MLII", "V5")) -> None:
    """Gaussian 'R waves' of 1 mV, abnormal beats (symbols by beat number) 2 mV and wider, so
    a window's largest sample lies in its abnormal beat."""
    n = N_BEATS * SOURCE_FS_HZ
    t = np.arange(n)
    peaks = np.arange(N_BEATS) * SOURCE_FS_HZ + SOURCE_FS_HZ // 2
    symbols = [abnormal.get(i, "N") for i in range(N_BEATS)]
    signal = np.zeros(n)
    for peak, symbol in zip(peaks, symbols, strict=True):
        height, width = (1.0, 3.0) if symbol == "N" else (2.0, 6.0)
        signal += height * np.exp(-0.5 * ((t - peak) / width) ** 2)
    wfdb.wrsamp(name, fs=SOURCE_FS_HZ, units=["mV"] * len(leads), sig_name=list(leads),
                p_signal=np.column_stack([signal] * len(leads)), fmt=["16"] * len(leads),
                adc_gain=[200.0] * len(leads), baseline=[0] * len(leads),
                write_dir=str(directory))
    wfdb.wrann(name, "atr", peaks, symbol=symbols, write_dir=str(directory))


@pytest.fixture
def mitdb_dir(tmp_path) -> Path:
    directory = tmp_path / "mitdb"
    directory.mkdir()
    for name, abnormal in ABNORMAL.items():
        _write_record(directory, name, abnormal,
                      leads=("V1", "V5") if name == "vonly" else ("MLII", "V5"))
    return directory


@pytest.fixture
def checkpoint(tmp_path, tiny_arrays, tiny_config) -> Path:
    """A trainer checkpoint of the tiny CNN after one epoch (the format study.run reads)."""
    arrays = tiny_arrays(n_records=16)
    split = Split(arrays, np.arange(len(arrays)))
    path = tmp_path / "trial" / "checkpoint.pt"
    train(config={**tiny_config, "epochs": 1}, train_split=split, val_split=split, scoring=SCORING,
          checkpoint_path=path)
    return path


def _abnormal_peak(record: str, start_s: float) -> int:
    """The abnormal R peak of a window, in samples of the window at `FS_HZ`."""
    (beat,) = [b for b in ABNORMAL[record] if start_s <= b + 0.5 < start_s + 30]
    return round((beat + 0.5 - start_s) * FS_HZ)


def test_abnormal_windows_round_robin_over_records(mitdb_dir):
    lines = []
    windows = abnormal_windows(mitdb_dir, fs_hz=FS_HZ, max_windows=3, log=lines.append,
                               **WINDOWS)
    assert windows.source_records == ("syn", "syn2", "syn")
    np.testing.assert_allclose(windows.start_s, [30.0, 0.0, 60.0])
    assert windows.arrays.record_ids == ("syn_30s", "syn2_0s", "syn_60s")
    assert [q.record for q in windows.skipped] == ["vonly"]
    assert "MLII" in windows.skipped[0].reason and any("vonly: skipped" in x for x in lines)
    assert windows.arrays.fs_hz == FS_HZ and windows.arrays.adc_gain == ADC_GAIN
    assert windows.arrays.labels.tolist() == [O_CLASS] * 3
    assert windows.masks.shape == (3, WINDOW) and windows.masks.dtype == np.uint8
    source = rhythm_windows(read_record(directory=mitdb_dir, record="syn"), window_s=30.0,
                            target_fs_hz=FS_HZ)
    # int16 at 1000 units per mV: the window in millivolts within half a microvolt
    np.testing.assert_allclose(windows.arrays.signal(0), source.signals[1], atol=0.5e-3 + 1e-6)
    np.testing.assert_array_equal(windows.masks[0], source.masks[1])


def test_abnormal_windows_keep_only_windows_with_abnormal_beats(mitdb_dir):
    windows = abnormal_windows(mitdb_dir, fs_hz=FS_HZ, **WINDOWS)
    assert sorted(windows.arrays.record_ids) == ["syn2_0s", "syn2_30s", "syn_30s", "syn_60s"]
    assert windows.masks.any(axis=1).all()


def test_mitdb_explanations_npz(mitdb_dir, checkpoint, tmp_path):
    out_dir = tmp_path / "trials" / "t1"
    lines = []
    path = write_mitdb_explanations(**EXPLAIN, checkpoint_file=checkpoint, mitdb_dir=mitdb_dir,
                                    fs_hz=FS_HZ, out_dir=out_dir, log=lines.append)
    assert path == out_dir / MITDB_EXPLANATIONS
    assert any("explaining 4 MIT-BIH window(s) from 2 record(s)" in x for x in lines)
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    assert EXPLANATION_KEYS | {"mask", "window_start_s", "source_record"} <= set(arrays)
    n = len(arrays["record_ids"])
    assert n == 4
    assert arrays["signal"].shape == (n, 1, WINDOW) and arrays["mask"].shape == (n, WINDOW)
    assert arrays["mask"].dtype == np.uint8 and arrays["lengths"].tolist() == [WINDOW] * n
    assert float(arrays["fs_hz"]) == FS_HZ
    assert arrays["y_true"].tolist() == [O_CLASS] * n
    assert arrays["classes"].tolist() == list(CINC_CLASSES)
    for b, window_id in enumerate(arrays["record_ids"].tolist()):
        record, start_s = str(arrays["source_record"][b]), float(arrays["window_start_s"][b])
        assert window_id == f"{record}_{start_s:g}s"
        mask, signal = arrays["mask"][b], arrays["signal"][b, 0]
        spans = np.flatnonzero(np.diff(np.r_[0, mask, 0]))
        assert len(spans) == 2  # one abnormal beat: one span, about a second long
        assert spans[1] - spans[0] == pytest.approx(FS_HZ, abs=2)
        assert mask[_abnormal_peak(record, start_s)] == 1
        assert mask[int(np.argmax(signal))] == 1  # rows of signal and mask stay aligned
    # The shift perturbation ran on exactly the windows not predicted Normal.
    model, _ = load_trained(checkpoint)
    with torch.no_grad():
        predicted = model(torch.from_numpy(arrays["signal"].astype(np.float32)),
                          lengths=torch.from_numpy(arrays["lengths"])).argmax(dim=1).numpy()
    shifted = np.isfinite(arrays["shift/target_probability_before"])
    np.testing.assert_array_equal(shifted, predicted != CINC_CLASSES.index("N"))


def test_nothing_written_without_abnormal_windows(tmp_path, checkpoint):
    directory = tmp_path / "normal"
    directory.mkdir()
    _write_record(directory, "normal", {})
    out_dir = tmp_path / "out"
    assert write_mitdb_explanations(**EXPLAIN, checkpoint_file=checkpoint, mitdb_dir=directory,
                                    fs_hz=FS_HZ, out_dir=out_dir) is None
    assert not (out_dir / MITDB_EXPLANATIONS).exists()


@pytest.mark.shared_data
def test_mitdb_explanations_of_record_100(shared_mitdb_dir, checkpoint, tmp_path):
    directory = tmp_path / "mitdb"
    directory.mkdir()
    for path in shared_mitdb_dir.glob("100.*"):  # record 100 only, whatever else is there
        shutil.copy(path, directory)
    path = write_mitdb_explanations(**EXPLAIN, checkpoint_file=checkpoint, mitdb_dir=directory,
                                    fs_hz=FS_HZ, out_dir=tmp_path / "out", max_windows=4)
    with np.load(path, allow_pickle=False) as arrays:
        assert arrays["record_ids"].shape == (4,) and set(arrays["source_record"]) == {"100"}
        assert arrays["mask"].shape == (4, WINDOW) and arrays["signal"].shape == (4, 1, WINDOW)
        masks, starts = arrays["mask"], arrays["window_start_s"]
        record = read_record(directory=directory, record="100")
        abnormal = np.array([s != "N" for s in record.beat_symbols])
        for b, start_s in enumerate(starts):
            # R peaks in samples of the window at FS_HZ (rounded as rhythm_windows does)
            samples = np.rint(record.beat_samples * (FS_HZ / record.fs_hz)).astype(int)
            samples -= round(start_s * FS_HZ)
            inside = (samples >= 0) & (samples < WINDOW)
            assert masks[b, samples[inside & abnormal]].all()  # every A/V beat is masked
            assert not masks[b, samples[inside & ~abnormal]].any()  # no normal R peak is


# ---- study.run ---------------------------------------------------------------------------------


class _Checkpoint:
    """What the study reads of a Tune checkpoint: its directory, path and file system."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = str(directory)
        self.filesystem = pyarrow.fs.LocalFileSystem()

    @contextmanager
    def as_directory(self):
        yield str(self.directory)


def test_study_writes_mitdb_explanations_for_the_best_trials(mitdb_dir, checkpoint, tmp_path,
                                                             tiny_arrays, monkeypatch):
    """`_write_artifacts` with a stand-in Ray result: the usual artefacts plus the MIT-BIH
    file when the plan has a MIT-BIH directory."""
    from study.tune import trainable

    arrays = tiny_arrays(n_records=8)
    split = Split(arrays, np.arange(len(arrays)))
    monkeypatch.setattr(trainable, "fold_split", lambda spec, fold: (split, split))
    assert checkpoint.name == trainable.CHECKPOINT_FILE
    result = SimpleNamespace(path=str(tmp_path / "run_trial_abc12345_00000_x"),
                             checkpoint=_Checkpoint(checkpoint.parent))
    plan = SimpleNamespace(study_dir=str(tmp_path / "study"), fold=0, explain_top=1,
                           dataset="cinc2017", explain_records=None, explain_sanity=False,
                           fs_hz=FS_HZ, mitdb_dir=str(mitdb_dir), smoke=True)
    driver._write_artifacts(plan, None, [("abc12345", result)])
    trial_dir = tmp_path / "study" / "trials" / "abc12345"
    assert {p.name for p in trial_dir.iterdir()} == {
        "predictions.parquet", "explanations.npz", MITDB_EXPLANATIONS}


def test_plans_saved_before_the_mitdb_flag_still_load(mitdb_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = run.build_parser().parse_args(["--space", "cnn", "--dataset", "synthetic",
                                          "--mitdb-dir", str(mitdb_dir)])
    plan = plan_module.make_plan(args, wandb_mode="offline")
    assert plan.mitdb_dir == str(mitdb_dir.resolve())
    saved = plan.to_dict()
    del saved["mitdb_dir"]
    assert Plan(**saved).mitdb_dir is None


def test_dry_run_names_the_mitdb_directory(mitdb_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run.main(["--space", "cnn", "--dataset", "synthetic", "--dry-run", "--no-estimate",
                     "--name", "d", "--mitdb-dir", str(mitdb_dir)]) == 0
    assert f"windows with abnormal beats from {mitdb_dir.resolve()}" in capsys.readouterr().out


@pytest.mark.parametrize(("make", "message"), [
    (lambda tmp: tmp / "nowhere", "does not exist"),
    (lambda tmp: tmp, "holds no MIT-BIH record"),
])
def test_bad_mitdb_dir_is_one_clear_error(make, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run.main(["--space", "cnn", "--dataset", "synthetic", "--name", "d",
                     "--mitdb-dir", str(make(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --mitdb-dir") and message in err
