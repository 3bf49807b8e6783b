"""The study's console: trial lines, the summary with ETA, progress bars for CI logs."""

from __future__ import annotations

import io
import os
from types import SimpleNamespace

import pytest

from study.engine.bars import LineProgress, bar
from study.tune.explanation_cost import ExplanationEpochs
from study.tune.progress import StudyProgress, ray_output_to, short_config
from study.tune.results import expected_epochs, expected_remaining_epochs


def _trial(trial_id: str, **last) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, config={"model": {"depth": 7}, "optim": {"lr": 1e-3}},
                           last_result=last, status="RUNNING", num_failures=0, error_file=None)


@pytest.fixture
def progress():
    return StudyProgress(label="search", n_trials=3, metric="val/f1_cinc", mode="max",
                         milestones=[1, 3, 9], reduction_factor=3.0, concurrency=2,
                         interval_s=3600)


def test_a_line_per_start_rung_stop_and_finish(progress, capsys):
    a, b = _trial("aaaa"), _trial("bbbb")
    progress.on_trial_start(0, [a, b], a)
    progress.on_trial_start(0, [a, b], b)
    progress.on_trial_result(0, [a, b], a, {"epoch": 1, "val/f1_cinc": 0.5, "time_this_iter_s": 10})
    progress.on_trial_result(0, [a, b], a, {"epoch": 2, "val/f1_cinc": 0.6, "time_this_iter_s": 10})
    progress.on_trial_result(0, [a, b], b, {"epoch": 1, "val/f1_cinc": 0.1, "time_this_iter_s": 10})
    b.last_result = {"epoch": 1, "val/f1_cinc": 0.1}
    progress.on_trial_complete(0, [a, b], b)
    a.last_result = {"epoch": 9, "val/f1_cinc": 0.7}
    progress.on_trial_complete(0, [a, b], a)
    lines = capsys.readouterr().out.splitlines()
    assert "trial aaaa (1/3) starts: depth=7 lr=0.001" in lines[0]
    assert "trial aaaa (1/3) epoch 1 (rung 0): val/f1_cinc 0.5000" in lines[2]
    assert not any("epoch 2" in line for line in lines)  # epoch 2 is no rung
    assert "trial bbbb (2/3) stopped early by the scheduler after epoch 1" in lines[4]
    assert "trial aaaa (1/3) finished after 9 epochs: val/f1_cinc 0.7000 (best so far)" in lines[5]
    summary = progress.summary_line(running=0)
    assert summary.startswith("search: 2/3 trials done (1 finished, 1 stopped), 0 running, "
                              "best val/f1_cinc 0.7000 (aaaa); ETA ~")


def test_eta_counts_the_epochs_asha_is_expected_to_run(progress):
    a = _trial("aaaa")
    progress.on_trial_result(0, [a], a, {"epoch": 3, "val/f1_cinc": 0.5, "time_this_iter_s": 60})
    # aaaa still runs after rung 3, so it was promoted: 6 more epochs; two not started: E each.
    expected = 6 + 2 * expected_epochs(milestones=[1, 3, 9], reduction_factor=3.0)
    assert expected_epochs(milestones=[1, 3, 9], reduction_factor=3.0) == pytest.approx(
        1 + 2 / 3 + 6 / 9)
    assert progress.eta_text() == f"ETA ~{expected * 60 / 2 / 60:.1f} min (ASHA's expected epochs)"
    progress._last_seen["aaaa"] -= 600  # its current epoch has run 10 min: slower than 60 s
    slow = progress.eta_text()  # its 540-s overrun is added to the epochs left
    assert float(slow.split("~")[1].split()[0]) == pytest.approx(
        (expected * 60 + 540) / 2 / 60, abs=0.1)


def test_expected_remaining_epochs_without_early_stopping_is_the_rest_of_the_budget():
    assert expected_remaining_epochs(epoch=4, milestones=[12], reduction_factor=3.0) == 8
    assert expected_remaining_epochs(epoch=12, milestones=[12], reduction_factor=3.0) == 0


def test_eta_without_early_stopping_says_every_trial_runs_to_the_end():
    fifo = StudyProgress(label="search", n_trials=3, metric="val/f1_cinc", mode="max",
                         milestones=[6], reduction_factor=3.0, concurrency=2, interval_s=3600)
    a = _trial("aaaa")
    fifo.on_trial_result(0, [a], a, {"epoch": 2, "val/f1_cinc": 0.5, "time_this_iter_s": 60})
    # aaaa has 4 epochs left and the two trials not started 6 each: 16 epochs on 2 slots
    assert fifo.eta_text() == "ETA ~8.0 min (every trial runs to the end)"


