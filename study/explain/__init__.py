"""Explanations of trained models: the methods of the specs and their settings
(`explanation_methods`), the files a study writes for its best trials (`artifacts`: predictions,
the gallery, the scored records), their sanity checks (`explanation_checks`) and the MIT-BIH
windows with annotated abnormal beats (`mitdb_explanations`). `reports` reads what they write.
"""

from __future__ import annotations

from study.facade import lazy_exports

_EXPORTS = {
    "method_names": "explanation_methods", "Batch": "explanation_methods",
    "explain_batch": "explanation_methods", "study_settings": "explanation_methods",
    "merge_settings": "explanation_methods", "write_trial_artifacts": "artifacts",
    "explain_records": "artifacts", "load_trained": "artifacts",
    "sanity_arrays": "explanation_checks", "write_mitdb_explanations": "mitdb_explanations",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
