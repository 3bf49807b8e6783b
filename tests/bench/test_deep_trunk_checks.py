"""bench.deep_trunk_checks: re-scoring a checkpoint, per-layer update sizes and fp32 against
bf16 gradients, on synthetic CinC-format records."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from bench.deep_trunk_checks import gradient_precision, layer_updates, main, precise_batchnorm
from bench.preset_training import split_directories
from data_io.cache import load_cached
from data_io.synthesize import main as synthesize
from study.engine.trainer import Split
from study.train import main as train

TINY = {"model": {"name": "cnn", "channels": [4, 8], "kernel_size": 5, "pool_every": 1},
        "optim": {"batch_size": 8}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(train dir, eval dir, run dir) of one epoch of a tiny CNN on synthetic records."""
    root = tmp_path_factory.mktemp("deep_trunk")
    assert synthesize(["--out", str(root / "records"), "--records", "48", "--seed", "0"]) == 0
    split_directories(data_dir=root / "records", train_records=24, out=root)  # train/, eval/
    (root / "tiny.json").write_text(json.dumps(TINY))
    assert train(["--config", str(root / "tiny.json"), "--data-dir", str(root / "train"),
                  "--eval-dir", str(root / "eval"), "--fs-hz", "50", "--epochs", "1",
                  "--cache-dir", str(root / "cache"), "--out", str(root / "run")]) == 0
    return root


def test_rescore_repeats_the_protocol_score_first_and_prints_every_setting(trained, capsys):
    assert main(["--cache-dir", str(trained / "cache"), "--json", "rescore",
                 "--run", str(trained / "run"), "--train-dir", str(trained / "train"),
                 "--eval-dir", str(trained / "eval")]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["setting"].split(":")[0].split(",")[0] for row in rows] == [
        "the protocol", "centred crops instead of whole records",
        "BatchNorm recomputed over the training crops", "the same",
        "BatchNorm recomputed"]
    logged = json.loads((trained / "run" / "metrics.json").read_text())
    assert rows[0]["val/f1_cinc"] == pytest.approx(logged["val/f1_cinc"], abs=1e-9)
    assert rows[0]["val/loss"] != rows[2]["val/loss"]  # recomputed statistics differ
    assert all(math.isfinite(row["val/loss"]) and row["epoch"] == 1 for row in rows)


def test_precise_batchnorm_holds_the_exact_mean_over_the_batches():
    model = nn.Sequential(nn.Conv1d(1, 3, 1, bias=False), nn.BatchNorm1d(3), nn.Dropout(0.5))
    batches = [torch.randn(4, 1, 10) + shift for shift in (0.0, 5.0)]

    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model

        def forward(self, x, lengths):
            return self.net(x)

    recomputed = precise_batchnorm(Wrapped(), batches=[{"x": b, "lengths": None}
                                                       for b in batches], dropout=False)
    conv_out = torch.cat([model[0](b) for b in batches])  # (8, 3, 10)
    torch.testing.assert_close(recomputed.net[1].running_mean,
                               conv_out.mean(dim=(0, 2)).detach(), rtol=1e-5, atol=1e-5)
    assert not recomputed.training and model[1].momentum == 0.1  # the original is untouched


def test_layer_updates_reports_every_convolution(trained):
    arrays = load_cached("cinc2017", trained / "train", fs_hz=50.0, cache_dir=trained / "cache")
    result = layer_updates(preset="cnn7_gmp", train=Split(arrays, np.arange(len(arrays))),
                           steps=2, fs_hz=50.0, lr=1e-3)
    assert result["steps"] == 2 and len(result["layers"]) == 7
    assert [layer["fan_in"] for layer in result["layers"]][:2] == [21, 16 * 21]
    for layer in result["layers"]:
        assert 0 < layer["step"] < 1 and -1 <= layer["cosine"] < 1 and layer["growth"] > 0


def test_gradient_precision_compares_every_convolution_of_a_preset_and_a_checkpoint(trained,
                                                                                   capsys):
    arrays = load_cached("cinc2017", trained / "train", fs_hz=50.0, cache_dir=trained / "cache")
    train = Split(arrays, np.arange(len(arrays)))
    preset = gradient_precision(spec="cnn7_gmp", train=train, batches=1, fs_hz=50.0)
    assert preset["batches"] == 1 and len(preset["cosine"]) == 7
    # bf16 rounds every convolution's input: close to the fp32 gradient, never identical
    assert all(0.5 < c < 1.0 - 1e-6 for c in preset["cosine"]), preset
    checkpoint = str(trained / "run" / "checkpoint.pt")
    assert main(["--cache-dir", str(trained / "cache"), "precision", "--train-dir",
                 str(trained / "train"), "--models", checkpoint, "--batches", "1",
                 "--fs-hz", "50"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{checkpoint}: cos(fp32, bf16) per conv, first to last: ")
    cosines = [float(c) for c in line.split("last: ")[1].split("  (min")[0].split()]
    assert len(cosines) == 2 and all(0.5 < c <= 1.0 for c in cosines)  # TINY's two convs
