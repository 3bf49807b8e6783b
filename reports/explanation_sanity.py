"""Sanity checks of explanation maps: parameter randomisation and deletion curves (numpy).

`study.explain.explanation_checks` runs the models; this module holds what needs no model, so the
benchmark and the report compute the same numbers:

- **model-parameter randomisation** (Adebayo et al. 2018): the map of a trained model against
  the map of the same model with its layers re-initialised, from the top (the head) down,
  cascading. ``rank_similarity`` is the Spearman rank correlation of the two non-negative
  maps over a record's real samples; near 1 after the whole network is randomised means the
  map shows the input, not what the model learnt (flagged, `RANDOMISATION_FLAG`).
- **deletion** (Petsiuk et al. 2018): the most relevant samples are blanked first (set to 0,
  the mean of the z-scored signal), in steps of `DELETION_FRACTIONS`, and the probability of
  the explained class is tracked; the area under that curve (``curve_auc``, lower is
  better) is compared with blanking in a random order.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from reports.artifact import Section, Sources, Table
from reports.study_data import StudyData
from study.folder_format import EXPLANATION_SANITY, trial_dir

DELETION_FRACTIONS = np.linspace(0.0, 1.0, 21)
"""Fractions of a record's real samples blanked, most relevant first."""
RANDOMISATION_FLAG = 0.5
"""A method whose maps keep a mean rank similarity above this after the whole network is
randomised is flagged: its maps do not depend on what the model learnt."""
"""Per trial, beside `explanations.npz`: the sanity-check arrays `study` wrote."""


def deletion_masks(maps: np.ndarray, lengths: np.ndarray, *,
                   fractions: np.ndarray = DELETION_FRACTIONS,
                   seed: int | None = None) -> np.ndarray:
    """(B, F, T) bool: the samples blanked at each fraction, most relevant first.

    Args:
        maps: (B, T) non-negative relevance; ties keep time order.
        lengths: (B,) real samples; padding is never blanked nor counted.
        fractions: (F,) shares of the real samples to blank.
        seed: with a seed, a random order instead of the map's (the baseline curve).
    """
    maps = np.asarray(maps, dtype=np.float64)
    out = np.zeros((maps.shape[0], len(fractions), maps.shape[1]), dtype=bool)
    rng = None if seed is None else np.random.default_rng(seed)
    for b, length in enumerate(np.asarray(lengths, dtype=np.int64)):
        n = int(min(length, maps.shape[1]))
        order = (rng.permutation(n) if rng is not None
                 else np.argsort(-maps[b, :n], kind="stable"))
        for f, fraction in enumerate(fractions):
            out[b, f, order[: round(float(fraction) * n)]] = True
    return out


def curve_auc(curves: np.ndarray, fractions: np.ndarray = DELETION_FRACTIONS) -> np.ndarray:
    """(B,) area under each (B, F) curve over ``fractions`` (trapezoid rule)."""
    curves = np.asarray(curves, dtype=np.float64)
    widths = np.diff(np.asarray(fractions, dtype=np.float64))
    return ((curves[:, 1:] + curves[:, :-1]) / 2 * widths).sum(axis=1)


def rank_similarity(first: np.ndarray, second: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(B,) Spearman rank correlation of two (B, T) maps over each record's real samples;
    NaN where either map is constant (no ranking to compare)."""
    out = np.full(len(first), np.nan)
    for b, length in enumerate(np.asarray(lengths, dtype=np.int64)):
        a, c = first[b, :length], second[b, :length]
        if np.ptp(a) > 0 and np.ptp(c) > 0:
            out[b] = spearmanr(a, c).statistic
    return out


def sanity_summary(arrays: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Per method: records checked, mean rank similarity after randomising the top layer and
    the whole network, deletion AUC against a random order, and the flag."""
    stages = [str(s) for s in arrays.get("randomisation_stages", [])]
    fractions = np.asarray(arrays.get("deletion_fractions", DELETION_FRACTIONS))
    random_auc = (float(np.nanmean(curve_auc(arrays["deletion_random"], fractions)))
                  if "deletion_random" in arrays else np.nan)
    methods = sorted({key.split("/", 1)[1] for key in arrays
                      if key.startswith(("deletion/", "randomisation/"))})
    rows = []
    for method in methods:
        similarity = arrays.get(f"randomisation/{method}")
        deletion = arrays.get(f"deletion/{method}")
        top = _column_mean(similarity, 0)
        full = _column_mean(similarity, -1)
        rows.append({
            "method": method,
            "n_records": int(len(deletion) if deletion is not None else len(similarity)),
            "randomisation_similarity_top": top,
            "randomisation_similarity": full,
            "deletion_auc": (float(np.nanmean(curve_auc(deletion, fractions)))
                             if deletion is not None else np.nan),
            "deletion_auc_random": random_auc,
            "flagged": bool(full > RANDOMISATION_FLAG),
            "stages": " > ".join(stages),
        })
    return pd.DataFrame(rows, columns=["method", "n_records", "randomisation_similarity_top",
                                       "randomisation_similarity", "deletion_auc",
                                       "deletion_auc_random", "flagged", "stages"])


def _column_mean(values: np.ndarray | None, column: int) -> float:
    if values is None or values.size == 0 or np.all(np.isnan(values[:, column])):
        return np.nan
    return float(np.nanmean(values[:, column]))


def read_sanity(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def sanity_section(study: StudyData) -> Section:
    """The per-trial sanity table (a note saying how to get one where no trial has
    `EXPLANATION_SANITY`)."""
    frames = []
    for trial_id in sorted(study.artifacts):
        path = trial_dir(study.directory, trial_id) / EXPLANATION_SANITY
        if path.is_file():
            frames.append(sanity_summary(read_sanity(path)).assign(trial=trial_id))
    if not frames:
        return Section(title="Explanation sanity checks", notes=[
            "No sanity checks of this study's explanations: run it with --explain-sanity "
            "(parameter randomisation and deletion curves of the explained trials); "
            "python -m study.explain_benchmark runs them on the synthetic benchmark."])
    frame = pd.concat(frames, ignore_index=True)
    frame = frame[["trial", *[c for c in frame.columns if c != "trial"]]]
    flagged = frame[frame["flagged"]]
    notes = [
        "Model-parameter randomisation (Adebayo et al. 2018): the map of the trained model "
        "against the same model with re-initialised weights, the top layer first, then "
        "cascading down to the input (stages listed); similarity is the mean Spearman rank "
        "correlation of the maps over each record's samples (1 = unchanged). "
        f"A method still above {RANDOMISATION_FLAG:g} with every layer randomised is flagged: "
        "its maps do not depend on what the model learnt.",
        "Deletion: the most relevant samples (by each method's scored map) are blanked "
        "first, in steps of 5 % of the record, and the probability of the explained (predicted) "
        "class is tracked; the area under the curve is lower for a faithful map than for a "
        "random order (deletion_auc_random).",
    ]
    if not flagged.empty:
        notes.append("Flagged: " + ", ".join(f"{r.method} (trial {r.trial}, similarity "
                                             f"{r.randomisation_similarity:.2f})"
                                             for r in flagged.itertuples()))
    return Section(
        title="Explanation sanity checks",
        tables=[Table(name="explanation_sanity", frame=frame,
                      sources=Sources(study=study.name, trials=tuple(frame["trial"].unique())),
                      title="Sanity checks per trial and method: rank similarity to the map "
                            "of a randomised model (top layer; whole network), deletion AUC "
                            "against a random order, n records")],
        notes=notes,
    )
