"""Small model configs and the parametrizations shared by the model tests.

`pytest_generate_tests` parametrizes, by fixture name:
    small_config: every entry of SMALL_CONFIGS (small variants that cover each option);
    any_config: SMALL_CONFIGS plus every preset in models/presets.json;
    family_config: the first small config of each registered model (one per family).
Each carries `SHAPE` (models take the data set's class and lead counts, with no default).
"""

from __future__ import annotations

import copy

import pytest
import torch

from models import build_model, load_preset, preset_names

SHAPE = {"n_classes": 4, "n_leads": 1}
"""The data set shape given to every parametrized config (a CinC-like one)."""

SMALL_CONFIGS: dict[str, dict] = {
    "cnn_gap": {
        "name": "cnn",
        "channels": [8, 16, 16],
        "kernel_size": 9,
        "dropout_min": 0.0,
        "dropout_max": 0.0,
        "pooling": "gap",
    },
    "cnn_gmp_residual_vote": {
        "name": "cnn",
        "channels": [8, 8, 16, 16],
        "kernel_size": 7,
        "pool_every": 1,
        "residual": True,
        "pooling": "gmp",
        "mean_vote_layer": 1,
    },
    "cnn_lse_pool2": {
        "name": "cnn",
        "channels": [8, 8, 16],
        "kernel_size": 5,
        "pool_every": 2,
        "pooling": "lse",
        "lse_temperature": 3.0,
    },
    "convlstm_lstm_last": {
        "name": "convlstm",
        "channels": [8, 16, 16],
        "kernel_size": 9,
        "dropout_min": 0.0,
        "dropout_max": 0.0,
        "cell": "lstm",
        "hidden_units": 8,
        "readout": "last",
    },
    "convlstm_bigru_centre": {
        "name": "convlstm",
        "channels": [8, 16],
        "kernel_size": 9,
        "cell": "gru",
        "n_rnn_layers": 2,
        "hidden_units": 4,
        "bidirectional": True,
        "readout": "centre",
    },
    "convlstm_bilstm_last_plus_pool": {
        "name": "convlstm",
        "channels": [8, 16],
        "kernel_size": 9,
        "cell": "lstm",
        "hidden_units": 4,
        "bidirectional": True,
        "readout": "last_plus_pool",
        "pooling": "gap",
    },
    "attention_gate_concat": {
        "name": "attention_gate",
        "channels": [8, 16, 16],
        "kernel_size": 9,
        "dropout_min": 0.0,
        "dropout_max": 0.0,
        "gate_layers": [0, 1],
        "attention_size": 8,
    },
    "attention_gate_sigmoid_vote": {
        "name": "attention_gate",
        "channels": [8, 8, 16],
        "kernel_size": 9,
        "gate_layers": [2, 0],
        "attention_size": 4,
        "gate_normalization": "sigmoid",
        "aggregation": "mean_vote",
        "pooling": "gmp",
    },
    "segmenter_joint": {
        "name": "segmenter",
        "variant": "joint",
        "unet_depth": 2,
        "unet_width": 4,
        "unet_kernel_size": 5,
        "pool_kernel": 8,
        "classifier_channels": [8, 8, 16, 16],
        "classifier_kernel_size": 5,
        "hidden_units": 16,
        "dropout": 0.0,
    },
    "segmenter_cascaded_relu_max": {
        "name": "segmenter",
        "variant": "cascaded",
        "unet_depth": 3,
        "unet_width": 4,
        "pool_kernel": 15,
        "window_pooling": "relu_max",
        "classifier_channels": [4, 8, 8, 8],
        "hidden_units": 8,
    },
    "segmenter_classifier_only": {
        "name": "segmenter",
        "variant": "classifier_only",
        "classifier_channels": [4, 8, 8, 8],
        "hidden_units": 8,
    },
    "dualnet_lstm": {
        "name": "dualnet",
        "window_samples": 64,
        "window_step": 56,
        "signal_hidden": 8,
        "signal_layers": 2,
        "spectrogram_channels": [4, 8, 8],
        "stft_window": 32,
        "stft_hop": 16,
        "max_samples": 3000,
        "dropout": 0.0,
    },
    "dualnet_transformer_axial": {
        "name": "dualnet",
        "signal_encoder": "transformer",
        "window_samples": 32,
        "window_step": 28,
        "signal_layers": 1,
        "transformer_heads": 2,
        "transformer_feedforward": 16,
        "spectrogram_channels": [4, 8, 8],
        "axial_stages": [1, 2],
        "axial_groups": 2,
        "stft_window": 32,
        "stft_hop": 16,
        "max_samples": 3000,
        "dropout": 0.1,
    },
    "dualnet_lstm_padded_to_max": {
        "name": "dualnet",
        "window_samples": 64,
        "window_step": 56,
        "signal_hidden": 8,
        "signal_layers": 2,
        "spectrogram_channels": [4, 8],
        "stft_window": 16,
        "stft_hop": 8,
        "max_samples": 3000,
        "pad_to_max": True,
    },
    "dualnet_cnn_signal_only": {
        "name": "dualnet",
        "encoders": "signal",
        "signal_encoder": "cnn",
        "signal_channels": [4, 8],
        "signal_hidden": 8,
        "max_samples": 3000,
    },
    "dualnet_spectrogram_only_axial": {
        "name": "dualnet",
        "encoders": "spectrogram",
        "signal_encoder": "transformer",
        "window_samples": 16,
        "window_step": 16,
        "spectrogram_channels": [4, 8, 8],
        "axial_stages": [0, 2],
        "axial_groups": 2,
        "stft_window": 32,
        "stft_hop": 16,
        "max_samples": 3000,
    },
    "hadln": {
        "name": "hadln",
        "stem_channels": 4,
        "stem_kernel_size": 8,
        "stage_channels": [4, 8],
        "blocks_per_stage": 2,
        "kernel_size": 5,
        "lstm_units": 4,
        "attention_size": 8,
        "dropout": 0.0,
        "readout": "mean",
    },
    "hadln_flatten_187": {
        "name": "hadln",
        "stem_channels": 4,
        "stage_channels": [4, 8],
        "blocks_per_stage": 1,
        "lstm_units": 4,
        "lstm_stride": 2,
        "dropout": 0.0,
        "readout": "flatten",
        "input_samples": 187,
    },
}


