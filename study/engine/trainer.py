"""The single-trial trainer: one configuration, one split, no Ray.

Runs on CPU or CUDA, reports metrics after every epoch through a callback (the study plugs
Ray Tune in there), checkpoints every epoch and resumes from a checkpoint exactly: batches
are fixed by (seed, epoch) and the torch RNG state travels in the checkpoint, so an
interrupted run continues as if it had never stopped. A loss that turns NaN or infinite ends
the run with status "diverged" instead of raising into the caller.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from data_io.batching import make_loader
from data_io.preprocess import FITTED_NORMALIZERS, Normalizer, TrainingZscore, fit_normalizer
from data_io.records import EcgArrays
from models import build_model
from models.convlstm import pretraining_config
from models.layers import pool_mean_share, set_pool_mean_share
from models.losses import FocalLoss
from study.engine.bars import track
from study.engine.checkpoint import load_checkpoint, restore_model, save_checkpoint
from study.engine.class_weights import class_weights
from study.engine.config import TrainConfig, resolve_config
from study.engine.layer_rates import depth_scale, split_by_fan_in
from study.engine.metrics import Scoring, classification_metrics
from study.engine.optimizers import OPTIMIZERS
from study.engine.runtime import Runtime, select_runtime
from study.engine.schedules import build_schedule, load_schedule_state, step_schedule

EpochCallback = Callable[[dict[str, Any], Path | None], None]


@dataclass(frozen=True)
class Split:
    """Records ``indices`` of ``arrays`` (training or evaluation side of a trial)."""

    arrays: EcgArrays
    indices: np.ndarray


@dataclass
class TrainResult:
    """What a trial produced.

    Attributes:
        status: "completed", or "diverged" (loss became NaN/inf; ``message`` says where).
        history: one metrics row per finished epoch.
        predictions: the last evaluation: record ids, true labels, class probabilities.
        model: the trained model (on the CPU), for explanations.
    """

    status: str
    history: list[dict[str, Any]]
    config: dict[str, Any]
    message: str = ""
    predictions: dict[str, Any] = field(default_factory=dict)
    model: nn.Module | None = None

    @property
    def final(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}


def train(
    *,
    config: Mapping[str, Any],
    train_split: Split,
    val_split: Split,
    scoring: Scoring,
    checkpoint_path: Path | None = None,
    on_epoch: EpochCallback | None = None,
    log: Callable[[str], None] | None = None,
    progress: bool = False,
    score_last_only: bool = False,
) -> TrainResult:
    """Train one configuration; resume from ``checkpoint_path`` if it exists.

    Args:
        config: a partial or full configuration (see `study.engine.config`).
        train_split: records to train on.
        val_split: records to evaluate on after every epoch.
        scoring: the data set's metrics (`study.engine.metrics.Scoring.from_dataset`).
        checkpoint_path: written after every epoch; read at start when present.
        on_epoch: called with each epoch's metrics row and the checkpoint path.
        log: receives one progress line per epoch (e.g. ``print`` to stderr).
        progress: show progress bars of the batches of each epoch and evaluation on stderr
            (`study.engine.bars`).
        score_last_only: evaluate ``val_split`` after the last epoch only (a test set,
            scored once).
    """
    cfg = resolve_config(config)
    runtime = select_runtime(device=cfg.runtime.device, amp=cfg.runtime.amp)
    if cfg.runtime.num_threads:
        torch.set_num_threads(int(cfg.runtime.num_threads))
    classes = train_split.arrays.classes
    torch.manual_seed(cfg.seed)
    # A data-set-wide normalization is fitted on the training split alone; its statistics
    # go into the config (and so into the checkpoint) for every loader after this one.
    normalize = fit_normalizer(cfg.data.normalization, arrays=train_split.arrays,
                               indices=train_split.indices)
    cfg.data.normalization_stats = (
        normalize.stats() if isinstance(normalize, TrainingZscore) else None)
    # The data set fixes the output classes and input leads; a model config may not differ.
    model = build_model(
        {**cfg.model, "n_classes": len(classes), "n_leads": train_split.arrays.n_leads}
    ).to(runtime.device)
    resuming = checkpoint_path is not None and checkpoint_path.exists()
    if cfg.pretrain_epochs and not resuming:
        _pretrain_trunk(model, cfg=cfg, train_split=train_split, val_split=val_split,
                        scoring=scoring, log=log, progress=progress)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_schedule(optimizer, optim=cfg.optim, epochs=cfg.epochs)
    scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.use_grad_scaler)
    train_labels = train_split.arrays.labels[train_split.indices]
    weights = class_weights(cfg.loss.class_weights, labels=train_labels, classes=classes)
    loss_fn = FocalLoss(gamma=cfg.loss.focal_gamma, alpha=weights).to(runtime.device)

    history: list[dict[str, Any]] = []
    start_epoch = 0
    if resuming:
        state = load_checkpoint(checkpoint_path)
        restore_model(model, state)
        _load_optimizer_state(optimizer, state["optimizer_state"], path=checkpoint_path)
        load_schedule_state(scheduler, state["scheduler_state"])
        scaler.load_state_dict(state["scaler_state"])
        torch.set_rng_state(state["torch_rng_state"])
        history = list(state["history"])
        start_epoch = int(state["epoch"])

    predictions: dict[str, Any] = {}
    for epoch in range(start_epoch, cfg.epochs):
        started = time.perf_counter()
        loader = split_loader(train_split, cfg=cfg, training=True, epoch=epoch)
        train_loss, problem = train_epoch(
            model=model, loader=loader, loss_fn=loss_fn, optimizer=optimizer,
            scaler=scaler, runtime=runtime,
            warmup=warmup_factors(
                warmup_epochs=cfg.optim.warmup_epochs, epoch=epoch, n_batches=len(loader)
            ),
            pool_mean=pool_mean_shares(
                fraction=cfg.optim.pool_mean_fraction, epochs=cfg.epochs, epoch=epoch,
                n_batches=len(loader),
            ),
            progress=progress and f"epoch {epoch + 1}/{cfg.epochs} training",
        )
        if problem:
            message = f"training diverged at epoch {epoch + 1}: {problem}"
            if log:
                log(message)
            return TrainResult(status="diverged", history=history, config=cfg.as_dict(),
                               message=message, predictions=predictions, model=model.cpu())
        metrics: dict[str, Any] = {}
        if not score_last_only or epoch + 1 == cfg.epochs:
            metrics, predictions = evaluate(
                model=model, split=val_split, cfg=cfg, runtime=runtime, loss_fn=loss_fn,
                scoring=scoring,
                progress=progress and f"epoch {epoch + 1}/{cfg.epochs} evaluation",
            )
        # A plateau schedule watches the validation loss; an epoch not scored (a test set,
        # scored once) gives it the training loss, so the test set never steers training.
        step_schedule(scheduler, loss=metrics.get("val/loss", train_loss))
        row = {
            "epoch": epoch + 1,
            "train/loss": train_loss,
            **metrics,
            "lr": scheduler.get_last_lr()[0],
            "seconds": time.perf_counter() - started,
        }
        history.append(row)
        if checkpoint_path is not None:
            save_checkpoint(
                checkpoint_path,
                {
                    "epoch": epoch + 1,
                    "config": cfg.as_dict(),
                    "model_config": model.config,
                    "classes": list(classes),
                    "model_state": model.state_dict(),
                    # what the model pooled with when this epoch was scored (`pool_mean_shares`)
                    "pool_mean_share": pool_mean_share(model),
                    "optimizer_state": optimizer.state_dict(),
                    "scheduler_state": scheduler.state_dict(),
                    "scaler_state": scaler.state_dict(),
                    "torch_rng_state": torch.get_rng_state(),
                    "history": history,
                },
            )
        if log:
            log(_progress_line(row, epochs=cfg.epochs, metric=scoring.key))
        if on_epoch:
            on_epoch(row, checkpoint_path)
    if not predictions and history:
        _, predictions = evaluate(
            model=model, split=val_split, cfg=cfg, runtime=runtime, loss_fn=loss_fn,
            scoring=scoring,
        )
    return TrainResult(
        status="completed", history=history, config=cfg.as_dict(), predictions=predictions,
        model=model.cpu(),
    )


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser ``cfg.optim.optimizer`` names over ``model``'s parameter groups,
    every group at its own rate (`_parameter_groups`)."""
    optimizer = OPTIMIZERS[cfg.optim.optimizer]
    return optimizer(_parameter_groups(model, cfg), weight_decay=cfg.optim.weight_decay)


