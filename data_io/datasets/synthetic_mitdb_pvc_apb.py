"""mitdb-pvc-apb on synthetic MIT-BIH-format records written by `data_io.synthesize`."""

from __future__ import annotations

from data_io.datasets.mitdb_pvc_apb import abnormal_masks, check, fold_plan, load
from data_io.datasets.synthetic_mitdb_beats import generate, max_records

__all__ = ["abnormal_masks", "check", "fold_plan", "generate", "load", "max_records"]