def _family_configs() -> dict[str, dict]:
    first: dict[str, dict] = {}
    for config in SMALL_CONFIGS.values():
        first.setdefault(config["name"], config)
    return first


def _shaped(configs: dict[str, dict]) -> list[dict]:
    return [{**SHAPE, **copy.deepcopy(c)} for c in configs.values()]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "small_config" in metafunc.fixturenames:
        metafunc.parametrize(
            "small_config",
            _shaped(SMALL_CONFIGS),
            ids=list(SMALL_CONFIGS),
        )
    if "any_config" in metafunc.fixturenames:
        configs = {**SMALL_CONFIGS, **{f"preset:{n}": load_preset(n) for n in preset_names()}}
        metafunc.parametrize(
            "any_config", _shaped(configs), ids=list(configs)
        )
    if "family_config" in metafunc.fixturenames:
        families = _family_configs()
        metafunc.parametrize(
            "family_config", _shaped(families), ids=list(families)
        )


@pytest.fixture
def small_configs() -> dict[str, dict]:
    return {name: {**SHAPE, **copy.deepcopy(c)} for name, c in SMALL_CONFIGS.items()}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def padded_batch(lengths: list[int], *, n_leads: int = 1, seed: int = 0) -> tuple:
    """Random records zero-padded to the longest: (x (B, leads, T), lengths (B,))."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.zeros(len(lengths), n_leads, max(lengths))
    for i, length in enumerate(lengths):
        x[i, :, :length] = torch.randn(n_leads, length, generator=generator)
    return x, torch.tensor(lengths)


def build_with_random_norms(config: dict) -> torch.nn.Module:
    """`build_model`, then random BatchNorm statistics and shifts (as after some training).

    A fresh BatchNorm in eval mode is the identity and convs have no bias, so zeros in a
    padded tail would stay zero even without masking; random shifts make padding tests bite.
    """
    model = build_model(config)
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            shape = module.running_mean.shape
            module.running_mean.copy_(0.3 * torch.randn(shape, generator=generator))
            module.running_var.copy_(0.5 + torch.rand(shape, generator=generator))
            with torch.no_grad():
                module.bias.copy_(0.3 * torch.randn(shape, generator=generator))
    return model


@pytest.fixture
def make_model():
    """`build_with_random_norms` as a fixture."""
    return build_with_random_norms


@pytest.fixture
def make_batch():
    """`padded_batch` as a fixture, so test modules need not import conftest."""
    return padded_batch