def data_normalizer(cfg: TrainConfig, *, split: Split) -> Normalizer:
    """The normalization ``cfg.data`` names: a per-record one, or a data-set-wide one from
    the statistics the config carries (those `train` fitted on its training split), else
    fitted on ``split`` itself (timing and checks; training always fits its training split)."""
    data = cfg.data
    if data.normalization in FITTED_NORMALIZERS and data.normalization_stats:
        return TrainingZscore.from_stats(data.normalization_stats)
    return fit_normalizer(data.normalization, arrays=split.arrays, indices=split.indices)


def split_loader(split: Split, *, cfg: TrainConfig, training: bool, epoch: int):
    """Batches of ``split``: shuffled, augmented training batches, or evaluation batches in a
    fixed order without augmentation."""
    data = cfg.data
    return make_loader(
        arrays=split.arrays,
        indices=split.indices,
        batching=data.train_batching if training else data.eval_batching,
        batch_size=cfg.optim.batch_size,
        shuffle=training,
        seed=cfg.seed,
        epoch=epoch,
        normalization=data_normalizer(cfg, split=split),
        augment=data.augment if training else None,
        crop_s=data.crop_s,
        fixed_length_s=data.fixed_length_s,
    )


def _pretrain_trunk(
    model: nn.Module,
    *,
    cfg: TrainConfig,
    train_split: Split,
    val_split: Split,
    scoring: Scoring,
    log: Callable[[str], None] | None,
    progress: bool,
) -> None:
    """Train a GMP-headed CNN on the same data and load its trunk into ``model``."""
    if not hasattr(model, "load_cnn_trunk"):
        raise ValueError(
            f"pretrain_epochs needs a model with a pre-trainable CNN trunk (convlstm), "
            f"not {cfg.model.get('name')!r}"
        )
    if log:
        pre, main = cfg.pretrain_epochs, cfg.epochs
        log(f"pre-training the CNN trunk (a GMP-headed CNN on the same records) for {pre} "
            f"epoch{'s' if pre != 1 else ''}, then training the configuration for {main}: "
            f"{pre + main} epochs in all")
    pre_cfg = {
        **cfg.as_dict(),
        "model": pretraining_config(model.config),
        "epochs": cfg.pretrain_epochs,
        "pretrain_epochs": 0,
    }
    result = train(config=pre_cfg, train_split=train_split, val_split=val_split,
                   scoring=scoring, log=_prefixed(log, "pre-training "), progress=progress)
    if result.status != "completed":
        raise ValueError(f"CNN pre-training failed: {result.message}")
    model.load_cnn_trunk(result.model.state_dict())


