"""What a study records is what it trained: options fixed with ``--set``, ``--smoke`` or a
data set are never sampled, and every record of a trial (its `trials.parquet` rows, its
Optuna trial, its progress line, `best_trial.json`) agrees with the configuration the trainer
built the model and optimiser from, read back from the trial's own checkpoint."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import optuna
import pandas as pd
import pytest

from search_spaces import FIXED_ATTR, define_fixed, describe_space, flatten_options, unflatten
from study.engine.checkpoint import load_checkpoint
from study.tune.plan import Plan
from study.tune.prepare import _spec

# The space samples model/depth, model/residual, loss/focal_gamma, optim/lr and
# optim/batch_size; --smoke fixes the batch size (8), --set the rest but the learning rate.
FIXED = {"model/depth": 15, "model/residual": True, "loss/focal_gamma": 0.0}
SET_ARGS = [arg for name, value in FIXED.items()
            for arg in ("--set", f"{name}={json.dumps(value)}")]
N_TRIALS = 3


@pytest.fixture(scope="module")
def fixed_study(tmp_path_factory, run_study_cli, driver_output) -> tuple[Path, str]:
    cwd = tmp_path_factory.mktemp("fixed-set")
    proc = run_study_cli(["--space", "cnn", "--dataset", "synthetic", "--synthetic-records",
                          "36", "--smoke", "--max-epochs", "1", "--folds", "3",
                          "--scheduler", "fifo", "--num-samples", str(N_TRIALS),
                          "--keep-checkpoints", str(N_TRIALS), "--explain-top", "0",
                          "--concurrency", "1", "--wandb-mode", "disabled", "--name", "fixed",
                          *SET_ARGS], cwd)
    out = driver_output(proc, timeout=400)
    assert proc.returncode == 0, out[-4000:]
    return cwd / "runs" / "fixed", out


def _trained_configs(study_dir: Path) -> dict[str, dict]:
    """Tune trial id -> the config and model config its checkpoint holds (what the trainer
    built the model and optimiser from)."""
    found = {}
    for path in study_dir.glob("fixed-tune/run_trial_*/checkpoint_*/checkpoint.pt"):
        trial_id = path.parent.parent.name.split("_")[2]
        state = load_checkpoint(path)
        found[trial_id] = {"config": state["config"], "model": state["model_config"]}
    return found


def _same(recorded, trained) -> bool:
    if isinstance(recorded, float) and math.isnan(recorded):
        return trained is None
    if isinstance(recorded, str) and isinstance(trained, list):
        return json.loads(recorded) == trained
    return recorded == trained


def test_every_record_of_every_trial_is_the_config_it_trained(fixed_study):
    study_dir, out = fixed_study
    trained = _trained_configs(study_dir)
    frame = pd.read_parquet(study_dir / "trials.parquet")
    assert set(trained) == set(frame["trial_id"]) and len(trained) == N_TRIALS
    storage = f"sqlite:///{study_dir / 'optuna.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    optuna_trials = {t.user_attrs["tune_trial_id"]: t for t in optuna.load_study(
        study_name=summary.study_name, storage=storage).trials}
    for trial_id, row in frame.drop_duplicates("trial_id").set_index("trial_id").iterrows():
        config = flatten_options(trained[trial_id]["config"])
        recorded = {c.removeprefix("config/"): v for c, v in row.items()
                    if c.startswith("config/")}
        assert recorded, "trials.parquet records no config"
        for name, value in recorded.items():
            assert _same(value, config.get(name)), (trial_id, name, value, config.get(name))
        for name, value in {**FIXED, "optim/batch_size": 8}.items():
            assert config[name] == value and recorded[name] == value, (trial_id, name)
        # The derived value follows the fixed depth, in the record and in the built model.
        assert recorded["model/pool_every"] == config["model/pool_every"] == 2
        assert trained[trial_id]["model"]["pool_every"] == 2
        assert trained[trial_id]["model"]["depth"] == 15
        # Optuna: the sampled values are what trained; the fixed ones are no parameters.
        ot = optuna_trials[trial_id]
        assert set(ot.params) == {"model/pooling", "optim/lr"}, ot.params
        assert all(config[name] == value for name, value in ot.params.items())
        assert ot.user_attrs[FIXED_ATTR]["loss/focal_gamma"] == 0.0
        assert ot.user_attrs[FIXED_ATTR]["optim/batch_size"] == 8
        # The progress line shows the values that vary, as trained.
        lr = f"lr={config['optim/lr']:.3g}"
        (start,) = [line for line in out.splitlines() if f"trial {trial_id} (" in line
                    and "starts:" in line]
        assert lr in start and f"pooling={config['model/pooling']}" in start, start
        assert "focal_gamma" not in start and "batch_size" not in start


def test_the_plan_and_the_study_record_list_the_fixed_options(fixed_study):
    study_dir, out = fixed_study
    assert re.search(r"fixed in every trial: .*loss/focal_gamma=0\.0", out)
    space = json.loads((study_dir / "study.json").read_text())["space"]
    assert set(space["parameters"]) == {"model/pooling", "optim/lr"}
    assert {"model/depth", "model/residual", "loss/focal_gamma", "optim/batch_size",
            "data/crop_s", "epochs"} <= set(space["fixed_by_study"])
    assert space["fixed"]["model/pool_every"] == 2  # derived from the fixed depth
    best = json.loads((study_dir / "best_trial.json").read_text())
    assert set(best["sampled"]) >= {"model/pooling", "optim/lr"}
    assert not set(best["sampled"]) & set(best["fixed"])
    assert best["fixed"]["loss/focal_gamma"] == 0.0
    config = json.loads((study_dir / "best_config.json").read_text())
    assert config["loss"]["focal_gamma"] == 0.0 and config["model"]["depth"] == 15


def test_a_data_sets_training_settings_are_fixed_options_of_its_trials(plan_fields):
    plan = Plan(**plan_fields(dataset="synthetic-mitdb-beats", space="hadln", smoke=True,
                              fixed={"optim/lr": 0.002}))
    spec = _spec(plan, folds={})
    fixed = spec.fixed_options
    assert fixed["data/train_batching"] == "bucket"  # the data set's training setting
    assert fixed["optim/batch_size"] == 64  # its smoke setting, over the space's
    assert fixed["epochs"] == plan.max_epochs and fixed["data/fs_hz"] == plan.fs_hz
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    values = define_fixed(trial, space="hadln", fixed=fixed)
    assert not set(trial.params) & set(fixed)
    sampled = unflatten({**trial.params, **values})  # the config Ray Tune hands the trial
    assert flatten_options(spec.trial_config(sampled)).items() >= fixed.items()
    assert spec.trial_config(sampled) == sampled  # nothing left for the trainer to change


def test_a_fixed_choice_the_space_does_not_offer_fails():
    with pytest.raises(ValueError, match=r"model/depth=9 is not one of the space's choices"):
        describe_space("cnn", fixed={"model/depth": 9}, n_samples=3)
