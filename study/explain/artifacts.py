"""What reports need from trained models, written to the study directory as plain files.

For the best trials: per-record predictions on the validation fold (`predictions.parquet`)
and, for a fixed stratified selection of records, the explanation arrays each model family
provides plus model-agnostic ones (`explanations.npz`). `reports` reads these files and never
needs Ray or torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from data_io.atomic import atomic_path, write_parquet
from data_io.batching import make_loader
from data_io.records import EcgArrays
from models import build_model
from study.engine.bars import bar
from study.engine.checkpoint import load_checkpoint, restore_model
from study.engine.config import TrainConfig, resolve_config
from study.engine.metrics import Scoring
from study.engine.runtime import select_runtime
from study.engine.trainer import Split, data_normalizer, evaluate
from study.explain.explanation_checks import sanity_arrays
from study.explain.explanation_methods import (
    Batch,
    explain_batch,
    merge_settings,
    method_names,
)
from study.folder_format import EXPLANATION_SANITY, EXPLANATIONS, PREDICTIONS, SCORED_EXPLANATIONS

MaskSource = Callable[..., np.ndarray]
"""``masks(item_ids, fs_hz=..., n_samples=...)`` -> (B, n_samples) uint8 abnormal-beat masks."""

PER_CLASS = 2  # correct and misclassified examples kept per class
MOST_UNCERTAIN = 2


def model_from_state(state: Mapping[str, Any]) -> torch.nn.Module:
    """The model of a loaded trainer checkpoint (`study.engine.checkpoint.load_checkpoint`), on
    the CPU, pooling as it was scored (`study.engine.checkpoint.restore_model`)."""
    return restore_model(build_model(state["model_config"]), state)


def load_trained(checkpoint_file: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model of a trainer checkpoint (eval mode, CPU) and its training config."""
    state = load_checkpoint(checkpoint_file)
    return model_from_state(state).eval(), state["config"]


def predictions_frame(predictions: dict[str, Any], *, classes: tuple[str, ...], fold: int):
    frame = pd.DataFrame({"record": predictions["record_ids"], "fold": fold,
                          "y_true": predictions["y_true"]})
    probabilities = predictions["probabilities"]
    frame["y_pred"] = probabilities.argmax(axis=1)
    for k, name in enumerate(classes):
        frame[f"p_{name}"] = probabilities[:, k]
    return frame


def gallery_size(n_classes: int) -> int:
    """The most records `select_records` picks: two per class and outcome, and the most
    uncertain ones."""
    return n_classes * 2 * PER_CLASS + MOST_UNCERTAIN


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
    model: torch.nn.Module, *, split: Split, positions: list[int], cfg: TrainConfig,
    normal_class: int | None, settings: Mapping[str, Any] | None = None,
    progress: str | bool = False,
) -> dict[str, np.ndarray]:
    """Signals and every method's maps of the records at ``positions`` of ``split`` (see
    `explain_records`)."""
    return explain_records(model, arrays=split.arrays, indices=split.indices[positions], cfg=cfg,
                           normal_class=normal_class, settings=settings, progress=progress)


def explain_records(
    model: torch.nn.Module, *, arrays: EcgArrays, indices: np.ndarray, cfg: TrainConfig,
    normal_class: int | None, settings: Mapping[str, Any] | None = None,
    progress: str | bool = False,
) -> dict[str, np.ndarray]:
    """Signals and the maps of every explanation method (`study.explanation_specs`: the
    family's own, occlusion, integrated gradients, the shift perturbation towards
    ``normal_class``; None: no normal class, no shift) of records ``indices`` of ``arrays``,
    stacked in one batch. ``settings``: the methods' settings (default: the specs').

    The rows come in the loader's order, not necessarily that of ``indices``: ``record_ids``
    names each row. ``progress``: a label to report the methods under (`study.engine.bars`).
    """
    settings = merge_settings(None) if settings is None else settings
    stages = bar(total=len(method_names()), desc=str(progress), unit="method",
                 enabled=bool(progress))
    indices = np.asarray(indices, dtype=np.int64)
    if indices.size == 0:
        raise ValueError("no records to explain")
    loader = make_loader(arrays=arrays, indices=indices, batching="bucket",
                         batch_size=len(indices), shuffle=False, seed=0,
                         normalization=data_normalizer(cfg, split=Split(arrays, indices)))
    batch = next(iter(loader))
    x, lengths = batch["x"], batch["lengths"]  # (B, leads, T), (B,)
    explained = explain_batch(
        model.eval(), Batch(x=x, lengths=lengths, fs_hz=arrays.fs_hz, normal_class=normal_class),
        settings=settings, on_method=lambda _: stages.update(1))
    stages.close()
    return {
        "record_ids": np.array([arrays.record_ids[i] for i in batch["index"].tolist()]),
        "y_true": batch["y"].numpy(),
        "signal": x.numpy(),
        "lengths": lengths.numpy(),
        "fs_hz": np.array(arrays.fs_hz),
        "classes": np.array(arrays.classes),
        **explained,
    }


