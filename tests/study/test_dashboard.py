"""`python -m study.dashboard`: optuna-dashboard, a real server process on 127.0.0.1, shows a
finished study as `trials.parquet` records it (skipped without the ``dashboard`` extra)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter

import pandas as pd
import pytest

from study.dashboard import main
from study.tune.plan import load_plan

pytest.importorskip("optuna_dashboard", reason='optuna-dashboard not installed '
                                                '(pip install -e ".[dashboard]")')

STATE_OF_REASON = {"completed": "Complete", "early_stopped": "Pruned", "diverged": "Fail",
                   "error": "Fail"}
"""trials.parquet stop reason -> the state name optuna-dashboard's API gives."""


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


@pytest.fixture
def dashboard_url(finished_study, free_port, tmp_path):
    """optuna-dashboard started by `python -m study.dashboard` on the finished study."""
    study_dir, _ = finished_study
    port = free_port()
    log = tmp_path / "dashboard.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "study.dashboard", "--study-dir",
                                 str(study_dir), "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(f"{base}/api/meta")
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "no answer in 60 s: " + log.read_text()
                time.sleep(0.3)
        yield base, log
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_dashboard_shows_every_trial_in_its_true_state(finished_study, dashboard_url):
    study_dir, _ = finished_study
    base, log = dashboard_url
    plan = load_plan(study_dir)
    (study,) = [s for s in _get(f"{base}/api/studies")["study_summaries"]
                if s["study_name"] == plan.optuna_study_name]
    assert f"/dashboard/studies/{study['study_id']}" in log.read_text()
    detail = _get(f"{base}/api/studies/{study['study_id']}")
    trials = {next(a["value"] for a in t["user_attrs"] if a["key"] == "tune_trial_id"): t
              for t in detail["trials"]}

    frame = pd.read_parquet(study_dir / "trials.parquet")
    reasons = frame.drop_duplicates("trial_id").set_index("trial_id")["stop_reason"]
    assert Counter(t["state"] for t in trials.values()) \
        == Counter(STATE_OF_REASON[r] for r in reasons)
    pruned = reasons.index[reasons == "early_stopped"]
    assert len(pruned) >= 1, "the study's ASHA stopped no trial"
    for trial_id in pruned:
        curve = {v["step"]: v["value"] for v in trials[trial_id]["intermediate_values"]}
        epochs = frame[frame.trial_id == trial_id].set_index("epoch")["val/f1_cinc"]
        assert curve == pytest.approx(epochs.to_dict())
        attrs = {a["key"]: a["value"] for a in trials[trial_id]["user_attrs"]}
        assert attrs["stop_reason"] == "early_stopped"
    assert detail["has_intermediate_values"]
    best = json.loads((study_dir / "best_trial.json").read_text())
    (best_trial,) = detail["best_trials"]
    assert trials[best["trial_id"]]["number"] == best_trial["number"]


def test_a_missing_study_is_one_error_line(tmp_path, capsys):
    assert main(["--study-dir", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no study at") and err.count("\n") == 1
