"""Galleries: items from an explanations archive and their figures (panels, titles, time axis)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reports.galleries import (
    MAX_FIGURE_HEIGHT_PX,
    PANEL_KINDS,
    galleries_section,
    gallery_figure,
    gallery_items,
    unregistered_keys,
)
from reports.study_data import ReportError, StudyData, TrialArtifacts
from study.explanation_specs import map_specs

CLASSES = ("N", "A", "O", "~")
FS_HZ = 150.0
T = 600
LENGTHS = np.array([600, 450])
PADDING_VALUE = 99.0  # written beyond `lengths`: it must never be drawn
N_UNITS = 5

# (B, C, T) maps of every family, by key; plus two keys no panel is registered for.
MAP_CHANNELS = {
    "map/cam": 4, "map/cam_intermediate": 4, "map/cam_registered": 4,
    "map/cam_intermediate_registered": 4, "map/gate_maps": 3, "map/attention": 1,
    "map/attended_signal": 1, "map/decision_over_time": 4, "map/lstm_hidden": N_UNITS,
    "map/lstm_input_gate": N_UNITS, "map/occlusion": 1, "shift/mask": 1,
    "shift/deformation": 1, "shift/shifted_signal": 1, "map/integrated_gradients": 1,
    "map/mystery_pair": 2, "map/mystery_many": 8,
}
# Panels below the ECG and their traces; `shift/deformation` is skipped on purpose.
EXPECTED_TRACES = {
    "map/cam": 2, "map/cam_intermediate": 2, "map/cam_registered": 2,
    "map/cam_intermediate_registered": 2, "map/gate_maps": 3, "map/attention": 1,
    "map/attended_signal": 2, "map/decision_over_time": 4, "shift/mask": 1,
    "shift/shifted_signal": 2, "map/occlusion": 1, "map/integrated_gradients": 1,
    "map/lstm_hidden": 1, "map/lstm_input_gate": 1, "map/mystery_pair": 2,
    "map/mystery_many": 1,
}
PROBABILITIES = np.array([[0.1, 0.7, 0.15, 0.05],   # record R1: true A, predicted A (70%)
                          [0.6, 0.1, 0.25, 0.05]])  # record R2: true O, predicted N (60%)


def write_trial(directory: Path) -> tuple[Path, Path]:
    """An explanations archive with every key family and its predictions table."""
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)
    b = len(LENGTHS)
    real = np.arange(T)[None, None, :] < LENGTHS[:, None, None]  # (B, 1, T)
    arrays = {
        "record_ids": np.array(["R1", "R2"]), "y_true": np.array([1, 2]),
        "signal": np.where(real, rng.standard_normal((b, 1, T)), PADDING_VALUE),
        "lengths": LENGTHS, "fs_hz": np.array(FS_HZ), "classes": np.array(CLASSES),
        # R2 is predicted Normal: the study does not shift it (NaN probabilities).
        "shift/target_probability_before": np.array([0.1, np.nan]),
        "shift/target_probability_after": np.array([0.4, np.nan]),
    }
    for key, channels in MAP_CHANNELS.items():
        arrays[key] = np.where(real, rng.standard_normal((b, channels, T)), PADDING_VALUE)
    npz = directory / "explanations.npz"
    np.savez_compressed(npz, **{k: np.asarray(v) for k, v in arrays.items()})
    frame = pd.DataFrame({"record": ["R0", "R1", "R2"], "fold": 0, "y_true": [0, 1, 2],
                          "y_pred": [0, 1, 0]})
    for k, name in enumerate(CLASSES):
        frame[f"p_{name}"] = np.r_[1.0 if k == 0 else 0.0, PROBABILITIES[:, k]]
    predictions = directory / "predictions.parquet"
    frame.to_parquet(predictions)
    return npz, predictions


@pytest.fixture
def items(tmp_path):
    return gallery_items(*write_trial(tmp_path / "trial"))


def test_items_hold_labels_confidence_and_only_real_samples(items):
    assert [i.record_id for i in items] == ["R1", "R2"]
    assert [(i.y_true, i.y_pred) for i in items] == [(1, 1), (2, 0)]
    assert [i.confidence for i in items] == pytest.approx([0.7, 0.6])
    for item, n in zip(items, LENGTHS, strict=True):
        assert item.signal.shape == (1, n)
        assert {v.shape for v in item.maps.values()} == {(c, n) for c in MAP_CHANNELS.values()}
        assert all(np.all(v != PADDING_VALUE) for v in item.maps.values())
    assert items[0].scalars["shift/target_probability_after"] == pytest.approx(0.4)


def test_figure_has_one_row_per_panel_and_the_expected_traces(items):
    fig = gallery_figure(items[0])
    titles = [a.text for a in fig.layout.annotations]
    rows = [k for k in fig.layout.to_plotly_json() if re.fullmatch(r"yaxis\d*", k)]
    assert len(rows) == len(titles) == 1 + len(EXPECTED_TRACES)  # ECG + one panel per map
    assert len(fig.data) == 1 + sum(EXPECTED_TRACES.values())
    assert titles[0].startswith("ECG")
    assert "CAM of the predicted class A (last layer)" in titles
    assert "CAM of the predicted class A (intermediate layer)" in titles
    assert any(t.startswith("lstm hidden (units x time") for t in titles)
    assert any("p(N) 0.10 -> 0.40" in t for t in titles)  # shift probabilities in its title
    assert not any("deformation" in t for t in titles)
    heatmaps = [t for t in fig.data if t.type == "heatmap"]
    assert len(heatmaps) == 3  # two recurrent states, one generic many-channel map
    assert all(fig.layout[t.coloraxis].colorbar.len > 0 for t in heatmaps)  # own colour bar
    assert fig.layout.height <= MAX_FIGURE_HEIGHT_PX


@pytest.mark.parametrize(("index", "expected"), [
    (0, "R1: true A, predicted A (70%), correct"),
    (1, "R2: true O, predicted N (60%), misclassified"),
])
def test_title_names_record_true_and_predicted_class_and_confidence(items, index, expected):
    assert gallery_figure(items[index]).layout.title.text == expected


def test_time_axis_is_in_seconds_and_ends_at_the_real_length(items):
    item = items[1]  # padded record
    fig = gallery_figure(item)
    end = LENGTHS[1] / FS_HZ
    assert fig.layout.xaxis.range[1] == pytest.approx(end)
    for trace in fig.data:
        assert max(trace.x) < end + 1e-6
    lines = [t for t in fig.data if t.type == "scatter"]
    assert all(len(t.x) == LENGTHS[1] for t in lines)
    assert all(np.max(np.abs(t.y)) < PADDING_VALUE for t in lines)
    assert fig.layout[f"xaxis{len(fig.layout.annotations)}"].title.text == "time (s)"


def test_decision_curves_are_a_softmax_and_cam_is_the_predicted_class(items):
    item = items[1]
    fig = gallery_figure(item)
    curves = np.array([t.y for t in fig.data if t.name and t.name.startswith("p(")])
    assert curves.shape == (len(CLASSES), LENGTHS[1])
    np.testing.assert_allclose(curves.sum(axis=0), 1.0, rtol=1e-5)
    cam = next(t for t in fig.data if t.name == "CAM N")  # predicted N for R2
    np.testing.assert_allclose(cam.marker.color, item.maps["map/cam"][0], rtol=1e-5)


def test_records_the_study_did_not_shift_have_no_shift_panels(items):
    titles = [a.text for a in gallery_figure(items[1]).layout.annotations]
    assert len(titles) == 1 + len(EXPECTED_TRACES) - 2
    assert not any("shift" in t for t in titles)


def test_unknown_keys_are_drawn_generically_and_reported(items):
    assert unregistered_keys(items[0]) == ["map/mystery_pair", "map/mystery_many"]
    titles = [a.text for a in gallery_figure(items[0]).layout.annotations]
    assert "map/mystery_pair (no dedicated panel)" in titles
    assert any(t.startswith("mystery many (units x time") for t in titles)


@pytest.mark.parametrize("name", list(map_specs()))
def test_every_map_spec_matches_a_key_the_study_writes_and_has_a_panel_kind(name):
    spec = map_specs()[name]
    assert any(spec.matches(key) for key in MAP_CHANNELS)
    assert spec.panel in PANEL_KINDS


def test_section_names_one_figure_per_record(tmp_path):
    trials = tmp_path / "trials"
    npz, predictions = write_trial(trials / "0b71eee8")
    bare = trials / "cafe0001"
    bare.mkdir()
    study = StudyData(
        directory=tmp_path, name="demo", record={}, trials=pd.DataFrame(), cv=None,
        artifacts={"0b71eee8": TrialArtifacts("0b71eee8", predictions, npz),
                   "cafe0001": TrialArtifacts("cafe0001", None, None)},
    )
    section = galleries_section(study)
    assert [f.name for f in section.figures] == ["gallery_0b71eee8_r1", "gallery_0b71eee8_r2"]
    assert all(f.sources.trials == ("0b71eee8",) for f in section.figures)
    assert any("map/mystery_many" in n for n in section.notes)


def test_section_without_explanations_says_so(tmp_path):
    study = StudyData(directory=tmp_path, name="demo", record={}, trials=pd.DataFrame(),
                      cv=None, artifacts={})
    section = galleries_section(study)
    assert section.figures == []
    assert "no gallery" in section.notes[0]


def test_missing_prediction_is_an_error(tmp_path):
    npz, predictions = write_trial(tmp_path)
    pd.read_parquet(predictions).iloc[:2].to_parquet(predictions)  # drops R2
    with pytest.raises(ReportError, match="R2"):
        gallery_items(npz, predictions)
