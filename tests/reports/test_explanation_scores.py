"""Explanation scores on constructed maps and masks, mask resampling and the study section."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from reports.explanation_scores import (
    GroundTruth,
    explanation_scores,
    explanation_scores_section,
    read_synthetic_masks,
    resample_mask,
    score_archive,
    score_maps,
    scored_methods,
    summarise_scores,
    wilson_interval,
)
from reports.study_data import ReportError, StudyData, TrialArtifacts, load_study

FS_HZ = 150.0
T = 1500  # 10 s
BEAT = 30  # samples per beat span (200 ms)
BEAT_STARTS = np.arange(60, 1400, 150)  # nine beats, one per second
ABNORMAL_BEAT = 4


def beats(*indices: int, n: int = T) -> np.ndarray:
    """(n,) 0/1 spans of the given beats."""
    out = np.zeros(n)
    for i in indices:
        out[BEAT_STARTS[i]:BEAT_STARTS[i] + BEAT] = 1.0
    return out


def score_one(values: np.ndarray, mask: np.ndarray | None = None, **options) -> pd.Series:
    mask = beats(ABNORMAL_BEAT) if mask is None else mask
    frame = score_maps(values[None], mask[None], np.array([len(values)]), fs_hz=FS_HZ,
                       **options)
    assert len(frame) == 1
    return frame.iloc[0]


def test_map_peaked_inside_the_abnormal_beat_is_a_hit_and_grade_i():
    values = np.zeros(T)
    values[BEAT_STARTS[ABNORMAL_BEAT] + 10] = 1.0
    values += 0.3 * beats(ABNORMAL_BEAT)
    row = score_one(values)
    assert row["hit"]
    assert row["mass_ratio"] == pytest.approx(1 / row["abnormal_fraction"])
    assert row["mass_ratio"] > 10
    assert row["grade"] == "I"


def test_uniform_map_is_at_chance_and_grade_iii():
    row = score_one(np.ones(T))
    assert row["mass_ratio"] == pytest.approx(1.0)
    assert row["top_ratio"] == pytest.approx(1.0)
    assert row["grade"] == "III"
    assert not row["hit"]  # a flat map points nowhere


def test_map_on_abnormal_plus_some_normal_beats_is_grade_ii():
    row = score_one(beats(ABNORMAL_BEAT, 1, 7))
    assert row["top_share"] == pytest.approx(1 / 3)
    assert 1.0 < row["mass_ratio"] < 1 / row["abnormal_fraction"]
    assert row["grade"] == "II"


def test_map_on_normal_beats_only_is_grade_iii_below_chance():
    row = score_one(beats(0, 1, 2))
    assert row["mass_ratio"] == 0.0
    assert not row["hit"]
    assert row["grade"] == "III"


@pytest.mark.parametrize(("offset_s", "hit"), [(0.04, True), (0.2, False)])
def test_pointing_game_tolerates_50_ms(offset_s, hit):
    values = np.zeros(T)
    end = BEAT_STARTS[ABNORMAL_BEAT] + BEAT - 1  # last abnormal sample
    values[end + round(offset_s * FS_HZ)] = 1.0
    assert score_one(values)["hit"] == hit


def test_padding_beyond_length_is_ignored():
    n = 900
    values = np.zeros(T)
    values[BEAT_STARTS[ABNORMAL_BEAT] + 5] = 1.0
    values[n:] = 1000.0  # a huge peak in the padding...
    mask = beats(ABNORMAL_BEAT)
    mask[n + 100:n + 200] = 1  # ...and a fake abnormal beat there
    frame = score_maps(values[None], mask[None], np.array([n]), fs_hz=FS_HZ)
    cropped = score_maps(values[None, :n], mask[None, :n], np.array([n]), fs_hz=FS_HZ)
    pd.testing.assert_frame_equal(frame, cropped)
    assert frame.loc[0, "hit"] and frame.loc[0, "grade"] == "I"
    assert frame.loc[0, "abnormal_fraction"] == pytest.approx(BEAT / n)


def test_records_without_abnormal_beats_are_skipped():
    maps = np.ones((3, T))
    masks = np.stack([beats(ABNORMAL_BEAT), np.zeros(T), beats(2)])
    masks[1, -10:] = 1  # abnormal only in the padding: skipped too
    frame = score_maps(maps, masks, np.array([T, T - 20, T]), fs_hz=FS_HZ,
                       record_ids=["a", "b", "c"])
    assert frame["record"].tolist() == ["a", "c"]


def test_negative_maps_are_refused():
    with pytest.raises(ValueError, match="non-negative"):
        score_maps(-np.ones((1, T)), beats(1)[None], np.array([T]), fs_hz=FS_HZ)


@pytest.mark.parametrize("target_fs_hz", [150.0, 100.0])
def test_mask_resampling_keeps_beat_positions(target_fs_hz):
    source = np.zeros(3000, dtype=np.uint8)  # 10 s at 300 Hz
    spans_s = [(1.0, 1.25), (4.5, 4.62), (9.7, 10.0)]
    for start, stop in spans_s:
        source[round(start * 300):round(stop * 300)] = 1
    n = round(10 * target_fs_hz)
    mask = resample_mask(source, source_fs_hz=300.0, target_fs_hz=target_fs_hz, n_samples=n)
    assert mask.shape == (n,)
    edges = np.flatnonzero(np.diff(np.r_[0, mask, 0]))  # starts and ends alternate
    found = [(a / target_fs_hz, b / target_fs_hz) for a, b in zip(edges[::2], edges[1::2],
                                                                  strict=True)]
    np.testing.assert_allclose(found, spans_s, atol=1.0 / target_fs_hz)


def test_mask_resampling_pads_beyond_the_source_with_zeros():
    mask = resample_mask(np.ones(300, dtype=np.uint8), source_fs_hz=300.0, target_fs_hz=150.0,
                         n_samples=200)
    assert mask[:150].all() and not mask[150:].any()


def test_wilson_interval_known_values():
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(0, 5)[0] == 0.0
    assert all(np.isnan(wilson_interval(0, 0)))


def test_methods_take_the_true_class_where_documented_and_decisions_are_not_scored():
    y_true = np.array([2])
    cam = np.zeros((1, 4, 10))
    cam[0, 2, 3], cam[0, 0, 7] = 5.0, 9.0  # the true class peaks at 3, another at 7
    arrays = {"y_true": y_true, "map/cam": cam,
              "map/occlusion": np.linspace(-1, 1, 10)[None, None]}
    scored = scored_methods()
    assert scored["cam"].maps(arrays).argmax() == 3
    assert scored["occlusion"].maps(arrays).min() == 0.0  # positive part
    assert "decision_over_time" not in scored  # a per-step decision, not a map


def test_shift_mask_is_scored_only_on_records_the_study_shifted():
    masks = np.stack([beats(ABNORMAL_BEAT), beats(ABNORMAL_BEAT)]).astype(np.uint8)
    truth = GroundTruth(name="test", source="test", fs_hz=FS_HZ,
                        masks={"a": masks[0], "b": masks[1]})
    arrays = {"record_ids": np.array(["a", "b"]), "y_true": np.array([2, 2]),
              "signal": np.zeros((2, 1, T)), "lengths": np.array([T, T]),
              "fs_hz": np.array(FS_HZ), "shift/mask": np.zeros((2, 1, T)),
              "shift/target_probability_before": np.array([np.nan, 0.3])}
    scores = score_archive(arrays, truth)
    assert scores["record"].tolist() == ["b"]
    # A shift that did not reach Normal explains nothing: not scored either.
    reached = {**arrays, "shift/target_reached": np.array([True, False])}
    assert score_archive(reached, truth).empty
    reached["shift/target_reached"] = np.array([False, True])
    assert score_archive(reached, truth)["record"].tolist() == ["b"]


# ---- study level --------------------------------------------------------------------------------


def write_mitdb_explanations(path) -> None:
    """Three MIT-BIH windows labelled O: occlusion peaked inside the abnormal beat, uniform,
    and peaked inside the abnormal beat again; the CAM of O (not that of N) peaks inside it."""
    masks = np.stack([beats(ABNORMAL_BEAT), beats(2), beats(ABNORMAL_BEAT)]).astype(np.uint8)
    occlusion = np.zeros((3, 1, T))
    occlusion[[0, 2], 0, BEAT_STARTS[ABNORMAL_BEAT] + 10] = 1.0
    occlusion[1, 0] = 1.0
    cam = np.zeros((3, 4, T))
    cam[:, 2, BEAT_STARTS[ABNORMAL_BEAT] + 10] = 1.0  # class O
    cam[:, 0, BEAT_STARTS[0] + 10] = 5.0  # class N, on a normal beat
    np.savez(path, record_ids=np.array(["100_0s", "100_30s", "101_0s"]),
             y_true=np.array([2, 2, 2]), signal=np.zeros((3, 1, T)),
             lengths=np.array([T, T, T]), fs_hz=np.array(FS_HZ),
             classes=np.array(["N", "A", "O", "~"]), mask=masks,
             window_start_s=np.array([0.0, 30.0, 0.0]),
             source_record=np.array(["100", "100", "101"]),
             **{"map/occlusion": occlusion, "map/cam": cam})


def write_study(tmp_path, *, with_masks: bool, with_mitdb: bool = False) -> StudyData:
    """A synthetic study: masks at 300 Hz, explanations at 150 Hz, one trial (with MIT-BIH
    explanations when asked)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    n_source = 2 * T
    abnormal = np.repeat(beats(ABNORMAL_BEAT), 2)[:n_source].astype(np.uint8)  # 300 Hz
    if with_masks:
        np.savez(data_dir / "MASKS.npz", O1=abnormal, N1=np.zeros(n_source, np.uint8))
        (data_dir / "SYNTHETIC.json").write_text(json.dumps({"fs_hz": 300.0}))
    peaked = np.zeros((2, 1, T))
    peaked[:, 0, BEAT_STARTS[ABNORMAL_BEAT] + 10] = 1.0
    trial = tmp_path / "trials" / "t1"
    trial.mkdir(parents=True)
    np.savez(trial / "explanations.npz", record_ids=np.array(["O1", "N1"]),
             y_true=np.array([2, 0]), signal=np.zeros((2, 1, T)), lengths=np.array([T, T]),
             fs_hz=np.array(FS_HZ), classes=np.array(["N", "A", "O", "~"]),
             **{"map/occlusion": peaked, "shift/mask": np.ones((2, 1, T)),
                "map/lstm_hidden": np.ones((2, 3, T))})
    mitdb = trial / "mitdb_explanations.npz" if with_mitdb else None
    if mitdb is not None:
        write_mitdb_explanations(mitdb)
    return StudyData(directory=tmp_path, name="demo",
                     record={"plan": {"data_dir": str(data_dir)}}, trials=pd.DataFrame(),
                     cv=None, artifacts={"t1": TrialArtifacts("t1", None,
                                                              trial / "explanations.npz",
                                                              mitdb_explanations=mitdb)})


