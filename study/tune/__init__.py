"""The study driver: `python -m study.run`'s flags (`cli`), the checked plan (`plan`) and what
every trial shares (`spec`), the data and folds (`prepare`, `data`), the Ray Tune experiment
with Optuna TPE and ASHA (`tuning`, `trainable`), the Optuna storage kept truthful
(`optuna_storage`, `optuna_truth`), progress and ETA (`progress`), the cost estimate
(`estimate`, `explanation_cost`), the study folder's tables (`results`, `collect`), the
cross-validation and held-out test (`held_out_test`), checkpoint hygiene (`checkpoint_keeper`),
and the operations a cluster run needs (`ray_address`, `storage_faults`, `wandb_mode`,
`whole_file_fs`).
"""

from __future__ import annotations

from study.facade import lazy_exports

_EXPORTS = {
    "run_command": "driver", "run_study": "driver", "Plan": "plan", "StudyError": "plan",
    "make_plan": "plan", "load_plan": "plan", "StudySpec": "spec",
    "prepare_study": "prepare", "build_parser": "cli", "probe": "estimate",
    "trials_frame": "results", "trial_outcome": "results",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
