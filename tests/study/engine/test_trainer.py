"""The single-trial trainer: learning, exact resume, determinism, divergence, callbacks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data_io.datasets import load_dataset
from models import build_model
from models.layers import GlobalPool, set_pool_mean_share
from models.losses import FocalLoss
from study.engine.checkpoint import load_checkpoint
from study.engine.config import resolve_config
from study.engine.metrics import Scoring
from study.engine.runtime import select_runtime
from study.engine.trainer import (
    Split,
    _pretrain_trunk,
    evaluate,
    pool_mean_shares,
    train,
    warmup_factors,
)
from study.explain.artifacts import load_trained

SCORING = Scoring.from_dataset(load_dataset("cinc2017"))


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_learns_an_easy_task_and_reports_every_epoch(tiny_arrays, tiny_config):
    arrays = tiny_arrays()
    rows = []
    config = {**tiny_config, "epochs": 8}
    result = train(
        config=config, train_split=Split(arrays, np.arange(len(arrays))),
        val_split=Split(arrays, np.arange(len(arrays))), scoring=SCORING,
        on_epoch=lambda row, _: rows.append(row),
    )
    assert result.status == "completed"
    assert [r["epoch"] for r in rows] == list(range(1, 9))
    assert rows[-1]["train/loss"] < rows[0]["train/loss"]
    assert rows[-1]["val/accuracy"] >= 0.9
    assert set(result.predictions) == {"record_ids", "y_true", "probabilities"}
    np.testing.assert_allclose(result.predictions["probabilities"].sum(axis=1), 1.0, atol=1e-5)


def test_same_seed_same_weights_on_cpu(tiny_arrays, tiny_config):
    arrays = tiny_arrays()
    split = Split(arrays, np.arange(len(arrays)))
    a = train(config=tiny_config, train_split=split, val_split=split, scoring=SCORING)
    b = train(config=tiny_config, train_split=split, val_split=split, scoring=SCORING)
    c = train(config={**tiny_config, "seed": 1}, train_split=split, val_split=split,
              scoring=SCORING)
    for key, value in _state(a.model).items():
        torch.testing.assert_close(value, b.model.state_dict()[key], rtol=0, atol=0)
    assert any(
        not torch.equal(v, c.model.state_dict()[k]) for k, v in _state(a.model).items()
        if v.is_floating_point()
    )


class _KilledError(Exception):
    """Stands for the process dying right after an epoch's checkpoint was written."""


def _killed_then_resumed(config, split, ckpt, *, after_epoch: int):
    """Train until ``after_epoch`` is checkpointed, die, and resume from the checkpoint."""

    def die(row, path):
        if row["epoch"] == after_epoch:
            raise _KilledError

    with pytest.raises(_KilledError):
        train(config=config, train_split=split, val_split=split, scoring=SCORING,
              checkpoint_path=ckpt, on_epoch=die)
    assert load_checkpoint(ckpt)["epoch"] == after_epoch
    return train(config=config, train_split=split, val_split=split, scoring=SCORING,
                 checkpoint_path=ckpt)


def test_resume_from_a_checkpoint_is_exact(tiny_arrays, tiny_config, tmp_path):
    arrays = tiny_arrays()
    split = Split(arrays, np.arange(len(arrays)))
    config = {**tiny_config, "model": {**tiny_config["model"], "dropout_min": 0.3}}
    straight = train(config=config, train_split=split, val_split=split, scoring=SCORING)
    resumed = _killed_then_resumed(config, split, tmp_path / "checkpoint.pt", after_epoch=2)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    for key, value in _state(straight.model).items():
        torch.testing.assert_close(value, resumed.model.state_dict()[key], rtol=0, atol=0)
    assert resumed.history[-1]["train/loss"] == straight.history[-1]["train/loss"]
    assert resumed.history[-1]["lr"] == straight.history[-1]["lr"]


