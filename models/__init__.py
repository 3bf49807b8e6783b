"""Model families for ECG classification, a name -> class registry and named presets.

Importing the package imports every model module, so the registry is full wherever
``models`` is imported (Ray workers included)::

    from models import build_model, load_preset
    # The data set's class and lead counts are required: models assume no data set.
    model = build_model({**load_preset("cnn7_gmp"), "n_classes": 4, "n_leads": 1})
    logits = model(x, lengths)            # x (B, leads, T), lengths (B,) -> (B, n_classes)
    maps = model.explain(x, lengths)      # dict of explanation tensors, time axis T
    more = explain_by_perturbation("occlusion", model, x, lengths=lengths,
                                   window_samples=150, stride_samples=75)
"""

from models import attention_gate, cnn, convlstm, dualnet, hadln, segmenter  # noqa: F401  (registers)
from models.losses import FocalLoss
from models.perturbation import PERTURBATION_METHODS, explain_by_perturbation
from models.presets import load_preset, preset_names
from models.registry import build_model, register, registered_models

__all__ = [
    "PERTURBATION_METHODS",
    "FocalLoss",
    "build_model",
    "explain_by_perturbation",
    "load_preset",
    "preset_names",
    "register",
    "registered_models",
]
