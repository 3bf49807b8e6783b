"""The "where to add" recipes of docs/architecture.md, each followed with a toy: a data set, a
model family, an explanation method and a report analysis (the search-space recipe is
followed by tests/test_docs.py::test_the_example_search_space_samples_builds_and_trains)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

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
                 "test_an_explanation_method_is_a_spec_and_a_function",
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


TOY_METHOD = {
    "name": "energy", "compute": "toy_energy:energy_maps", "order": 60,
    "settings": {"exponent": 2.0}, "smoke": {"exponent": 1.0}, "cost": "once",
    "runs_on": "all",
    "maps": [{"name": "energy", "keys": ["map/energy"], "panel": "line",
              "title": "signal energy", "note": "signal power, whatever the model",
              "score": {"reduce": "channel", "transform": "absolute"}}],
}
TOY_COMPUTATION = """
import numpy as np


def energy_maps(model, batch, settings):
    power = batch.x.pow(2).sum(1, keepdim=True) ** settings["exponent"]  # (B, 1, T)
    return {"map/energy": power.numpy().astype(np.float32)}
"""


def test_an_explanation_method_is_a_spec_and_a_function(tmp_path, monkeypatch):
    """The recipe's two files in a folder of their own: the study computes the toy method
    beside the built-in ones, and the report scores it and draws its panel."""
    from data_io.synthetic import generate_records, to_ecg_arrays
    from models import build_model
    from reports.explanation_scores import GroundTruth, score_archive
    from reports.galleries import gallery_figure, gallery_items
    from study.engine.checkpoint import save_checkpoint
    from study.engine.config import resolve_config
    from study.engine.metrics import Scoring
    from study.engine.trainer import Split
    from study.explain.artifacts import write_trial_artifacts
    from study.explain.explanation_methods import merge_settings, study_settings
    from study.explanation_specs import SPECS_ENV

    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "energy.json").write_text(json.dumps(TOY_METHOD))
    (plugins / "toy_energy.py").write_text(TOY_COMPUTATION)
    monkeypatch.setenv(SPECS_ENV, str(plugins))
    monkeypatch.syspath_prepend(str(plugins))
    assert study_settings(smoke=True)["energy"] == {"exponent": 1.0}

    fs_hz = 100.0
    records = generate_records(n_records=8, seed=3, fs_hz=fs_hz)
    arrays = to_ecg_arrays(records)
    model_config = {"name": "cnn", "channels": [4, 8], "kernel_size": 5, "pooling": "gmp"}
    model = build_model({**model_config, "n_classes": len(arrays.classes), "n_leads": 1})
    checkpoint = tmp_path / "model.pt"
    save_checkpoint(checkpoint, {"config": resolve_config({"model": model_config}).as_dict(),
                                 "model_config": model.config,
                                 "model_state": model.state_dict()})

    def masks(item_ids, *, fs_hz, n_samples):
        out = np.zeros((len(item_ids), n_samples), np.uint8)
        for row, item in enumerate(item_ids):
            mask = records[item].abnormal_mask[:n_samples]
            out[row, :len(mask)] = mask
        return out

    cheap = {"occlusion": {"window_s": 2.0, "stride_s": 2.0},
             "integrated_gradients": {"steps": 2, "max_steps": 2},
             "shift_perturbation": {"steps": 2}}
    written = write_trial_artifacts(
        checkpoint_file=checkpoint, split=Split(arrays, np.arange(len(arrays))), fold=0,
        out_dir=tmp_path / "trial", normal_class=0, masks=masks, settings=merge_settings(cheap),
        scoring=Scoring(classes=arrays.classes, keys=("normal", "af", "other", "noisy"),
                        metric="f1_cinc", kind="mean_f1", averaged=("N", "A", "O")))

    with np.load(written["scored_explanations"]) as archive:
        scored = {k: archive[k] for k in archive.files}
    signal_power = scored["signal"].astype(np.float64) ** 4  # exponent 2 of x^2
    # both stored as float16 (three significant digits)
    np.testing.assert_allclose(scored["map/energy"], signal_power, rtol=1e-2, atol=1e-3)
    truth = GroundTruth(name="toy", source="synthetic", fs_hz=fs_hz,
                        masks={r: records[r].abnormal_mask for r in scored["record_ids"]})
    scores = score_archive(scored, truth)
    energy = scores[scores["method"] == "energy"]
    assert len(energy) == len(scored["record_ids"]) > 0
    assert {"cam", "occlusion", "integrated_gradients"} <= set(scores["method"])

    item = gallery_items(written["explanations"], written["predictions"])[0]
    titles = [a.text for a in gallery_figure(item).layout.annotations]
    assert "signal energy" in titles
    assert titles.index("signal energy") == len(titles) - 1  # order 60: after the built-ins


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
