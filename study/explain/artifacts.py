"""What reports need from trained models, written to the study directory as plain files.

For the best trials: per-record predictions on the validation fold (`predictions.parquet`)
and, for a fixed stratified selection of records, the explanation arrays each model family
provides plus model-agnostic ones (`explanations.npz`). `reports` reads these files and never
needs Ray or torch.
"""

from __future__ import annotations

import json
import time
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
from reports.explanation_scores import archive_ground_truth, score_archive, summarise_scores
from study.engine.bars import bar
from study.engine.checkpoint import load_checkpoint, restore_model
from study.engine.config import TrainConfig, resolve_config
from study.engine.metrics import Scoring
from study.engine.runtime import select_runtime
from study.engine.trainer import Split, data_normalizer, evaluate
from study.explain.explanation_checks import layer_groups, sanity_arrays
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
    """Row positions of a fixed stratified gallery, in the order it is explained (a time
    budget keeps the first): per class the most confident correct record, then per class
    the most confident misclassified one, then the second of each, then the most uncertain
    records overall."""
    probs = frame[[c for c in frame.columns if c.startswith("p_")]].to_numpy()
    confidence = probs.max(axis=1)
    y_true, y_pred = frame["y_true"].to_numpy(), frame["y_pred"].to_numpy()
    ranked = {}
    for k in range(n_classes):
        for correct in (True, False):
            rows = np.flatnonzero((y_true == k) & ((y_pred == k) == correct))
            ranked[k, correct] = rows[np.argsort(-confidence[rows], kind="stable")][:PER_CLASS]
    chosen = [int(ranked[k, correct][rank]) for rank in range(PER_CLASS)
              for correct in (True, False) for k in range(n_classes)
              if rank < len(ranked[k, correct])]
    uncertain = [int(r) for r in np.argsort(confidence, kind="stable") if int(r) not in chosen]
    return chosen + uncertain[:MOST_UNCERTAIN]


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
SETTINGS_KEY = "settings"
"""The archive's record of the explanation settings it was computed with (JSON)."""


