"""What a trial's explanations cost, counted in model passes over samples and priced at the
measured seconds of a training epoch, so the dry-run estimate and the running ETA include them.

The count: per explained record, each method's spec (`study.explanation_specs`) says how
its passes are counted (`COST_RULES`): one forward pass (the family's maps), one per
occluded window (occlusion), forward and backward per quadrature point (integrated
gradients) or optimisation step (the shift mask, only for records not predicted normal).
A training epoch is one forward and backward pass over its computed samples plus an
evaluation pass. docs/estimating-cost.md compares the count with
measured explanation stages.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from data_io.batching import BatchingOptions, batching_mode
from data_io.datasets import load_dataset
from data_io.records import EcgArrays
from study.engine.config import Data, TrainConfig, resolve_config
from study.explain.artifacts import MaskSource, gallery_size, with_abnormal_beats
from study.explain.explanation_methods import study_settings
from study.explanation_specs import MethodSpec, SpecError, method_specs
from study.tune.data import fold_split, mask_source

BACKWARD_PASSES = 2.0
"""A backward pass costs about two forward passes (convolutions and LSTMs alike)."""
STEP_PASSES = 1.0 + BACKWARD_PASSES
"""One forward and one backward pass."""


def _windows(settings: Mapping[str, Any], *, samples: float, fs_hz: float) -> float:
    window = max(1, round(settings["window_s"] * fs_hz))
    stride = max(1, round(settings["stride_s"] * fs_hz))
    return max(math.ceil((samples - window) / stride), 0) + 1.0


def _once(settings: Mapping[str, Any], *, samples: float, fs_hz: float) -> float:
    return 1.0


def _per_step(settings: Mapping[str, Any], *, samples: float, fs_hz: float) -> float:
    return settings["steps"] * STEP_PASSES


COST_RULES: Mapping[str, Callable[..., float]] = MappingProxyType({
    "once": _once,
    "per_window": _windows,
    "per_step": _per_step,
})
"""A method spec's ``cost`` -> forward-pass equivalents over one record of ``samples``
samples at ``fs_hz``, given the method's settings: one pass, one per occluded window
(``window_s``, ``stride_s``), or a forward and a backward pass per step (``steps``)."""


def cost_rule(spec: MethodSpec) -> Callable[..., float]:
    """The `COST_RULES` entry of ``spec``.

    Raises:
        SpecError: an unknown rule (the message names the spec file and the known rules).
    """
    if spec.cost not in COST_RULES:
        raise SpecError(f"{spec.path}: cost {spec.cost!r} is not one of {sorted(COST_RULES)}")
    return COST_RULES[spec.cost]


@dataclass(frozen=True)
class ExplanationLoad:
    """One explained trial's work, as forward-pass samples, beside a training epoch's.

    Attributes:
        records: records explained (the gallery and the scored ones).
        samples_by_method: forward-pass samples of each method over those records.
        epoch_samples: forward-pass samples of one trial epoch (training and evaluation).
    """

    records: int
    samples_by_method: Mapping[str, float]
    epoch_samples: float
    gallery: int = 0

    @property
    def epochs(self) -> float:
        """The explanations' cost in trial epochs."""
        return sum(self.samples_by_method.values()) / self.epoch_samples

    def epochs_of(self, records: float) -> float:
        """The cost of ``records`` of these records, in trial epochs."""
        return self.epochs * records / self.records if self.records else 0.0


@dataclass(frozen=True)
class ExplanationEpochs:
    """What a study's explanations cost, in trial epochs: ``fixed`` (everything, with
    ``--explain-records N`` or ``all``) or, under the time budget (the default),
    ``budgeted`` (the galleries and every scored record) of which at least ``floor`` (a
    gallery record per class, one scored record besides the gallery's, per trial)
    is spent whatever the budget."""

    fixed: float = 0.0
    budgeted: float = 0.0
    floor: float = 0.0

    def seconds(self, *, per_epoch: float, before_s: float) -> float:
        """Seconds at ``per_epoch`` seconds per trial epoch in a study whose other stages take
        ``before_s`` seconds: the budgeted part stops at `explanation_budget_s`."""
        fixed = self.fixed * per_epoch
        budget = max(explanation_budget_s(before_s) - fixed, self.floor * per_epoch)
        return fixed + min(self.budgeted * per_epoch, budget)



EXPLANATION_SHARE = 0.25
"""The share of a study's wall time its explanations may take by default (the other stages:
those before them and the final training after, estimated): the gallery and then the
scored records stop when the explanations reach it (a gallery record per class and
one scored record besides the gallery's are always done)."""


def explanation_budget_s(before_s: float) -> float:
    """Seconds of explanations that are `EXPLANATION_SHARE` of a study whose other stages
    took ``before_s``."""
    return EXPLANATION_SHARE / (1.0 - EXPLANATION_SHARE) * before_s


