"""What reports need from trained models, written to the study directory as plain files.

For the best trials: per-record predictions on the validation fold (`predictions.parquet`)
and, for a fixed stratified selection of records, the explanation arrays each model family
provides plus model-agnostic ones (`explanations.npz`). `reports` reads these files and never
needs Ray or torch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from data_io.atomic import atomic_path
from data_io.batching import make_loader
from data_io.records import EcgArrays
from models import build_model, explain_by_perturbation
from study.bars import bar
from study.checkpoint import load_checkpoint
from study.config import resolve_config
from study.metrics import Scoring
from study.results import write_parquet
from study.runtime import select_runtime
from study.trainer import Split, evaluate

MaskSource = Callable[..., np.ndarray]
"""``masks(item_ids, fs_hz=..., n_samples=...)`` -> (B, n_samples) uint8 abnormal-beat masks."""

PER_CLASS = 2  # correct and misclassified examples kept per class
MOST_UNCERTAIN = 2
SHIFT_STEPS = 60  # optimiser steps of the shift perturbation (cost: one backward per step)


def load_trained(checkpoint_file: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model of a trainer checkpoint (eval mode, CPU) and its training config."""
    state = load_checkpoint(checkpoint_file)
    model = build_model(state["model_config"])
    model.load_state_dict(state["model_state"])
    return model.eval(), state["config"]


def predictions_frame(predictions: dict[str, Any], *, classes: tuple[str, ...], fold: int):
    frame = pd.DataFrame({"record": predictions["record_ids"], "fold": fold,
                          "y_true": predictions["y_true"]})
    probabilities = predictions["probabilities"]
    frame["y_pred"] = probabilities.argmax(axis=1)
    for k, name in enumerate(classes):
        frame[f"p_{name}"] = probabilities[:, k]
    return frame


def select_records(frame: pd.DataFrame, *, n_classes: int) -> list[int]:
    """Row positions of a fixed stratified gallery: per class the most confident correct and
    misclassified records, then the most uncertain records overall."""
    probs = frame[[c for c in frame.columns if c.startswith("p_")]].to_numpy()
    confidence = probs.max(axis=1)
    chosen: list[int] = []
    for k in range(n_classes):
        for correct in (True, False):
            mask = (frame["y_true"].to_numpy() == k) & (
                (frame["y_pred"].to_numpy() == k) == correct
            )
            rows = np.flatnonzero(mask)
            rows = rows[np.argsort(-confidence[rows], kind="stable")][:PER_CLASS]
            chosen.extend(int(r) for r in rows)
    uncertain = [int(r) for r in np.argsort(confidence, kind="stable") if int(r) not in chosen]
    return chosen + uncertain[:MOST_UNCERTAIN]


def explanation_arrays(
    model: torch.nn.Module, *, split: Split, positions: list[int], cfg: dict[str, Any],
    normal_class: int | None,
    progress: str | bool = False,
) -> dict[str, np.ndarray]:
    """Signals, the family's own maps, occlusion and shift-perturbation masks, stacked, of
    the records at ``positions`` of ``split`` (see `explain_records`)."""
    return explain_records(model, arrays=split.arrays, indices=split.indices[positions], cfg=cfg,
                           normal_class=normal_class, progress=progress)


EXPLANATION_STAGES = 3  # the family's maps, occlusion, shift perturbation