def _prefixed(log: Callable[[str], None] | None, prefix: str) -> Callable[[str], None] | None:
    """``log`` with every line prefixed (the pre-training's epochs read as its own)."""
    if log is None:
        return None
    return lambda line: log(prefix + line)


def _parameter_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    # Every group carries its own lr: the configured one, lowered for a trunk deeper than
    # optim.lr_depth; models with a pre-trainable trunk give it a lower rate of its own.
    rate = cfg.optim.lr * depth_scale(model, reference_depth=cfg.optim.lr_depth)
    own_groups = getattr(model, "parameter_groups", None)
    groups = (
        [{"params": list(model.parameters()), "lr": rate}] if own_groups is None
        else own_groups(cnn_lr_scale=cfg.optim.cnn_lr_scale, base_lr=rate)
    )
    return split_by_fan_in(groups, model=model, base_lr=rate,
                           reference_fan_in=cfg.optim.conv_lr_fan_in)


def _load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any], *,
                          path: Path) -> None:
    # Its groups must match: optim.conv_lr_fan_in gives wide convolutions groups of their own.
    saved, built = len(state["param_groups"]), len(optimizer.param_groups)
    if saved != built:
        raise ValueError(
            f"{path}: its optimiser state has {saved} parameter groups, this configuration "
            f"builds {built}; a checkpoint written with other per-layer rates (e.g. before "
            "optim.conv_lr_fan_in existed: resume it with conv_lr_fan_in 0) cannot resume here"
        )
    optimizer.load_state_dict(state)


def warmup_factors(*, warmup_epochs: float, epoch: int, n_batches: int) -> np.ndarray | None:
    """Learning-rate factors (n_batches,) of one epoch under a linear warm-up, or None.

    The rate rises linearly from 1/W to 1 over the first W = ``warmup_epochs * n_batches``
    batches of training (counted from epoch 0), then the epoch schedule alone applies.
    """
    total = warmup_epochs * n_batches
    if total <= 0 or epoch * n_batches >= total:
        return None
    steps = epoch * n_batches + np.arange(1, n_batches + 1)
    return np.minimum(steps / total, 1.0)


def pool_mean_shares(
    *, fraction: float, epochs: int, epoch: int, n_batches: int
) -> np.ndarray | None:
    """Shares (n_batches,) of the mean in each global pooling per batch of one epoch, or None.

    The share falls linearly from 1 (pure average over time) at the first batch of training
    to 0 (the configured pooling alone) after W = ``fraction * epochs * n_batches`` batches and
    stays 0. None when the option is off, so models are left untouched.
    """
    # The last batch always pools as configured, so the trained model is the one its
    # configuration names when it is evaluated, saved and explained.
    total = min(fraction * epochs * n_batches, epochs * n_batches - 1)
    if total <= 0:
        return None
    steps = epoch * n_batches + np.arange(n_batches)
    return np.clip(1.0 - steps / total, 0.0, 1.0)


