"""What a trial reports to Ray Tune when its loss diverges."""

from __future__ import annotations

import math

from study.tune.trainable import diverged_report


def test_a_diverged_epoch_reports_no_score_for_any_metric_asha_could_rank_on():
    before = {"epoch": 3, "val/f1_cinc": 0.61, "val/auroc_macro": 0.83, "val/loss": 0.52,
              "train/loss": 0.48, "val/confusion": [[1, 0], [0, 1]], "seconds": 12.0}
    report = diverged_report(before, study_metric="val/f1_cinc", fold=0, node="n",
                             message="training diverged at epoch 4: loss is nan at batch 7")
    assert report["epoch"] == 4 and report["trial_status"] == "diverged"
    assert report["message"].startswith("training diverged at epoch 4")
    for key in ("val/f1_cinc", "val/auroc_macro", "val/loss", "train/loss"):
        assert math.isnan(report[key]), key  # not epoch 3's scores passed off as epoch 4's
    assert report["val/confusion_json"] == "[[1, 0], [0, 1]]" and report["seconds"] == 12.0


def test_a_trial_that_diverges_in_its_first_epoch_still_reports_the_study_metric():
    report = diverged_report({"epoch": 0}, study_metric="val/f1_cinc", fold=1, node="n",
                             message="training diverged at epoch 1: loss is inf at batch 0")
    assert report["epoch"] == 1 and report["fold"] == 1 and math.isnan(report["val/f1_cinc"])
