"""Why do the deep presets score lower? Two checks on real records
(docs/lab-notes/presets-under-the-default-protocol.md).

``rescore`` scores one `study.train --out` checkpoint again under other evaluation settings:
centred crops instead of whole records, and BatchNorm statistics recomputed over the training
crops ("precise BN", dropout on or off). If the protocol's score is far below these, the gap
is an evaluation artefact; if not, the trunk has learnt less.

``updates`` trains presets from the same seed for ``--steps`` Adam steps and prints, per
convolution, its fan-in, the mean relative update per step and how far the weights turned:
how fast each layer moves at the default learning rate.

``precision`` compares, per convolution, the gradients of the same batches computed in fp32
and under bf16 autocast (the default mixed precision on GPUs that have it), for presets at
initialisation or trained checkpoints: how much rounding noise bf16 adds to each layer's
gradient as the trunk gets deeper.

    python -m bench.deep_trunk_checks rescore --run DIR --train-dir TRAIN --eval-dir EVAL
    python -m bench.deep_trunk_checks updates --train-dir TRAIN --presets cnn7_gmp,cnn15_gmp
    python -m bench.deep_trunk_checks precision --train-dir TRAIN --models cnn15_gmp,RUN/x.pt
"""

from __future__ import annotations

import argparse
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from data_io.cache import load_cached
from data_io.datasets import load_dataset
from data_io.records import EcgArrays
from models import build_model, load_preset
from models.losses import FocalLoss
from study.engine.checkpoint import load_checkpoint
from study.engine.config import TrainConfig, resolve_config
from study.engine.metrics import Scoring
from study.engine.runtime import select_runtime
from study.engine.trainer import Split, evaluate, split_loader
from study.explain.artifacts import load_trained, model_from_state
from study.train import DEFAULT_DATASET


def _with_data(cfg: TrainConfig, **data: Any) -> TrainConfig:
    return cfg.model_copy(update={"data": cfg.data.model_copy(update=data)})


@torch.no_grad()
def precise_batchnorm(model: nn.Module, *, batches: Iterator[dict[str, Any]],
                      dropout: bool) -> nn.Module:
    """A copy of ``model`` whose BatchNorm statistics are the exact averages over ``batches``
    (cumulative, not momentum), computed with dropout on or off."""
    model = copy.deepcopy(model).train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative moving average
        if isinstance(module, nn.Dropout) and not dropout:
            module.eval()
    for batch in batches:
        model(batch["x"], lengths=batch["lengths"])
    return model.eval()


def rescore(*, state: dict[str, Any], train: Split, val: Split,
            dataset: str) -> list[dict[str, Any]]:
    """One row per evaluation setting: label and the ``val/`` metrics of the same weights.

    ``state`` is a run's checkpoint (`study.engine.checkpoint.load_checkpoint`).
    """
    cfg = resolve_config(state["config"])
    # the run's own precision (bf16 autocast where this CPU computes it), so the first row
    # repeats the score the run logged
    runtime = select_runtime(device="cpu", amp=cfg.runtime.amp)
    model = model_from_state(state)
    scoring = Scoring.from_dataset(load_dataset(dataset))
    train_batches = lambda: split_loader(train, cfg=cfg, training=True, epoch=0)  # noqa: E731
    recomputed = precise_batchnorm(model, batches=train_batches(), dropout=False)
    settings = [
        ("the protocol: BatchNorm running averages, whole records", model, cfg),
        ("centred crops instead of whole records", model,
         _with_data(cfg, eval_batching="crop")),
        ("BatchNorm recomputed over the training crops, dropout off", recomputed, cfg),
        ("the same, scored on centred crops", recomputed, _with_data(cfg, eval_batching="crop")),
        ("BatchNorm recomputed, dropout on",
         precise_batchnorm(model, batches=train_batches(), dropout=True), cfg),
    ]
    rows = []
    for label, weights, settings_cfg in settings:
        metrics, _ = evaluate(model=weights, split=val, cfg=settings_cfg, runtime=runtime,
                              loss_fn=nn.CrossEntropyLoss(), scoring=scoring)
        rows.append({"setting": label, "epoch": int(state["epoch"]),
                     **{k: v for k, v in metrics.items() if k.startswith("val/f1_")},
                     "val/loss": metrics["val/loss"]})
    return rows


