"""Every search space: its samples build working models and resolve to training configs,
conditional parameters stay in their branch, and the module keeps to its contract."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
import types

import optuna
import pytest
import torch

import search_spaces
from data_io.synthetic import MIN_FS_HZ
from models import build_model, load_preset, preset_names
from models.cnn import build_trunk, cnn_depths
from search_spaces import (
    SPACE_SECTION,
    describe_space,
    load_space,
    space_names,
    training_config,
    unflatten,
)
from search_spaces._common import CNN_DEPTHS, CROP_STEPS_BY_DEPTH, suggest_cnn_trunk
from study.engine.config import resolve_config

SPACES = space_names()

CONDITIONAL = {
    "attention_gate": {"space/gate_position_1", "space/gate_position_2"},
    "cnn": set(),
    "convlstm": {"model/pooling", "optim/cnn_lr_scale"},
    "dualnet": {"data/augment/p"},
    "hadln": set(),
    "segmenter": {
        "model/window_pooling",
        "model/pool_kernel",
        "model/unet_depth",
        "model/unet_width",
    },
}


def test_every_space_is_found():
    assert space_names() == sorted(CONDITIONAL)


@pytest.mark.parametrize("name", SPACES)
def test_module_contract(name):
    space = load_space(name)
    assert callable(space.define)
    # The metric belongs to the data set (data_io.datasets), not to the space.
    assert not hasattr(space, "METRIC") and not hasattr(space, "MODE")
    assert (space.__doc__ or "").strip()
    assert isinstance(space.SMOKE, dict)
    resolved = resolve_config(space.SMOKE)  # unknown sections or keys raise
    assert resolved.data.fs_hz >= MIN_FS_HZ  # synthetic data can be rendered at it
    json.dumps(space.SMOKE)


# Building 50 dualnet samples (a quarter of them 8-20 M parameters) takes minutes on 2 cores;
# the fast suite builds its S-size samples (test_dualnet_small_samples_build_models_that_run).
HEAVY_SPACES = {"dualnet"}


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY_SPACES else n for n in SPACES],
)
def test_samples_build_models_that_run(name, sampled):
    _check_samples_build(sampled(name), name,
                         samples_per_record=INPUT_SAMPLES.get(name, 1500))


# HADLN's published flatten readout reads the 187-sample beats of mitdb-beats.
INPUT_SAMPLES = {"hadln": 187}


def test_dualnet_small_samples_build_models_that_run(sampled):
    small = [(p, c) for p, c in sampled("dualnet") if p["space/size"] == "s"]
    assert {p["model/encoders"] for p, _ in small} == {"both", "signal", "spectrogram"}
    _check_samples_build(small, "dualnet")


def _check_samples_build(samples, name, *, samples_per_record: int = 1500):
    x = torch.randn(2, 1, samples_per_record)
    lengths = torch.tensor([samples_per_record, samples_per_record * 11 // 15])
    for _, config in samples:
        cfg = training_config(config)
        resolve_config(cfg)  # every sampled section and key exists in the trainer's config
        assert cfg["model"]["name"] == name
        model = build_model({"n_classes": 4, "n_leads": 1, **cfg["model"]}).eval()
        with torch.no_grad():
            logits = model(x, lengths)
        assert logits.shape == (2, 4), cfg["model"]
        assert torch.isfinite(logits).all(), cfg["model"]


def test_segmenter_samples_run_on_two_lead_segments(sampled):
    """The segmenter space on the two-lead MIT-BIH segments (2,000 samples, 5 classes max)."""
    x = torch.randn(2, 2, 2000)
    for _, config in sampled("segmenter")[:4]:
        model = build_model({**training_config(config)["model"], "n_classes": 2,
                             "n_leads": 2}).eval()
        with torch.no_grad():
            assert model(x).shape == (2, 2)


def test_hadln_space_sweeps_class_weighting_and_gamma(sampled):
    weightings = {config["loss"]["class_weights"] for _, config in sampled("hadln")}
    gammas = {config["loss"]["focal_gamma"] for _, config in sampled("hadln")}
    assert weightings == {None, "inverse_frequency", "sqrt_inverse_frequency",
                          "complement_frequency"}
    assert len(gammas) > 2


def test_hadln_space_trains_as_published_where_it_does_not_sample(sampled):
    # the published ranges hold the published values, and every trial keeps the published
    # batch, schedule, normalisation and the absence of our warm-up and per-layer rates
    space = load_space("hadln")
    assert space.LSTM_UNITS_RANGE[0] <= 172 <= space.LSTM_UNITS_RANGE[1]
    assert space.BLOCKS_PER_STAGE_RANGE[1] == 4
    for _, config in sampled("hadln"):
        assert config["optim"]["batch_size"] == 32
        assert config["optim"]["lr_schedule"] == "plateau"
        assert config["optim"]["warmup_epochs"] == 0 and config["optim"]["conv_lr_fan_in"] == 0
        assert config["data"]["normalization"] == "train_zscore"
        assert set(config["model"]) == {"name", "lstm_units", "blocks_per_stage", "dropout"}


@pytest.mark.parametrize("name", SPACES)
def test_samples_are_json(name, sampled):
    for params, config in sampled(name):
        assert json.loads(json.dumps(config)) == config
        assert json.loads(json.dumps(params)) == params


@pytest.mark.parametrize("name", SPACES)
def test_only_listed_parameters_are_conditional(name, sampled):
    samples = [params for params, _ in sampled(name)]
    names = set().union(*samples)
    sometimes_absent = {param for param in names if any(param not in p for p in samples)}
    assert sometimes_absent == CONDITIONAL[name]


def test_convlstm_branches(sampled):
    samples = [params for params, _ in sampled("convlstm")]
    for params in samples:
        assert ("model/pooling" in params) == (params["model/readout"] == "last_plus_pool")
        assert ("optim/cnn_lr_scale" in params) == (params["pretrain_epochs"] > 0)
    assert {p["model/readout"] for p in samples} == {"last", "centre", "last_plus_pool"}
    assert {p["pretrain_epochs"] for p in samples} == {0, 2}


def test_an_lstm_head_starts_from_chrono_over_the_crop_and_a_gru_from_torch(sampled):
    configs = [config["model"] for _, config in sampled("convlstm")]
    assert {m["cell"] for m in configs} == {"lstm", "gru"}
    for model in configs:
        expected = CROP_STEPS_BY_DEPTH[model["depth"]] if model["cell"] == "lstm" else None
        assert model.get("chrono_steps") == expected, model


@pytest.mark.parametrize("depth", CNN_DEPTHS)
def test_crop_steps_are_the_trunk_steps_of_a_default_crop(depth):
    defaults = resolve_config({}).data
    samples = round(defaults.crop_s * defaults.fs_hz)  # 30 s x 150 Hz
    _, trunk = suggest_cnn_trunk(optuna.trial.FixedTrial({"model/depth": depth}))
    model = build_trunk(n_leads=1, depth=depth, channels=None, kernel_size=21,
                        pool_every=trunk["model/pool_every"], dropout_min=0.1, dropout_max=0.3,
                        residual=False, conv_init="pytorch")
    with torch.no_grad():
        _, steps = model(torch.zeros(1, 1, samples), torch.tensor([samples]))[-1]
    assert int(steps) == CROP_STEPS_BY_DEPTH[depth]
    lstm_presets = [load_preset(n) for n in preset_names()]
    for preset in lstm_presets:
        if preset.get("cell") == "lstm" and preset["depth"] == depth:
            assert preset["chrono_steps"] == CROP_STEPS_BY_DEPTH[depth], preset


def test_segmenter_parameters_only_with_a_segmenter(sampled):
    samples = sampled("segmenter")
    for params, config in samples:
        model = build_model({"n_classes": 4, "n_leads": 1, **config["model"]})
        has_unet = model.unet is not None
        for param in CONDITIONAL["segmenter"]:
            assert (param in params) == has_unet, params
    assert {params["model/variant"] for params, _ in samples} == {
        "joint",
        "classifier_only",
        "cascaded",
    }


def test_attention_gates_are_distinct_layers_below_the_depth(sampled):
    samples = sampled("attention_gate")
    for params, config in samples:
        depth = config["model"]["depth"]
        layers = config["model"]["gate_layers"]
        n_gates = params["space/n_gates"]
        assert len(layers) == len(set(layers)) == n_gates
        assert all(0 <= layer < depth for layer in layers)
        assert sum(p.startswith("space/gate_position_") for p in params) == n_gates
    assert {params["space/n_gates"] for params, _ in samples} == {1, 2, 3}
    assert {config["model"]["depth"] for _, config in samples} == set(CNN_DEPTHS)


EXPECTED = {
    "cnn": (
        {
            "model/depth": 15,
            "model/pooling": "lse",
            "model/residual": True,
            "loss/focal_gamma": 0.0,
            "optim/lr": 1e-3,
            "optim/batch_size": 32,
        },
        {
            "model": {
                "name": "cnn",
                "depth": 15,
                "pool_every": 2,
                "pooling": "lse",
                "residual": True,
            },
            "loss": {"focal_gamma": 0.0},
            "optim": {"lr": 1e-3, "batch_size": 32},
        },
    ),
    "convlstm": (
        {
            "model/depth": 7,
            "model/cell": "gru",
            "model/n_rnn_layers": 2,
            "model/hidden_units": 32,
            "model/bidirectional": True,
            "model/readout": "centre",
            "model/pooling": "gmp",  # not used: only last_plus_pool samples a pooling
            "pretrain_epochs": 2,
            "optim/cnn_lr_scale": 0.1,
            "loss/focal_gamma": 2.0,
            "optim/lr": 3e-4,
        },
        {
            "model": {
                "name": "convlstm",
                "depth": 7,
                "pool_every": 1,
                "cell": "gru",
                "n_rnn_layers": 2,
                "hidden_units": 32,
                "bidirectional": True,
                "readout": "centre",
            },
            "pretrain_epochs": 2,
            "optim": {"cnn_lr_scale": 0.1, "lr": 3e-4},
            "loss": {"focal_gamma": 2.0},
        },
    ),
    "attention_gate": (
        {
            "model/depth": 7,
            "space/n_gates": 2,
            "space/gate_position_0": 1.0,
            "space/gate_position_1": 0.0,
            "space/gate_position_2": 0.5,  # not used: two gates
            "model/aggregation": "mean_vote",
            "loss/focal_gamma": 1.5,
            "optim/lr": 1e-3,
        },
        {
            "model": {
                "name": "attention_gate",
                "depth": 7,
                "pool_every": 1,
                "gate_layers": [0, 6],
                "aggregation": "mean_vote",
            },
            SPACE_SECTION: {"n_gates": 2, "gate_position_0": 1.0, "gate_position_1": 0.0},
            "loss": {"focal_gamma": 1.5},
            "optim": {"lr": 1e-3},
        },
    ),
    "segmenter": (
        {
            "model/variant": "classifier_only",
            "model/window_pooling": "l2",  # not used: no segmenter
            "model/pool_kernel": 50,  # not used: no segmenter
            "loss/focal_gamma": 1.0,
            "optim/lr": 1e-3,
        },
        {
            "model": {"name": "segmenter", "variant": "classifier_only"},
            "loss": {"focal_gamma": 1.0, "class_weights": "inverse_frequency"},
            "optim": {"lr": 1e-3, "batch_size": 16, "lr_schedule": "constant",
                      "weight_decay": 0.0, "warmup_epochs": 0, "conv_lr_fan_in": 0,
                      "lr_depth": 0, "pool_mean_fraction": 0},
            "data": {"normalization": "range"},
        },
    ),
    "hadln": (
        {
            "model/lstm_units": 32,
            "model/blocks_per_stage": 2,
            "model/dropout": 0.1,
            "loss/class_weights": "inverse_frequency",
            "loss/focal_gamma": 0.5,
            "optim/lr": 2e-3,
        },
        {
            "model": {"name": "hadln", "lstm_units": 32, "blocks_per_stage": 2, "dropout": 0.1},
            "loss": {"class_weights": "inverse_frequency", "focal_gamma": 0.5},
            "optim": {"lr": 2e-3, "batch_size": 32, "lr_schedule": "plateau",
                      "lr_plateau_factor": 0.5, "lr_plateau_patience": 5, "weight_decay": 0.0,
                      "warmup_epochs": 0, "conv_lr_fan_in": 0, "lr_depth": 0,
                      "pool_mean_fraction": 0},
            "data": {"normalization": "train_zscore"},
        },
    ),
    "dualnet": (
        {
            "space/size": "m",
            "space/variant": "plus",
            "model/encoders": "spectrogram",
            "model/stft_window": 128,
            "model/dropout": 0.1,
            "space/augment": True,
            "data/augment/p": 0.3,
            "optim/lr": 5e-4,
        },
        {
            "space": {"size": "m", "variant": "plus", "augment": True},
            "model": {
                "name": "dualnet",
                "preset": "dualnetpp_m",
                "encoders": "spectrogram",
                "stft_window": 128,
                "stft_hop": 64,
                "dropout": 0.1,
            },
            "data": {"augment": {"pipeline": "ecg_dualnet", "p": 0.3},
                     "normalization": "zscore", "train_batching": "bucket",
                     "eval_batching": "bucket"},
            "loss": {"focal_gamma": 0.0,
                     "class_weights": {"N": 0.4, "O": 0.7, "A": 0.9, "~": 0.9}},
            "optim": {"lr": 5e-4, "optimizer": "radam", "lr_schedule": "multistep",
                      "lr_decay": 0.1, "lr_milestones": [0.25, 0.5, 0.75], "batch_size": 24,
                      "weight_decay": 0.0, "warmup_epochs": 0, "conv_lr_fan_in": 0,
                      "lr_depth": 0, "pool_mean_fraction": 0},
        },
    ),
}


def test_every_space_has_a_fixed_trial_case():
    assert sorted(EXPECTED) == SPACES


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixed_trial_gives_the_expected_config(name):
    params, expected = EXPECTED[name]
    trial = optuna.trial.FixedTrial(params)
    fixed = load_space(name).define(trial)
    assert unflatten({**trial.params, **fixed}) == expected


def test_segmenter_fixed_trial_with_a_segmenter():
    params = {
        "model/variant": "cascaded",
        "model/window_pooling": "relu_max",
        "model/pool_kernel": 50,
        "model/unet_depth": 3,
        "model/unet_width": 8,
        "loss/focal_gamma": 0.0,
        "optim/lr": 1e-3,
    }
    trial = optuna.trial.FixedTrial(params)
    fixed = load_space("segmenter").define(trial)
    config = unflatten({**trial.params, **fixed})
    assert config["model"] == {
        "name": "segmenter",
        "variant": "cascaded",
        "window_pooling": "relu_max",
        "pool_kernel": 50,
        "unet_depth": 3,
        "unet_width": 8,
    }


def test_trunk_constants_match_the_models():
    assert list(CNN_DEPTHS) == cnn_depths()
    presets = [load_preset(n) for n in preset_names()]
    with_depth = [p for p in presets if "depth" in p]
    assert {p["depth"] for p in with_depth} == set(CNN_DEPTHS)
    for preset in with_depth:
        _, trunk = suggest_cnn_trunk(optuna.trial.FixedTrial({"model/depth": preset["depth"]}))
        assert trunk == {"model/pool_every": preset["pool_every"]}, preset


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.parametrize("name", SPACES)
def test_tpe_samples_every_space_without_failures(name):
    space = load_space(name)

    def objective(trial: optuna.Trial) -> float:
        fixed = space.define(trial)
        config = training_config(unflatten({**trial.params, **fixed}))
        resolve_config(config)
        # A score with an optimum inside the space, so TPE has something to model.
        return -abs(math.log10(config["optim"]["lr"]) + 3.0) - config["loss"]["focal_gamma"]

    sampler = optuna.samplers.TPESampler(seed=0, n_startup_trials=5, multivariate=True, group=True)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=20)
    states = {trial.state for trial in study.trials}
    assert states == {optuna.trial.TrialState.COMPLETE}


def test_unknown_space_lists_the_known_ones():
    with pytest.raises(ValueError, match="nope") as error:
        load_space("nope")
    for name in SPACES:
        assert name in str(error.value)
    with pytest.raises(ValueError, match="unknown search space"):
        load_space("_common")


@pytest.mark.parametrize("name", SPACES)
def test_describe_space_lists_every_parameter(name, sampled):
    space = load_space(name)
    description = describe_space(name)
    assert json.loads(json.dumps(description)) == description
    sampled_names = set().union(*(params for params, _ in sampled(name)))
    parameters = description["parameters"]
    assert set(parameters) == sampled_names
    assert {p for p, d in parameters.items() if d["conditional"]} == CONDITIONAL[name]
    assert all(0.0 < d["active_fraction"] <= 1.0 for d in parameters.values())
    assert description["fixed"]["model/name"] == name
    assert "metric" not in description and "mode" not in description
    assert description["smoke"] == space.SMOKE
    assert description["description"].split()[0] in space.__doc__


def test_describe_space_gives_distributions():
    parameters = describe_space("convlstm")["parameters"]
    assert parameters["model/hidden_units"] == {
        "distribution": "IntDistribution",
        "low": 2,
        "high": 256,
        "step": 1,
        "log": True,
        "conditional": False,
        "active_fraction": 1.0,
    }
    assert parameters["model/pooling"]["choices"] == ["gap", "gmp", "lse"]
    assert parameters["model/pooling"]["conditional"]
    assert 0.2 < parameters["model/pooling"]["active_fraction"] < 0.5  # one readout in three
    gamma = describe_space("cnn")["parameters"]["loss/focal_gamma"]
    assert (gamma["low"], gamma["high"], gamma["step"]) == (0.0, 3.0, 0.5)  # 0 is on the grid


_NO_IO_PROBE = textwrap.dedent(
    """
    import sys

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"torch", "ray", "data_io", "models", "study", "reports"}:
                raise ImportError(f"search spaces must not import {name}")

    sys.meta_path.insert(0, Refuse())

    import optuna
    from search_spaces import load_space, space_names

    spaces = {name: load_space(name) for name in space_names()}
    armed = False

    def refuse_io(event, args):
        if armed and event.split(".")[0] in {"open", "os", "shutil", "socket", "subprocess",
                                             "urllib", "sqlite3", "import"}:
            raise RuntimeError(f"define did I/O: {event} {args!r:.200}")

    sys.addaudithook(refuse_io)
    for name, space in spaces.items():
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
        for _ in range(30):
            trial = study.ask()
            armed = True
            try:
                space.define(trial)
            finally:
                armed = False
            study.tell(trial, 0.0)
    print("ok", sorted(spaces))
    """
)


def test_define_does_no_io_and_imports_no_torch():
    result = subprocess.run(
        [sys.executable, "-c", _NO_IO_PROBE], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ok"), result.stdout
    assert all(name in result.stdout for name in SPACES)


def test_describe_space_rejects_a_parameter_with_two_distributions(monkeypatch):
    def define(trial):
        depth = trial.suggest_categorical("model/depth", (4, 7))
        trial.suggest_int("model/hidden_units", 1, depth)  # the range moves with the depth
        return {}

    fake = types.SimpleNamespace(define=define, METRIC="m", MODE="max", SMOKE={}, __doc__="x")
    monkeypatch.setattr(search_spaces, "load_space", lambda name: fake)
    with pytest.raises(ValueError, match="model/hidden_units"):
        describe_space("fake")


def test_dualnet_samples_pick_a_preset_and_switch_the_augmentation(sampled):
    samples = sampled("dualnet")
    for params, config in samples:
        model = config["model"]
        prefix = {"plain": "dualnet", "plus": "dualnetpp"}[params["space/variant"]]
        assert model["preset"] == f"{prefix}_{params['space/size']}"
        assert model["preset"] in preset_names()
        assert model["stft_hop"] == model["stft_window"] // 2  # the published rule
        augment = config["data"]["augment"]
        if params["space/augment"]:
            assert augment == {"pipeline": "ecg_dualnet", "p": params["data/augment/p"]}
        else:
            assert augment is None
    assert {p["model/encoders"] for p, _ in samples} == {"both", "signal", "spectrogram"}


def test_dualnet_trials_train_with_the_published_protocol():
    # The space's fixed training values are the protocol study.train --preset dualnet_* uses,
    # less what the space samples (rate, augmentation) and what the study sets (epochs).
    from search_spaces.dualnet import PUBLISHED_TRAINING
    from study.engine.protocols import load_protocol

    protocol = load_protocol("dualnet_published")
    flat = {f"{section}/{key}": value for section, values in protocol.items()
            if isinstance(values, dict) for key, value in values.items()}
    sampled_or_set = {"optim/lr", "data/augment"}
    assert dict(PUBLISHED_TRAINING) == {k: v for k, v in flat.items() if k not in sampled_or_set}
