"""`final_test.json`: the chosen configurations retrained on every non-test record and scored
once on the held-out test set (see docs/best-trial-to-test-score.md).

Each final trial reports its test-set metrics under the trainer's ``val/`` keys (the test set
is its evaluation split); here they are renamed ``test/``, with the confusion matrix decoded
and the search score of the configuration beside them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from data_io.atomic import write_text_atomic
from data_io.datasets import Dataset
from study.folder_format import CONFUSION_JSON, FINAL_TEST, TRIAL_ID


def test_metrics(row: dict[str, Any]) -> dict[str, Any]:
    """The ``val/`` metrics of a final trial's last row as ``test/`` metrics (confusion as a
    list of lists; NaN, e.g. the F1 of a class absent from the test set, as None)."""
    metrics: dict[str, Any] = {}
    for key, value in row.items():
        if key == CONFUSION_JSON:
            metrics["test/confusion"] = json.loads(value)
        elif key.startswith("val/") and isinstance(value, int | float):
            number = float(value)
            metrics["test/" + key.removeprefix("val/")] = number if math.isfinite(number) else None
    return metrics


def final_test_record(
    *,
    dataset: Dataset,
    test: dict[str, Any],
    trained_on: dict[str, Any],
    candidates: list[dict[str, Any]],
    rows: dict[str, dict[str, Any]],
    errors: dict[str, str],
) -> dict[str, Any]:
    """The file's content.

    Args:
        dataset: the study's data set (metric name, classes and their keys).
        test: where the test set came from: ``source`` (``fold`` / ``held-out`` /
            ``directory``), ``fold``, ``directory``, ``n_records``.
        trained_on: ``n_records`` and ``epochs`` of the final training.
        candidates: ``trial_id``, ``config`` and ``search_score`` (None for fixed
            configurations) of each configuration, best first, and ``baseline`` (true) for a
            search's ``--baseline`` presets, which follow them.
        rows: trial id -> the final trial's last reported row.
        errors: trial id -> why its final trial failed (it then has no metrics).
    """
    return {
        "metric": dataset.metric.name,
        "item": dataset.item,
        "classes": list(dataset.labels),
        "keys": [c.key for c in dataset.classes],
        "test": test,
        "trained_on": trained_on,
        "candidates": [
            {"rank": rank, TRIAL_ID: c[TRIAL_ID], "config": c["config"],
             "search_score": c.get("search_score"),
             **({"baseline": True} if c.get("baseline") else {}),
             "metrics": test_metrics(rows.get(c[TRIAL_ID], {})),
             **({"error": errors[c[TRIAL_ID]]} if c[TRIAL_ID] in errors else {})}
            for rank, c in enumerate(candidates, start=1)
        ],
    }


def write_final_test(study_dir: Path, record: dict[str, Any]) -> Path:
    path = Path(study_dir) / FINAL_TEST
    write_text_atomic(path, json.dumps(record, indent=2))
    return path


def final_test_lines(record: dict[str, Any]) -> list[str]:
    """The summary lines: each configuration's test score, and where the file is."""
    key = f"test/{record['metric']}"
    item = record.get("item", "record")  # final_test.json before items were named
    lines = [f"test set ({_source_text(record['test'])}, {record['test']['n_records']} {item}s), "
             f"after training on {record['trained_on']['n_records']} {item}s:"]
    for c in record["candidates"]:
        score = c["metrics"].get(key)
        shown = f"{record['metric']} {score:.4f}" if score is not None else \
            f"no score ({c.get('error', 'no metrics reported')})"
        search = (f" (search {c['search_score']:.4f})" if c["search_score"] is not None
                  else " (baseline)" if c.get("baseline") else "")
        lines.append(f"  {c['rank']}. {c['trial_id']}: {shown}{search}")
    return lines


def _source_text(test: dict[str, Any]) -> str:
    if test["source"] == "fold":
        return f"fold {test['fold']}"
    if test["source"] == "directory":
        return test["directory"]
    return "held-out records"