def test_study_scores_every_present_method_on_records_with_abnormal_beats(tmp_path):
    scores = explanation_scores(write_study(tmp_path, with_masks=True))
    assert sorted(scores["method"]) == ["occlusion", "shift_mask"]  # states are not scored
    assert set(scores["record"]) == {"O1"}
    by_method = scores.set_index("method")
    assert by_method.loc["occlusion", "hit"] and by_method.loc["occlusion", "grade"] == "I"
    assert by_method.loc["shift_mask", "grade"] == "III"
    summary = summarise_scores(scores).set_index("method")
    assert summary.loc["shift_mask", "at_chance"]
    assert summary.loc["occlusion", "mass_ratio_mean"] > 10
    assert summary.loc["occlusion", "grade_I"] == 1.0


def test_section_reports_scores_and_flags_chance(tmp_path):
    section = explanation_scores_section(write_study(tmp_path, with_masks=True))
    assert [t.name for t in section.tables] == ["explanation_scores_summary",
                                                "explanation_scores"]
    assert any("At chance" in n and "shift_mask" in n for n in section.notes)
    assert any("MIT-BIH" in n for n in section.notes)


def test_section_says_when_there_is_no_ground_truth(tmp_path):
    study = write_study(tmp_path, with_masks=False)
    assert explanation_scores(study).empty
    section = explanation_scores_section(study)
    assert section.tables == []
    assert section.notes[0].startswith("No ground truth")