def explain_in_chunks(
    model: torch.nn.Module, *, arrays: EcgArrays, indices: np.ndarray, cfg: TrainConfig,
    normal_class: int | None, settings: Mapping[str, Any] | None = None,
    chunk_records: int = 64, progress: str | bool = False,
    budget_s: float | None = None, min_records: int = 0, reserve_records: int = 0,
) -> dict[str, np.ndarray]:
    """`explain_records` over many records, ``chunk_records`` at a time (bounded memory, and
    a progress line per chunk), stacked; per-sample arrays are zero-padded to the longest
    chunk. With ``budget_s``, once ``min_records`` are done no chunk starts that would end,
    with ``reserve_records`` more after it, past that many seconds at the mean pace so far:
    the records explained are then the first of ``indices``."""
    indices = np.asarray(indices, dtype=np.int64)
    chunks = [indices[i:i + chunk_records] for i in range(0, len(indices), chunk_records)]
    records = bar(total=len(indices), desc=str(progress), unit="record", enabled=bool(progress))
    started = time.monotonic()
    parts, done = [], 0
    for chunk in chunks:
        elapsed = time.monotonic() - started
        pace = elapsed / done if done else 0.0
        if budget_s is not None and done >= min_records and \
                elapsed + pace * (len(chunk) + reserve_records) > budget_s:
            break
        parts.append(explain_records(model, arrays=arrays, indices=chunk, cfg=cfg,
                                     normal_class=normal_class, settings=settings))
        done += len(chunk)
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
    budget_s: float | None = None,
    sanity: bool = False,
    settings: Mapping[str, Any] | None = None,
    progress: str | bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, str]:
    """Predictions and explanations of one trained trial; returns the files written.

    With ``masks`` (a data set whose items carry abnormal-beat masks), `explanations.npz`
    also holds ``mask``: (B, T) uint8 at the study rate, aligned with ``signal``, and the
    validation records with an abnormal beat are explained for scoring into
    `scored_explanations.npz` (`scored_records`: all of them, a random sample of
    ``score_records``, or with ``budget_s`` as many of a random order as the seconds left
    after the gallery allow; 0: none). ``budget_s`` also bounds the gallery: its records
    (`select_records`' order) stop when it is spent, one per class at least. With
    ``sanity``, `explanation_sanity.npz` holds the sanity checks
    (`study.explain.explanation_checks`) of up to `SANITY_RECORDS` of the scored records (of
    the gallery's where none is scored). ``progress``: a label (e.g. the trial id) to show
    progress lines under (`study.engine.bars`); ``log``: where a budget's cut and the scored
    sample with its hit rates are said. ``settings``: the explanation methods' settings
    (default: the specs').
    """
    started = time.monotonic()
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
    n_classes = len(split.arrays.classes)
    gallery = split.indices[select_records(frame, n_classes=n_classes)]
    scoring = masks is not None and score_records != 0
    arrays = explain_in_chunks(
        model, arrays=split.arrays, indices=gallery, cfg=cfg, normal_class=normal_class,
        settings=settings, chunk_records=CHUNK_RECORDS, min_records=n_classes,
        # the predictions' seconds are spent; one record is kept for the scored sample
        budget_s=None if budget_s is None else budget_s - (time.monotonic() - started),
        reserve_records=int(scoring), progress=progress and f"{progress}: gallery explanations")
    if log and len(arrays["record_ids"]) < len(gallery):
        log(f"{progress or 'trial'}: gallery: {len(arrays['record_ids'])} of {len(gallery)} "
            f"records within the explanations' time budget of {budget_s:.0f} s (per class the "
            "most confident right and wrong first; --explain-records all lifts the budget)")
    if masks is not None:
        arrays["mask"] = masks(arrays["record_ids"].tolist(), fs_hz=float(arrays["fs_hz"]),
                               n_samples=arrays["signal"].shape[-1])
    recorded = {SETTINGS_KEY: np.array(json.dumps(settings, sort_keys=True))}
    write_npz(out_dir / EXPLANATIONS, {**arrays, **recorded})
    written = {"predictions": str(out_dir / PREDICTIONS),
               "explanations": str(out_dir / EXPLANATIONS)}
    scored = None
    if scoring:
        left = None if budget_s is None else max(budget_s - (time.monotonic() - started), 0.0)
        scored = scored_records(model, split=split, cfg=cfg, normal_class=normal_class,
                                masks=masks, score_records=score_records, budget_s=left,
                                gallery=arrays, settings=settings,
                                progress=progress and f"{progress}: scored explanations",
                                log=log)
    if scored is not None:
        written["scored_explanations"] = str(out_dir / SCORED_EXPLANATIONS)
        write_npz(out_dir / SCORED_EXPLANATIONS, {**scored, **recorded})
    if sanity:
        checked = _first_rows(scored if scored is not None else arrays, SANITY_RECORDS)
        batch = Batch(x=torch.as_tensor(checked["signal"]).float(),
                      lengths=torch.as_tensor(checked["lengths"]),
                      fs_hz=float(checked["fs_hz"]), normal_class=normal_class)
        stages = bar(total=len(layer_groups(model)), unit="layer", enabled=bool(progress),
                     desc=f"{progress}: sanity checks (layers randomised in turn)")
        write_npz(out_dir / EXPLANATION_SANITY, sanity_arrays(
            model, batch, checked, settings=settings, y_true=checked["y_true"],
            on_stage=lambda _: stages.update(1)))
        stages.close()
        written["sanity"] = str(out_dir / EXPLANATION_SANITY)
    return written


CHUNK_RECORDS = 1
"""Records explained together: a progress line can follow each, and a time budget stops
between them. Records of unequal length are explained one length at a time anyway (Captum
per length group), so larger chunks would only batch the family's maps and the shift."""
SANITY_RECORDS = 16
"""Records the sanity checks of a study's trial run on (each layer randomised in turn
re-runs every method on them)."""