SHARED_KEYS = ("fs_hz", "classes")
"""Keys of an explanations archive that describe the whole archive, not one row each."""


def explain_in_chunks(
    model: torch.nn.Module, *, arrays: EcgArrays, indices: np.ndarray, cfg: TrainConfig,
    normal_class: int | None, settings: Mapping[str, Any] | None = None,
    chunk_records: int = 64, progress: str | bool = False,
) -> dict[str, np.ndarray]:
    """`explain_records` over many records, ``chunk_records`` at a time (bounded memory),
    stacked; per-sample arrays are zero-padded to the longest chunk."""
    indices = np.asarray(indices, dtype=np.int64)
    chunks = [indices[i:i + chunk_records] for i in range(0, len(indices), chunk_records)]
    records = bar(total=len(indices), desc=str(progress), unit="record", enabled=bool(progress))
    parts = []
    for chunk in chunks:
        parts.append(explain_records(model, arrays=arrays, indices=chunk, cfg=cfg,
                                     normal_class=normal_class, settings=settings))
        records.update(len(chunk))
    records.close()
    return stack_archives(parts)


def stack_archives(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Archives of `explain_records` concatenated row-wise; arrays whose last axis is the
    time axis of their part's signal are zero-padded to the longest."""
    if not parts:
        raise ValueError("no archives to stack")
    size = max(part["signal"].shape[-1] for part in parts)
    stacked = {key: parts[0][key] for key in SHARED_KEYS}
    for key in parts[0]:
        if key in SHARED_KEYS:
            continue
        pieces = []
        for part in parts:
            value = part[key]
            if value.ndim >= 2 and value.shape[-1] == part["signal"].shape[-1]:
                pad = [(0, 0)] * (value.ndim - 1) + [(0, size - value.shape[-1])]
                value = np.pad(value, pad)
            pieces.append(value)
        stacked[key] = np.concatenate(pieces)
    return stacked


def write_trial_artifacts(
    *,
    checkpoint_file: Path,
    split: Split,
    fold: int,
    out_dir: Path,
    scoring: Scoring,
    normal_class: int | None,
    masks: MaskSource | None = None,
    score_records: int | None = None,
    sanity: bool = False,
    settings: Mapping[str, Any] | None = None,
    progress: str | bool = False,
) -> dict[str, str]:
    """Predictions and explanations of one trained trial; returns the files written.

    With ``masks`` (a data set whose items carry abnormal-beat masks), `explanations.npz`
    also holds ``mask``: (B, T) uint8 at the study rate, aligned with ``signal``, and every
    validation record with an abnormal beat (``score_records``: a random sample of that
    many; 0: none) is explained for scoring into `scored_explanations.npz`, apart from the
    gallery. With ``sanity``, `explanation_sanity.npz` holds the sanity checks
    (`study.explain.explanation_checks`) of up to `SANITY_RECORDS` of the scored records (of the
    gallery's where none is scored). ``progress``: a label (e.g. the trial id) to show
    progress bars under (`study.engine.bars`). ``settings``: the explanation methods' settings
    (default: the specs').
    """
    settings = merge_settings(None) if settings is None else settings
    model, config = load_trained(checkpoint_file)
    cfg = resolve_config(config)
    runtime = select_runtime(device="cpu", amp=False)
    loss_fn = torch.nn.CrossEntropyLoss()
    _, predictions = evaluate(model=model, split=split, cfg=cfg, runtime=runtime,
                              loss_fn=loss_fn, scoring=scoring,
                              progress=progress and f"{progress}: predictions")
    frame = predictions_frame(predictions, classes=split.arrays.classes, fold=fold)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_parquet(frame, out_dir / PREDICTIONS)
    arrays = explanation_arrays(
        model, split=split, positions=select_records(frame, n_classes=len(split.arrays.classes)),
        cfg=cfg, normal_class=normal_class, settings=settings,
        progress=progress and f"{progress}: explanations",
    )
    if masks is not None:
        arrays["mask"] = masks(arrays["record_ids"].tolist(), fs_hz=float(arrays["fs_hz"]),
                               n_samples=arrays["signal"].shape[-1])
    write_npz(out_dir / EXPLANATIONS, arrays)
    written = {"predictions": str(out_dir / PREDICTIONS),
               "explanations": str(out_dir / EXPLANATIONS)}
    scored = None
    if masks is not None and score_records != 0:
        scored = _scored_explanations(model, split=split, cfg=cfg, normal_class=normal_class,
                                      masks=masks, score_records=score_records,
                                      settings=settings,
                                      progress=progress and f"{progress}: scored explanations")
    if scored is not None:
        written["scored_explanations"] = str(out_dir / SCORED_EXPLANATIONS)
        write_npz(out_dir / SCORED_EXPLANATIONS, scored)
    if sanity:
        checked = _first_rows(scored if scored is not None else arrays, SANITY_RECORDS)
        batch = Batch(x=torch.as_tensor(checked["signal"]).float(),
                      lengths=torch.as_tensor(checked["lengths"]),
                      fs_hz=float(checked["fs_hz"]), normal_class=normal_class)
        write_npz(out_dir / EXPLANATION_SANITY, sanity_arrays(
            model, batch, checked, settings=settings, y_true=checked["y_true"]))
        written["sanity"] = str(out_dir / EXPLANATION_SANITY)
    return written


SANITY_RECORDS = 16
"""Records the sanity checks of a study's trial run on (each layer randomised in turn
re-runs every method on them)."""


def _first_rows(arrays: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    return {k: v if k in SHARED_KEYS else v[:n] for k, v in arrays.items()}


def _scored_explanations(
    model: torch.nn.Module, *, split: Split, cfg: TrainConfig, normal_class: int | None,
    masks: MaskSource, score_records: int | None, settings: Mapping[str, Any],
    progress: str | bool,
) -> dict[str, np.ndarray] | None:
    """Explanations (with ``mask``) of the validation records that have an abnormal beat, or
    of a random sample of ``score_records`` of them (seed 0); None where none has one."""
    arrays = split.arrays
    chosen = np.flatnonzero(with_abnormal_beats(arrays, indices=split.indices, masks=masks))
    if score_records is not None and len(chosen) > score_records:
        chosen = np.sort(np.random.default_rng(0).choice(chosen, score_records, replace=False))
    if len(chosen) == 0:
        return None
    explained = explain_in_chunks(model, arrays=arrays, indices=split.indices[chosen], cfg=cfg,
                                  normal_class=normal_class, settings=settings,
                                  progress=progress)
    explained["mask"] = masks(explained["record_ids"].tolist(), fs_hz=float(arrays.fs_hz),
                              n_samples=explained["signal"].shape[-1])
    return explained


def with_abnormal_beats(arrays: EcgArrays, *, indices: np.ndarray,
                        masks: MaskSource) -> np.ndarray:
    """(len(indices),) bool: which records of ``arrays`` at ``indices`` have an annotated
    abnormal beat within their length."""
    ids = [arrays.record_ids[i] for i in indices]
    lengths = np.diff(arrays.offsets)[indices]
    found = masks(ids, fs_hz=float(arrays.fs_hz), n_samples=int(lengths.max()))
    within = np.arange(found.shape[1])[None, :] < lengths[:, None]
    return (found.astype(bool) & within).any(axis=1)


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
