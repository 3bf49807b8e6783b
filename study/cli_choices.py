"""The choices and defaults the command line offers, apart from the modules that use them.

`study.tune.cli` builds its parser from these without importing torch, Ray or the data readers, so
``--help`` and the listings answer quickly.
"""

from __future__ import annotations

SAMPLERS = ("tpe", "random")
"""Optuna samplers a study may use (`study.tune.tuning` builds them)."""
SCHEDULERS = ("asha", "fifo")
"""Trial schedulers: ASHA early stopping, or fifo (every trial gets the full budget)."""
RUNG_METRICS = {"metric": None, "loss": ("val/loss", "min"), "auroc": ("val/auroc_macro", "max")}
"""What ASHA ranks trials on at its rungs: the study metric, the validation loss or the macro
AUROC (the study still selects and reports on the study metric)."""
DEFAULT_SYNTHETIC_RECORDS = 200
"""Records a synthetic set generates when --synthetic-records is not given (fewer where the
set can make fewer)."""

MITDB_LEAD = "MLII"
"""The MIT-BIH lead a study's ``--mitdb-dir`` explanations read."""
MITDB_WINDOW_S = 30.0
"""Length of each explained MIT-BIH window, in seconds."""
MITDB_MAX_WINDOWS = 16
"""Windows explained per trial: the shift perturbation costs one backward pass per step."""
