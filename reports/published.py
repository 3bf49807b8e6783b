"""Published results beside the study's own: the reference works' tables (CSV files in
``reference-results/``) whose data set and metrics match the study's.

A data set's definition in study.json lists the published tables that match it (file,
protocol, which columns hold which of our metrics, their scale and their standard-deviation
columns; rows of a table that were measured otherwise name their own protocol and metric
columns in ``row_protocols`` and ``row_metrics``, e.g. the ECG-DualNet slides quote
baselines on the hidden test set with the 3-class CinC F1 beside their own 4-class macro F1).
Each published row is shown with its source and protocol and marked "published";
the study's rows are its cross-validated results (mean ± sd over folds) when it ran
``--cv-top-k``, else its best search trial on the validation fold. Numbers are read from the
CSV files at report time and never copied into a study's results.

Where a table names its protocol as data (``protocol_name``, the ``data_options`` and the
``datasets`` it holds on), the study's rows say whether they followed it or ours, and what
the published one would take.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from reports.artifact import Section, Sources, Table
from reports.cv_tables import cv_summary, fold_scores
from reports.per_class import best_search_row
from reports.study_data import StudyData
from study.folder_format import TRIAL_ID

REFERENCE_DIR_NAME = "reference-results"


def default_reference_dir() -> Path:
    """``<repo>/../shared/reference-results`` (beside the clone)."""
    return Path(__file__).resolve().parents[2] / "shared" / REFERENCE_DIR_NAME


def published_rows(entry: dict, *, directory: Path) -> pd.DataFrame:
    """The rows of one published table, our metric names as columns (values scaled to
    fractions, ``± sd`` where the table has a standard deviation).

    Raises:
        FileNotFoundError: the CSV is missing.
    """
    table = pd.read_csv(directory / entry["file"])
    scales = entry.get("scale_by_column", {})
    sd_columns = entry.get("sd_columns", {})
    rows = []
    for _, source in table.iterrows():
        label = " / ".join(str(source[c]) for c in entry["label_columns"]
                           if c in source and pd.notna(source[c]))
        row = {"Result": "published", "Model": label,
               "Source": str(source.get("source", entry["file"])),
               "Protocol": entry.get("row_protocols", {}).get(label, entry["protocol"])}
        metrics = entry.get("row_metrics", {}).get(label, entry["metrics"])
        for column, metric in metrics.items():
            if column not in source or pd.isna(source[column]):
                continue
            scale = float(scales.get(column, entry.get("scale", 1.0)))
            value = float(source[column]) * scale
            sd_column = sd_columns.get(column)
            if sd_column and sd_column in source and pd.notna(source[sd_column]):
                row[metric] = f"{value:.3f} ± {float(source[sd_column]) * scale:.3f}"
            else:
                row[metric] = f"{value:.3f}"
        rows.append(row)
    return pd.DataFrame(rows)


def study_rows(study: StudyData, metrics: list[str], *, entry: dict | None = None
               ) -> pd.DataFrame:
    """This study's result rows for ``metrics``: CV candidates, else the best search trial;
    their protocol is labelled against ``entry``'s (the published table's) where given."""
    protocol = _protocol(study, entry or {})
    if study.cv is not None:
        folds = fold_scores(study, also=metrics)
        rows = []
        for candidate in cv_summary(study)["candidate"]:
            mine = folds[folds["candidate"] == candidate]
            row = {"Result": "this study (cross-validation)", "Model": candidate,
                   "Source": study.name,
                   "Protocol": f"{protocol}, {mine['fold'].nunique()} folds"}
            for metric in metrics:
                if metric in mine:
                    values = mine[metric].to_numpy(dtype=float)
                    row[metric] = (f"{np.nanmean(values):.3f} ± {np.nanstd(values, ddof=1):.3f}"
                                   if len(values) > 1 else f"{values[0]:.3f}")
            rows.append(row)
        return pd.DataFrame(rows)
    best = best_search_row(study)
    if best is None:
        return pd.DataFrame()
    row = {"Result": "this study (best search trial, one validation fold)",
           "Model": str(best[TRIAL_ID]), "Source": study.name,
           "Protocol": f"{protocol}, validation fold {best.get('fold', '?')}, "
                       f"epoch {int(best['epoch'])}"}
    for metric in metrics:
        if metric in best and pd.notna(best[metric]):
            row[metric] = f"{float(best[metric]):.3f}"
    return pd.DataFrame([row])


def _matched_presets(study: StudyData, entry: dict) -> dict[str, str]:
    """Preset -> the published row (its "Model" label) it reproduces, for a study of fixed
    configurations (``--presets``) whose presets the table lists (``presets`` of the data
    set's published entry)."""
    presets = study.record.get("plan", {}).get("presets") or []
    labels = entry.get("presets", {})
    return {name: labels[name] for name in presets if name in labels}


def side_by_side(published: pd.DataFrame, ours: pd.DataFrame, *,
                 presets: dict[str, str]) -> pd.DataFrame | None:
    """Each reproduced preset's published row followed by this study's row for it (presets
    without a published row last); None when no preset has one."""
    if not presets or ours.empty:
        return None
    rows = []
    for _, mine in ours.iterrows():
        label = presets.get(mine["Model"])
        if label is not None:
            rows.extend(published[published["Model"] == label].to_dict("records"))
        rows.append(mine.to_dict())
    matched = [r for r in rows if r["Result"] == "published"]
    return pd.DataFrame(rows) if matched else None


def _protocol(study: StudyData, entry: dict) -> str:
    plan = study.record.get("plan", {})
    options = study.dataset.get("options", {})
    chosen = ", ".join(f"{k}={v}" for k, v in options.items() if isinstance(v, str))
    split = study.record.get("split", {})
    leak = " (patients on both sides)" if split.get("groups_in_both") else ""
    described = (f"{plan.get('dataset', '?')} at {plan.get('fs_hz', '?')} Hz"
                 + (f", {chosen}" if chosen else "") + leak)
    if "data_options" not in entry:  # a table that does not name its protocol as data
        return described
    name = entry.get("protocol_name", "published")
    if follows_protocol(dataset=plan.get("dataset"), options=options, entry=entry):
        return f"the {name} protocol: {described}"
    wanted = ", ".join(f"{k}={v}" for k, v in entry["data_options"].items())
    return (f"ours, not the {name} protocol ({wanted or 'its data'} on "
            f"{' or '.join(entry.get('datasets', ['its data set']))}): {described}")


def follows_protocol(*, dataset: str | None, options: dict, entry: dict) -> bool:
    """Whether a study of ``dataset`` with these resolved data ``options`` ran a published
    table's protocol: one of its ``datasets``, with its ``data_options`` where the data set
    has the option (the Kaggle beat files have none: they are the published split)."""
    return dataset in entry.get("datasets", ()) and all(
        options.get(option, value) == value
        for option, value in entry.get("data_options", {}).items())


def published_section(study: StudyData, *, reference_dir: Path | None = None) -> Section:
    """Published results of the reference works next to the study's own, per matching table."""
    title = "Published results beside this study"
    entries = study.dataset.get("published", [])
    if not entries:
        return Section(title=title, notes=[
            f"No published table matches data set {study.dataset.get('name', '?')} and its "
            "metrics."])
    directory = reference_dir or default_reference_dir()
    tables, notes = [], []
    for entry in entries:
        try:
            published = published_rows(entry, directory=directory)
        except FileNotFoundError:
            notes.append(f"{directory / entry['file']} not found; pass --reference-results DIR "
                         "to python -m reports.build")
            continue
        metrics = list(dict.fromkeys(
            [*entry["metrics"].values(),
             *(m for row in entry.get("row_metrics", {}).values() for m in row.values())]))
        ours = study_rows(study, metrics, entry=entry)
        frame = side_by_side(published, ours, presets=_matched_presets(study, entry))
        if frame is None:
            frame = pd.concat([published, ours], ignore_index=True)
        columns = ["Result", "Model", "Source", "Protocol", *[m for m in metrics if m in frame]]
        tables.append(Table(
            name=f"published_{Path(entry['file']).stem}",
            title=f"Published figures ({entry['file']}; {entry['protocol']}) beside this "
                  "study's results; compare like with like: protocols differ where noted",
            frame=frame[columns].fillna("–"),
            sources=Sources(study=study.name)))
    notes.append(f"Published rows are read from {directory} when the report is built; they are "
                 "labelled 'published' and never enter the study's own results.")
    return Section(title=title, tables=tables, notes=notes)