def epoch_samples(*, lengths: np.ndarray, fs_hz: float, data: Data, batch_size: int,
                  n_train: float, n_eval: float) -> float:
    """Forward-pass samples of one trial epoch of ``n_train`` training and ``n_eval``
    evaluation records whose lengths are distributed as ``lengths``, batched as the training
    config's ``data`` section says (each side's mode plans the batches of ``lengths``)."""

    def per_record(mode: str, *, shuffle: bool) -> float:
        plan = batching_mode(mode)(BatchingOptions(
            lengths=lengths, fs_hz=fs_hz, batch_size=batch_size, shuffle=shuffle, seed=0,
            epoch=0, fixed_length_s=data.fixed_length_s, crop_s=data.crop_s,
            bucket_size=0))
        crop = plan.crop_samples or int(lengths.max())
        total = sum((plan.pad_to or int(np.minimum(lengths[rows], crop).max())) * len(rows)
                    for rows in plan.batch_sampler)
        return total / len(lengths)

    return (n_train * per_record(data.train_batching, shuffle=True) * STEP_PASSES
            + n_eval * per_record(data.eval_batching, shuffle=False))


def explanation_load(*, settings: Mapping[str, Mapping[str, Any]], fs_hz: float,
                     record_samples: float, n_classes: int, n_val: int, scored: int,
                     shift_share: float, epoch: float) -> ExplanationLoad:
    """The work of explaining one trial: the gallery of `study.explain.artifacts.select_records` (at
    most the ``n_val`` validation records), then
    ``scored`` records, all about ``record_samples`` long; ``shift_share``: the share of
    records a method that runs on records not predicted normal runs on (0 without a normal
    class);
    ``epoch``: `epoch_samples` of the trial."""
    gallery = min(n_val, gallery_size(n_classes))
    records = gallery + scored
    share = {"all": 1.0, "not_normal": shift_share}
    samples = {
        name: records * share[spec.runs_on] * record_samples
        * cost_rule(spec)(settings[name], samples=record_samples, fs_hz=fs_hz)
        for name, spec in method_specs().items()
    }
    return ExplanationLoad(records=records, samples_by_method=samples, epoch_samples=epoch,
                           gallery=gallery)


def trial_load(*, arrays: EcgArrays, sample: np.ndarray, n_train: float, n_val: int,
               masks: MaskSource | None, score_records: int | str | None,
               settings: Mapping[str, Mapping[str, Any]], cfg: TrainConfig,
               normal_class: int | None) -> ExplanationLoad:
    """`explanation_load` of a trial that trains on ``n_train`` records and explains its
    ``n_val`` validation records as `study.explain.artifacts.write_trial_artifacts` does (the
    gallery; with ``masks``, those with an abnormal beat, or ``score_records`` of them; every
    one for None or ``all``: the time budget is applied by `ExplanationEpochs`); the
    records at ``sample`` of ``arrays`` stand for both sides (their lengths, labels, beats).
    ``cfg``: a resolved training config (batching, batch size)."""
    lengths = arrays.lengths[sample]
    abnormal = (0.0 if masks is None or score_records == 0 else
                float(with_abnormal_beats(arrays, indices=sample, masks=masks).mean()))
    scored = round(abnormal * n_val)
    if isinstance(score_records, int):
        scored = min(scored, score_records)
    shift_share = (0.0 if normal_class is None else
                   float((arrays.labels[sample] != normal_class).mean()))
    epoch = epoch_samples(lengths=lengths, fs_hz=arrays.fs_hz, data=cfg.data,
                          batch_size=cfg.optim.batch_size, n_train=n_train, n_eval=n_val)
    return explanation_load(settings=settings, fs_hz=arrays.fs_hz,
                            record_samples=float(lengths.mean()),
                            n_classes=len(arrays.classes), n_val=n_val, scored=scored,
                            shift_share=shift_share, epoch=epoch)


def study_explanation_epochs(plan: Any, spec: Any, *, arrays: EcgArrays, sample: np.ndarray,
                             n_train: float, n_val: int) -> ExplanationEpochs:
    """Trial epochs the explanations of a study (`study.tune.plan.Plan`,
    `study.tune.spec.StudySpec`) cost: `trial_load` of each of its ``--explain-top`` trials,
    with its explanation settings (``--smoke``'s coarser ones included), score sample (or
    time budget) and data set's masks."""
    load = trial_load(arrays=arrays, sample=sample, n_train=n_train, n_val=n_val,
                      masks=mask_source(spec), score_records=plan.explain_records,
                      settings=study_settings(smoke=plan.smoke),
                      cfg=resolve_config(spec.trial_config({})),
                      normal_class=load_dataset(plan.dataset).normal_index)
    trials = min(plan.explain_top,
                 len(plan.presets) if plan.fixed_configurations else plan.num_samples)
    if plan.explain_records is not None:
        return ExplanationEpochs(fixed=load.epochs * trials)
    # the floors: one gallery record per class, one scored record besides the gallery's
    least = min(load.gallery, len(arrays.classes)) + min(load.records - load.gallery, 1)
    return ExplanationEpochs(budgeted=load.epochs * trials,
                             floor=load.epochs_of(least) * trials)


def fold_explanation_epochs(plan: Any, spec: Any) -> ExplanationEpochs:
    """`study_explanation_epochs` on the study's own validation fold (its data loaded; not
    with ``--explain-top 0``)."""
    if not plan.explain_top:
        return ExplanationEpochs()
    train, val = fold_split(spec, fold=plan.fold)
    return study_explanation_epochs(plan, spec, arrays=val.arrays, sample=val.indices,
                                    n_train=len(train.indices), n_val=len(val.indices))