def test_checkpoint_is_self_describing_and_safe_to_load(tiny_arrays, tiny_config, tmp_path):
    arrays = tiny_arrays(n_records=16)
    split = Split(arrays, np.arange(len(arrays)))
    train(config={**tiny_config, "epochs": 1}, train_split=split, val_split=split, scoring=SCORING,
          checkpoint_path=tmp_path / "c.pt")
    state = load_checkpoint(tmp_path / "c.pt")  # weights_only=True inside
    assert state["config"] == resolve_config({**tiny_config, "epochs": 1}).as_dict()
    assert state["model_config"]["name"] == "cnn"
    assert state["classes"] == ["N", "A", "O", "~"]
    assert state["versions"]["torch"] == torch.__version__
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")


def test_a_diverging_run_stops_with_a_status(tiny_arrays, tiny_config):
    arrays = tiny_arrays(n_records=16)
    split = Split(arrays, np.arange(len(arrays)))
    lines = []
    # a finite rate so large that the first steps overflow (the config refuses an infinite one)
    result = train(config={**tiny_config, "optim": {"lr": 1e15, "batch_size": 8}},
                   train_split=split, val_split=split, scoring=SCORING, log=lines.append)
    assert result.status == "diverged"
    assert "diverged at epoch" in result.message and "nan" in result.message.lower()
    assert lines[-1] == result.message


def test_unknown_options_fail_before_training(tiny_arrays, tiny_config):
    arrays = tiny_arrays(n_records=8)
    split = Split(arrays, np.arange(len(arrays)))
    with pytest.raises(ValueError, match="unknown option"):
        train(config={**tiny_config, "optim": {"learning_rate": 0.1}}, train_split=split,
              val_split=split, scoring=SCORING)
    with pytest.raises(TypeError):
        train(config={**tiny_config, "model": {**tiny_config["model"], "kernal_size": 3}},
              train_split=split, val_split=split, scoring=SCORING)


def test_a_data_set_wide_normalization_is_fitted_on_the_training_split_and_checkpointed(
        tiny_arrays, tiny_config, tmp_path):
    arrays = tiny_arrays(n_records=16)
    train_split, val_split = Split(arrays, np.arange(8)), Split(arrays, np.arange(8, 16))
    config = {**tiny_config, "epochs": 1,
              "data": {**tiny_config["data"], "normalization": "train_zscore"}}
    result = train(config=config, train_split=train_split, val_split=val_split,
                   scoring=SCORING, checkpoint_path=tmp_path / "c.pt")
    stats = result.config["data"]["normalization_stats"]
    pooled = np.concatenate([arrays.signal(i) for i in range(8)]).astype(np.float64)
    assert stats["mean"] == [[pytest.approx(pooled.mean(), rel=1e-9)]]
    assert stats["std"] == [[pytest.approx(pooled.std(), rel=1e-9)]]
    # the checkpoint carries them, so predictions and explanations reuse the training split's
    _, saved = load_trained(tmp_path / "c.pt")
    assert saved["data"]["normalization_stats"] == stats
    # statistics given in a config are the trainer's output, never its input: refitted
    stale = {**config, "data": {**config["data"],
                                "normalization_stats": {"mean": [[5.0]], "std": [[9.0]]}}}
    again = train(config=stale, train_split=train_split, val_split=val_split, scoring=SCORING)
    assert again.config["data"]["normalization_stats"] == stats


def test_the_plateau_schedule_follows_the_validation_loss_of_every_epoch(
        tiny_arrays, tiny_config):
    # hadln.ipynb cell 12 steps ReduceLROnPlateau with the validation ("test") loss after
    # every epoch: replaying the recorded validation losses through torch's scheduler must
    # give the rates the trainer logged (patience 0, so every stalled epoch halves the rate).
    arrays = tiny_arrays(n_records=16)
    train_split, val_split = Split(arrays, np.arange(8)), Split(arrays, np.arange(8, 16))
    config = {**tiny_config, "epochs": 6,
              "optim": {**tiny_config["optim"], "lr_schedule": "plateau", "warmup_epochs": 0,
                        "lr_plateau_patience": 0, "lr_plateau_factor": 0.5}}
    result = train(config=config, train_split=train_split, val_split=val_split, scoring=SCORING)
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    replay = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=0)
    expected = []
    for row in result.history:
        replay.step(row["val/loss"])
        expected.append(optimizer.param_groups[0]["lr"])
    assert [row["lr"] for row in result.history] == pytest.approx(expected, rel=1e-12)


