"""Per-class tables in the data set's own classes, and published rows beside the study's."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import pytest

from data_io.datasets import load_dataset
from reports.per_class import per_class_section
from reports.published import published_section
from reports.study_data import StudyData

BEATS = load_dataset("mitdb-beats").describe()
METRIC = "val/f1_macro"


def beats_study(*, cv: pd.DataFrame | None = None) -> StudyData:
    keys = [c["key"] for c in BEATS["classes"]]
    rows = []
    for trial, score in (("good", 0.8), ("weak", 0.4)):
        row = {"trial_id": trial, "epoch": 3, "fold": 0, "stop_reason": "completed",
               METRIC: score, "val/accuracy": score + 0.1,
               "val/confusion_json": json.dumps([[5, 0, 0, 0, 0], [1, 2, 0, 0, 0],
                                                 [0, 0, 4, 0, 0], [0, 0, 1, 1, 0],
                                                 [0, 0, 0, 0, 1]])}
        row["val/f1_weighted"] = score + 0.05
        for k, key in enumerate(keys):
            row[f"val/f1_{key}"] = score - k / 100
            row[f"val/sensitivity_{key}"] = 0.5 + k / 10
            row[f"val/ppv_{key}"] = 0.9 - k / 10
        rows.append(row)
    record = {"plan": {"name": "beats", "metric": METRIC, "mode": "max", "max_epochs": 3,
                       "dataset": "mitdb-beats", "fs_hz": 125.0, "n_folds": 5},
              "asha_milestones": [1, 3], "space": {"parameters": {}},
              "dataset": {**copy.deepcopy(BEATS), "options": {"split": "inter-patient"}}}
    return StudyData(directory=Path("/nonexistent/beats"), name="beats", record=record,
                     trials=pd.DataFrame(rows), cv=cv)


def test_per_class_table_names_the_aami_classes_of_the_best_trial():
    section = per_class_section(beats_study())
    table = section.tables[0]
    assert "Best search trial good" in table.title and "macro F1 0.800" in table.title
    frame = table.frame
    assert list(frame["Class"]) == ["N", "S", "V", "F", "Q"]
    assert frame["Name"][1].startswith("S: supraventricular ectopic")
    assert list(frame.columns) == ["Class", "Name", "F1", "Se", "+P", "Items"]
    assert frame["Se"][2] == pytest.approx(0.7) and frame["+P"][2] == pytest.approx(0.7)
    assert list(frame["Items"]) == [5, 3, 4, 2, 1]


def test_studies_without_a_dataset_definition_say_so():
    study = beats_study()
    del study.record["dataset"]
    assert "no data-set definition" in per_class_section(study).notes[0]


def test_published_rows_sit_beside_the_best_trial_and_are_labelled(tmp_path):
    (tmp_path / "hadln_mitbih_beats.csv").write_text(
        "source,model,precision_pct,recall_pct,f1_pct,accuracy_pct,note\n"
        "HADLN reproduction Table 1,HADLN (reproduction),92.23,93.97,92.86,94.00,same split\n")
    section = published_section(beats_study(), reference_dir=tmp_path)
    frame = section.tables[0].frame
    published = frame[frame["Result"] == "published"].iloc[0]
    # the reproduction's F1 is weighted by class frequency (its report, section 6.1), so it
    # sits in our weighted F1 column, not beside our macro F1
    assert published["val/f1_weighted"] == "0.929" and published["val/accuracy"] == "0.940"
    assert "random beat-level split" in published["Protocol"]
    ours = frame[frame["Result"] != "published"].iloc[0]
    assert ours["Result"].startswith("this study") and ours["val/f1_weighted"] == "0.850"
    assert ours["Model"] == "good"
    assert ours["Protocol"].startswith(
        "ours, not the HADLN reproduction protocol (paced=include, split=beat-random on "
        "mitdb-beats or mitdb-beats-kaggle): mitdb-beats at 125.0 Hz, split=inter-patient")


def test_a_study_on_the_published_protocol_is_labelled_so(tmp_path):
    (tmp_path / "hadln_mitbih_beats.csv").write_text(
        "source,model,precision_pct,recall_pct,f1_pct,accuracy_pct,note\n"
        "HADLN reproduction Table 1,HADLN (reproduction),92.23,93.97,92.86,94.00,same split\n")
    study = beats_study()
    study.record["dataset"]["options"] = {"window": "rpeak", "paced": "include",
                                          "split": "beat-random"}
    frame = published_section(study, reference_dir=tmp_path).tables[0].frame
    ours = frame[frame["Result"] != "published"].iloc[0]
    assert ours["Protocol"].startswith("the HADLN reproduction protocol: mitdb-beats at 125.0 Hz")
    # the Kaggle files have no options: they are the published split itself
    study.record["plan"]["dataset"] = "mitdb-beats-kaggle"
    study.record["dataset"]["options"] = {}
    frame = published_section(study, reference_dir=tmp_path).tables[0].frame
    assert frame["Protocol"].iloc[-1].startswith("the HADLN reproduction protocol")
    # synthetic records never are, whatever their options
    study.record["plan"]["dataset"] = "synthetic-mitdb-beats"
    frame = published_section(study, reference_dir=tmp_path).tables[0].frame
    assert frame["Protocol"].iloc[-1].startswith("ours, not the HADLN reproduction protocol")


def test_a_study_recorded_before_protocols_were_data_keeps_its_labels(tmp_path):
    # study.json holds the data set's definition as it was: an old one names no protocol
    (tmp_path / "hadln_mitbih_beats.csv").write_text(
        "source,model,precision_pct,recall_pct,f1_pct,accuracy_pct,note\n"
        "HADLN reproduction Table 1,HADLN (reproduction),92.23,93.97,92.86,94.00,same split\n")
    study = beats_study()
    (entry,) = study.record["dataset"]["published"]
    for key in ("protocol_name", "datasets", "data_options", "presets"):
        del entry[key]
    entry["metrics"] = {"f1_pct": METRIC}
    frame = published_section(study, reference_dir=tmp_path).tables[0].frame
    assert frame[METRIC].tolist() == ["0.929", "0.800"]
    assert frame["Protocol"].iloc[-1] == ("mitdb-beats at 125.0 Hz, split=inter-patient, "
                                          "validation fold 0, epoch 3")


def test_a_missing_reference_folder_is_a_note_not_a_crash(tmp_path):
    section = published_section(beats_study(), reference_dir=tmp_path / "none")
    assert not section.tables and "not found" in section.notes[0]


@pytest.mark.shared_data
def test_the_shared_segmenter_table_matches_the_segment_metrics():
    folder = Path(__file__).resolve().parents[3] / "shared" / "reference-results"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    study = beats_study()
    study.record["dataset"] = load_dataset("mitdb-pvc-apb").describe()
    study.record["plan"]["metric"] = "val/auroc"
    frame = published_section(study, reference_dir=folder).tables[0].frame
    joint = frame[frame["Model"].str.contains("L2 norm")].iloc[0]
    assert joint["val/auroc"] == "0.993 ± 0.004" and joint["val/accuracy"] == "0.988 ± 0.001"


def test_a_fixed_configuration_study_sits_beside_the_rows_it_reproduces():
    from reports.published import side_by_side

    published = pd.DataFrame([
        {"Result": "published", "Model": "5.1 / 4 layer CNN+GMP", "val/f1_cinc": "0.680 ± 0.040"},
        {"Result": "published", "Model": "5.1 / 7 layer CNN+GMP", "val/f1_cinc": "0.820 ± 0.010"},
        {"Result": "published", "Model": "5.3 / 7 layer CNN+1 layer LSTM", "val/f1_cinc": "0.8"}])
    ours = pd.DataFrame([
        {"Result": "this study (cross-validation)", "Model": "cnn7_gmp", "val/f1_cinc": "0.7"},
        {"Result": "this study (cross-validation)", "Model": "cnn7_lse", "val/f1_cinc": "0.6"}])
    frame = side_by_side(published, ours, presets={"cnn7_gmp": "5.1 / 7 layer CNN+GMP"})
    assert frame["Model"].tolist() == ["5.1 / 7 layer CNN+GMP", "cnn7_gmp", "cnn7_lse"]
    assert frame["val/f1_cinc"].tolist() == ["0.820 ± 0.010", "0.7", "0.6"]
    assert side_by_side(published, ours, presets={}) is None
    assert side_by_side(published, ours, presets={"cnn7_gmp": "5.9 / none"}) is None


def cinc_study(*, presets: list[str]) -> StudyData:
    """A CinC 2017 study on ECG-DualNet's split: of ``presets``, or a search (none)."""
    rows = [{"trial_id": "dualnet_s", "epoch": 12, "fold": 0, "stop_reason": "completed",
             "val/f1_cinc": 0.81, "val/f1_macro4": 0.74, "val/accuracy": 0.84}]
    record = {"plan": {"name": "dn", "metric": "val/f1_cinc", "mode": "max", "max_epochs": 12,
                       "dataset": "cinc2017", "fs_hz": 150.0, "n_folds": 8,
                       "presets": presets},
              "asha_milestones": [12], "space": {"parameters": {}},
              "dataset": {**load_dataset("cinc2017").describe(), "options": {"split": "dualnet"}}}
    return StudyData(directory=Path("/nonexistent/dn"), name="dn", record=record,
                     trials=pd.DataFrame(rows), cv=None)


