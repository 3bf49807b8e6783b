"""The cost model of `--dry-run` and the space listing."""

from __future__ import annotations

import pytest

from study.tune.estimate import (
    ASYNC_ASHA_FACTOR,
    STUDY_START_S,
    TRIAL_START_S,
    ConfigCost,
    estimate_study,
)
from study.tune.results import expected_epochs
from study.tune.space_text import first_paragraph, render_space, space_line


def test_estimate_packs_the_search_and_runs_cv_in_waves():
    costs = [ConfigCost(epoch_s=10.0, pretrain_s=0.0, summary="a"),
             ConfigCost(epoch_s=30.0, pretrain_s=0.0, summary="b")]
    found = estimate_study(costs, n_configs=8, milestones=[1, 3, 9], reduction_factor=3.0,
                           concurrency=2, top_k=1, n_folds=4, n_final=0)
    e = expected_epochs(milestones=[1, 3, 9], reduction_factor=3.0)
    mid_search = 8 * (e * 20.0 + TRIAL_START_S)
    full = 9 * 20.0 + TRIAL_START_S
    assert found.trial_seconds[1] == pytest.approx(mid_search + 4 * full)
    assert found.wall_seconds[1] == pytest.approx(STUDY_START_S + mid_search / 2 + 2 * full)
    high_search = 8 * (min(e * ASYNC_ASHA_FACTOR, 9) * 30.0 + TRIAL_START_S)
    assert found.trial_seconds[2] == pytest.approx(high_search + 4 * (9 * 30.0 + TRIAL_START_S))
    assert found.wall_seconds[0] < found.wall_seconds[1] < found.wall_seconds[2]
    assert found.epoch_seconds == (10.0, 20.0, 30.0)


def test_the_final_training_on_the_test_set_adds_full_trials_in_waves():
    costs = [ConfigCost(epoch_s=10.0, pretrain_s=0.0, summary="a")]
    without = estimate_study(costs, n_configs=4, milestones=[3], reduction_factor=3.0,
                             concurrency=2, top_k=3, n_folds=2, n_final=0)
    found = estimate_study(costs, n_configs=4, milestones=[3], reduction_factor=3.0,
                           concurrency=2, top_k=3, n_folds=2, n_final=3)
    full = 3 * 10.0 + TRIAL_START_S
    assert found.trial_seconds[1] == pytest.approx(without.trial_seconds[1] + 3 * full)
    assert found.wall_seconds[1] == pytest.approx(without.wall_seconds[1] + 2 * full)


def test_without_early_stopping_every_trial_runs_the_budget():
    costs = [ConfigCost(epoch_s=5.0, pretrain_s=2.0, summary="a")]
    found = estimate_study(costs, n_configs=3, milestones=[4], reduction_factor=3.0,
                           concurrency=1, top_k=0, n_folds=8, n_final=0)
    assert found.trial_seconds == pytest.approx((3 * (4 * 5.0 + 2.0 + TRIAL_START_S),) * 3)