# ---- MIT-BIH windows ----------------------------------------------------------------------------


def test_mitdb_windows_are_scored_against_the_masks_in_their_file(tmp_path):
    scores = explanation_scores(write_study(tmp_path, with_masks=False, with_mitdb=True))
    assert set(scores["source"]) == {"mitdb"}
    occlusion = scores[scores["method"] == "occlusion"].set_index("record")
    assert occlusion.loc["100_0s", "hit"] and occlusion.loc["100_0s", "grade"] == "I"
    assert occlusion.loc["100_30s", "mass_ratio"] == pytest.approx(1.0)  # uniform: chance
    assert not occlusion.loc["100_30s", "hit"] and occlusion.loc["100_30s", "grade"] == "III"
    cam = scores[scores["method"] == "cam"].set_index("record")
    assert cam.loc[["100_0s", "101_0s"], "hit"].all()  # the CAM of O (the label), not of N
    summary = summarise_scores(scores)
    assert list(summary.columns[:3]) == ["trial", "source", "method"]
    row = summary.set_index("method").loc["occlusion"]
    assert row["source"] == "mitdb" and row["n_records"] == 3
    assert row["hit_rate"] == pytest.approx(2 / 3)
    assert row["grade_I"] == pytest.approx(2 / 3) and row["grade_III"] == pytest.approx(1 / 3)


