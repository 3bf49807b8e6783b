"""Explanations scored against known abnormal beats: pointing game, mass ratio and grade.

Ground truth is a per-sample mask (1 over every abnormal beat) per record id, at the rate of
the source records (`GroundTruth`). Two sources, named in the ``source`` column:

- **synthetic**: the study's own data set, when one of `GROUND_TRUTH_READERS` finds masks in
  its data directory; today only the synthetic data sets (`MASKS.npz` beside the records: 1
  over each ectopic beat of class O, over every beat of class A, 0 for N and ~) scored with
  the trial's `explanations.npz`. Real CinC 2017 records have no beat annotations, so their
  explanations get no scores.
- **mitdb**: MIT-BIH windows with annotated abnormal beats, explained by the trial when the
  study ran with ``--mitdb-dir`` (`mitdb_explanations.npz`). The study cut the windows and
  built their masks (every non-normal beat's span) from the beat annotations, and stored them
  in the file as ``mask`` at the study rate, so no data set is read here. Windows are labelled
  O (other rhythm): true-class maps are those of O.

The scoring itself (`score_maps`) only sees maps, masks and lengths at one rate, whatever the
source. Every scored map of the explanation method specs (`scored_methods`) present in an
archive is reduced to one non-negative map per record and scored per record (or window)
with an abnormal beat:

- **hit** (pointing game): the map's argmax over the real samples falls inside an abnormal
  beat, widened by `TOLERANCE_S` on each side. A flat or all-zero map points nowhere (no hit).
  ``chance_hit`` is the widened abnormal fraction, the hit rate of a random argmax.
- **mass_ratio**: share of the map's mass on abnormal beats divided by the abnormal fraction of
  the record; 1.0 is chance (a uniform map), 1 / abnormal fraction the maximum.
- **grade**, after the attention-segmenter paper's grading of attention maps, computed from the
  annotations rather than by eye. The map's top decile (samples at or above its 90th
  percentile, `TOP_FRACTION`) is what it highlights; ``top_share`` is the part of that mass
  inside abnormal beats and ``top_ratio`` = top_share / abnormal fraction (1.0 = chance):

  * **I** (only abnormal beats highlighted): top_share > `GRADE_I_SHARE` and
    top_ratio > `CHANCE_TOLERANCE`;
  * **II** (abnormal beats plus some normal ones): top_ratio > `CHANCE_TOLERANCE`, not I;
  * **III** (no contrast): top_ratio <= `CHANCE_TOLERANCE`, i.e. at chance (within 10 %) or
    below, or a map with no mass.

  Where abnormal beats cover most of a record (AF: every beat) the chance level is high and
  grade I needs top_share to beat it as well, so such records rarely reach I.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from reports.artifact import Section, Sources, Table
from reports.galleries import read_explanations
from reports.study_data import ReportError, StudyData, TrialArtifacts
from study.explanation_specs import MapSpec, SpecError, method_specs

TOLERANCE_S = 0.05
"""Pointing-game tolerance: the abnormal spans are widened by this much on each side."""
TOP_FRACTION = 0.10
"""The grade looks at the map's top decile of samples."""
GRADE_I_SHARE = 0.80
"""Grade I: more than this share of the top-decile mass lies inside abnormal beats."""
CHANCE_TOLERANCE = 1.10
"""Ratios to chance at or below this count as no contrast (grade III, 'at chance')."""
WILSON_Z = 1.959964
"""Two-sided 95 % normal quantile of the Wilson interval of the hit rate."""

SYNTHETIC_SOURCE = "synthetic"
MITDB_SOURCE = "mitdb"
MITDB_MASK_KEY = "mask"
"""Key of the per-window abnormal-beat masks in `mitdb_explanations.npz`, (B, T) at its rate."""
SYNTHETIC_MASKS_FILE = "MASKS.npz"
SYNTHETIC_MANIFEST_FILE = "SYNTHETIC.json"
GRADES = ("I", "II", "III")
IN = "in-domain"
DOMAINS = MappingProxyType({MITDB_SOURCE: "out-of-domain (not a valid test)"})
"""Whether a source's items come from the data set the model was trained on: MIT-BIH
windows (`--mitdb-dir`) are explained by a model trained on the study's data set (CinC 2017
or synthetic), so their scores do not test the method; the study's own records (synthetic,
MIT-BIH PVC/APB segments) are in-domain."""
SCORE_COLUMNS = ("record", "hit", "chance_hit", "mass_ratio", "top_share", "top_ratio",
                 "abnormal_fraction", "grade")


