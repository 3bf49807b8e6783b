"""The training engine: one configuration trained and scored on one split, without Ray.

It owns the typed training configuration (`config`), the trainer and its epoch loop
(`trainer`), learning-rate schedules and per-layer rates, optimisers and class weights, the
runtime (device and precision), self-describing checkpoints, the metrics a data set defines,
progress bars and the published training protocols of presets. `python -m study.train` runs
it from the command line; `study.tune` runs it inside Ray Tune trials.
"""

from __future__ import annotations

from study.facade import lazy_exports

_EXPORTS = {
    "TrainConfig": "config", "resolve_config": "config", "merge_sections": "config",
    "default_config": "config", "train": "trainer", "TrainResult": "trainer",
    "Split": "trainer", "evaluate": "trainer", "predict": "trainer", "Scoring": "metrics",
    "select_runtime": "runtime", "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint", "preset_config": "protocols",
    "study_preset_config": "protocols",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