def test_synthetic_and_mitdb_sources_are_told_apart(tmp_path):
    scores = explanation_scores(write_study(tmp_path, with_masks=True, with_mitdb=True))
    assert set(scores.groupby("source")["record"].unique().map(tuple).items()) == {
        ("synthetic", ("O1",)), ("mitdb", ("100_0s", "100_30s", "101_0s"))}
    summary = summarise_scores(scores)
    assert set(zip(summary["source"], summary["method"], strict=True)) == {
        ("synthetic", "occlusion"), ("synthetic", "shift_mask"),
        ("mitdb", "occlusion"), ("mitdb", "cam")}


def test_section_scores_mitdb_without_data_set_ground_truth(tmp_path):
    section = explanation_scores_section(write_study(tmp_path, with_masks=False,
                                                     with_mitdb=True))
    summary = section.tables[0].frame
    assert set(summary["source"]) == {"mitdb"}
    assert set(summary["domain"]) == {"out-of-domain (not a valid test)"}
    assert set(summary["true_class"]) == {"O"}
    assert any(n.startswith("No ground truth in the study's data set") for n in section.notes)
    assert any(n.startswith("Source mitdb") for n in section.notes)
    assert not any("No MIT-BIH" in n for n in section.notes)


@pytest.mark.parametrize(("mitdb_dir", "why"), [(None, "ran without --mitdb-dir"),
                                               ("/data/mitdb", "but wrote none")])
def test_section_says_when_there_are_no_mitdb_explanations(mitdb_dir, why, tmp_path):
    study = write_study(tmp_path, with_masks=True)
    study.record["plan"]["mitdb_dir"] = mitdb_dir
    section = explanation_scores_section(study)
    assert set(section.tables[0].frame["source"]) == {"synthetic"}
    assert any(n.startswith("No MIT-BIH explanations") and why in n for n in section.notes)


def test_mitdb_file_without_masks_is_a_clear_error(tmp_path):
    study = write_study(tmp_path, with_masks=False, with_mitdb=True)
    path = study.artifacts["t1"].mitdb_explanations
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files if k != "mask"}
    np.savez(path, **arrays)
    with pytest.raises(ReportError, match="mask"):
        explanation_scores(study)


def test_load_study_finds_mitdb_explanations(tmp_path):
    write_study(tmp_path, with_masks=False, with_mitdb=True)
    (tmp_path / "study.json").write_text(json.dumps({"plan": {"name": "demo"}}))
    pd.DataFrame({"trial_id": ["t1"]}).to_parquet(tmp_path / "trials.parquet")
    (tmp_path / "trials" / "t2").mkdir()
    artifacts = load_study(tmp_path).artifacts
    assert artifacts["t1"].mitdb_explanations == tmp_path / "trials" / "t1" / \
        "mitdb_explanations.npz"
    assert artifacts["t2"].mitdb_explanations is None


def test_synthetic_masks_take_their_rate_from_the_manifest_and_assume_none(tmp_path):
    np.savez(tmp_path / "MASKS.npz", O1=np.ones(10, np.uint8))
    with pytest.raises(ReportError, match=r"SYNTHETIC\.json"):
        read_synthetic_masks(tmp_path)
    (tmp_path / "SYNTHETIC.json").write_text(json.dumps({"fs_hz": 250.0}))
    assert read_synthetic_masks(tmp_path).fs_hz == 250.0
