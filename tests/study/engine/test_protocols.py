"""Published training protocols: a preset trained by name trains with its own values."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from models import load_preset, preset_names
from study.engine.class_weights import class_weights
from study.engine.config import resolve_config
from study.engine.protocols import (
    _preset_protocols,
    load_protocol,
    preset_config,
    preset_protocol,
    protocol_names,
)
from study.engine.trainer import build_optimizer
from study.train import build_parser, partial_config


def test_every_mapped_preset_and_protocol_exists_and_passes_the_option_checks():
    for preset, protocol in _preset_protocols().items():
        assert preset in preset_names()
        assert protocol in protocol_names()
        resolve_config(preset_config(preset))  # every value of the protocol is allowed


def test_dualnet_presets_train_with_the_published_values():
    for size in ("s", "m", "l", "xl"):
        for family in ("dualnet", "dualnetpp"):
            assert preset_protocol(f"{family}_{size}") == "dualnet_published"
    cfg = resolve_config(preset_config("dualnet_s"))
    assert cfg.model == load_preset("dualnet_s")
    assert cfg.optim.optimizer == "radam" and cfg.optim.lr == 1e-3
    assert cfg.optim.lr_schedule == "multistep" and cfg.optim.lr_decay == 0.1
    assert cfg.optim.batch_size == 24 and cfg.epochs == 100
    assert cfg.loss.model_dump() == {"focal_gamma": 0.0,
                                     "class_weights": {"N": 0.4, "O": 0.7, "A": 0.9, "~": 0.9}}
    assert cfg.data.augment == {"pipeline": "ecg_dualnet"}
    assert cfg.data.train_batching == "bucket"  # whole records, no 30-s crops


def test_presets_without_a_protocol_train_with_the_defaults():
    assert preset_protocol("cnn7_gmp") is None
    assert preset_config("cnn7_gmp") == {"model": load_preset("cnn7_gmp")}
    with pytest.raises(ValueError, match="unknown training protocol 'nope'"):
        load_protocol("nope")


def _args(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(["--data-dir", ".", *argv])


def test_study_train_takes_the_protocol_and_the_command_line_wins():
    config = partial_config(_args(["--preset", "dualnet_s", "--epochs", "12", "--fs-hz", "150"]))
    assert config["epochs"] == 12 and config["data"]["fs_hz"] == 150
    assert config["optim"]["optimizer"] == "radam" and config["optim"]["batch_size"] == 24


def test_a_config_file_replaces_the_protocol(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"optim": {"batch_size": 8}}))
    config = partial_config(_args(["--preset", "dualnet_s", "--config", str(path)]))
    assert config == {"optim": {"batch_size": 8}, "model": load_preset("dualnet_s")}


def test_class_weights_by_label_follow_the_data_sets_class_order():
    classes = ("N", "A", "O", "~")  # CinC 2017's order in data_io/datasets/cinc2017.json
    weights = class_weights({"N": 0.4, "O": 0.7, "A": 0.9, "~": 0.9},
                            labels=np.array([0, 1]), classes=classes)
    assert weights == [0.4, 0.9, 0.7, 0.9]
    with pytest.raises(ValueError, match="must name every class"):
        class_weights({"N": 1.0}, labels=np.array([0]), classes=classes)


def test_the_optimiser_is_chosen_by_name():
    model = torch.nn.Linear(3, 2)
    cfg = resolve_config({"model": {"name": "cnn"}, "optim": {"optimizer": "radam"}})
    assert isinstance(build_optimizer(model, cfg), torch.optim.RAdam)
    cfg = resolve_config({"model": {"name": "cnn"}})
    assert type(build_optimizer(model, cfg)) is torch.optim.Adam
