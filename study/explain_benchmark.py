"""`python -m study.explain_benchmark`: explanation methods scored where the answer is known.

Synthetic records (`data_io.synthetic`, settings in `explain_benchmark.json`) carry their
class in known places: a class-O record is a normal rhythm with a few premature beats, and
only those beats are abnormal; a class-A record has every beat abnormal. A small CNN is
trained on them (or reused from ``--out``), then every explanation method of
`study.explain.explanation_methods` explains every validation record with abnormal beats, and the
maps are scored with the report's own code (`reports.explanation_scores`: pointing game,
mass ratio, grade; `reports.explanation_sanity`: parameter randomisation, deletion). The
headline numbers are those of the local classes (O); every class is listed apart.
docs/explanations.md describes the data, the methods and the results.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from data_io.datasets import load_dataset
from data_io.preprocess import resample_arrays
from data_io.synthetic import iter_records, load_params, to_ecg_arrays
from reports.explanation_sanity import sanity_summary
from reports.explanation_scores import (
    GroundTruth,
    score_archive,
    summarise_scores,
)
from study.engine.config import resolve_config
from study.engine.metrics import Scoring
from study.engine.trainer import Split, train
from study.explain.artifacts import explain_in_chunks, write_npz
from study.explain.explanation_checks import sanity_arrays
from study.explain.explanation_methods import Batch, merge_settings
from study.folder_format import EXPLANATION_SANITY, EXPLANATIONS

CHECKPOINT_FILE = "model.pt"
MANIFEST_FILE = "benchmark.json"
SCORES_FILE = "scores.csv"
SUMMARY_FILE = "summary.json"
SOURCE = "synthetic"


def _without_comments(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if not k.startswith("_")}


def _benchmark_file() -> dict[str, Any]:
    text = resources.files("study").joinpath("explain_benchmark.json").read_text("utf-8")
    return _without_comments(json.loads(text))


def variant_names() -> list[str]:
    """The variants `explain_benchmark.json` defines (``--variant``)."""
    return sorted(_without_comments(_benchmark_file()["variants"]))


def load_benchmark(variant: str | None = None) -> dict[str, Any]:
    """The benchmark settings shipped in `explain_benchmark.json` (comments dropped), with the
    overrides of ``variant`` (a name in its ``variants``) merged section by section.

    Raises:
        ValueError: an unknown variant (the message lists the known ones).
    """
    settings = _benchmark_file()
    variants = _without_comments(settings.pop("variants"))
    settings["variant"] = variant
    if variant is None:
        return settings
    if variant not in variants:
        raise ValueError(f"unknown benchmark variant {variant!r}; known: {sorted(variants)}")
    return _merged(settings, _without_comments(variants[variant]))


def _merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged into it, dicts key by key (a copy)."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def generator_params(overrides: dict[str, Any]) -> dict[str, Any]:
    """`synthetic_params.json` with ``overrides`` merged section by section.

    Raises:
        ValueError: an override of a section the generator does not have.
    """
    params = load_params()
    for section, values in overrides.items():
        if section not in params:
            raise ValueError(f"unknown generator section {section!r}; known: {sorted(params)}")
        params[section] = {**params[section], **copy.deepcopy(values)}
    return params


def file_rate(data: dict[str, Any]) -> float:
    """The rate the records are generated at (``file_fs_hz``; ``fs_hz`` when not given)."""
    return float(data.get("file_fs_hz", data["fs_hz"]))


def benchmark_data(data: dict[str, Any]):
    """(arrays, masks by record id, train indices, validation indices) of the benchmark.

    The records are generated at `file_rate` and, where that differs from ``fs_hz`` (the
    study rate), resampled to it as a study resamples its data set
    (`data_io.preprocess.resample_arrays`); the masks stay at the file rate, as a data set's
    ground truth does, and are brought to the study rate by the scoring
    (`reports.explanation_scores.masks_at_rate`).
    """
    records = dict(iter_records(n_records=data["n_records"], seed=data["seed"],
                                fs_hz=file_rate(data), class_weights=data["class_weights"],
                                params=generator_params(data["params"])))
    arrays = resample_arrays(to_ecg_arrays(records), target_fs_hz=data["fs_hz"])
    masks = {name: record.abnormal_mask for name, record in records.items()}
    n_val = round(data["validation_fraction"] * len(records))
    indices = np.arange(len(records))
    return arrays, masks, indices[: len(records) - n_val], indices[len(records) - n_val:]


def _fingerprint(settings: dict[str, Any]) -> str:
    payload = {"data": settings["data"], "training": settings["training"]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def trained_model(settings: dict[str, Any], *, arrays, train_idx, val_idx, out: Path,
                  log) -> tuple[torch.nn.Module, float, bool]:
    """The benchmark model, trained into ``out`` or reused from it; its validation accuracy
    and whether it was reused.

    Raises:
        ValueError: ``out`` holds a model trained on other data or settings.
    """
    manifest = out / MANIFEST_FILE
    fingerprint = _fingerprint(settings)
    checkpoint = out / CHECKPOINT_FILE
    reused = checkpoint.is_file()
    if reused:
        found = json.loads(manifest.read_text()).get("fingerprint") if manifest.is_file() else None
        if found != fingerprint:
            raise ValueError(f"{checkpoint} was trained with other data or training settings "
                             f"(fingerprint {found}, now {fingerprint}); use another --out")
    out.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"fingerprint": fingerprint, "settings": settings},
                                   indent=2) + "\n")
    scoring = Scoring.from_dataset(load_dataset("synthetic"))
    result = train(config=settings["training"], train_split=Split(arrays, train_idx),
                   val_split=Split(arrays, val_idx), scoring=scoring,
                   checkpoint_path=checkpoint, log=log)
    if result.status != "completed":
        raise RuntimeError(f"training the benchmark model failed: {result.message}")
    predictions = result.predictions
    accuracy = float(np.mean(predictions["probabilities"].argmax(1) == predictions["y_true"]))
    return result.model.eval(), accuracy, reused


def run(out: Path, *, log, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train or reuse the model, explain, score and check; write the files into ``out`` and
    return the summary (the ``--json`` object). ``settings``: `load_benchmark()` by default
    (tests pass smaller ones)."""
    started = time.perf_counter()
    settings = load_benchmark() if settings is None else settings
    explanation_settings = merge_settings(settings["explanations"])
    arrays, masks, train_idx, val_idx = benchmark_data(settings["data"])
    log(f"data: {len(train_idx)} training and {len(val_idx)} validation records at "
        f"{arrays.fs_hz:g} Hz (generated at {file_rate(settings['data']):g} Hz)")
    model, accuracy, reused = trained_model(settings, arrays=arrays, train_idx=train_idx,
                                            val_idx=val_idx, out=out, log=log)
    trained_s = time.perf_counter() - started
    log(f"model {'reused from' if reused else 'trained into'} {out / CHECKPOINT_FILE}: "
        f"validation accuracy {accuracy:.3f}")
    abnormal = np.array([i for i in val_idx if masks[arrays.record_ids[i]].any()])
    cfg = resolve_config({"data": {"normalization": "zscore"}})
    dataset = load_dataset("synthetic")
    explained = explain_in_chunks(model, arrays=arrays, indices=abnormal, cfg=cfg,
                                  normal_class=dataset.normal_index,
                                  settings=explanation_settings,
                                  chunk_records=settings["batch_records"],
                                  progress="explaining")
    write_npz(out / EXPLANATIONS, explained)
    truth = GroundTruth(name=SOURCE, source="synthetic abnormal-beat masks",
                        fs_hz=file_rate(settings["data"]), masks=masks)
    classes = list(arrays.classes)
    scores = score_archive(explained, truth)
    scores.to_csv(out / SCORES_FILE, index=False)
    sanity = _sanity(model, explained, settings=settings, classes=classes,
                     explanation_settings=explanation_settings, log=log)
    write_npz(out / EXPLANATION_SANITY, sanity)
    summary = {"variant": settings.get("variant"), "study_fs_hz": float(arrays.fs_hz),
               "file_fs_hz": file_rate(settings["data"]),
               **_summary(scores, sanity_summary(sanity), local=settings["local_classes"],
                          accuracy=accuracy, reused=reused, trained_s=trained_s,
                          seconds=time.perf_counter() - started)}
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _sanity(model, explained, *, settings, classes, explanation_settings, log):
    """Sanity arrays of the first ``sanity_records`` explained records of the local classes."""
    local = [classes.index(c) for c in settings["local_classes"]]
    rows = np.flatnonzero(np.isin(explained["y_true"], local))[: settings["sanity_records"]]
    subset = {k: (v if k in ("fs_hz", "classes") else v[rows]) for k, v in explained.items()}
    batch = Batch(x=torch.as_tensor(subset["signal"]), lengths=torch.as_tensor(subset["lengths"]),
                  fs_hz=float(subset["fs_hz"]), normal_class=classes.index("N"))
    log(f"sanity checks on {len(rows)} records: randomising layers, top first")
    return sanity_arrays(model, batch, subset, settings=explanation_settings,
                         y_true=subset["y_true"],
                         on_stage=lambda layer: log(f"  randomised down to {layer}"))


