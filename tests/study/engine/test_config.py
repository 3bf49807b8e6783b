"""The typed training config: defaults, `--set` and `study.train --config` values against each
option's type and range, and the one merge of partial configurations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from study.engine.config import TrainConfig, default_config, merge_sections, resolve_config

CONFIGS = Path(__file__).resolve().parents[3] / "study" / "configs"


def test_the_defaults_are_plain_json_that_resolves_to_itself():
    defaults = default_config()
    assert json.loads(json.dumps(defaults)) == defaults
    assert resolve_config(defaults).as_dict() == defaults
    assert resolve_config({}).as_dict() == defaults
    cfg = TrainConfig()
    assert (cfg.optim.lr, cfg.loss.focal_gamma, cfg.data.fs_hz) == (
        defaults["optim"]["lr"], defaults["loss"]["focal_gamma"], defaults["data"]["fs_hz"])


def test_a_partial_section_keeps_the_other_defaults_and_the_model_is_taken_whole():
    cfg = resolve_config({"optim": {"lr": 0.01}, "model": {"name": "convlstm", "units": 8}})
    assert cfg.optim.lr == 0.01 and cfg.optim.batch_size == TrainConfig().optim.batch_size
    assert cfg.model == {"name": "convlstm", "units": 8}


def test_merge_sections_layers_key_by_key_and_shares_nothing():
    base = {"optim": {"lr": 1e-3, "batch_size": 16}, "model": {"name": "cnn"}}
    merged = merge_sections(base, {"optim": {"lr": 1e-2}}, {"epochs": 3})
    assert merged == {"optim": {"lr": 1e-2, "batch_size": 16}, "model": {"name": "cnn"},
                      "epochs": 3}
    merged["optim"]["batch_size"] = 99
    assert base["optim"]["batch_size"] == 16


def test_an_assignment_is_checked_too():
    cfg = resolve_config({})
    with pytest.raises(ValueError, match="greater than 0"):
        cfg.optim.lr = -1.0


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.json")), ids=lambda p: p.name)
def test_shipped_configs_pass(path):
    resolve_config(json.loads(path.read_text()))


def test_the_thesis_protocol_keeps_the_thesis_optimiser_over_our_defaults():
    # Our defaults add per-layer rates, a warm-up and a pooling that starts as the mean, none of
    # which the thesis used.
    thesis = resolve_config(json.loads((CONFIGS / "thesis_protocol.json").read_text())).optim
    assert TrainConfig().optim.warmup_epochs > 0 and thesis.warmup_epochs == 0
    assert TrainConfig().optim.pool_mean_fraction > 0 and thesis.pool_mean_fraction == 0
    assert thesis.lr_depth == 0 and thesis.conv_lr_fan_in == 0


@pytest.mark.parametrize(
    ("partial", "message"),
    [
        ({"loss": {"focal_gamma": -1}}, "loss/focal_gamma=-1 is not allowed: must be a finite "
                                        "number >= 0 (0 is plain cross-entropy)"),
        ({"loss": {"focal_gamma": "abc"}}, 'loss/focal_gamma="abc" is not allowed'),
        ({"optim": {"lr": 0}}, "optim/lr=0 is not allowed: must be a finite number > 0"),
        ({"optim": {"batch_size": True}}, "must be an integer >= 1"),
        ({"optim": {"lr_schedule": "step"}}, "must be one of constant, cosine, exponential, "
                                             "multistep, plateau"),
        ({"loss": {"class_weights": [1, -2]}}, "non-negative weights: a list"),
        ({"loss": {"class_weights": {"N": -1}}}, "non-negative weights: a list"),
        ({"optim": {"optimizer": "sgd"}}, "must be one of adam, radam"),
        ({"optim": {"lr_milestones": [0.5, 1.5]}}, "a list of fractions, each > 0 and < 1"),
        ({"runtime": {"device": "gpu"}}, "auto, cpu, cuda, cuda:N or mps"),
        ({"data": {"augment": {"wobble": {}}}}, "unknown augmentation"),
        ({"epochs": 0}, "epochs=0 is not allowed: must be an integer >= 1"),
        ({"optim": {"pool_mean_fraction": 1}}, "optim/pool_mean_fraction=1 is not allowed: "
                                               "must be a finite number >= 0 and < 1"),
        ({"optim": {"lr": "0.1"}}, 'optim/lr="0.1" is not allowed: must be a finite number > 0'),
        ({"epochs": 2.5}, "epochs=2.5 is not allowed: must be an integer >= 1"),
        ({"optim": {"learning_rate": 1}}, "unknown option(s) ['learning_rate'] in section "
                                          "'optim'; known: ['batch_size'"),
        ({"optimizer": {}}, "unknown configuration section 'optimizer'; known: ['data'"),
        ({"optim": 3}, "optim=3 is not allowed: must be an object"),
    ],
)
def test_bad_values_name_option_value_and_what_is_allowed(partial, message):
    with pytest.raises(ValueError) as info:
        resolve_config(partial)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_every_problem_is_named_at_once():
    with pytest.raises(ValueError) as info:
        resolve_config({"loss": {"focal_gamma": -1}, "optim": {"lr": 0, "lr_rate": 1}})
    text = str(info.value)
    assert "unknown option(s) ['lr_rate']" in text
    assert "loss/focal_gamma=-1" in text and "optim/lr=0" in text


def test_study_train_refuses_a_bad_config_with_one_line(tmp_path, capsys):
    from study.train import main

    config = tmp_path / "c.json"
    config.write_text(json.dumps({"model": {"name": "cnn"}, "loss": {"focal_gamma": -1}}))
    assert main(["--config", str(config), "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: loss/focal_gamma=-1") and len(err.strip().splitlines()) == 1
