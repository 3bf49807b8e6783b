"""Data sets as a study axis: plans, study.json, folds and single-trial training on MIT-BIH
beats and segments, end to end on synthetic MIT-BIH records (no Ray)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from study import run
from study import train as train_cli
from study.engine.checkpoint import load_checkpoint
from study.tune import plan as plan_module
from study.tune import prepare
from study.tune.plan import StudyError


def _plan(tmp_path, *extra):
    args = run.build_parser().parse_args(
        ["--space", "hadln", "--name", "x", "--study-dir", str(tmp_path / "study"),
         "--synthetic-records", "12", "--wandb-mode", "disabled", *extra])
    return plan_module.make_plan(args, wandb_mode="disabled")


def test_list_datasets_names_every_data_set(capsys):
    assert run.main(["--list-datasets"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert {"cinc2017", "mitdb-beats", "mitdb-pvc-apb", "synthetic", "synthetic-mitdb-beats",
            "synthetic-mitdb-pvc-apb", "mitdb-beats-kaggle"} <= set(names)


def test_show_dataset_prints_its_definition(capsys):
    assert run.main(["--show-dataset", "mitdb-beats"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["metric"]["name"] == "f1_macro" and shown["fs_hz"] == 125.0
    assert run.main(["--show-dataset", "mitdb"]) == 2


def test_the_plan_takes_metric_rate_and_folds_from_the_data_set(tmp_path):
    plan = _plan(tmp_path, "--dataset", "synthetic-mitdb-beats", "--smoke")
    assert (plan.metric, plan.mode, plan.fs_hz, plan.n_folds) == ("val/f1_macro", "max",
                                                                   125.0, 5)
    assert plan.dataset_options == {"window": "rpeak", "paced": "exclude",
                                    "split": "inter-patient"}
    segments = _plan(tmp_path, "--dataset", "synthetic-mitdb-pvc-apb")
    assert (segments.metric, segments.fs_hz, segments.n_folds) == ("val/auroc", 360.0, 5)
    cinc = _plan(tmp_path, "--dataset", "synthetic", "--synthetic-records", "16")
    assert (cinc.metric, cinc.fs_hz, cinc.n_folds) == ("val/f1_cinc", 150.0, 8)


def test_bad_dataset_flags_are_one_clear_error(tmp_path):
    with pytest.raises(StudyError, match="built at 125 Hz only"):
        _plan(tmp_path, "--dataset", "synthetic-mitdb-beats", "--fs-hz", "100")
    with pytest.raises(StudyError, match="no option 'windw'"):
        _plan(tmp_path, "--dataset", "synthetic-mitdb-beats", "--data-option", "windw=x")
    with pytest.raises(StudyError, match="mitdb-beats needs --data-dir"):
        _plan(tmp_path, "--dataset", "mitdb-beats")
    with pytest.raises(StudyError, match="holds no MIT-BIH record"):
        _plan(tmp_path, "--dataset", "mitdb-beats", "--data-dir", str(tmp_path))


def test_study_json_records_the_data_set_and_an_inter_patient_split(tmp_path):
    plan = _plan(tmp_path, "--dataset", "synthetic-mitdb-beats", "--smoke", "--folds", "4")
    _, spec = prepare.prepare_study(plan, write=True)
    record = json.loads((tmp_path / "study" / "study.json").read_text())
    assert record["dataset"]["name"] == "synthetic-mitdb-beats"
    assert [c["label"] for c in record["dataset"]["classes"]] == ["N", "S", "V", "F", "Q"]
    split = record["split"]
    assert split["validation_groups"] and split["training_groups"]
    assert not set(split["training_groups"]) & set(split["validation_groups"])
    assert split["groups_in_both"] == []
    with open(tmp_path / "study" / "folds.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["record"] for r in rows} == set(split["training_groups"]) | set(
        split["validation_groups"]) | set(split["test_groups"])  # records, not beats
    assert split["test_fold"] == 3 and split["test_groups"]  # no DS2 record: a test fold
    assert not set(split["test_groups"]) & (set(split["training_groups"])
                                            | set(split["validation_groups"]))
    assert spec.overrides["data"]["train_batching"] == "bucket"
    assert spec.fold_unit == "group" and spec.dataset == "synthetic-mitdb-beats"


def test_a_beat_level_split_is_recorded_as_leakage(tmp_path, capsys):
    plan = _plan(tmp_path, "--dataset", "synthetic-mitdb-beats", "--smoke",
                 "--data-option", "split=beat-random")
    prepare.prepare_study(plan, write=True)
    record = json.loads((tmp_path / "study" / "study.json").read_text())
    assert record["split"]["groups_in_both"] == record["split"]["validation_groups"] != []
    assert "share patients" in record["folds"]["notes"][0]
    assert "share patients" in capsys.readouterr().err


@pytest.fixture(scope="module")
def mitdb_records(tmp_path_factory):
    from data_io.synthetic_mitdb import write_mitdb

    directory = tmp_path_factory.mktemp("mb")
    write_mitdb(out=directory, n_records=8, seed=5)
    return directory


TINY_HADLN = {"name": "hadln", "stem_channels": 8, "stage_channels": [8, 8],
              "blocks_per_stage": 1, "lstm_units": 8, "attention_size": 8}
TINY_SEGMENTER = {"name": "segmenter", "variant": "joint", "unet_depth": 2, "unet_width": 4,
                  "pool_kernel": 41, "classifier_channels": [4, 8], "hidden_units": 8}


@pytest.mark.parametrize(("dataset", "model", "metric", "classes"), [
    ("mitdb-beats", TINY_HADLN, "val/f1_macro", ["N", "S", "V", "F", "Q"]),
    ("mitdb-pvc-apb", TINY_SEGMENTER, "val/auroc", ["PVC", "APB"]),
])
def test_train_one_configuration_on_a_mitdb_data_set(mitdb_records, tmp_path, capsys, dataset,
                                                     model, metric, classes):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model": model, "data": {"fs_hz": 100.0},
                                  "optim": {"batch_size": 32},
                                  "runtime": {"device": "cpu"}}))
    out = tmp_path / "out"
    assert train_cli.main(["--dataset", dataset, "--data-dir", str(mitdb_records), "--config",
                           str(config), "--epochs", "1", "--n-folds", "2", "--json",
                           "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["classes"] == classes and 0.0 <= result[metric] <= 1.0
    with open(out / "folds.csv") as handle:
        records = {r["record"] for r in csv.DictReader(handle)}
    assert records and all("_" not in r for r in records)  # folds of records, not of items
    with open(out / "predictions.csv") as handle:
        predicted = {row["record"].split("_")[0] for row in csv.DictReader(handle)}
    model_config = load_checkpoint(out / "checkpoint.pt")["model_config"]
    assert model_config["n_leads"] == (2 if dataset == "mitdb-pvc-apb" else 1)
    assert model_config["n_classes"] == len(classes)
    assert predicted <= records


def test_segment_explanations_carry_their_annotated_abnormal_beats(mitdb_records, tmp_path):
    """explanations.npz of a PVC/APB study holds each segment's abnormal-beat mask, which the
    report scores the maps against."""
    import numpy as np

    from data_io.datasets import load_dataset
    from reports.explanation_scores import scored_archives
    from reports.study_data import TrialArtifacts
    from study.engine.trainer import train
    from study.explain.artifacts import write_trial_artifacts
    from study.tune.data import fold_split, load_arrays, mask_source, scoring
    from study.tune.spec import StudySpec

    spec = StudySpec(data_dir=str(mitdb_records), cache_dir=str(tmp_path / "cache"),
                     fs_hz=100.0, folds={}, fold=0, max_epochs=1, seed=0,
                     dataset="mitdb-pvc-apb")
    dataset = load_dataset("mitdb-pvc-apb")
    plan = dataset.fold_plan(load_arrays(spec), n_folds=3, seed=0, options={})
    spec = StudySpec(**{**spec.__dict__, "folds": plan.table.as_dict()})
    train_split, val_split = fold_split(spec, fold=0)
    checkpoint = tmp_path / "checkpoint.pt"
    train(config={"model": TINY_SEGMENTER, "epochs": 1, "data": {"fs_hz": 100.0,
                  "train_batching": "bucket", "eval_batching": "bucket"},
                  "runtime": {"device": "cpu", "amp": False}},
          train_split=train_split, val_split=val_split, scoring=scoring(spec),
          checkpoint_path=checkpoint)
    out = tmp_path / "trial"
    written = write_trial_artifacts(checkpoint_file=checkpoint, split=val_split, fold=0,
                                    out_dir=out, scoring=scoring(spec), normal_class=None,
                                    masks=mask_source(spec))
    with np.load(written["explanations"]) as archive:
        arrays = {k: archive[k] for k in archive.files}
    assert arrays["mask"].shape == arrays["signal"][:, 0].shape  # (B, T) at 100 Hz
    assert arrays["signal"].shape[1] == 2 and arrays["mask"].any(axis=1).all()
    assert not any(k.startswith("shift/") for k in arrays)  # no normal class to shift to
    found = scored_archives(TrialArtifacts(trial_id="t", predictions=None,
                                           explanations=Path(written["explanations"])),
                            data_truth=None)
    assert [truth.name for truth, _ in found] == ["annotations"]


def test_synthetic_record_counts_default_to_what_the_set_can_make(tmp_path):
    """The synthetic MIT-BIH sets make one record per MIT-BIH record name: the default asks for
    all of them, and asking for more is one error naming the option, before any directory."""
    def plan_of(*extra):
        args = run.build_parser().parse_args(
            ["--space", "hadln", "--name", "x", "--study-dir", str(tmp_path / "study"),
             "--wandb-mode", "disabled", *extra])
        return plan_module.make_plan(args, wandb_mode="disabled")

    assert plan_of("--dataset", "synthetic-mitdb-beats").synthetic_records == 44
    assert plan_of("--dataset", "synthetic").synthetic_records == 200
    with pytest.raises(StudyError, match=r"--synthetic-records 45: synthetic-mitdb-beats "
                                         r"generates at most 44 records"):
        plan_of("--dataset", "synthetic-mitdb-beats", "--synthetic-records", "45")
    with pytest.raises(StudyError, match=r"--synthetic-records 9: must be at least twice "
                                         r"--folds \(5\)"):
        plan_of("--dataset", "synthetic-mitdb-pvc-apb", "--synthetic-records", "9")
    assert run.main(["--space", "hadln", "--dataset", "synthetic-mitdb-beats", "--name", "y",
                     "--study-dir", str(tmp_path / "refused"), "--synthetic-records", "45",
                     "--wandb-mode", "disabled"]) == 2
    assert not (tmp_path / "refused").exists()