def _method_row(summary: pd.Series) -> dict[str, Any]:
    return {"n_records": int(summary["n_records"]), "hit_rate": float(summary["hit_rate"]),
            "hit_ci": [float(summary["hit_ci_low"]), float(summary["hit_ci_high"])],
            "chance_hit_rate": float(summary["chance_hit_rate"]),
            "mass_ratio": float(summary["mass_ratio_mean"]),
            "grades": {g: float(summary[f"grade_{g}"]) for g in ("I", "II", "III")}}


def _summary(scores: pd.DataFrame, sanity: pd.DataFrame, *, local: list[str], accuracy: float,
             reused: bool, trained_s: float, seconds: float) -> dict[str, Any]:
    """The ``--json`` object: headline per method over the local classes, then per class."""
    checks = sanity.set_index("method")
    is_local = scores["true_class"].isin(local)
    headline = summarise_scores(scores[is_local].assign(
        trial="benchmark", source=SOURCE, true_class="+".join(local)))
    per_class = summarise_scores(scores.assign(trial="benchmark", source=SOURCE))
    methods = {}
    for row in headline.itertuples(index=False):
        entry = _method_row(pd.Series(row._asdict()))
        check = checks.loc[row.method] if row.method in checks.index else None
        entry.update({
            "randomisation_similarity": _float(check, "randomisation_similarity"),
            "randomisation_similarity_top": _float(check, "randomisation_similarity_top"),
            "deletion_auc": _float(check, "deletion_auc"),
            "deletion_auc_random": _float(check, "deletion_auc_random"),
            "randomisation_flagged": bool(check["flagged"]) if check is not None else None,
        })
        entry["per_class"] = {r.true_class: _method_row(pd.Series(r._asdict()))
                              for r in per_class[per_class["method"] == row.method]
                              .itertuples(index=False)}
        methods[row.method] = entry
    n_records = int(scores[is_local]["record"].nunique())
    return {"model_accuracy": accuracy, "model_reused": reused, "local_classes": local,
            "n_records": n_records,
            "n_records_per_class": scores.groupby("true_class")["record"].nunique().to_dict(),
            "sanity_records": int(sanity["n_records"].max()) if len(sanity) else 0,
            "training_seconds": round(trained_s, 1), "seconds": round(seconds, 1),
            "methods": methods}