def layer_updates(*, preset: str, train: Split, steps: int, fs_hz: float,
                  lr: float) -> dict[str, Any]:
    """Per convolution of ``preset``: fan-in, mean ||dW|| / ||W|| per Adam step, ||W|| / ||W0||
    and the cosine between W and W0 after ``steps`` steps; plus the mean loss of the first
    and last 10 steps."""
    model, cfg = _seeded_preset(preset, arrays=train.arrays, fs_hz=fs_hz, optim={"lr": lr})
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    convs = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv1d)]
    initial = [m.weight.detach().clone() for _, m in convs]
    loss_fn = FocalLoss(gamma=0.0, alpha=None)
    step_sizes, losses = np.zeros(len(convs)), []
    for batch in split_loader(train, cfg=cfg, training=True, epoch=0):
        if len(losses) == steps:
            break
        before = [m.weight.detach().clone() for _, m in convs]
        optimizer.zero_grad()
        loss = loss_fn(model(batch["x"], lengths=batch["lengths"]), batch["y"])
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        step_sizes += [float((m.weight.detach() - b).norm() / b.norm())
                       for (_, m), b in zip(convs, before, strict=True)]
    layers = [
        {"layer": name, "fan_in": int(m.weight[0].numel()),
         "step": step / max(len(losses), 1),
         "growth": float(m.weight.detach().norm() / w0.norm()),
         "cosine": float(nn.functional.cosine_similarity(m.weight.detach().flatten(),
                                                        w0.flatten(), dim=0))}
        for (name, m), w0, step in zip(convs, initial, step_sizes, strict=True)
    ]
    return {"preset": preset, "steps": len(losses), "loss_first": float(np.mean(losses[:10])),
            "loss_last": float(np.mean(losses[-10:])), "layers": layers}


def _seeded_preset(preset: str, *, arrays: EcgArrays, fs_hz: float,
                   optim: dict[str, Any] | None = None) -> tuple[nn.Module, TrainConfig]:
    """``preset`` at the default config's seeded initialisation, sized for ``arrays``."""
    cfg = resolve_config({"model": load_preset(preset), "data": {"fs_hz": fs_hz},
                          "optim": optim or {}})
    torch.manual_seed(cfg.seed)
    model = build_model({**cfg.model, "n_classes": len(arrays.classes),
                         "n_leads": arrays.n_leads})
    return model, cfg


def _model_and_config(spec: str, *, arrays: EcgArrays,
                      fs_hz: float) -> tuple[nn.Module, TrainConfig]:
    """A preset at its seeded initialisation, or the model of a checkpoint file (``*.pt``)."""
    if spec.endswith(".pt"):
        model, config = load_trained(Path(spec))
        return model, resolve_config(config)
    return _seeded_preset(spec, arrays=arrays, fs_hz=fs_hz)


def _conv_gradients(model: nn.Module, batch: dict[str, Any], *, bf16: bool) -> list[torch.Tensor]:
    model.zero_grad()
    torch.manual_seed(1)  # the same dropout masks in both precisions
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(batch["x"], lengths=batch["lengths"])
    FocalLoss(gamma=0.0, alpha=None)(logits.float(), batch["y"]).backward()
    return [m.weight.grad.detach().clone() for m in model.modules() if isinstance(m, nn.Conv1d)]


def gradient_precision(*, spec: str, train: Split, batches: int, fs_hz: float) -> dict[str, Any]:
    """Mean cosine between each convolution's fp32 and bf16-autocast gradient over the first
    ``batches`` training batches (1: bf16 changes nothing; training mode, same dropout)."""
    model, cfg = _model_and_config(spec, arrays=train.arrays, fs_hz=fs_hz)
    model.train()
    cosines = []
    for index, batch in enumerate(split_loader(train, cfg=cfg, training=True, epoch=0)):
        if index == batches:
            break
        exact = _conv_gradients(model, batch, bf16=False)
        rounded = _conv_gradients(model, batch, bf16=True)
        cosines.append([float(nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))
                        for a, b in zip(exact, rounded, strict=True)])
    return {"model": spec, "batches": len(cosines),
            "cosine": [float(c) for c in np.mean(cosines, axis=0)]}


