"""`--set` and `study.train --config` values against the trainer's option types and ranges."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from study.config import default_config, resolve_config
from study.options import check_options, option_specs

CONFIGS = Path(__file__).resolve().parents[2] / "study" / "configs"


def test_every_trainer_option_has_a_spec_and_the_defaults_pass():
    defaults = default_config()
    specs = option_specs()
    for section, values in defaults.items():
        if section == "model":
            continue
        if isinstance(values, dict):
            assert set(values) == set(specs[section]), section
        else:
            assert "kind" in specs[section], section
    check_options(defaults)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.json")), ids=lambda p: p.name)
def test_shipped_configs_pass(path):
    check_options(resolve_config(json.loads(path.read_text())))


def test_the_thesis_protocol_keeps_the_thesis_optimiser_over_our_defaults():
    # Our defaults add per-layer rates, a warm-up and a pooling that starts as the mean, none of
    # which the thesis used.
    thesis = resolve_config(json.loads((CONFIGS / "thesis_protocol.json").read_text()))
    assert default_config()["optim"]["warmup_epochs"] > 0
    assert thesis["optim"]["warmup_epochs"] == 0
    assert default_config()["optim"]["pool_mean_fraction"] > 0
    assert thesis["optim"]["pool_mean_fraction"] == 0
    assert thesis["optim"]["lr_depth"] == 0
    assert thesis["optim"]["conv_lr_fan_in"] == 0


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
    ],
)
def test_bad_values_name_option_value_and_what_is_allowed(partial, message):
    with pytest.raises(ValueError, match=None) as info:
        check_options(resolve_config(partial))
    assert message in str(info.value)


def test_only_limits_the_check_to_the_given_options():
    config = resolve_config({"loss": {"focal_gamma": -1}})
    check_options(config, only={"optim/lr"})  # focal_gamma not asked for
    with pytest.raises(ValueError):
        check_options(config, only={"loss/focal_gamma"})


def test_study_train_refuses_a_bad_config_with_one_line(tmp_path, capsys):
    from study.train import main

    config = tmp_path / "c.json"
    config.write_text(json.dumps({"model": {"name": "cnn"}, "loss": {"focal_gamma": -1}}))
    assert main(["--config", str(config), "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: loss/focal_gamma=-1") and len(err.strip().splitlines()) == 1