def _float(check: pd.Series | None, key: str) -> float | None:
    if check is None or pd.isna(check[key]):
        return None
    return float(check[key])


def table(summary: dict[str, Any]) -> str:
    """Methods x metrics over the local classes, then the hit rate per class."""
    lines = [f"variant {summary.get('variant') or 'default'}: studied at "
             f"{summary['study_fs_hz']:g} Hz, records generated at {summary['file_fs_hz']:g} Hz",
             f"model accuracy {summary['model_accuracy']:.3f} "
             f"({'reused' if summary['model_reused'] else 'trained'}); "
             f"{summary['n_records']} records of class(es) {', '.join(summary['local_classes'])}"
             f" with abnormal beats; sanity checks on {summary['sanity_records']}; "
             f"{summary['seconds']:.0f} s",
             f"{'method':<22}{'hit':>6} {'95% CI':>13}{'chance':>8}{'mass':>7}{'I/II/III':>16}"
             f"{'rand.sim':>9}{'top':>6}{'del.AUC':>8}{'random':>7}"]
    for name, m in summary["methods"].items():
        grades = "/".join(f"{m['grades'][g]:.2f}" for g in ("I", "II", "III"))
        lines.append(
            f"{name:<22}{m['hit_rate']:>6.3f} [{m['hit_ci'][0]:.2f}, {m['hit_ci'][1]:.2f}]"
            f"{m['chance_hit_rate']:>8.3f}{m['mass_ratio']:>7.2f}{grades:>16}"
            f"{_cell(m['randomisation_similarity'], 9)}"
            f"{_cell(m['randomisation_similarity_top'], 6)}"
            f"{_cell(m['deletion_auc'], 8)}{_cell(m['deletion_auc_random'], 7)}")
    lines.append("per class (hit rate / chance / mass ratio, n):")
    for name, m in summary["methods"].items():
        cells = "; ".join(f"{c}: {v['hit_rate']:.2f} / {v['chance_hit_rate']:.2f} / "
                          f"{v['mass_ratio']:.2f}, n={v['n_records']}"
                          for c, v in m["per_class"].items())
        lines.append(f"  {name:<22}{cells}")
    return "\n".join(lines)


def _cell(value: float | None, width: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.2f}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m study.explain_benchmark",
        description=(
            "Score every explanation method on synthetic ECGs whose abnormal beats are known: "
            "trains a small CNN (a few CPU minutes; reused from --out when present), explains "
            "every validation record with abnormal beats, and prints the pointing-game hit "
            "rate, mass ratio, grades, parameter-randomisation similarity and deletion AUC "
            "per method. Settings: study/explain_benchmark.json; docs/explanations.md."),
    )
    parser.add_argument("--out", type=Path, required=True,
                        help="directory for the model, explanations, scores and summary")
    parser.add_argument("--variant", choices=variant_names(), default=None,
                        help="a variant of the benchmark's data and training defined in "
                             "study/explain_benchmark.json, e.g. long_2x: 30-s records "
                             "generated at twice the rate the model is trained and explained at")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (model_accuracy, n_records, methods) "
                             "instead of the table")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        print(f"error: --out {args.out} is not a directory", file=sys.stderr)
        return 2
    try:
        summary = run(args.out, log=lambda line: print(line, file=sys.stderr, flush=True),
                      settings=load_benchmark(args.variant))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2) if args.json else table(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