def test_pretraining_loads_a_gmp_cnn_trunk_into_the_convlstm(tiny_arrays, tiny_config):
    arrays = tiny_arrays(n_records=16)
    split = Split(arrays, np.arange(len(arrays)))
    convlstm = {"name": "convlstm", "channels": [4, 8, 8], "kernel_size": 5, "hidden_units": 4}
    pretrained = build_model({**convlstm, "n_classes": len(arrays.classes), "n_leads": 1})
    _pretrain_trunk(pretrained, cfg=resolve_config({**tiny_config, "model": convlstm,
                                                    "pretrain_epochs": 1}),
                    train_split=split, val_split=split, scoring=SCORING, log=None,
                    progress=False)
    cnn_config = {"name": "cnn", "channels": [4, 8, 8], "kernel_size": 5, "pooling": "gmp"}
    cnn = train(config={**tiny_config, "model": cnn_config, "epochs": 1},
                train_split=split, val_split=split, scoring=SCORING)
    for key, value in cnn.model.trunk.state_dict().items():
        torch.testing.assert_close(pretrained.trunk.state_dict()[key], value, rtol=0, atol=0)
    with pytest.raises(ValueError, match="pre-trainable CNN trunk"):
        train(config={**tiny_config, "pretrain_epochs": 1}, train_split=split, val_split=split,
              scoring=SCORING)


def test_pretraining_epochs_are_announced_and_read_as_their_own(tiny_arrays, tiny_config):
    # `study.train --epochs 2` of a config that pre-trains: the log says 1 + 2 epochs in all
    # and the pre-training's epoch lines are marked, so "epoch 1/2" is never seen twice
    arrays = tiny_arrays(n_records=16)
    split = Split(arrays, np.arange(len(arrays)))
    convlstm = {"name": "convlstm", "channels": [4, 8, 8], "kernel_size": 5, "hidden_units": 4}
    lines: list[str] = []
    train(config={**tiny_config, "model": convlstm, "epochs": 2, "pretrain_epochs": 1},
          train_split=split, val_split=split, scoring=SCORING, log=lines.append)
    assert lines[0].startswith("pre-training the CNN trunk") and "3 epochs in all" in lines[0]
    epochs = [line.split("  ")[0] for line in lines[1:]]
    assert epochs == ["pre-training epoch 1/1", "epoch 1/2", "epoch 2/2"]