def explain_records(
    model: torch.nn.Module, *, arrays: EcgArrays, indices: np.ndarray, cfg: dict[str, Any],
    normal_class: int | None,
    progress: str | bool = False,
) -> dict[str, np.ndarray]:
    """Signals, the family's own maps, occlusion and shift-perturbation masks of records
    ``indices`` of ``arrays``, stacked in one batch. ``normal_class`` is the shift
    perturbation's target (the data set's normal class; None: no normal class, not run).

    The rows come in the loader's order, not necessarily that of ``indices``: ``record_ids``
    names each row. ``progress``: a label to report the stages under (`study.bars`).
    """
    stages = bar(total=EXPLANATION_STAGES, desc=str(progress), unit="stage",
                 enabled=bool(progress))
    indices = np.asarray(indices, dtype=np.int64)
    if indices.size == 0:
        raise ValueError("no records to explain")
    loader = make_loader(arrays=arrays, indices=indices, batching="bucket",
                         batch_size=len(indices), shuffle=False, seed=0,
                         normalization=cfg["data"]["normalization"])
    batch = next(iter(loader))
    x, lengths = batch["x"], batch["lengths"]  # (B, leads, T), (B,)
    fs_hz = arrays.fs_hz
    with torch.no_grad():
        maps = {k: v for k, v in model.explain(x, lengths=lengths).items() if k != "logits"}
    stages.update(1)
    maps.update(explain_by_perturbation(
        "occlusion", model, x, lengths=lengths,
        window_samples=max(int(fs_hz), 1), stride_samples=max(int(fs_hz // 2), 1),
    ))
    stages.update(1)
    explained = {f"map/{k}": v.detach().float().numpy() for k, v in maps.items()}
    if normal_class is not None:
        explained.update(_shift_towards_normal(model, x=x, lengths=lengths,
                                               normal_class=normal_class))
    stages.update(1)
    stages.close()
    return {
        "record_ids": np.array([arrays.record_ids[i] for i in batch["index"].tolist()]),
        "y_true": batch["y"].numpy(),
        "signal": x.numpy(),
        "lengths": lengths.numpy(),
        "fs_hz": np.array(fs_hz),
        "classes": np.array(arrays.classes),
        **explained,
    }


def _shift_towards_normal(
    model: torch.nn.Module, *, x: torch.Tensor, lengths: torch.Tensor, normal_class: int
) -> dict[str, np.ndarray]:
    """The thesis' shift-perturbation masks, for the records not predicted normal only
    (the question it answers: what must move for the record to look normal); other rows
    are zero with probability NaN."""
    with torch.no_grad():
        predicted = model(x, lengths=lengths).argmax(dim=1)
    rows = torch.nonzero(predicted != normal_class).flatten()
    shape = tuple(x.shape)
    out = {
        "shift/mask": np.zeros((shape[0], 1, shape[2]), np.float32),
        "shift/deformation": np.zeros((shape[0], 1, shape[2]), np.float32),
        "shift/shifted_signal": x.numpy().copy(),
        "shift/target_probability_before": np.full(shape[0], np.nan, np.float32),
        "shift/target_probability_after": np.full(shape[0], np.nan, np.float32),
        "shift/target_class": np.full(shape[0], normal_class, np.int64),
    }
    if len(rows) == 0:
        return out
    shift = explain_by_perturbation(
        "shift_perturbation", model, x[rows], lengths=lengths[rows], target_class=normal_class,
        l1_weight=0.1, tv_weight=0.1, steps=SHIFT_STEPS,
    )
    for key, value in shift.items():
        out[f"shift/{key}"][rows.numpy()] = value.detach().float().numpy()
    return out


def write_trial_artifacts(
    *,
    checkpoint_file: Path,
    split: Split,
    fold: int,
    out_dir: Path,
    scoring: Scoring,
    normal_class: int | None,
    masks: MaskSource | None = None,
    progress: str | bool = False,
) -> dict[str, str]:
    """Predictions and explanations of one trained trial; returns the files written.

    With ``masks`` (a data set whose items carry abnormal-beat masks), `explanations.npz`
    also holds ``mask``: (B, T) uint8 at the study rate, aligned with ``signal``.
    ``progress``: a label (e.g. the trial id) to show progress bars under (`study.bars`).
    """
    model, config = load_trained(checkpoint_file)
    cfg = resolve_config(config)
    runtime = select_runtime(device="cpu", amp=False)
    loss_fn = torch.nn.CrossEntropyLoss()
    _, predictions = evaluate(model=model, split=split, cfg=cfg, runtime=runtime,
                              loss_fn=loss_fn, scoring=scoring,
                              progress=progress and f"{progress}: predictions")
    frame = predictions_frame(predictions, classes=split.arrays.classes, fold=fold)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_parquet(frame, out_dir / "predictions.parquet")
    arrays = explanation_arrays(
        model, split=split, positions=select_records(frame, n_classes=len(split.arrays.classes)),
        cfg=cfg, normal_class=normal_class,
        progress=progress and f"{progress}: explanations",
    )
    if masks is not None:
        arrays["mask"] = masks(arrays["record_ids"].tolist(), fs_hz=float(arrays["fs_hz"]),
                               n_samples=arrays["signal"].shape[-1])
    write_npz(out_dir / "explanations.npz", arrays)
    return {"predictions": str(out_dir / "predictions.parquet"),
            "explanations": str(out_dir / "explanations.npz")}


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``arrays`` as a compressed npz at ``path``, written atomically; per-sample float
    arrays (signals, maps, masks: 2-D and up) as float16, which halves the file and keeps
    about three significant digits, plenty for display and for scores on normalised maps."""
    compact = {key: value.astype(np.float16) if _per_sample_float(value) else value
               for key, value in arrays.items()}
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **compact)


def _per_sample_float(value: np.ndarray) -> bool:
    return value.ndim >= 2 and np.issubdtype(value.dtype, np.floating) and value.itemsize > 2
