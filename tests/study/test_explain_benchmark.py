"""The explanation benchmark: its data plant local evidence, its CLI and its summary."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from study import explain_benchmark
from study.explain_benchmark import benchmark_data, generator_params, load_benchmark, main


def small_settings() -> dict:
    settings = copy.deepcopy(load_benchmark())
    settings["data"]["n_records"] = 120
    settings["training"]["epochs"] = 1
    settings["training"]["model"]["channels"] = [4, 8]
    settings["explanations"] = {"shift_perturbation": {"steps": 2},
                                "integrated_gradients": {"steps": 4},
                                "occlusion": {"window_s": 0.5, "stride_s": 0.25}}
    settings["sanity_records"] = 3
    return settings


def test_the_benchmark_data_plant_local_evidence_in_class_o():
    data = {**load_benchmark()["data"], "n_records": 60}
    arrays, masks, train_idx, val_idx = benchmark_data(data)
    assert len(train_idx) + len(val_idx) == 60 and len(val_idx) == round(0.34 * 60)
    assert arrays.fs_hz == 100.0 and set(np.diff(arrays.offsets)) == {1000}  # 10 s each
    fractions = {c: [masks[r].mean() for r, y in zip(arrays.record_ids, arrays.labels,
                                                      strict=True) if arrays.classes[y] == c]
                 for c in ("N", "A", "O")}
    assert all(f == 0 for f in fractions["N"])
    assert 0 < max(fractions["O"]) < 0.3 < min(fractions["A"])  # local vs global evidence
    assert "~" not in {arrays.classes[y] for y in arrays.labels}


def test_generator_overrides_of_unknown_sections_fail():
    with pytest.raises(ValueError, match="unknown generator section 'durations'"):
        generator_params({"durations": {"fixed_s": 10.0}})
    assert generator_params({"duration": {"p_fixed": 1.0}})["duration"]["fixed_s"] == 30.0


def test_out_that_is_a_file_exits_2(tmp_path, capsys):
    path = tmp_path / "file"
    path.write_text("")
    assert main(["--out", str(path)]) == 2
    assert capsys.readouterr().err.startswith("error: --out")


@pytest.mark.slow
def test_a_small_benchmark_writes_every_file_and_reuses_its_model(tmp_path, capsys):
    settings = small_settings()
    summary = explain_benchmark.run(tmp_path, log=lambda line: None, settings=settings)
    for name in ("model.pt", "explanations.npz", "scores.csv", "summary.json",
                 "explanation_sanity.npz", "benchmark.json"):
        assert (tmp_path / name).is_file(), name
    assert 0.0 <= summary["model_accuracy"] <= 1.0 and not summary["model_reused"]
    assert summary["n_records"] == summary["n_records_per_class"]["O"] > 0
    for method in ("cam", "occlusion", "integrated_gradients"):
        entry = summary["methods"][method]
        assert set(entry) >= {"hit_rate", "chance_hit_rate", "mass_ratio",
                              "randomisation_similarity", "deletion_auc", "per_class"}
        assert entry["n_records"] == summary["n_records"]
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    again = explain_benchmark.run(tmp_path, log=lambda line: None, settings=settings)
    assert again["model_reused"] and again["model_accuracy"] == summary["model_accuracy"]
    settings["training"]["epochs"] = 2
    with pytest.raises(ValueError, match="other data or training settings"):
        explain_benchmark.run(tmp_path, log=lambda line: None, settings=settings)
    print(explain_benchmark.table(summary))
    assert "integrated_gradients" in capsys.readouterr().out