def test_eta_adds_the_later_stages_at_the_measured_epoch_time_with_each_share():
    search = StudyProgress(label="search", n_trials=3, metric="val/f1_cinc", mode="max",
                           milestones=[6], reduction_factor=3.0, concurrency=2,
                           interval_s=3600,
                           later_stages=(("cross-validation", 2), ("final training", 1)),
                           explain_epochs=ExplanationEpochs(fixed=4.0))
    a = _trial("aaaa")
    search.on_trial_result(0, [a], a, {"epoch": 2, "val/f1_cinc": 0.5, "time_this_iter_s": 60})
    # the search's 8 min as above, then 2 + 1 waves of 6 epochs of 60 s (12 + 6 min) and
    # 4 epochs' worth of explanations (4 min): 30 min
    assert search.eta_text() == ("ETA ~8.0 min (every trial runs to the end); the whole study "
                                 "~30.0 min more: search 27 %, cross-validation 40 %, "
                                 "explanations 13 %, final training 20 %")
    # The trainer's own seconds per epoch (passes only) price the explanations: 4 x 30 s
    b = _trial("bbbb")
    search.on_trial_result(0, [a, b], b, {"epoch": 1, "val/f1_cinc": 0.5,
                                          "time_this_iter_s": 60, "seconds": 30})
    # search 15 epochs left x 60 s on 2 slots (7.5 min), then 12 + 2 + 6 min
    assert search.eta_text().endswith(
        "~27.5 min more: search 27 %, cross-validation 44 %, explanations 7 %, "
        "final training 22 %")


def test_later_stages_count_cv_and_final_runs_concurrency_at_a_time(plan_fields):
    from study.tune.plan import Plan
    from study.tune.tuning import later_stages

    plan = Plan(**plan_fields(cv_top_k=1, baseline=("cnn7_gmp",), concurrency=2, test="fold",
                              n_folds=8, cv_n_folds=2, test_fold=7))
    assert len(plan.cv_folds) == 2
    # CV: (1 + 1) x 2 folds = 4 runs, 2 waves; final: 1 + 1 runs, 1 wave
    assert later_stages(plan, after="search") == (("cross-validation", 2),
                                                  ("final training", 1))
    assert later_stages(plan, after="cv") == (("final training", 1),)
    none = Plan(**plan_fields(cv_top_k=0, baseline=(), test="none"))
    assert later_stages(none, after="search") == ()


def test_callback_pickles_for_tunes_experiment_state(progress):
    import pickle

    restored = pickle.loads(pickle.dumps(progress))
    assert restored.summary_line(running=0).startswith("search: 0/3 trials done")


def test_short_config_shows_every_varied_option():
    assert short_config({"model": {"name": "cnn", "depth": 7}, "epochs": 3}) == "depth=7 epochs=3"
    many = short_config({"m": {f"k{i}": i for i in range(50)}, "optim": {"lr": 0.000107}})
    assert many.endswith("k49=49 lr=0.000107") and "..." not in many


def test_ray_output_goes_to_the_log_file_and_stderr_comes_back(tmp_path):
    log = tmp_path / "ray.log"
    before = os.fstat(2).st_ino
    with ray_output_to(log):
        os.write(2, b"native core_worker line\n")  # what Ray's C++ core and Python loggers hit
    assert log.read_text() == "native core_worker line\n"
    assert os.fstat(2).st_ino == before


def test_line_progress_writes_one_line_per_quarter():
    stream = io.StringIO()
    progress = LineProgress(total=8, desc="epoch 1/3 training", unit="batch", stream=stream)
    for _ in range(8):
        progress.update(1)
    lines = stream.getvalue().splitlines()
    assert [line.split(":")[1].split("%")[0].strip() for line in lines] == ["25", "50", "75", "100"]
    assert "(8/8 batch)" in lines[-1] and "ETA" not in lines[-1] and "ETA" in lines[0]


def test_line_progress_writes_a_line_after_a_silent_heartbeat():
    stream = io.StringIO()
    progress = LineProgress(total=100, desc="scored explanations", unit="record",
                            stream=stream, heartbeat_s=0.0)
    progress.update(1)  # 1 %: no quarter crossed, but the heartbeat has passed
    assert stream.getvalue().startswith("scored explanations: 1% (1/100 record)")
    assert "ETA" in stream.getvalue()


