from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from data_io.datasets import load_dataset
from models import build_model
from models.presets import load_preset
from study.engine.config import resolve_config
from study.engine.layer_rates import depth_scale, fan_in_scales, split_by_fan_in
from study.engine.metrics import Scoring
from study.engine.trainer import Split, _parameter_groups, train


def _preset(name: str) -> nn.Module:
    return build_model({**load_preset(name), "n_classes": 4, "n_leads": 1})


def test_only_convolutions_wider_than_the_reference_learn_slower():
    # 128 channels x 21 taps: cnn7_gmp's widest convolution sits exactly at the reference.
    assert fan_in_scales(_preset("cnn7_gmp"), reference_fan_in=128 * 21) == {}
    scales = sorted(fan_in_scales(_preset("cnn17_gmp"), reference_fan_in=128 * 21).values())
    # cnn17_gmp: three convolutions read 256 channels, one reads 512.
    assert scales == [0.25, 0.5, 0.5, 0.5]


def test_groups_keep_every_parameter_once_and_scale_the_groups_own_rate():
    model = _preset("cnn15_lstm64")
    groups = model.parameter_groups(cnn_lr_scale=0.1, base_lr=1e-3)
    split = split_by_fan_in(groups, model=model, base_lr=1e-3, reference_fan_in=128 * 21)
    ids = [id(p) for group in split for p in group["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters() if p.requires_grad)
    rates = sorted({(group["name"], round(group["lr"], 8)) for group in split})
    assert rates == [("cnn", 5e-5), ("cnn", 1e-4), ("head", 1e-3)]
    assert split_by_fan_in(groups, model=model, base_lr=1e-3, reference_fan_in=0) is groups


@pytest.mark.parametrize("reference, expected", [(0, 1), (128 * 21, 2)])
def test_the_trainer_builds_its_optimizer_groups_from_the_config(reference, expected):
    model = _preset("cnn15_gmp")
    cfg = resolve_config({"optim": {"lr": 1e-3, "cnn_lr_scale": 1.0,
                                    "conv_lr_fan_in": reference, "lr_depth": 0}})
    groups = _parameter_groups(model, cfg)
    optimizer = torch.optim.Adam(groups, lr=cfg.optim.lr)
    assert len({group["lr"] for group in optimizer.param_groups}) == expected


def test_only_trunks_deeper_than_the_reference_learn_slower():
    assert depth_scale(_preset("cnn17_gmp"), reference_depth=7) == pytest.approx(7 / 17)
    assert depth_scale(_preset("cnn15_lstm64"), reference_depth=7) == pytest.approx(7 / 15)
    assert depth_scale(_preset("cnn7_gmp"), reference_depth=7) == 1.0
    assert depth_scale(_preset("cnn17_gmp"), reference_depth=0) == 1.0
    assert depth_scale(_preset("dualnet_xl"), reference_depth=7) == 1.0  # no CNN trunk


def test_the_depth_rate_scales_every_group_before_the_fan_in_rule():
    model = _preset("cnn15_lstm64")
    cfg = resolve_config({"optim": {"lr": 1e-3, "cnn_lr_scale": 0.1,
                                    "conv_lr_fan_in": 128 * 21, "lr_depth": 7}})
    rates = sorted({(g["name"], round(g["lr"], 10)) for g in _parameter_groups(model, cfg)})
    top = 1e-3 * 7 / 15
    assert rates == [("cnn", round(top * 0.05, 10)), ("cnn", round(top * 0.1, 10)),
                     ("head", round(top, 10))]


def test_a_checkpoint_with_other_per_layer_rates_is_refused_by_name(
    tiny_arrays, tiny_config, tmp_path
):
    arrays = tiny_arrays()
    split = Split(arrays, np.arange(len(arrays)))
    scoring = Scoring.from_dataset(load_dataset("cinc2017"))
    ckpt = tmp_path / "checkpoint.pt"
    one_rate = {**tiny_config, "epochs": 1, "optim": {**tiny_config["optim"], "conv_lr_fan_in": 0}}
    train(config=one_rate, train_split=split, val_split=split, scoring=scoring,
          checkpoint_path=ckpt)
    # every convolution of the tiny CNN is wider than a reference of 1
    scaled = {**one_rate, "epochs": 2, "optim": {**one_rate["optim"], "conv_lr_fan_in": 1}}
    with pytest.raises(ValueError, match=f"{ckpt}: its optimiser state has 1 parameter groups"):
        train(config=scaled, train_split=split, val_split=split, scoring=scoring,
              checkpoint_path=ckpt)
