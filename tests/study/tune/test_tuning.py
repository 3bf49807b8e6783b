"""`study.tune.tuning`: every sampler and scheduler a plan may name has a builder; the Ray internals
it hooks are checked."""

from __future__ import annotations

import optuna
import pytest
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from study import cli_choices
from study.tune import tuning
from study.tune.plan import Plan
from study.tune.prepare import _spec


def test_every_plan_choice_has_a_builder():
    assert set(tuning.SAMPLERS) == set(cli_choices.SAMPLERS)
    assert set(tuning.SCHEDULERS) == set(cli_choices.SCHEDULERS)


def test_fifo_never_stops_a_trial_and_asha_uses_the_plan_budget(plan_fields):
    assert isinstance(tuning.scheduler(Plan(**plan_fields(scheduler="fifo"))), FIFOScheduler)
    asha = tuning.scheduler(Plan(**plan_fields(scheduler="asha")))
    assert isinstance(asha, ASHAScheduler) and asha._max_t == 9


@pytest.mark.parametrize(("rung_metric", "key", "mode"), [
    ("metric", "val/f1_cinc", "max"), ("loss", "val/loss", "min"),
    ("auroc", "val/auroc_macro", "max"),
])
def test_asha_ranks_its_rungs_on_the_chosen_metric(plan_fields, rung_metric, key, mode):
    plan = Plan(**plan_fields(scheduler="asha", rung_metric=rung_metric))
    asha = tuning.scheduler(plan)
    assert (asha._metric, asha._mode) == (key, mode)
    assert plan.metric == "val/f1_cinc"  # selection and reports stay on the study metric


def test_the_random_baseline_sampler_comes_from_the_plan(plan_fields):
    search = tuning.searcher(Plan(**plan_fields(sampler="random", seed=7)),
                             _spec(Plan(**plan_fields()), folds={})).searcher
    assert isinstance(search._sampler, optuna.samplers.RandomSampler)


def _trial(trial_id: str, directory, rows: list[dict]):
    """What `RestorableASHA` reads of a Tune trial: its id and where its results are."""
    import json
    from types import SimpleNamespace

    from pyarrow import fs

    directory.mkdir()
    (directory / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    storage = SimpleNamespace(storage_filesystem=fs.LocalFileSystem(),
                              trial_dir_name=directory.name, trial_fs_path=str(directory))
    return SimpleNamespace(trial_id=trial_id, storage=storage)


def test_restored_asha_remembers_the_rungs_of_trials_before_the_kill(tmp_path, plan_fields):
    plan = Plan(**plan_fields(scheduler="asha"))
    metric, mode = plan.rung
    before_kill = [
        _trial("a", tmp_path / "a", [{"training_iteration": i, metric: 0.9} for i in (1, 2, 3)]),
        _trial("b", tmp_path / "b", [{"training_iteration": 1, metric: 0.8}]),
    ]
    new = _trial("c", tmp_path / "c", [])
    weak_first_epoch = {"training_iteration": 1, metric: 0.1}

    restored = tuning.scheduler(plan)
    for trial in [*before_kill, new]:
        restored.on_trial_add(None, trial)
    assert restored.on_trial_result(None, new, weak_first_epoch) == "STOP"

    forgetful = ASHAScheduler(time_attr="training_iteration", metric=metric, mode=mode,
                              max_t=9, grace_period=1, reduction_factor=3)
    for trial in [*before_kill, new]:
        forgetful.on_trial_add(None, trial)
    assert forgetful.on_trial_result(None, new, weak_first_epoch) == "CONTINUE"


def test_a_result_file_cut_short_by_a_kill_is_read_up_to_the_cut(tmp_path):
    trial = _trial("a", tmp_path / "a", [{"training_iteration": 1}])
    with open(tmp_path / "a" / "result.json", "a") as out:
        out.write('{"training_iteration": 2, "val/f1')
    assert tuning.reported_results(trial) == [{"training_iteration": 1}]
    assert tuning.reported_results(_trial("new", tmp_path / "new", [])) == []
    unnamed = _trial("unstarted", tmp_path / "unstarted", [])
    unnamed.storage.trial_dir_name = None  # Tune has not named its directory yet
    assert tuning.reported_results(unnamed) == []


def test_asha_ranks_its_rungs_on_the_macro_auroc_by_default(plan_fields):
    asha = tuning.scheduler(Plan(**plan_fields(scheduler="asha")))
    assert (asha._metric, asha._mode) == ("val/auroc_macro", "max")