def test_dualnet_rows_name_their_protocol_and_their_f1(tmp_path):
    (tmp_path / "ecg_dualnet_cinc2017.csv").write_text(
        "source,model,accuracy,f1_4class,params_millions,note\n"
        "ECG-DualNet slides,CNN baseline (Zihlmann 2017),0.812,0.790,3.5,hidden test set\n"
        "ECG-DualNet slides,ECG-DualNet S,0.8527,0.8049,1.8,same split\n")
    section = published_section(cinc_study(presets=[]), reference_dir=tmp_path)
    frame = next(t.frame for t in section.tables if "ecg_dualnet" in t.name)
    rows = {row["Model"]: row for _, row in frame.iterrows()}
    baseline, published, ours = (rows["CNN baseline (Zihlmann 2017)"], rows["ECG-DualNet S"],
                                 frame.iloc[-1])
    # The baselines' F1 is over N, A, O on the hidden test set: it goes in the CinC F1 column.
    assert "hidden test set" in baseline["Protocol"] and baseline["val/f1_cinc"] == "0.790"
    assert baseline["val/f1_macro4"] == "–"
    # ECG-DualNet's own F1 is the 4-class macro F1 on its validation split.
    assert published["val/f1_macro4"] == "0.805" and published["val/f1_cinc"] == "–"
    assert "7,000 train / 1,528 validation" in published["Protocol"]
    assert ours["Result"].startswith("this study") and "split=dualnet" in ours["Protocol"]
    assert ours["val/f1_macro4"] == "0.740" and ours["val/f1_cinc"] == "0.810"


