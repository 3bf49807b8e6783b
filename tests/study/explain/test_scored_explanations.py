"""A trial's artefacts: every validation record with ground truth explained for scoring,
apart from the gallery, and the sanity checks on request."""

from __future__ import annotations

import numpy as np
import torch

from data_io.synthetic import generate_records, to_ecg_arrays
from models import build_model
from study.engine.checkpoint import save_checkpoint
from study.engine.config import resolve_config
from study.engine.metrics import Scoring
from study.engine.trainer import Split
from study.explain import artifacts
from study.explain.artifacts import write_trial_artifacts
from study.explain.explanation_methods import merge_settings

FS_HZ = 100.0
MODEL = {"name": "cnn", "channels": [4, 8], "kernel_size": 5, "pooling": "gmp"}
CHEAP = {"occlusion": {"window_s": 2.0, "stride_s": 2.0},
         "integrated_gradients": {"steps": 2, "max_steps": 2},
         "shift_perturbation": {"steps": 2, "knot_spacing_s": 1.0}}


def _study_parts(tmp_path, *, n_records=10):
    records = generate_records(n_records=n_records, seed=3, fs_hz=FS_HZ)
    arrays = to_ecg_arrays(records)
    masks_by_id = {name: r.abnormal_mask for name, r in records.items()}
    torch.manual_seed(0)
    config = {**MODEL, "n_classes": len(arrays.classes), "n_leads": 1}
    model = build_model(dict(config))
    checkpoint = tmp_path / "model.pt"
    save_checkpoint(checkpoint, {"config": resolve_config({"model": MODEL}).as_dict(),
                                 "model_config": model.config,
                                 "model_state": model.state_dict()})

    def masks(item_ids, *, fs_hz, n_samples):
        out = np.zeros((len(item_ids), n_samples), np.uint8)
        for row, item in enumerate(item_ids):
            mask = masks_by_id[item][:n_samples]
            out[row, : len(mask)] = mask
        return out

    return arrays, masks_by_id, checkpoint, masks


def _write(tmp_path, *, score_records, sanity, n_records=10, **options):
    arrays, masks_by_id, checkpoint, masks = _study_parts(tmp_path, n_records=n_records)
    split = Split(arrays, np.arange(len(arrays)))
    scoring = Scoring(classes=arrays.classes, keys=("normal", "af", "other", "noisy"),
                      metric="f1_cinc", kind="mean_f1", averaged=("N", "A", "O"))
    written = write_trial_artifacts(
        checkpoint_file=checkpoint, split=split, fold=0, out_dir=tmp_path / "trial",
        scoring=scoring, normal_class=0, masks=masks, score_records=score_records,
        sanity=sanity, settings=merge_settings(CHEAP), **options)
    return written, masks_by_id


def test_every_record_with_an_abnormal_beat_is_scored_apart_from_the_gallery(tmp_path):
    written, masks_by_id = _write(tmp_path, score_records=None, sanity=False)
    expected = {name for name, mask in masks_by_id.items() if mask.any()}
    assert expected  # the fixture has O or A records
    with np.load(written["scored_explanations"]) as scored:
        assert set(scored["record_ids"]) == expected
        assert scored["mask"].shape == scored["signal"][:, 0].shape
        assert "map/integrated_gradients" in scored and "map/occlusion" in scored
        assert "shift/target_reached" in scored
    assert "sanity" not in written


def test_a_sample_of_scored_records_and_the_sanity_checks(tmp_path):
    written, masks_by_id = _write(tmp_path, score_records=2, sanity=True)
    with np.load(written["scored_explanations"]) as scored:
        assert len(scored["record_ids"]) == 2
        assert all(masks_by_id[r].any() for r in scored["record_ids"])
    with np.load(written["sanity"]) as sanity:
        assert sanity["randomisation_stages"].tolist() == ["head", "trunk.blocks.1",
                                                           "trunk.blocks.0"]
        assert sanity["randomisation/cam"].shape == (2, 3)
        assert "deletion/integrated_gradients" in sanity and "deletion_random" in sanity


def test_no_scored_file_without_masks_or_with_zero_records(tmp_path):
    written, _ = _write(tmp_path, score_records=0, sanity=False)
    assert "scored_explanations" not in written
    assert not (tmp_path / "trial" / "scored_explanations.npz").exists()


def test_scored_records_of_the_gallery_are_taken_from_it(tmp_path):
    # 10 records: the gallery (up to 18) holds every one, so nothing is explained twice
    written, _ = _write(tmp_path, score_records=None, sanity=False)
    with np.load(written["explanations"]) as gallery, \
            np.load(written["scored_explanations"]) as scored:
        rows = {r: k for k, r in enumerate(gallery["record_ids"].tolist())}
        for k, record in enumerate(scored["record_ids"].tolist()):
            n = int(scored["lengths"][k])
            for key in ("map/integrated_gradients", "map/cam", "signal"):
                np.testing.assert_array_equal(scored[key][k, ..., :n],
                                              gallery[key][rows[record], ..., :n])


def test_a_time_budget_scores_a_random_sample_and_says_what_it_scored(tmp_path, monkeypatch):
    lines = []
    written, masks_by_id = _write(tmp_path, score_records=None, sanity=False, n_records=48,
                                  budget_s=0.0, log=lines.append)
    candidates = sum(mask.any() for mask in masks_by_id.values())
    with np.load(written["scored_explanations"]) as scored:
        n = len(scored["record_ids"])
        assert all(masks_by_id[r].any() for r in scored["record_ids"])
    # the budget is spent at once: the gallery stops at one record per class (in chunks),
    # the scored records at the random order's gallery records up to its first chunk
    with np.load(written["explanations"]) as gallery:
        kept = len(gallery["record_ids"])
    assert 4 <= kept < artifacts.gallery_size(4)
    assert 1 <= n < candidates
    assert len(lines) == 2
    assert lines[0].startswith(f"trial: gallery: {kept} of ")
    assert "time budget of 0 s" in lines[0]
    assert f"{n} of {candidates} validation records with abnormal beats" in lines[1]
    assert "time budget" in lines[1] and "integrated_gradients" in lines[1]


def test_the_gallery_comes_most_telling_first_one_class_at_a_time():
    import pandas as pd

    # 2 classes; per class two correct records (confidence 0.9, 0.8) and one misclassified
    y_true = [0, 0, 0, 1, 1, 1, 0]
    p0 = [0.9, 0.8, 0.3, 0.1, 0.2, 0.7, 0.55]
    frame = pd.DataFrame({"y_true": y_true, "p_0": p0, "p_1": [1 - p for p in p0]})
    frame["y_pred"] = (frame["p_1"] > frame["p_0"]).astype(int)
    order = artifacts.select_records(frame, n_classes=2)
    # correct of class 0 and 1, wrong of class 0 and 1, then the second correct ones, then
    # the most uncertain left (0.55)
    assert order == [0, 3, 2, 5, 1, 4, 6]