def _first_rows(arrays: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    return _rows(arrays, np.arange(min(n, len(arrays["record_ids"]))))


def _rows(arrays: Mapping[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v if k in SHARED_KEYS else v[rows] for k, v in arrays.items()}


def scored_records(
    model: torch.nn.Module, *, split: Split, cfg: TrainConfig, normal_class: int | None,
    masks: MaskSource, score_records: int | None, budget_s: float | None,
    gallery: Mapping[str, np.ndarray], settings: Mapping[str, Any],
    progress: str | bool = False, log: Callable[[str], None] | None = None,
) -> dict[str, np.ndarray] | None:
    """Explanations (with ``mask``) of the validation records that have an abnormal beat: all
    of them, a random sample of ``score_records`` (seed 0), or with ``budget_s`` the first
    of a random order (seed 0) that the budget allows, at least one besides the gallery's;
    None where none has one. Records of the ``gallery`` archive (explained with the same
    settings) are taken from it, not explained again."""
    arrays = split.arrays
    candidates = split.indices[with_abnormal_beats(arrays, indices=split.indices, masks=masks)]
    if len(candidates) == 0:
        return None
    order = np.random.default_rng(0).permutation(candidates)
    if score_records is not None:
        order = order[:score_records]
    in_gallery = {record: row for row, record in enumerate(gallery["record_ids"].tolist())}
    ids = [arrays.record_ids[i] for i in order]
    fresh = np.array([i for i, r in zip(order, ids, strict=True) if r not in in_gallery],
                     dtype=np.int64)
    explained = explain_in_chunks(
        model, arrays=arrays, indices=fresh, cfg=cfg, normal_class=normal_class,
        settings=settings, chunk_records=CHUNK_RECORDS, progress=progress,
        budget_s=None if score_records is not None else budget_s,
        min_records=1) if len(fresh) else None
    # The sample is the random order up to its last record explained, gallery ones included
    # (chunks are explained in order, so the first n_done of `fresh` are done).
    n_done = 0 if explained is None else len(explained["record_ids"])
    cut = (len(ids) if n_done == len(fresh)
           else ids.index(arrays.record_ids[fresh[n_done - 1]]) + 1)
    kept = np.array([in_gallery[r] for r in ids[:cut] if r in in_gallery], dtype=np.int64)
    reusable = {k: v for k, v in gallery.items() if k != "mask"}  # masks: set below
    parts = [part for part in (_rows(reusable, kept), explained)
             if part is not None and len(part["record_ids"])]
    scored = stack_archives(parts)
    scored["mask"] = masks(scored["record_ids"].tolist(), fs_hz=float(arrays.fs_hz),
                           n_samples=scored["signal"].shape[-1])
    if log:
        log(_sample_line(scored, n_candidates=len(candidates), score_records=score_records,
                         budget_s=budget_s, label=str(progress or "trial")))
    return scored


def _sample_line(scored: Mapping[str, np.ndarray], *, n_candidates: int,
                 score_records: int | None, budget_s: float | None, label: str) -> str:
    """What was scored, and each scored map's hit rate with its interval on this sample."""
    n = len(scored["record_ids"])
    how = ("every one" if n == n_candidates else
           f"a random sample (--explain-records {score_records})" if score_records is not None
           else f"a random sample within the explanations' time budget ({budget_s:.0f} s "
                "left after the gallery; --explain-records all scores every one)")
    truth = archive_ground_truth(scored, path="scored explanations")
    summary = summarise_scores(score_archive(scored, truth).assign(trial=label, source="own"))
    rates = "; ".join(
        f"{r.method} {r.hit_rate:.2f} [{r.hit_ci_low:.2f}, {r.hit_ci_high:.2f}] (class "
        f"{r.true_class}, n={r.n_records})" for r in summary.itertuples())
    return (f"{label}: {n} of {n_candidates} validation records with abnormal beats explained "
            f"for scoring, {how}. Hit rates [95 % interval]: {rates or 'none scored'}")


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
