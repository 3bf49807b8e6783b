"""Registry, build_model, configs and presets."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from models import build_model, load_preset, preset_names, register, registered_models
from models.cnn import channels_for_depth, cnn_depths

# Models take the data set's shape explicitly; these tests use a CinC-like one.
SHAPE = {"n_classes": 4, "n_leads": 1}

FAMILIES = {"cnn", "convlstm", "attention_gate", "segmenter", "hadln", "dualnet"}
THESIS_PRESETS = {
    "cnn4_gap",
    "cnn7_gmp",
    "cnn7_gap",
    "cnn7_lse",
    "cnn15_gmp",
    "cnn17_gmp",
    "cnn7_res_gmp",
    "cnn7_lstm16",
    "cnn7_lstm64",
    "cnn15_lstm64",
    "cnn7_bilstm32",
    "cnn7_gru32",
    "cnn7_gates",
    "cnn17_gates_meanvote",
    "segmenter_joint",
    "segmenter_classifier_only",
    "segmenter_cascaded",
    "hadln",
}


def test_every_family_is_registered_by_importing_the_package():
    assert set(registered_models()) == FAMILIES


def test_every_registered_model_has_a_small_test_config(small_configs):
    assert {config["name"] for config in small_configs.values()} == set(registered_models())


def test_unknown_name_raises_listing_known_names():
    with pytest.raises(ValueError, match="unknown model 'cnnn'") as error:
        build_model({**SHAPE, "name": "cnnn"})
    for name in registered_models():
        assert name in str(error.value)


def test_missing_name_raises():
    with pytest.raises(ValueError, match="no 'name'"):
        build_model({**SHAPE, "depth": 4})


@pytest.mark.parametrize("missing", ["n_classes", "n_leads"])
def test_every_family_needs_the_data_sets_shape(family_config, missing):
    """No model assumes a data set: class and lead counts have no default."""
    del family_config[missing]
    with pytest.raises(TypeError, match=missing):
        build_model(family_config)


def test_misspelled_keyword_raises_type_error(small_config):
    small_config["kernal_sise"] = 3
    with pytest.raises(TypeError, match="kernal_sise"):
        build_model(small_config)


def test_duplicate_registration_raises_and_keeps_the_registry():
    before = registered_models()
    with pytest.raises(ValueError, match="already registered") as error:
        register("cnn")(torch.nn.Identity)
    assert "convlstm" in str(error.value)
    assert registered_models() == before
    assert type(build_model({**SHAPE, "name": "cnn", "depth": 4})).__name__ == "CNN"


def test_config_is_resolved_json_and_rebuilds_the_same_model(small_config):
    original = json.loads(json.dumps(small_config))
    model = build_model(small_config)
    assert small_config == original, "build_model mutated its config"
    config = json.loads(json.dumps(model.config))  # JSON scalars and lists only
    assert config == model.config
    assert config["name"] == small_config["name"]
    assert "n_classes" in config and "n_leads" in config  # defaults are filled in
    rebuilt = build_model(config)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes
    rebuilt.load_state_dict(model.state_dict())


def test_models_import_torch_only():
    code = textwrap.dedent(
        """
        import sys
        for blocked in ("ray", "optuna", "data_io", "study", "search_spaces", "reports"):
            sys.modules[blocked] = None  # any import of these now fails
        import models
        print(len(models.registered_models()))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == len(FAMILIES)


def test_the_thesis_presets_exist():
    assert set(preset_names()) >= THESIS_PRESETS


def test_presets_name_registered_models_and_hold_json_only():
    for name in preset_names():
        preset = load_preset(name)
        assert preset["name"] in registered_models(), name
        assert json.loads(json.dumps(preset)) == preset


def test_load_preset_returns_a_fresh_copy():
    preset = load_preset("cnn7_gates")
    preset["gate_layers"].append(99)
    preset["depth"] = 1
    assert load_preset("cnn7_gates")["gate_layers"] == [4, 5]
    assert load_preset("cnn7_gates")["depth"] == 7


def test_unknown_preset_raises_listing_presets():
    with pytest.raises(ValueError, match="cnn7_gmp"):
        load_preset("cnn7_gmpp")


@pytest.mark.parametrize("depth", [4, 7, 15, 17])
def test_channel_presets_are_monotone_series_of_the_right_depth(depth):
    channels = channels_for_depth(depth)
    assert len(channels) == depth
    assert channels == sorted(channels)
    assert channels[0] == 16
    assert channels[-1] == {4: 128, 7: 128, 15: 256, 17: 512}[depth]


def test_channel_presets_cover_the_thesis_depths():
    assert cnn_depths() == [4, 7, 15, 17]
    assert channels_for_depth(7) == [16, 32, 32, 64, 64, 128, 128]


def test_unknown_depth_and_conflicting_trunk_options_raise():
    with pytest.raises(ValueError, match=r"CNN depth.*\['15', '17', '4', '7'\]"):
        build_model({**SHAPE, "name": "cnn", "depth": 5})
    with pytest.raises(ValueError, match="not both"):
        build_model({**SHAPE, "name": "cnn", "depth": 4, "channels": [8, 8, 8, 8]})


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("pooling", "mean", "global pooling"),
        ("kernel_size", 4, "odd"),
        ("dropout_max", 1.0, "dropout"),
        ("mean_vote_layer", 3, "mean_vote_layer"),
    ],
)
def test_bad_cnn_options_raise_value_error(option, value, message):
    with pytest.raises(ValueError, match=message):
        build_model({**SHAPE, "name": "cnn", "depth": 4, option: value})


def test_parameter_counts_leave_the_global_random_state_alone():
    import torch

    from models.listing import preset_table

    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    rows = preset_table(n_classes=4, n_leads=1, family="convlstm")
    assert rows and all(row["parameters"] > 0 for row in rows)
    assert torch.equal(torch.rand(4), expected)