def test_cpu_autocast_only_where_the_cpu_computes_bf16(monkeypatch):
    """bf16 autocast on an AVX2 CPU is emulated and slower than fp32: full precision there."""
    from study.engine import runtime

    monkeypatch.setattr(runtime.torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert runtime.select_runtime(device="cpu", amp=True).amp_dtype is None
    monkeypatch.setattr(runtime.torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert runtime.select_runtime(device="cpu", amp=True).amp_dtype is runtime.torch.bfloat16
    assert runtime.select_runtime(device="cpu", amp=False).amp_dtype is None


def test_warmup_rises_linearly_over_its_batches_then_stops():
    first = warmup_factors(warmup_epochs=1.5, epoch=0, n_batches=4)
    second = warmup_factors(warmup_epochs=1.5, epoch=1, n_batches=4)
    np.testing.assert_allclose(first, [1 / 6, 2 / 6, 3 / 6, 4 / 6])
    np.testing.assert_allclose(second, [5 / 6, 1.0, 1.0, 1.0])
    assert warmup_factors(warmup_epochs=1.5, epoch=2, n_batches=4) is None
    assert warmup_factors(warmup_epochs=0, epoch=0, n_batches=4) is None


def _off_and_on(tiny_arrays, tiny_config, *, option: str, on: float):
    """One split, the config with ``optim.<option>`` at ``on``, and runs with it at 0 and on."""
    arrays = tiny_arrays()
    split = Split(arrays, np.arange(len(arrays)))
    optim = tiny_config.get("optim", {})
    runs = []
    for value in (0, on):
        config = {**tiny_config, "optim": {**optim, option: value}}
        runs.append(train(config=config, train_split=split, val_split=split, scoring=SCORING))
    return split, config, *runs


def test_pool_mean_share_falls_linearly_from_one_to_zero_then_stays():
    first = pool_mean_shares(fraction=0.5, epochs=3, epoch=0, n_batches=4)
    second = pool_mean_shares(fraction=0.5, epochs=3, epoch=1, n_batches=4)
    np.testing.assert_allclose(first, [1.0, 5 / 6, 4 / 6, 3 / 6])
    np.testing.assert_allclose(second, [2 / 6, 1 / 6, 0.0, 0.0])
    # After the window the pools are set back to their own kind, not left alone.
    np.testing.assert_allclose(pool_mean_shares(fraction=0.5, epochs=3, epoch=2, n_batches=4), 0)
    assert pool_mean_shares(fraction=0, epochs=3, epoch=0, n_batches=4) is None
    # However close to 1 the fraction, the last batch of training pools as configured.
    assert pool_mean_shares(fraction=0.99, epochs=3, epoch=2, n_batches=4)[-1] == 0.0


def test_pool_mean_changes_training_ends_on_the_configured_pool_and_resumes_exactly(
    tiny_arrays, tiny_config, tmp_path
):
    split, config, plain, blended = _off_and_on(tiny_arrays, tiny_config,
                                                option="pool_mean_fraction", on=0.5)
    assert blended.history[0]["train/loss"] != plain.history[0]["train/loss"]
    pools = [m for m in blended.model.modules() if isinstance(m, GlobalPool)]
    assert pools and all(pool.mean_share == 0.0 for pool in pools)
    resumed = _killed_then_resumed(config, split, tmp_path / "checkpoint.pt", after_epoch=1)
    assert resumed.history[-1]["train/loss"] == blended.history[-1]["train/loss"]


def test_a_checkpoint_written_mid_blend_restores_the_pooling_it_was_scored_with(
    tiny_arrays, tiny_config, tmp_path
):
    # A trial stopped by ASHA after epoch 1 of 4 (its pooling still half the mean) is the
    # model whose predictions and explanations the study writes for it.
    arrays = tiny_arrays()
    split = Split(arrays, np.arange(len(arrays)))
    config = {**tiny_config, "epochs": 4, "optim": {"pool_mean_fraction": 0.5}}
    ckpt = tmp_path / "checkpoint.pt"
    scored = {}

    def stop(row, path):
        scored.update(row)
        raise _KilledError

    with pytest.raises(_KilledError):
        train(config=config, train_split=split, val_split=split, scoring=SCORING,
              checkpoint_path=ckpt, on_epoch=stop)
    model, _ = load_trained(ckpt)
    shares = {p.mean_share for p in model.modules() if isinstance(p, GlobalPool)}
    assert len(shares) == 1 and 0 < shares.pop() < 1

    def val_loss(model):
        metrics, _ = evaluate(model=model, split=split, cfg=resolve_config(config),
                              runtime=select_runtime(device="cpu", amp=False),
                              loss_fn=FocalLoss(gamma=0.0), scoring=SCORING)
        return metrics["val/loss"]

    assert val_loss(model) == pytest.approx(scored["val/loss"], rel=1e-6)
    set_pool_mean_share(model, 0.0)  # what a checkpoint without the share would restore
    assert val_loss(model) != pytest.approx(scored["val/loss"], rel=1e-6)


def test_warmup_changes_the_first_epoch_only_and_resumes_exactly(
    tiny_arrays, tiny_config, tmp_path
):
    split, config, plain, warmed = _off_and_on(tiny_arrays, tiny_config,
                                               option="warmup_epochs", on=1)
    # The epoch schedule is untouched: the same rate is recorded after every epoch.
    assert [r["lr"] for r in warmed.history] == [r["lr"] for r in plain.history]
    assert warmed.history[0]["train/loss"] != plain.history[0]["train/loss"]
    resumed = _killed_then_resumed(config, split, tmp_path / "checkpoint.pt", after_epoch=1)
    assert resumed.history[-1]["train/loss"] == warmed.history[-1]["train/loss"]