# ---- ground truth -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroundTruth:
    """Abnormal-beat masks of a data set.

    Attributes:
        name: short name of the source, the ``source`` column (``"synthetic"``, ``"mitdb"``).
        source: what the masks are (named in the report).
        fs_hz: sampling rate of the masks.
        masks: per record (or window) id a (n,) 0/1 array.
    """

    name: str
    source: str
    fs_hz: float
    masks: Mapping[str, np.ndarray]


def read_synthetic_masks(data_dir: Path) -> GroundTruth | None:
    """The masks of a synthetic data set (`MASKS.npz`), or None where there are none.

    Their rate is the records' rate, which the generator writes into `SYNTHETIC.json`.

    Raises:
        ReportError: masks without a manifest that gives their rate (no rate is assumed).
    """
    path = Path(data_dir) / SYNTHETIC_MASKS_FILE
    if not path.is_file():
        return None
    fs_hz = _manifest_rate(Path(data_dir) / SYNTHETIC_MANIFEST_FILE, masks=path)
    with np.load(path, allow_pickle=False) as archive:
        masks = {name: archive[name] for name in archive.files}
    return GroundTruth(name=SYNTHETIC_SOURCE,
                       source="synthetic abnormal-beat masks (MASKS.npz)", fs_hz=fs_hz,
                       masks=masks)


