"""`final_test.json`: the best configurations retrained on every non-test record and scored
once on the held-out test set; read, checked and turned into table rows.

Shape (written by `study.run`)::

    {"metric": "f1_cinc", "classes": ["N", ...], "keys": ["normal", ...],
     "test": {"source": "fold" | "directory", "fold": 3 | null, "directory": null | "/path",
              "n_records": 150},
     "trained_on": {"n_records": 450, "epochs": 4},
     "candidates": [{"rank": 1, "trial_id": "0b71eee8", "config": {...}, "search_score": 0.71,
                     "metrics": {"test/f1_cinc": 0.69, "test/f1_normal": ...,
                                 "test/confusion": [[...]]}}]}
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from reports.study_data import ReportError, StudyData
from study.folder_format import FINAL_TEST, TRIAL_ID

_REQUIRED = ("metric", "test", "candidates")
_CANDIDATE_REQUIRED = ("rank", TRIAL_ID, "metrics")


def final_test(study: StudyData) -> dict[str, Any] | None:
    """The study's `final_test.json`, checked, or None when it wrote none.

    Raises:
        ReportError: the file lacks a key the report needs (the message names the file and
            the key).
    """
    record = study.final_test
    if record is None:
        return None
    where = study.directory / FINAL_TEST
    missing = [k for k in _REQUIRED if k not in record]
    if missing:
        raise ReportError(f"{where} has no {', '.join(missing)}")
    for number, candidate in enumerate(record["candidates"]):
        lacking = [k for k in _CANDIDATE_REQUIRED if k not in candidate]
        if lacking:
            raise ReportError(f"{where}: candidate {number} has no {', '.join(lacking)}")
    return record


def test_key(study: StudyData, record: dict[str, Any]) -> str:
    """The test score's key, ``test/<metric>`` (the metric as `trials.parquet` names it)."""
    return f"test/{record.get('metric') or study.metric.removeprefix('val/')}"


def test_scores(study: StudyData) -> pd.Series:
    """Test score of the study metric per search trial id (empty without `final_test.json`)."""
    record = final_test(study)
    if record is None:
        return pd.Series(dtype=float)
    key = test_key(study, record)
    # None: no score (a class absent from the test set, or the final training failed)
    return pd.Series({str(c[TRIAL_ID]): float(np.nan if c["metrics"].get(key) is None
                                                else c["metrics"][key])
                      for c in record["candidates"]}, dtype=float)


def test_description(record: dict[str, Any]) -> str:
    """Which records the test set is, in words (``fold 3, 150 records``)."""
    test = record.get("test", {})
    where = (f"fold {test['fold']}" if test.get("source") == "fold" and test.get("fold") is not None
             else f"records in {test.get('directory')}" if test.get("directory")
             else "held-out records")
    count = f", {test['n_records']} records" if test.get("n_records") is not None else ""
    return where + count


def best_candidate(record: dict[str, Any]) -> dict[str, Any] | None:
    """The rank-1 candidate (the search's best configuration), or None."""
    candidates = sorted(record["candidates"], key=lambda c: int(c["rank"]))
    return candidates[0] if candidates else None
