"""The "where to add" recipes of docs/architecture.md, each followed with a toy: a data set, a
model family, an explanation method and a report analysis (the search-space recipe is
followed by tests/test_docs.py::test_the_example_search_space_samples_builds_and_trains)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = ROOT / "docs" / "architecture.md"


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> Path:
    from data_io.synthesize import main as synthesize

    out = tmp_path_factory.mktemp("records")
    assert synthesize(["--out", str(out), "--records", "24", "--seed", "3"]) == 0
    return out


def _train(argv: list[str], capsys) -> dict:
    from study.train import main

    capsys.readouterr()  # what ran before (e.g. writing the records) is not the result
    code = main([*argv, "--epochs", "1", "--n-folds", "4", "--fold", "1", "--fs-hz", "100",
                 "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    return json.loads(captured.out)


def test_each_recipe_names_its_test():
    text = ARCHITECTURE.read_text()
    for name in ("test_a_data_set_is_two_files", "test_a_model_family_is_one_registered_class",
                 "test_an_explanation_method_is_computed_and_scored",
                 "test_a_report_analysis_is_one_function_and_one_line",
                 "test_the_example_search_space_samples_builds_and_trains"):
        assert name in text, name
        assert name in globals() or name in (ROOT / "tests" / "test_docs.py").read_text()


def test_a_data_set_is_two_files(tmp_path, monkeypatch, capsys):
    import data_io.datasets as datasets

    package = tmp_path / "extra_datasets"
    package.mkdir()
    (package / "toy_records.py").write_text(
        '"""Toy records: CinC-format files, read as the synthetic set reads them."""\n'
        "from data_io.datasets.synthetic import check, fold_plan, generate, load\n\n"
        '__all__ = ["check", "fold_plan", "generate", "load"]\n')
    (package / "toy_records.json").write_text(json.dumps(
        {"name": "toy-records", "extends": "synthetic", "description": "a toy data set"}))
    monkeypatch.setattr(datasets, "__path__", [*datasets.__path__, str(package)])
    monkeypatch.delitem(sys.modules, "data_io.datasets.toy_records", raising=False)

    assert "toy-records" in datasets.dataset_names()
    toy = datasets.load_dataset("toy-records")
    assert toy.description == "a toy data set" and toy.n_classes == 4
    data_dir = tmp_path / "data"
    toy.generate(data_dir, n_records=24, seed=5)
    toy.check(data_dir)
    result = _train(["--preset", "cnn4_gap", "--dataset", "toy-records", "--data-dir",
                     str(data_dir)], capsys)
    assert result["status"] == "completed" and 0.0 <= result["val/f1_cinc"] <= 1.0
    monkeypatch.delitem(sys.modules, "data_io.datasets.toy_records", raising=False)


class ToyFamily(nn.Module):
    """One convolution, mean over the record, a linear head; its CAM is its own map."""

    def __init__(self, *, n_classes: int, n_leads: int, width: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv1d(n_leads, width, kernel_size=5, padding=2)
        self.head = nn.Linear(width, n_classes)

    def _features(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        valid = torch.arange(x.shape[-1], device=x.device)[None, :] < lengths[:, None]
        return torch.relu(self.conv(x)) * valid[:, None, :]  # (B, W, T)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        features = self._features(x, lengths)
        return self.head(features.sum(-1) / lengths[:, None].clamp(min=1))

    def explain(self, x: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self._features(x, lengths)
        cam = torch.einsum("cw,bwt->bct", self.head.weight, features)  # (B, C, T)
        return {"logits": self.forward(x, lengths), "cam": cam}


def test_a_model_family_is_one_registered_class(records, tmp_path, monkeypatch, capsys):
    from models import build_model, register, registered_models, registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    register("toy_family")(ToyFamily)
    assert "toy_family" in registered_models()
    model = build_model({"name": "toy_family", "n_classes": 4, "n_leads": 1})
    maps = model.explain(torch.randn(2, 1, 300), torch.tensor([300, 200]))
    assert maps["cam"].shape == (2, 4, 300)

    config = tmp_path / "toy.json"
    config.write_text(json.dumps({"name": "toy_family", "width": 3}))
    result = _train(["--config", str(config), "--data-dir", str(records),
                     "--out", str(tmp_path / "out")], capsys)
    assert result["status"] == "completed" and result["epochs_completed"] == 1
    trained = json.loads((tmp_path / "out" / "config.json").read_text())
    assert trained["model"]["name"] == "toy_family" and trained["model"]["width"] == 3


def test_an_explanation_method_is_computed_and_scored(monkeypatch):
    from reports import explanation_scores as scores
    from study.explain import explanation_methods as methods

    def energy(model, batch, settings):
        power = batch.x.pow(2).sum(1, keepdim=True) ** settings["exponent"]  # (B, 1, T)
        return {"map/energy": power.numpy().astype(np.float32)}

    monkeypatch.setattr(methods, "METHODS", MappingProxyType({**methods.METHODS,
                                                              "energy": energy}))
    settings = {**methods.load_settings(), "energy": {"exponent": 1.0}}
    monkeypatch.setattr(scores, "SCORED_METHODS", MappingProxyType({
        **scores.SCORED_METHODS,
        "energy": scores.ScoredMethod(keys=("map/energy",), reduce=lambda m, y: m[:, 0],
                                      transform=np.abs, note="signal power")}))

    fs_hz, n, beat = 100.0, 1000, slice(610, 640)
    x = torch.zeros(3, 1, n)
    x[:, 0, beat] = 1.0  # the "abnormal beat" the map must find
    batch = methods.Batch(x=x, lengths=torch.full((3,), n), fs_hz=fs_hz, normal_class=0)
    arrays = methods.explain_batch(nn.Identity(), batch, settings=settings, methods=("energy",))
    assert arrays["map/energy"].shape == (3, 1, n)

    mask = np.zeros(n, np.uint8)
    mask[beat] = 1
    ids = ["r0", "r1", "r2"]
    archive = {**arrays, "record_ids": np.array(ids), "signal": x.numpy(),
               "lengths": np.full(3, n), "fs_hz": np.float64(fs_hz), "y_true": np.ones(3, int)}
    truth = scores.GroundTruth(name="toy", source="planted", fs_hz=fs_hz,
                               masks={r: mask for r in ids})
    scored = scores.score_archive(archive, truth)
    energy_rows = scored[scored["method"] == "energy"]
    assert len(energy_rows) == 3 and energy_rows["hit"].all()


def test_a_report_analysis_is_one_function_and_one_line(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "reports"))
    import pandas as pd
    import plotly.graph_objects as go
    from opening_study import TRIALS, make_study, write_storage

    from reports import build
    from reports.artifact import Figure, Section, Sources, Table

    def trial_count(study) -> Section:
        frame = pd.DataFrame({"trials": [study.trials["trial_id"].nunique()]})
        return Section(title="Trial count", tables=[Table(
            name="trial_count", title="Trials", frame=frame,
            sources=Sources(study=study.name))], figures=[Figure(
                name="trial_count", title="Trials", figure=go.Figure(go.Bar(y=frame["trials"])),
                sources=Sources(study=study.name))])

    original = build.analyses
    monkeypatch.setattr(build, "analyses", lambda **kw: (*original(**kw),
                                                         ("trial count", trial_count)))
    study_dir = tmp_path / "s"
    study_dir.mkdir()
    study = make_study(study_dir)
    write_storage(study_dir)
    sections = build.study_sections(study)
    toy = [s for s in sections if s.title == "Trial count"]
    assert len(toy) == 1 and not toy[0].notes
    assert int(toy[0].tables[0].frame["trials"].iloc[0]) == len(TRIALS)
    assert toy[0].figures[0].name.endswith("trial_count")
