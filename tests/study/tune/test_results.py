"""The study's own per-epoch record: ASHA rungs and stop reasons, independent of Optuna."""

from __future__ import annotations

import math

import pytest

from study.tune.results import (
    asha_milestones,
    final_scores,
    flatten,
    stop_reason,
    trial_rows,
    trials_frame,
)


@pytest.mark.parametrize(
    ("grace", "factor", "max_epochs", "expected"),
    [(1, 3, 27, [1, 3, 9, 27]), (1, 3, 4, [1, 3, 4]), (2, 2, 12, [2, 4, 8, 12]), (1, 4, 1, [1])],
)
def test_asha_milestones(grace, factor, max_epochs, expected):
    assert asha_milestones(grace_period=grace, reduction_factor=factor,
                           max_epochs=max_epochs) == expected


def _history(n, *, status="running", score=0.5):
    return [{"epoch": e, "val/f1_cinc": score, "trial_status": status} for e in range(1, n + 1)]


def test_stop_reasons():
    assert stop_reason(history=_history(4), error=None, max_epochs=4) == "completed"
    assert stop_reason(history=_history(1), error=None, max_epochs=4) == "early_stopped"
    assert stop_reason(history=_history(2, status="diverged"), error=None,
                       max_epochs=4) == "diverged"
    assert stop_reason(history=_history(2), error="RuntimeError: boom", max_epochs=4) == "error"
    assert stop_reason(history=[], error="OOM", max_epochs=4) == "error"


def test_rows_carry_rungs_and_flattened_config():
    trials = [
        {"trial_id": "a", "config": {"model": {"depth": 7, "channels": [4, 8]}},
         "history": _history(4, score=0.8), "error": None},
        {"trial_id": "b", "config": {"model": {"depth": 17}}, "history": _history(1, score=0.2),
         "error": None},
        {"trial_id": "c", "config": {"model": {"depth": 4}}, "history": [], "error": "boom"},
    ]
    frame = trials_frame(trials, milestones=[1, 3, 4])
    a = frame[frame.trial_id == "a"]
    assert a["rung"].tolist() == [0, 0, 1, 2]
    assert a["at_milestone"].tolist() == [True, False, True, True]
    assert a["max_rung"].iloc[0] == 2 and a["config/model/channels"].iloc[0] == "[4, 8]"
    b = frame[frame.trial_id == "b"]
    assert b["stop_reason"].tolist() == ["early_stopped"] and b["max_rung"].iloc[0] == 0
    c = frame[frame.trial_id == "c"]
    assert c["stop_reason"].tolist() == ["error"] and c["error"].iloc[0] == "boom"
    ranked = final_scores(frame, metric="val/f1_cinc", mode="max", max_epochs=4)
    assert ranked["trial_id"].tolist() == ["a"]


def test_flatten_nests_with_slashes():
    assert flatten({"a": {"b": 1, "c": {"d": True}}, "e": 2}) == {
        "config/a/b": 1, "config/a/c/d": True, "config/e": 2}


def test_an_epoch_reported_twice_keeps_the_repeat_that_the_trial_continued_from():
    history = [{"epoch": 1, "val/f1_cinc": 0.1}, {"epoch": 2, "val/f1_cinc": 0.2},
               {"epoch": 2, "val/f1_cinc": 0.25}, {"epoch": 3, "val/f1_cinc": 0.3}]
    rows = trial_rows(trial_id="t", config={}, history=history, error=None, milestones=[1, 3])
    assert [(r["epoch"], r["val/f1_cinc"]) for r in rows] == [(1, 0.1), (2, 0.25), (3, 0.3)]
    assert rows[0]["stop_reason"] == "completed"


def test_a_diverged_trial_has_no_score_not_zero():
    history = [{"epoch": 1, "val/f1_cinc": 0.4, "val/loss": 1.2, "trial_status": "running"},
               {"epoch": 2, "val/f1_cinc": 0.0, "val/loss": 1.2, "trial_status": "diverged",
                "val/confusion_json": "[[1]]", "config/model/depth": 7,  # as Ray reports it
                "message": "training diverged at epoch 2: loss is nan at batch 3"}]
    rows = trial_rows(trial_id="t", config={"model": {"depth": 7}}, history=history,
                      error=None, milestones=[1, 3])
    assert [r["stop_reason"] for r in rows] == ["diverged", "diverged"]
    assert rows[0]["val/f1_cinc"] == 0.4  # measured before it diverged: kept
    assert math.isnan(rows[1]["val/f1_cinc"]) and math.isnan(rows[1]["val/loss"])
    assert rows[1]["val/confusion_json"] is None
    assert rows[1]["config/model/depth"] == 7  # the configuration is not a score
    assert rows[1]["message"].startswith("training diverged at epoch 2")
