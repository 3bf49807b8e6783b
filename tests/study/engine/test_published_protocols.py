"""The published protocols as data: a preset study of HADLN or the segmenter trains with the
family's published training, the shipped training configs say the same, and every preset a
published table reproduces exists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_io.datasets import load_dataset
from models import load_preset, preset_names
from search_spaces import load_space
from study.engine.config import resolve_config
from study.tune.driver import preset_candidates
from study.tune.plan import Plan
from study.tune.results import flatten

CONFIGS = Path(__file__).resolve().parents[3] / "study" / "configs"
FAMILIES = {"hadln": ("hadln_mitbih.json", "mitdb-beats"),
            "segmenter": ("segmenter_mitdb.json", "mitdb-pvc-apb")}


@pytest.mark.parametrize("space", sorted(FAMILIES))
def test_the_shipped_config_is_the_spaces_published_training(space):
    config_file, _ = FAMILIES[space]
    shipped = flatten(resolve_config(json.loads((CONFIGS / config_file).read_text())).as_dict(),
                      prefix="")
    published = dict(load_space(space).PUBLISHED_TRAINING)
    assert {key: shipped[key] for key in published} == published
    assert json.loads((CONFIGS / config_file).read_text())["model"]["preset"] in preset_names()


@pytest.mark.parametrize("space", sorted(FAMILIES))
def test_a_preset_study_trains_with_the_published_training(space, plan_fields):
    _, dataset = FAMILIES[space]
    presets = tuple(load_dataset(dataset).facts["published"][0]["presets"])
    plan = Plan(**plan_fields(space=space, dataset=dataset, presets=presets))
    candidates = preset_candidates(plan.presets, space=plan.space)
    assert [c["trial_id"] for c in candidates] == list(presets)
    for candidate in candidates:
        config = candidate["config"]
        assert config["model"] == load_preset(candidate["trial_id"])
        flat = flatten({k: v for k, v in config.items() if k != "model"}, prefix="")
        shipped = json.loads((CONFIGS / FAMILIES[space][0]).read_text())
        assert flat == flatten({k: v for k, v in shipped.items() if k != "model"}, prefix="")
        published = dict(load_space(space).PUBLISHED_TRAINING)
        assert {key: flat[key] for key in published} == published


def test_a_family_without_published_training_keeps_the_defaults(plan_fields):
    plan = Plan(**plan_fields(presets=("cnn7_gmp",)))
    (candidate,) = preset_candidates(plan.presets, space=plan.space)
    assert candidate["config"] == {"model": load_preset("cnn7_gmp")}


@pytest.mark.parametrize("dataset", ["mitdb-beats", "mitdb-pvc-apb"])
def test_every_preset_a_published_table_reproduces_names_one_of_its_rows(dataset):
    import pandas as pd

    folder = Path(__file__).resolve().parents[4] / "shared" / "reference-results"
    for entry in load_dataset(dataset).facts["published"]:
        assert set(entry["presets"]) <= set(preset_names())
        if not (folder / entry["file"]).is_file():
            continue  # the shared tables are beside the clone only where they were fetched
        table = pd.read_csv(folder / entry["file"])
        labels = {" / ".join(str(row[c]) for c in entry["label_columns"] if pd.notna(row[c]))
                  for _, row in table.iterrows()}
        assert set(entry["presets"].values()) <= labels