def test_a_loop_shorter_than_four_steps_prints_each_step_once():
    stream = io.StringIO()
    progress = bar(total=1, desc="predictions", unit="batch", stream=stream)
    progress.update(1)
    assert stream.getvalue().count("\n") == 1


def test_disabled_bar_prints_nothing(capsys):
    silent = bar(total=5, desc="x", enabled=False)
    silent.update(5)
    silent.close()
    assert capsys.readouterr().err == ""


def test_pruning_removes_every_checkpoint_of_trials_not_kept(tmp_path):
    from ray import tune

    from study.tune.checkpoint_keeper import checkpoint_exists, prune_checkpoints

    (tmp_path / "checkpoint_000003").mkdir()
    (tmp_path / "checkpoint_000004" / "x").mkdir(parents=True)
    (tmp_path / "checkpoint_000004" / "x" / "checkpoint.pt").write_bytes(b"0" * 2048)
    kept = tune.Checkpoint(path=str(tmp_path / "checkpoint_000003"))
    assert checkpoint_exists(kept)
    result = SimpleNamespace(path=str(tmp_path), filesystem=kept.filesystem)
    assert prune_checkpoints({"t1": result}, keep={"t1"}).checkpoints == 1  # the older one
    assert not checkpoint_exists(kept) and (tmp_path / "checkpoint_000004").is_dir()
    pruned = prune_checkpoints({"t1": result}, keep=set())
    assert (pruned.trials, pruned.checkpoints, pruned.freed_bytes) == (1, 1, 2048)
    assert not list(tmp_path.glob("checkpoint_*"))
    assert pruned.describe() == "removed 1 checkpoint(s) of 1 trial(s), freeing 2.0 KB"


def test_the_final_training_names_its_score_as_the_test_score():
    final = StudyProgress(label="final training", n_trials=1, metric="val/f1_cinc", mode="max",
                          milestones=[4], reduction_factor=3.0, concurrency=1,
                          interval_s=3600, shown_as="test/f1_cinc")
    a = _trial("aaaa", epoch=4, **{"val/f1_cinc": 0.5})
    final.on_trial_result(0, [a], a, {"epoch": 4, "val/f1_cinc": 0.5, "time_this_iter_s": 6})
    final.on_trial_complete(0, [a], a)
    assert "best test/f1_cinc 0.5000 (aaaa)" in final.summary_line(running=0)


def test_a_candidate_trial_is_named_by_its_configuration_and_fold():
    candidate = {"trial_id": "cnn7_gmp", "config": {"model": {"depth": 7}}, "search_score": None}
    assert short_config({"candidate": candidate, "fold": 1}) == "cnn7_gmp on fold 1"
    assert short_config({"candidate": candidate, "fold": "test"}) == (
        "cnn7_gmp on all non-test records")


def test_a_rung_line_shows_the_metric_asha_ranks_on_when_it_is_another(capsys):
    progress = StudyProgress(label="search", n_trials=1, metric="val/f1_cinc", mode="max",
                             milestones=[2, 6], reduction_factor=3.0, concurrency=1,
                             interval_s=3600, rung_metric="val/auroc_macro")
    a = _trial("aaaa")
    progress.on_trial_start(0, [a], a)
    progress.on_trial_result(0, [a], a, {"epoch": 2, "val/f1_cinc": 0.25,
                                         "val/auroc_macro": 0.71, "time_this_iter_s": 10})
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.endswith("epoch 2 (rung 0): val/f1_cinc 0.2500, ranked on val/auroc_macro 0.7100")


def test_a_resumed_study_counts_the_trials_that_ended_before_it(progress, capsys):
    """Tune restores finished trials as TERMINATED and calls no completion hook for them: the
    summary still counts them, with their outcomes and the best score among them."""
    done = _trial("aaaa", epoch=9, **{"val/f1_cinc": 0.7})
    stopped = _trial("bbbb", epoch=1, **{"val/f1_cinc": 0.2})
    failed = _trial("cccc")
    done.status = stopped.status = "TERMINATED"
    failed.status = "ERROR"
    progress.on_experiment_end([done, stopped, failed])
    line = capsys.readouterr().out.strip()
    assert ("search: 3/3 trials done (1 failed, 1 finished, 1 stopped), 0 running, "
            "best val/f1_cinc 0.7000 (aaaa); took ") in line