def _manifest_rate(manifest: Path, *, masks: Path) -> float:
    """The ``fs_hz`` of the synthetic generator's manifest, the rate of ``masks``."""
    try:
        fs_hz = json.loads(manifest.read_text())["fs_hz"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ReportError(f"{masks} needs the sampling rate of its masks from {manifest} "
                          f"(key fs_hz, written by python -m data_io.synthesize): "
                          f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(fs_hz, (int, float)) or not fs_hz > 0:
        raise ReportError(f"{manifest}: fs_hz must be a positive number, got {fs_hz!r}")
    return float(fs_hz)


GROUND_TRUTH_READERS: tuple[Callable[[Path], GroundTruth | None], ...] = (
    read_synthetic_masks,
)
"""Tried in order on the study's data directory; the first that finds masks wins. (MIT-BIH
masks are not a data directory's: they travel in each trial's `mitdb_explanations.npz`, see
`mitdb_ground_truth`.)"""


def find_ground_truth(data_dir: Path) -> GroundTruth | None:
    """The abnormal-beat masks of the data set in ``data_dir``, or None (e.g. real CinC)."""
    for reader in GROUND_TRUTH_READERS:
        truth = reader(Path(data_dir))
        if truth is not None:
            return truth
    return None


def mitdb_ground_truth(arrays: Mapping[str, np.ndarray], *, path: Path | str) -> GroundTruth:
    """The masks a `mitdb_explanations.npz` carries (``mask``, one row per window, at the
    file's rate), by window id.

    Raises:
        ReportError: the archive has no ``mask`` or its shape does not match the windows.
    """
    ids = [str(r) for r in arrays["record_ids"]]
    mask = arrays.get(MITDB_MASK_KEY)
    if mask is None or mask.ndim != 2 or mask.shape[0] != len(ids):
        shape = None if mask is None else mask.shape
        raise ReportError(f"{path}: needs a (windows, samples) {MITDB_MASK_KEY!r} array for "
                          f"{len(ids)} windows, found {shape}")
    return GroundTruth(
        name=MITDB_SOURCE,
        source="MIT-BIH beat annotations (the span of every non-normal beat, stored with the "
               "windows in mitdb_explanations.npz)",
        fs_hz=float(arrays["fs_hz"]),
        masks=dict(zip(ids, mask, strict=True)),
    )


def archive_ground_truth(arrays: Mapping[str, np.ndarray], *, path: Path | str) -> GroundTruth:
    """The masks an `explanations.npz` carries for its own items (``mask``, aligned with
    ``signal``, at the archive's rate), e.g. MIT-BIH segments with annotated beats."""
    truth = mitdb_ground_truth(arrays, path=path)
    return GroundTruth(name="annotations",
                       source="the data set's beat annotations (the span of every abnormal "
                              "beat of each explained item, stored in explanations.npz)",
                       fs_hz=truth.fs_hz, masks=truth.masks)


def resample_mask(mask: np.ndarray, *, source_fs_hz: float, target_fs_hz: float,
                  n_samples: int) -> np.ndarray:
    """``mask`` at ``target_fs_hz`` by index mapping, ``n_samples`` long.

    Sample i of the result takes the source sample nearest in time, round(i * source / target);
    samples past the end of the source are 0.
    """
    mask = np.asarray(mask)
    source = np.round(np.arange(n_samples) * (source_fs_hz / target_fs_hz)).astype(np.int64)
    out = np.zeros(n_samples, dtype=np.uint8)
    inside = source < mask.shape[0]
    out[inside] = mask[source[inside]] > 0
    return out


def masks_at_rate(truth: GroundTruth, record_ids: Sequence[str], *, fs_hz: float,
                  n_samples: int) -> np.ndarray:
    """(B, n_samples) masks of ``record_ids`` at ``fs_hz``; records without one are all 0."""
    out = np.zeros((len(record_ids), n_samples), dtype=np.uint8)
    for b, record in enumerate(record_ids):
        if record in truth.masks:
            out[b] = resample_mask(truth.masks[record], source_fs_hz=truth.fs_hz,
                                   target_fs_hz=fs_hz, n_samples=n_samples)
    return out


# ---- methods ------------------------------------------------------------------------------------


def _channel(maps: np.ndarray, y_true: np.ndarray) -> np.ndarray:
    return maps[:, 0]


def _true_class(maps: np.ndarray, y_true: np.ndarray) -> np.ndarray:
    return maps[np.arange(len(maps)), y_true]


def _channel_mean(maps: np.ndarray, y_true: np.ndarray) -> np.ndarray:
    return maps.mean(axis=1)


def _every_record(arrays: Mapping[str, np.ndarray], key: str) -> np.ndarray:
    return np.ones(len(arrays["record_ids"]), dtype=bool)


def _shift_was_run(arrays: Mapping[str, np.ndarray], key: str) -> np.ndarray:
    """The study shifts only records not predicted Normal; the others have NaN probabilities
    (and an all-zero mask that would otherwise score as 'nothing highlighted'). Where the
    archive says whether the shift reached Normal (``target_reached``), only those records:
    a shift that did not change the decision explains nothing."""
    prefix = key.rsplit("/", 1)[0]
    before = arrays.get(prefix + "/target_probability_before")
    run = _every_record(arrays, key) if before is None else np.isfinite(before)
    reached = arrays.get(prefix + "/target_reached")
    return run if reached is None else run & np.asarray(reached, dtype=bool)


def _absolute(values: np.ndarray) -> np.ndarray:
    return np.abs(values)


def _positive_part(values: np.ndarray) -> np.ndarray:
    return np.clip(values, 0.0, None)


REDUCERS: Mapping[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = MappingProxyType({
    "channel": _channel,
    "true_class": _true_class,
    "channel_mean": _channel_mean,
})
"""A spec's ``score.reduce`` -> ``(B, C, T) maps, (B,) true classes -> (B, T)``."""
TRANSFORMS: Mapping[str, Callable[[np.ndarray], np.ndarray]] = MappingProxyType({
    "absolute": _absolute,
    "positive_part": _positive_part,
})
"""A spec's ``score.transform``: the absolute value where the sign is meaningless, the
positive part where only evidence for the class counts."""
RECORD_RULES: Mapping[str, Callable[[Mapping[str, np.ndarray], str], np.ndarray]] = (
    MappingProxyType({"all": _every_record, "shift_reached": _shift_was_run}))
"""A spec's ``score.records`` -> ``(arrays, key) -> (B,) bool``, the rows computed."""


@dataclass(frozen=True)
class ScoredMethod:
    """How one explanation map becomes one non-negative map per record, as its spec
    (`study.explanation_specs.MapSpec`) says.

    Attributes:
        spec: the map's spec (archive keys, note).
        reduce: ``(B, C, T) maps, (B,) true classes -> (B, T)``.
        transform: makes the map non-negative.
        computed: ``(arrays, key) -> (B,) bool``, the records the method was run on.
    """

    spec: MapSpec
    reduce: Callable[[np.ndarray, np.ndarray], np.ndarray]
    transform: Callable[[np.ndarray], np.ndarray]
    computed: Callable[[Mapping[str, np.ndarray], str], np.ndarray] = _every_record

    @property
    def note(self) -> str:
        return self.spec.note

    def key(self, arrays: Mapping[str, np.ndarray]) -> str | None:
        """The archive key of this map in ``arrays`` (None when absent)."""
        return self.spec.key(arrays)

    def maps(self, arrays: Mapping[str, np.ndarray]) -> np.ndarray | None:
        """(B, T) non-negative maps from an explanations archive, None when absent."""
        key = self.key(arrays)
        if key is None:
            return None
        reduced = self.reduce(np.asarray(arrays[key], dtype=np.float64), arrays["y_true"])
        return self.transform(np.nan_to_num(reduced, nan=0.0, posinf=0.0, neginf=0.0))


def scored_methods() -> Mapping[str, ScoredMethod]:
    """Every scored map of the explanation method specs (`study.explanation_specs`), by name,
    in gallery order. Recurrent states, the attended or shifted signals and the decision over
    time are shown in the galleries but their specs score nothing: they are not relevance
    maps.

    Raises:
        SpecError: a spec's reduce, transform or records rule is not known here (the message
            names the spec file and the known ones).
    """
    scored = {}
    for method in method_specs().values():
        for spec in method.maps:
            if spec.score is not None:
                scored[spec.name] = _scored(spec, path=method.path)
    return MappingProxyType(scored)


def _scored(spec: MapSpec, *, path: Path) -> ScoredMethod:
    rule = spec.score
    for field, value, known in (("reduce", rule.reduce, REDUCERS),
                                ("transform", rule.transform, TRANSFORMS),
                                ("records", rule.records, RECORD_RULES)):
        if value not in known:
            raise SpecError(f"{path}: map {spec.name!r}: score {field} {value!r} is not one of "
                            f"{sorted(known)}")
    return ScoredMethod(spec=spec, reduce=REDUCERS[rule.reduce],
                        transform=TRANSFORMS[rule.transform],
                        computed=RECORD_RULES[rule.records])


# ---- scores -------------------------------------------------------------------------------------


def score_maps(maps: np.ndarray, masks: np.ndarray, lengths: np.ndarray, *,
               fs_hz: float, record_ids: Sequence[str] | None = None,
               tolerance_s: float = TOLERANCE_S) -> pd.DataFrame:
    """Pointing game, mass ratio and grade of non-negative maps against abnormal-beat masks.

    Args:
        maps: (B, T) non-negative maps (one method).
        masks: (B, T) 0/1 abnormal-beat masks at the maps' rate.
        lengths: (B,) real samples; padding beyond them is ignored.
        fs_hz: sampling rate of maps and masks (for the tolerance).
        record_ids: names of the rows (default: their positions as strings).
        tolerance_s: pointing-game tolerance around each abnormal span.

    Returns:
        One row per record with an abnormal beat (records whose mask is all 0 within their
        length are skipped): ``SCORE_COLUMNS``.

    Raises:
        ValueError: shapes differ or a map is negative.
    """
    maps, masks = np.asarray(maps, dtype=np.float64), np.asarray(masks) > 0
    lengths = np.asarray(lengths, dtype=np.int64)
    if maps.ndim != 2 or maps.shape != masks.shape or lengths.shape != (maps.shape[0],):
        raise ValueError(f"need maps and masks (B, T) and lengths (B,), got {maps.shape}, "
                         f"{masks.shape}, {lengths.shape}")
    if np.any(maps < 0):
        raise ValueError("maps must be non-negative (apply the method's transform first)")
    names = [str(b) for b in range(len(maps))] if record_ids is None else list(record_ids)
    widen = max(0, round(tolerance_s * fs_hz))
    rows = []
    for b, name in enumerate(names):
        n = int(min(lengths[b], maps.shape[1]))
        mask = masks[b, :n]
        if n == 0 or not mask.any():
            continue
        rows.append({"record": name, **_score_one(maps[b, :n], mask, widen=widen)})
    return pd.DataFrame(rows, columns=list(SCORE_COLUMNS))


def _score_one(values: np.ndarray, mask: np.ndarray, *, widen: int) -> dict[str, object]:
    fraction = float(mask.mean())
    widened = np.convolve(mask.astype(np.float64), np.ones(2 * widen + 1), mode="same") > 0.5
    total = float(values.sum())
    scores: dict[str, object] = {"hit": False, "chance_hit": float(widened.mean()),
                                 "mass_ratio": math.nan, "top_share": math.nan,
                                 "top_ratio": math.nan, "abnormal_fraction": fraction,
                                 "grade": "III"}
    if total <= 0:
        return scores  # no mass: nothing highlighted
    top = values >= np.quantile(values, 1.0 - TOP_FRACTION)  # ties at the cut stay in
    top_share = float(values[top & mask].sum() / values[top].sum())
    top_ratio = top_share / fraction
    scores.update(
        hit=bool(values.max() > values.min() and widened[int(np.argmax(values))]),
        mass_ratio=float(values[mask].sum() / total) / fraction,
        top_share=top_share, top_ratio=top_ratio, grade=grade(top_share, top_ratio),
    )
    return scores


def grade(top_share: float, top_ratio: float) -> str:
    """The grade I / II / III of a map from its top-decile share and ratio to chance."""
    above_chance = top_ratio > CHANCE_TOLERANCE
    only_abnormal = above_chance and top_share > GRADE_I_SHARE
    return GRADES[0] if only_abnormal else GRADES[1] if above_chance else GRADES[2]


def wilson_interval(successes: int, n: int, *, z: float = WILSON_Z) -> tuple[float, float]:
    """Wilson score interval of a proportion; (nan, nan) for n = 0."""
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def score_archive(arrays: Mapping[str, np.ndarray], truth: GroundTruth) -> pd.DataFrame:
    """Scores of every method present in one trial's explanations: ``method``,
    `SCORE_COLUMNS` and ``true_class`` (the record's label: AF-like records, where every beat
    is abnormal, are summarised apart from records with a few ectopic beats)."""
    record_ids = [str(r) for r in arrays["record_ids"]]
    n_samples = int(arrays["signal"].shape[-1])
    fs_hz = float(arrays["fs_hz"])
    masks = masks_at_rate(truth, record_ids, fs_hz=fs_hz, n_samples=n_samples)
    frames = []
    for name, method in scored_methods().items():
        maps = method.maps(arrays)
        if maps is None:
            continue
        rows = method.computed(arrays, method.key(arrays))
        scores = score_maps(maps[rows], masks[rows], np.asarray(arrays["lengths"])[rows],
                            fs_hz=fs_hz, record_ids=[r for r, ok in zip(record_ids, rows,
                                                                        strict=True) if ok])
        frames.append(scores.assign(method=name))
    scores = _concat(frames, columns=["method", *SCORE_COLUMNS])
    labels = dict(zip(record_ids, _class_names(arrays), strict=True))
    return scores.assign(true_class=scores["record"].map(labels).astype(object))


def _class_names(arrays: Mapping[str, np.ndarray]) -> list[str]:
    """Each row's true class by name (by index where the archive names no classes)."""
    y_true = np.asarray(arrays["y_true"]).astype(np.int64)
    classes = arrays.get("classes")
    if classes is None:
        return [str(y) for y in y_true]
    return [str(np.asarray(classes)[y]) for y in y_true]


ARCHIVE_KEYS = ("record_ids", "y_true", "signal", "lengths", "fs_hz", "classes",
                *(f"{prefix}/{name}" for prefix in ("shift", "map")
                  for name in ("target_probability_before", "target_reached")))
"""What scoring reads from an explanations archive besides the scored maps (maps of unscored
methods stay on disk)."""


def needed_patterns() -> list[str]:
    """Archive keys scoring reads, as patterns: `ARCHIVE_KEYS` and every scored map's keys."""
    return [*(re.escape(k) for k in ARCHIVE_KEYS),
            *(k for m in scored_methods().values() for k in m.spec.keys)]


def scored_archives(
    artifacts: TrialArtifacts, *, data_truth: GroundTruth | None
) -> list[tuple[GroundTruth, dict[str, np.ndarray]]]:
    """The archives of one trial that have ground truth, each with its masks: the records the
    study explained for scoring (`scored_explanations.npz`; older studies: the gallery's
    `explanations.npz`) against ``data_truth`` (the study's data set, when it has masks) or
    the masks stored in the archive, and its `mitdb_explanations.npz` against the masks
    inside it."""
    found = []
    own = artifacts.scored_explanations or artifacts.explanations
    if data_truth is not None and own is not None:
        found.append((data_truth, read_explanations(own, patterns=needed_patterns())))
    elif own is not None:
        # Data sets whose items carry annotated abnormal-beat masks (MIT-BIH segments) store
        # them in the archive itself, aligned with the signals.
        arrays = read_explanations(own, patterns=[*needed_patterns(), MITDB_MASK_KEY])
        if MITDB_MASK_KEY in arrays:
            found.append((archive_ground_truth(arrays, path=own), arrays))
    if artifacts.mitdb_explanations is not None:
        arrays = read_explanations(artifacts.mitdb_explanations,
                                   patterns=[*needed_patterns(), MITDB_MASK_KEY])
        found.append((mitdb_ground_truth(arrays, path=artifacts.mitdb_explanations), arrays))
    return found


def explanation_scores(study: StudyData) -> pd.DataFrame:
    """Per trial, source, method and record: hit, mass_ratio, grade (and the quantities behind
    them).

    Empty (with the columns) where no trial has explanations with ground truth: neither the
    data set has masks nor the study wrote MIT-BIH explanations.
    """
    columns = ["trial", "source", "method", *SCORE_COLUMNS, "true_class"]
    data_truth = find_ground_truth(study.data_dir)
    frames = []
    for trial_id, artifacts in study.artifacts.items():
        for truth, arrays in scored_archives(artifacts, data_truth=data_truth):
            frames.append(score_archive(arrays, truth).assign(trial=trial_id, source=truth.name))
    return _concat(frames, columns=columns)


def summarise_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """Per trial, source, method and true class: n records, hit rate with its Wilson 95 %
    interval against the chance hit rate, mean mass ratio (1.0 = chance), grade shares and
    whether it is at chance (the hit interval reaches the chance rate and the mean mass ratio
    is within `CHANCE_TOLERANCE`). Scores without ``true_class`` count as one class, "all"."""
    if "true_class" not in scores.columns:
        scores = scores.assign(true_class="all")
    rows = []
    for (trial, source, method, true_class), group in scores.groupby(
            ["trial", "source", "method", "true_class"], sort=False):
        hits = int(group["hit"].astype(bool).sum())
        low, high = wilson_interval(hits, len(group))
        chance = float(group["chance_hit"].mean())
        mass = float(group["mass_ratio"].mean())  # NaN (no-mass maps) skipped
        shares = group["grade"].value_counts(normalize=True)
        rows.append({
            "trial": trial, "source": source, "method": method, "true_class": true_class,
            "n_records": len(group),
            "hit_rate": hits / len(group), "hit_ci_low": low, "hit_ci_high": high,
            "chance_hit_rate": chance, "mass_ratio_mean": mass,
            **{f"grade_{g}": float(shares.get(g, 0.0)) for g in GRADES},
            "at_chance": bool(low <= chance and not mass > CHANCE_TOLERANCE),
        })
    columns = ["trial", "source", "method", "true_class", "n_records", "hit_rate",
               "hit_ci_low", "hit_ci_high", "chance_hit_rate", "mass_ratio_mean",
               *(f"grade_{g}" for g in GRADES), "at_chance"]
    return pd.DataFrame(rows, columns=columns)


def _concat(frames: list[pd.DataFrame], *, columns: list[str]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


# ---- section ------------------------------------------------------------------------------------


def explanation_scores_section(study: StudyData) -> Section:
    """Tables of per-record scores and their per-method summary, with honest notes."""
    truth = find_ground_truth(study.data_dir)
    notes = [_data_set_note(study, truth), _mitdb_note(study)]
    scores = explanation_scores(study)
    if scores.empty:
        scorable = any((truth is not None and a.explanations is not None)
                       or a.mitdb_explanations is not None for a in study.artifacts.values())
        if scorable:
            notes.insert(0, "None of the explained records or windows has an abnormal beat "
                            "within its length (all masks are 0: N and ~ only), so nothing is "
                            "scored.")
        return Section(title="Explanation scores", notes=notes)
    summary = summarise_scores(scores)
    summary.insert(2, "domain", summary["source"].map(lambda source: DOMAINS.get(source, IN)))
    sources = Sources(study=study.name, trials=tuple(sorted(scores["trial"].unique())))
    notes = [_method_notes(), _definitions(), *_chance_notes(summary), *notes]
    return Section(
        title="Explanation scores",
        tables=[
            Table(name="explanation_scores_summary", frame=summary, sources=sources,
                  title="Explanation scores per source and method: pointing-game hit rate "
                        "(Wilson 95 % interval; chance = widened abnormal fraction), mean mass "
                        "ratio on abnormal beats (1 = chance) and grade shares I:II:III"),
            Table(name="explanation_scores", frame=scores, sources=sources,
                  title="Explanation scores per trial, source, method and record (or MIT-BIH "
                        "window) with an abnormal beat"),
        ],
        notes=notes,
    )


def _data_set_note(study: StudyData, truth: GroundTruth | None) -> str:
    """Whether and against what the study's own records are scored."""
    if truth is None:
        return (f"No ground truth in the study's data set: {study.data_dir} has no "
                "abnormal-beat annotations (real CinC 2017 records have none), so its "
                "explanations are shown in the galleries but cannot be scored.")
    explained = [t for t, a in study.artifacts.items() if a.explanations is not None]
    if not explained:
        return (f"The data set has ground truth ({truth.source}) but no trial has "
                "explanations.npz, so its records are not scored.")
    return (f"Source {truth.name}: the records in explanations.npz, scored against "
            f"{truth.source} ({truth.fs_hz:g} Hz, mapped to the study rate by nearest sample); "
            "records whose mask is all 0 (N, ~) are skipped.")


def _mitdb_note(study: StudyData) -> str:
    """Whether and against what MIT-BIH windows are scored."""
    trials = [t for t, a in study.artifacts.items() if a.mitdb_explanations is not None]
    if not trials:
        directory = study.record.get("plan", {}).get("mitdb_dir")
        why = (f"the study ran with --mitdb-dir {directory} but wrote none (no window with an "
               "abnormal beat there, or no best trial with a checkpoint)" if directory else
               "the study ran without --mitdb-dir")
        return (f"No MIT-BIH explanations (trials/<id>/mitdb_explanations.npz): {why}, so no "
                "model was scored on annotated MIT-BIH beats.")
    return (f"Source {MITDB_SOURCE}: MIT-BIH windows with at least one annotated "
            f"abnormal beat, explained by trial(s) {', '.join(trials)} (mitdb_explanations.npz, "
            "written with --mitdb-dir), against the masks stored with them (the span of every "
            "non-normal beat, from the beat annotations, at the study rate). Every window is "
            "labelled O (other rhythm), so true-class maps (CAM) are those of O.")


def _definitions() -> str:
    return (
        "Hit: the map's maximum lies within "
        f"{TOLERANCE_S * 1000:.0f} ms of an abnormal beat. Mass ratio: share of the map's mass "
        "on abnormal beats / abnormal share of the record. Grade (from the map's top "
        f"{TOP_FRACTION:.0%} of samples): I when more than {GRADE_I_SHARE:.0%} of their mass is "
        "inside abnormal beats and above chance, II when above chance (more than "
        f"{CHANCE_TOLERANCE:g} x the abnormal share) but not I, III otherwise (no contrast). "
        "Padding is ignored."
    )


def _method_notes() -> str:
    return "Maps scored: " + "; ".join(f"{name}: {m.note}"
                                       for name, m in scored_methods().items())


def _chance_notes(summary: pd.DataFrame) -> list[str]:
    at_chance = summary[summary["at_chance"]]
    if at_chance.empty:
        return []
    listed = ", ".join(f"{r.method} (trial {r.trial}, {r.source}, class {r.true_class}, "
                       f"n={r.n_records})"
                       for r in at_chance.itertuples())
    everything = " All methods are at chance." if len(at_chance) == len(summary) else ""
    return [f"At chance (the hit-rate interval reaches the chance rate and the mass ratio is "
            f"within {CHANCE_TOLERANCE:g} x chance): {listed}; these maps do not point at the "
            f"abnormal beats better than a random map would.{everything}"]