def train_epoch(
    *,
    model: nn.Module,
    loader,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    runtime: Runtime,
    warmup: np.ndarray | None = None,
    pool_mean: np.ndarray | None = None,
    progress: str | bool = False,
) -> tuple[float, str]:
    """One pass over ``loader``; returns the mean loss and a problem text ('' when fine).

    ``warmup``: a factor per batch on the epoch's learning rates (`warmup_factors`); the
    rates are restored afterwards, so the epoch schedule and its checkpointed state are
    unaffected. ``pool_mean``: each batch's share of the mean in the global poolings
    (`pool_mean_shares`); the last batch's share stays for the evaluation that follows.
    ``progress``: a label to show a progress bar of the batches under (`study.engine.bars`).
    """
    model.train()
    total, count = 0.0, 0
    base_rates = [group["lr"] for group in optimizer.param_groups]
    batches = track(loader, total=len(loader), desc=str(progress), unit="batch",
                    enabled=bool(progress))
    try:
        for batch_no, batch in enumerate(batches, start=1):
            x = batch["x"].to(runtime.device)  # (B, leads, T)
            lengths = batch["lengths"].to(runtime.device)
            y = batch["y"].to(runtime.device)
            if warmup is not None:
                for group, rate in zip(optimizer.param_groups, base_rates, strict=True):
                    group["lr"] = rate * float(warmup[batch_no - 1])
            if pool_mean is not None:
                set_pool_mean_share(model, float(pool_mean[batch_no - 1]))
            optimizer.zero_grad(set_to_none=True)
            with runtime.autocast():
                logits = model(x, lengths=lengths)  # (B, n_classes)
            loss = loss_fn(logits.float(), y)
            value = float(loss.detach())
            if not math.isfinite(value):
                return float("nan"), f"loss is {value} at batch {batch_no}"
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total += value * len(y)
            count += len(y)
    finally:
        for group, rate in zip(optimizer.param_groups, base_rates, strict=True):
            group["lr"] = rate
    return total / max(count, 1), ""


@torch.no_grad()
def predict(
    *, model: nn.Module, split: Split, cfg: TrainConfig, runtime: Runtime,
    progress: str | bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Logits (n, n_classes) as float32 and the positions in ``split.indices`` they belong to.

    ``progress``: a label to show a progress bar of the batches under (`study.engine.bars`).
    """
    model.eval()
    loader = split_loader(split, cfg=cfg, training=False, epoch=0)
    logits, order = [], []
    for batch in track(loader, total=len(loader), desc=str(progress), unit="batch",
                       enabled=bool(progress)):
        with runtime.autocast():
            out = model(batch["x"].to(runtime.device), lengths=batch["lengths"].to(runtime.device))
        logits.append(out.float().cpu().numpy())
        order.append(batch["index"].numpy())
    return np.concatenate(logits), np.concatenate(order)


def evaluate(
    *,
    model: nn.Module,
    split: Split,
    cfg: TrainConfig,
    runtime: Runtime,
    loss_fn: nn.Module,
    scoring: Scoring,
    progress: str | bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validation metrics (`val/...`) and per-record predictions, in record order."""
    logits, index = predict(model=model, split=split, cfg=cfg, runtime=runtime,
                            progress=progress)
    order = np.argsort(index, kind="stable")
    logits, index = logits[order], index[order]
    y_true = split.arrays.labels[index]
    probabilities = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    metrics = classification_metrics(y_true=y_true, probabilities=probabilities, scoring=scoring)
    loss = loss_fn(
        torch.from_numpy(logits).to(runtime.device), torch.from_numpy(y_true).to(runtime.device)
    )
    metrics["val/loss"] = float(loss)
    predictions = {
        "record_ids": [split.arrays.record_ids[i] for i in index],
        "y_true": y_true,
        "probabilities": probabilities,
    }
    return metrics, predictions


def _progress_line(row: dict[str, Any], *, epochs: int, metric: str) -> str:
    if metric not in row:  # an epoch not scored (score_last_only)
        return (f"epoch {row['epoch']}/{epochs}  train/loss {row['train/loss']:.4f}  "
                f"{row['seconds']:.0f} s")
    per_class = " ".join(
        f"{key.removeprefix('val/f1_')} {value:.3f}" if math.isfinite(value)
        else f"{key.removeprefix('val/f1_')} - (absent)"
        for key, value in row.items()
        if key.startswith("val/f1_") and key != metric
    )
    return (
        f"epoch {row['epoch']}/{epochs}  train/loss {row['train/loss']:.4f}  "
        f"val/loss {row['val/loss']:.4f}  {metric} {row[metric]:.4f}  "
        f"({per_class})  {row['seconds']:.0f} s"
    )