def test_dry_run_prints_a_measured_estimate(tmp_path, capsys, monkeypatch):
    from study.run import main
    from study.tune import estimate

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(estimate, "PROBE_CONFIGS", 1)  # one small probe keeps the test short
    monkeypatch.setattr(estimate, "PROBE_STEPS", 1)
    assert main(["--space", "cnn", "--dataset", "synthetic", "--smoke", "--num-samples", "4",
                 "--max-epochs", "2", "--dry-run", "--name", "e", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "estimate: " in out and " wall (range " in out and "CPU-hours" in out
    assert "from a probe of 1 sampled configuration on" in out and "s per trial epoch" in out
    assert "+ explanations of the best 1 in the driver, " in out
    stages = next(line for line in out.splitlines() if line.startswith("  stages: "))
    names = [part.split(" ")[0] for part in stages.removeprefix("  stages: ").split(", ")]
    assert names == ["search", "explanations", "final"]  # no CV without --cv-top-k
    shares = [int(part.split("(")[1].split(" %")[0]) for part in stages.split(", ")]
    assert abs(sum(shares) - 100) <= 2


def test_dry_run_estimates_a_data_set_smaller_than_two_batches(tmp_path, capsys, monkeypatch):
    """Six records and batches of 32: the probe times the records repeated, not an error."""
    from study.run import main
    from study.tune import estimate

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(estimate, "PROBE_CONFIGS", 1)
    assert main(["--space", "cnn", "--dataset", "synthetic", "--smoke", "--num-samples", "2",
                 "--max-epochs", "1", "--folds", "3", "--synthetic-records", "6",
                 "--set", "optim/batch_size=32", "--dry-run", "--name", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "estimate: " in out and "6 synthetic records" in out


def test_dry_run_of_a_beat_set_counts_the_beats_it_will_train_on(tmp_path, capsys, monkeypatch):
    """A synthetic MIT-BIH record holds about a hundred beats: the estimate scales the beats
    of the probe's records, not the record count, and names them beats."""
    import re

    from study.run import main
    from study.tune import estimate

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(estimate, "PROBE_CONFIGS", 1)
    monkeypatch.setattr(estimate, "PROBE_STEPS", 1)
    assert main(["--space", "hadln", "--dataset", "synthetic-mitdb-beats", "--smoke",
                 "--synthetic-records", "10", "--num-samples", "2", "--max-epochs", "1",
                 "--dry-run", "--name", "beats"]) == 0
    out = capsys.readouterr().out
    found = re.search(r"the study's 10 records hold about (\d+) beats", out)
    assert found and int(found.group(1)) > 100, out
    assert " records); probe took" not in out


def test_space_lines_are_whole_first_paragraphs():
    line = space_line("hadln")
    assert line.startswith("hadln ") and line.endswith("tuned alongside.")
    assert "\n" not in line
    assert first_paragraph("A b\n   c.\n\nRest.") == "A b c."


def test_show_space_text_lists_parameters_conditions_and_fixed_values():
    from search_spaces import describe_space

    text = render_space(describe_space("convlstm", n_samples=60))
    assert "model/n_rnn_layers   integer  1 to 3" in text
    assert "model/hidden_units   integer  2 to 256, log scale" in text
    assert "loss/focal_gamma     float    0 to 3, step 0.5" in text
    assert "[conditional: in" in text and "model/name" in text


def test_help_states_each_default_once():
    from study.run import build_parser

    text = build_parser().format_help()
    assert "(default: None)" not in text and "(default: False)" not in text
    assert text.count("150 Hz") == 1 and "(default: 20)" in text


def test_a_study_of_fixed_configurations_is_estimated_from_presets_folds_and_epochs(
        tmp_path, capsys, monkeypatch):
    """No ASHA and no sampled configurations: each preset is timed, then presets x folds x
    epochs plus the final trainings; the plan names no Optuna storage (none is written)."""
    from study.run import main
    from study.tune import estimate

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(estimate, "PROBE_STEPS", 1)
    assert main(["--presets", "cnn4_gap,cnn7_gmp", "--dataset", "synthetic", "--smoke",
                 "--folds", "4", "--max-epochs", "8", "--cv", "--test-fold", "3",
                 "--dry-run", "--name", "f"]) == 0
    out = capsys.readouterr().out
    assert ("model: 2 configurations x 3 folds x 8 epochs (no early stopping) + 2 final "
            "trainings x 8 epochs") in out
    assert "timing each of the 2 configurations on cpu" in out and "cnn4_gap " in out
    assert "ASHA" not in out and "sampled" not in out and "Optuna" not in out
    assert not (tmp_path / "runs" / "f" / "optuna.db").exists()


def test_fixed_configurations_pack_every_run_of_every_stage():
    from study.tune.estimate import STUDY_START_S, TRIAL_START_S, ConfigCost, estimate_fixed

    costs = [ConfigCost(epoch_s=10.0, pretrain_s=0.0, summary="a"),
             ConfigCost(epoch_s=30.0, pretrain_s=6.0, summary="b")]
    trial_s, wall_s = estimate_fixed(costs, n_folds=3, max_epochs=2, concurrency=2, n_final=1)
    runs = [20.0 + TRIAL_START_S, 66.0 + TRIAL_START_S]
    assert trial_s == pytest.approx(4 * sum(runs))
    assert wall_s == pytest.approx(STUDY_START_S + 3 * sum(runs) / 2 + max(sum(runs) / 2,
                                                                           runs[1]))