@pytest.mark.shared_data
def test_the_shared_dualnet_table_reads_with_the_cinc_definition():
    folder = Path(__file__).resolve().parents[3] / "shared" / "reference-results"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    section = published_section(cinc_study(presets=["dualnet_s"]), reference_dir=folder)
    frame = next(t.frame for t in section.tables if "ecg_dualnet" in t.name)
    # A study of the dualnet_s preset sits right below the row it reproduces.
    assert frame["Model"].tolist() == ["ECG-DualNet S", "dualnet_s"]
    assert frame["val/f1_macro4"].tolist() == ["0.805", "0.740"]
    assert frame["val/accuracy"].tolist() == ["0.853", "0.840"]


def test_a_preset_cross_validation_sits_under_the_row_it_reproduces_with_weighted_scores(
        tmp_path):
    # `--presets hadln_mitbih --cv`: the CV mean of the weighted F1 beside the published one
    (tmp_path / "hadln_mitbih_beats.csv").write_text(
        "source,model,precision_pct,recall_pct,f1_pct,accuracy_pct,note\n"
        "HADLN reproduction Table 1,fully connected,88.80,89.38,89.08,88.41,same split\n"
        "HADLN reproduction Table 1,HADLN (reproduction),92.23,93.97,92.86,94.00,"
        "same split; weighted focal loss gamma 2\n")
    cv = pd.DataFrame([{"config/candidate": "hadln_mitbih", "fold": fold, "epoch": 1,
                        "trial_id": f"t{fold}", "stop_reason": "completed", METRIC: 0.5,
                        "val/f1_weighted": 0.6 + fold / 10, "val/accuracy": 0.7}
                       for fold in (0, 1)])
    study = beats_study(cv=cv)
    study.record["plan"]["presets"] = ["hadln_mitbih"]
    frame = published_section(study, reference_dir=tmp_path).tables[0].frame
    assert frame["Model"].tolist() == [
        "HADLN (reproduction) / same split; weighted focal loss gamma 2", "hadln_mitbih"]
    assert frame["val/f1_weighted"].tolist() == ["0.929", "0.650 ± 0.071"]
    assert frame["val/accuracy"].tolist() == ["0.940", "0.700 ± 0.000"]