def _split(dataset: str, directory: Path, *, fs_hz: float, cache_dir: Path | None) -> Split:
    arrays = load_cached(dataset, directory, fs_hz=fs_hz, cache_dir=cache_dir)
    return Split(arrays, np.arange(len(arrays)))


def _rescore_command(args: argparse.Namespace) -> tuple[Any, list[str]]:
    state = load_checkpoint(args.run / "checkpoint.pt")
    fs_hz = resolve_config(state["config"]).data.fs_hz
    train = _split(args.dataset, args.train_dir, fs_hz=fs_hz, cache_dir=args.cache_dir)
    val = _split(args.dataset, args.eval_dir, fs_hz=fs_hz, cache_dir=args.cache_dir)
    results = rescore(state=state, train=train, val=val, dataset=args.dataset)
    lines = [f"{r['setting']:60s} " + "  ".join(
        f"{k.removeprefix('val/')} {v:.3f}" for k, v in r.items() if k.startswith("val/"))
        for r in results]
    return results, lines


def _updates_command(args: argparse.Namespace) -> tuple[Any, list[str]]:
    train = _split(args.dataset, args.train_dir, fs_hz=args.fs_hz, cache_dir=args.cache_dir)
    results = [layer_updates(preset=p, train=train, steps=args.steps, fs_hz=args.fs_hz,
                             lr=args.lr) for p in args.presets.split(",")]
    lines = []
    for r in results:
        lines.append(f"{r['preset']}: {r['steps']} steps, loss {r['loss_first']:.3f} "
                     f"(first 10) -> {r['loss_last']:.3f} (last 10)")
        lines += [f"  {x['layer']:22s} fan-in {x['fan_in']:6d}  step/|W| {x['step']:.4f}  "
                  f"|W|/|W0| {x['growth']:.2f}  cos(W, W0) {x['cosine']:.2f}"
                  for x in r["layers"]]
    return results, lines


def _precision_command(args: argparse.Namespace) -> tuple[Any, list[str]]:
    train = _split(args.dataset, args.train_dir, fs_hz=args.fs_hz, cache_dir=args.cache_dir)
    results = [gradient_precision(spec=spec, train=train, batches=args.batches, fs_hz=args.fs_hz)
               for spec in args.models.split(",")]
    lines = [f"{r['model']}: cos(fp32, bf16) per conv, first to last: "
             + " ".join(f"{c:.3f}" for c in r["cosine"]) + f"  (min {min(r['cosine']):.3f})"
             for r in results]
    return results, lines


COMMANDS = {"rescore": _rescore_command, "updates": _updates_command,
            "precision": _precision_command}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default=DEFAULT_DATASET)
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    commands = parser.add_subparsers(dest="command", required=True)
    again = commands.add_parser("rescore", help="score a checkpoint under other settings")
    again.add_argument("--run", type=Path, required=True, help="a study.train --out directory")
    again.add_argument("--train-dir", type=Path, required=True)
    again.add_argument("--eval-dir", type=Path, required=True)
    moves = commands.add_parser("updates", help="per-layer update sizes of the first steps")
    moves.add_argument("--train-dir", type=Path, required=True)
    moves.add_argument("--presets", default="cnn7_gmp,cnn15_gmp,cnn17_gmp")
    moves.add_argument("--steps", type=int, default=60)
    moves.add_argument("--fs-hz", type=float, default=150.0)
    moves.add_argument("--lr", type=float, default=1e-3)
    rounding = commands.add_parser("precision", help="fp32 against bf16 gradients per layer")
    rounding.add_argument("--train-dir", type=Path, required=True)
    rounding.add_argument("--models", default="cnn7_gmp,cnn15_gmp,cnn17_gmp",
                          help="presets (at initialisation) or checkpoint files (*.pt)")
    rounding.add_argument("--batches", type=int, default=4)
    rounding.add_argument("--fs-hz", type=float, default=150.0)
    args = parser.parse_args(argv)
    results, lines = COMMANDS[args.command](args)
    print(json.dumps(results, indent=1) if args.json else "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
