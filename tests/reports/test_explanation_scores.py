"""Explanation scores on constructed maps and masks, mask resampling and the study section."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from reports.explanation_scores import (
    SCORED_METHODS,
    GroundTruth,
    explanation_scores,
    explanation_scores_section,
    resample_mask,
    score_archive,
    score_maps,
    summarise_scores,
    wilson_interval,
)
from reports.study_data import StudyData, TrialArtifacts

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


def test_methods_take_the_true_class_and_a_softmax_where_documented():
    y_true = np.array([2])
    cam = np.zeros((1, 4, 10))
    cam[0, 2, 3], cam[0, 0, 7] = 5.0, 9.0  # the true class peaks at 3, another at 7
    decision = np.zeros((1, 4, 10))
    decision[0, 2, 6] = 4.0
    arrays = {"y_true": y_true, "map/cam": cam, "map/decision_over_time": decision,
              "map/occlusion": np.linspace(-1, 1, 10)[None, None]}
    assert SCORED_METHODS["cam"].maps(arrays).argmax() == 3
    probability = SCORED_METHODS["decision_over_time"].maps(arrays)
    assert probability.argmax() == 6 and probability[0, 0] == pytest.approx(0.25)
    assert SCORED_METHODS["occlusion"].maps(arrays).min() == 0.0  # positive part


def test_shift_mask_is_scored_only_on_records_the_study_shifted():
    masks = np.stack([beats(ABNORMAL_BEAT), beats(ABNORMAL_BEAT)]).astype(np.uint8)
    truth = GroundTruth(source="test", fs_hz=FS_HZ, masks={"a": masks[0], "b": masks[1]})
    arrays = {"record_ids": np.array(["a", "b"]), "y_true": np.array([2, 2]),
              "signal": np.zeros((2, 1, T)), "lengths": np.array([T, T]),
              "fs_hz": np.array(FS_HZ), "shift/mask": np.zeros((2, 1, T)),
              "shift/target_probability_before": np.array([np.nan, 0.3])}
    scores = score_archive(arrays, truth)
    assert scores["record"].tolist() == ["b"]


# ---- study level --------------------------------------------------------------------------------


def write_study(tmp_path, *, with_masks: bool) -> StudyData:
    """A synthetic study: masks at 300 Hz, explanations at 150 Hz, one trial."""
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
    return StudyData(directory=tmp_path, name="demo",
                     record={"plan": {"data_dir": str(data_dir)}}, trials=pd.DataFrame(),
                     cv=None, artifacts={"t1": TrialArtifacts("t1", None,
                                                              trial / "explanations.npz")})


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
