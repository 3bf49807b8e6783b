"""What a study will cost, from a short measured probe: wall time and CPU/GPU-hours.

A few configurations are drawn from the space the way trials get them, and each is timed on
the study's own records for a few training steps and one evaluation pass with the trainer's
own loader, epoch step and predict (so batching, padding, autocast and thread count are those
of a trial). The time per computed (padded) sample is scaled to one trial epoch (train on
(folds-1)/folds of the records, evaluate one fold). The study's epochs come from ASHA's
expected epochs per configuration (`expected_epochs`); the model and its limits are written up
in docs/estimating-cost.md. `bench.scale` projects full studies with the same functions.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import torch

from data_io.records import EcgArrays
from models import FocalLoss, build_model
from models.convlstm import pretraining_config
from search_spaces import define_fixed, unflatten
from study.engine.config import TrainConfig, resolve_config
from study.engine.runtime import Runtime
from study.engine.trainer import Split, predict, split_loader, train_epoch
from study.tune.explanation_cost import EXPLANATION_SHARE, ExplanationEpochs
from study.tune.results import expected_epochs
from study.tune.spec import StudySpec
from study.tune.trainable import trial_config

NO_EXPLANATIONS = ExplanationEpochs()
"""A study that writes no explanations."""

STUDY_START_S = 15.0
"""Fixed cost of a local study: Ray start, first worker, files (measured by
`bench.study_overhead`; today's figure in bench/README.md)."""
TRIAL_START_S = 4.0
"""Per-trial cost besides its epochs: worker start, W&B offline run (bench/README.md)."""
ASYNC_ASHA_FACTOR = 1.8
"""Upper bound of the epochs Ray's asynchronous ASHA spends, relative to `expected_epochs`:
with a few dozen trials it lets early trials through, more than the synchronous model
counts (measured by `bench.early_stopping`; figures in bench/README.md)."""


@dataclass(frozen=True)
class EpochCost:
    """Measured cost of one model config, scaled to whole epochs."""

    train_s_per_sample: float  # seconds per computed (padded) sample, training step
    train_samples_per_record: float  # computed samples per record in a training epoch
    eval_s_per_sample: float
    eval_samples_per_record: float

    def epoch_seconds(self, *, records: int, n_folds: int) -> float:
        """One trial epoch: train on (folds-1)/folds of the records, evaluate the rest."""
        train = records * (n_folds - 1) / n_folds
        evaluate = records / n_folds
        return (train * self.train_samples_per_record * self.train_s_per_sample
                + evaluate * self.eval_samples_per_record * self.eval_s_per_sample)


def sample_configs(space: str, *, n: int, seed: int, spec: StudySpec) -> list[TrainConfig]:
    """``n`` resolved training configs drawn from the space like study trials get them."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    configs = []
    for _ in range(n):
        trial = study.ask()
        values = define_fixed(trial, space=space, fixed=spec.fixed_options)
        study.tell(trial, 0.0)
        # OptunaSearch hands Ray the sampled parameters plus define's fixed values, nested.
        configs.append(resolve_config(trial_config(unflatten({**trial.params, **values}),
                                                   spec=spec)))
    return configs


def computed_samples(loader) -> int:
    """Samples a loader's batches hold, padding included (what the model computes on)."""
    return sum(batch["x"].numel() for batch in loader)


def _model_parts(cfg: TrainConfig, *, n_classes: int, n_leads: int, runtime: Runtime):
    torch.manual_seed(cfg.seed)
    model = build_model({"n_classes": n_classes, "n_leads": n_leads,
                         **cfg.model}).to(runtime.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr,
                                 weight_decay=cfg.optim.weight_decay)
    loss_fn = FocalLoss(gamma=cfg.loss.focal_gamma, alpha=None).to(runtime.device)
    scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.use_grad_scaler)
    return model, optimizer, loss_fn, scaler


def measure_epoch_cost(cfg: TrainConfig, *, arrays: EcgArrays, pool: np.ndarray,
                       steps: int, runtime: Runtime) -> tuple[EpochCost, Any]:
    """Time one warm-up step, then ``steps`` timed training steps and one evaluation pass.

    Returns the cost and the model (its ``config`` is needed for a pre-training trunk).

    Raises:
        ValueError: ``pool`` holds fewer than ``steps + 1`` batches of records.
    """
    model, optimizer, loss_fn, scaler = _model_parts(
        cfg, n_classes=len(arrays.classes), n_leads=arrays.n_leads, runtime=runtime)
    batch = cfg.optim.batch_size
    need = (steps + 1) * batch
    if need > len(pool):
        raise ValueError(f"pool of {len(pool)} records too small for {steps + 1} batches "
                         f"of {batch}")

    def train_seconds(indices: np.ndarray) -> tuple[float, int]:
        split = Split(arrays, indices)
        loader = split_loader(split, cfg=cfg, training=True, epoch=0)
        start = time.perf_counter()
        _, problem = train_epoch(model=model, loader=loader, loss_fn=loss_fn,
                                 optimizer=optimizer, scaler=scaler, runtime=runtime)
        seconds = time.perf_counter() - start
        if problem:
            raise RuntimeError(f"training step failed: {problem}")
        return seconds, computed_samples(split_loader(split, cfg=cfg, training=True, epoch=0))

    train_seconds(pool[:batch])  # warm-up: allocator, autocast caches, lazy init
    train_s, train_n = train_seconds(pool[batch:need])
    eval_split = Split(arrays, pool[:need])
    start = time.perf_counter()
    predict(model=model, split=eval_split, cfg=cfg, runtime=runtime)
    eval_s = time.perf_counter() - start
    eval_n = computed_samples(split_loader(eval_split, cfg=cfg, training=False, epoch=0))
    whole = Split(arrays, pool)
    cost = EpochCost(
        train_s_per_sample=train_s / train_n,
        train_samples_per_record=computed_samples(
            split_loader(whole, cfg=cfg, training=True, epoch=0)) / len(pool),
        eval_s_per_sample=eval_s / eval_n,
        eval_samples_per_record=computed_samples(
            split_loader(whole, cfg=cfg, training=False, epoch=0)) / len(pool),
    )
    return cost, model


@dataclass(frozen=True)
class ConfigCost:
    """One sampled configuration: seconds per trial epoch and per-trial pre-training."""

    epoch_s: float
    pretrain_s: float
    summary: str


def measure_config(cfg: TrainConfig, *, arrays: EcgArrays, pool: np.ndarray, steps: int,
                   runtime: Runtime, records: int, n_folds: int) -> ConfigCost:
    """Seconds per trial epoch of ``cfg`` on ``records`` records, plus the CNN pre-training a
    trial runs first."""
    cost, model = measure_epoch_cost(cfg, arrays=arrays, pool=pool, steps=steps,
                                     runtime=runtime)
    epoch_s = cost.epoch_seconds(records=records, n_folds=n_folds)
    pretrain_s = 0.0
    if cfg.pretrain_epochs:
        # As study.engine.trainer: a GMP-headed CNN with the same trunk, trained for
        # pretrain_epochs.
        pre_cfg = cfg.model_copy(update={"model": pretraining_config(model.config),
                                         "pretrain_epochs": 0})
        pre_cost, _ = measure_epoch_cost(pre_cfg, arrays=arrays, pool=pool, steps=steps,
                                         runtime=runtime)
        pretrain_s = cfg.pretrain_epochs * pre_cost.epoch_seconds(
            records=records, n_folds=n_folds)
    return ConfigCost(epoch_s=epoch_s, pretrain_s=pretrain_s, summary=describe_config(cfg))


def describe_config(cfg: TrainConfig) -> str:
    model = {k: v for k, v in cfg.model.items() if k != "name"}
    extra = f" pretrain={cfg.pretrain_epochs}" if cfg.pretrain_epochs else ""
    return f"batch={cfg.optim.batch_size} {model}{extra}"


@dataclass(frozen=True)
class StudyEstimate:
    """Projected cost of a study: seconds of trial time and of wall-clock, low/mid/high."""

    trial_seconds: tuple[float, float, float]  # summed over trials (device-seconds / share)
    wall_seconds: tuple[float, float, float]
    epoch_seconds: tuple[float, float, float]  # min, mean, max over the probed configs
    n_probed: int
    stage_seconds: dict[str, float]  # the middle case's wall seconds per stage


def estimate_study(costs: list[ConfigCost], *, n_configs: int, milestones: list[int],
                   reduction_factor: float, concurrency: int, top_k: int,
                   n_folds: int, n_final: int,
                   explain_epochs: ExplanationEpochs = NO_EXPLANATIONS) -> StudyEstimate:
    """Search (S configs with ASHA's expected epochs), CV (top K on ``n_folds`` folds, full
    budget) and the final training of ``n_final`` configurations scored on the test set, packed
    on ``concurrency`` slots, then the explanations, one trial after another in the driver
    (``explain_epochs``: their cost in trial epochs, the scored records within the time
    budget, `study.tune.explanation_cost`); low uses the
    cheapest probed config and the expected epochs, high the most expensive and
    `ASYNC_ASHA_FACTOR` times the epochs."""
    max_epochs = milestones[-1]
    epochs = expected_epochs(milestones=milestones, reduction_factor=reduction_factor)
    early = len(milestones) > 1
    epoch_s = [c.epoch_s for c in costs]
    pretrain = statistics.mean(c.pretrain_s for c in costs)
    cases = (
        (min(epoch_s), epochs),
        (statistics.mean(epoch_s), epochs),
        (max(epoch_s), min(epochs * ASYNC_ASHA_FACTOR, max_epochs) if early else epochs),
    )
    trial_totals, walls, stages = [], [], []
    for per_epoch, n_epochs in cases:
        full_trial = max_epochs * per_epoch + pretrain + TRIAL_START_S
        search = n_configs * (n_epochs * per_epoch + pretrain + TRIAL_START_S)
        cv = top_k * n_folds * full_trial
        slots = max(concurrency, 1)
        search_wall = max(search / min(slots, n_configs), full_trial)
        cv_wall = math.ceil(top_k * n_folds / slots) * full_trial if top_k else 0.0
        final = n_final * full_trial
        final_wall = math.ceil(n_final / slots) * full_trial
        explain = explain_epochs.seconds(
            per_epoch=per_epoch, before_s=STUDY_START_S + search_wall + cv_wall + final_wall)
        trial_totals.append(search + cv + final)
        walls.append(STUDY_START_S + search_wall + cv_wall + final_wall + explain)
        stages.append({"search": STUDY_START_S + search_wall, "cross-validation": cv_wall,
                       "explanations": explain, "final training": final_wall})
    return StudyEstimate(trial_seconds=tuple(trial_totals), wall_seconds=tuple(walls),
                         epoch_seconds=(min(epoch_s), statistics.mean(epoch_s), max(epoch_s)),
                         n_probed=len(costs), stage_seconds=stages[1])


PROBE_CONFIGS = 3
"""At most this many sampled configurations are timed ..."""
PROBE_BUDGET_S = 45.0
"""... and no further one once the probe has run this long (the first is always timed)."""
PROBE_STEPS = 2
PROBE_POOL = 96
PROBE_SYNTHETIC_RECORDS = 64


def probe_data(plan: Any, spec: StudySpec) -> tuple[EcgArrays, int, str, float]:
    """Items to time on, the number of items the study trains on, where they came from
    (with that number, named as the data set names its items) and the trial epochs its
    explanations cost (`study.tune.explanation_cost`): the study's data through the cache, or (a
    dry run of a synthetic study whose records are not written yet) a few synthetic records
    written to a temporary folder, their items scaled to the study's record count (a
    synthetic MIT-BIH record holds thousands of beats)."""
    import tempfile
    from dataclasses import replace
    from pathlib import Path

    from data_io.datasets import load_dataset
    from data_io.errors import DatasetError
    from study.tune.data import load_arrays

    dataset = load_dataset(plan.dataset)
    try:
        dataset.check(Path(plan.data_dir))
    except DatasetError:
        if not dataset.generates:
            raise
    else:
        arrays = load_arrays(spec)
        return (arrays, len(arrays), f"{plan.data_dir}, {dataset.count(len(arrays))}",
                _explanation_epochs(plan, spec, arrays=arrays, items=len(arrays)))
    n = min(plan.synthetic_records, PROBE_SYNTHETIC_RECORDS)
    with tempfile.TemporaryDirectory(prefix="ecg-probe-") as tmp:
        dataset.generate(Path(tmp), n_records=n, seed=plan.seed)
        arrays = load_arrays(replace(spec, data_dir=tmp))
        items = round(len(arrays) * plan.synthetic_records / n)
        explain = _explanation_epochs(plan, replace(spec, data_dir=tmp), arrays=arrays,
                                      items=items)
    holds = (f" hold about {dataset.count(items)}" if dataset.item != "record" else "")
    return arrays, items, (f"{n} synthetic records generated for the probe; the study's "
                           f"{plan.synthetic_records} records{holds}"), explain


def _explanation_epochs(plan: Any, spec: StudySpec, *, arrays: EcgArrays,
                        items: int) -> ExplanationEpochs:
    """`study.tune.explanation_cost.study_explanation_epochs` of a study of ``items`` items, the
    probe's records standing for its validation fold."""
    from study.tune.explanation_cost import study_explanation_epochs

    n_val = max(1, round(items / plan.n_folds))
    return study_explanation_epochs(plan, spec, arrays=arrays, sample=np.arange(len(arrays)),
                                    n_train=items - n_val, n_val=n_val)


def probe(plan: Any, spec: StudySpec, *, milestones: list[int], device: str) -> list[str]:
    """Time the configurations the plan trains on its data and return the lines of the
    estimate (what was measured, wall time, CPU/GPU-hours, the range): up to
    ``PROBE_CONFIGS`` sampled from the space for a search, every preset for a study of fixed
    configurations."""
    from study.engine.runtime import select_runtime

    started = time.perf_counter()
    arrays, records, source, explain_epochs = probe_data(plan, spec)
    rng = np.random.default_rng(plan.seed)
    pool = rng.permutation(len(arrays))[:PROBE_POOL]
    runtime = select_runtime(device=device, amp=True)
    threads = torch.get_num_threads()
    fixed = plan.fixed_configurations
    configs = (preset_configs(plan.presets, spec=spec, space=plan.space) if fixed else
               sample_configs(plan.space, n=PROBE_CONFIGS, seed=plan.seed, spec=spec))
    # A trial gets cpus_per_trial threads (Ray sets OMP_NUM_THREADS); time it the same way.
    torch.set_num_threads(max(1, int(plan.cpus_per_trial)))
    try:
        costs = []
        for cfg in configs:
            if costs and not fixed and time.perf_counter() - started > PROBE_BUDGET_S:
                break
            batch = cfg.optim.batch_size
            # A data set smaller than two batches is timed on its records repeated.
            cfg_pool = pool if len(pool) >= 2 * batch else np.resize(pool, 2 * batch)
            steps = max(1, min(PROBE_STEPS, len(cfg_pool) // batch - 1))
            costs.append(measure_config(cfg, arrays=arrays, pool=cfg_pool, steps=steps,
                                        runtime=runtime, records=records,
                                        n_folds=plan.n_folds))
    finally:
        torch.set_num_threads(threads)
    slots = plan.concurrency
    if not plan.address:
        import os

        slots = min(slots, max(1, int((os.cpu_count() or 1) // plan.cpus_per_trial)))
    per_device = plan.gpus_per_trial if runtime.device.type == "cuda" else plan.cpus_per_trial
    unit = "GPU-hours" if runtime.device.type == "cuda" else "CPU-hours"
    measured = (f"on {runtime.device} ({source}); probe took "
                f"{time.perf_counter() - started:.0f} s")
    if fixed:
        return _fixed_lines(plan, costs, slots=slots, per_device=per_device, unit=unit,
                            measured=measured, explain_epochs=explain_epochs)
    found = estimate_study(costs, n_configs=plan.num_samples, milestones=milestones,
                           reduction_factor=plan.reduction_factor, concurrency=slots,
                           top_k=n_cv(plan), n_folds=len(plan.cv_folds),
                           n_final=n_final(plan), explain_epochs=explain_epochs)
    low, mid, high = found.wall_seconds
    hours = [s * per_device / 3600 for s in found.trial_seconds]
    e_low, e_mean, e_high = found.epoch_seconds
    epochs = expected_epochs(milestones=milestones, reduction_factor=plan.reduction_factor)
    return [
        f"estimate: {_hms(mid)} wall (range {_hms(low)} to {_hms(high)}) on {slots} "
        f"concurrent trial(s); {hours[1]:.2f} {unit} (range {hours[0]:.2f} to {hours[2]:.2f})",
        f"  from a probe of {found.n_probed} sampled configuration"
        f"{'' if found.n_probed == 1 else 's'} {measured}: {e_mean:.1f} s per trial epoch "
        f"(min {e_low:.1f}, max {e_high:.1f})",
        f"  model: {plan.num_samples} configs x {epochs:.2f} "
        + (f"expected epochs (ASHA; up to x{ASYNC_ASHA_FACTOR:g} with asynchronous promotion)"
           if len(milestones) > 1 else "epochs (no early stopping)")
        + (f" + top {plan.cv_top_k}{_baseline_text(plan)} x {len(plan.cv_folds)} folds x "
           f"{plan.max_epochs} epochs" if plan.cv_top_k else "")
        + (f" + {n_final(plan)} final training(s) x {plan.max_epochs} epochs"
           if n_final(plan) else "")
        + f", {TRIAL_START_S:g} s start per trial, {STUDY_START_S:g} s per study"
        + _explanation_text(plan, explain_epochs),
        "  stages: " + stage_shares(found.stage_seconds),
    ]


def stage_shares(seconds: dict[str, float]) -> str:
    """``search 8 min (31 %), cross-validation 12 min (46 %), ...``: the stages that take
    time, with their shares of the whole."""
    total = sum(seconds.values()) or 1.0
    return ", ".join(f"{name} {_hms(s)} ({100 * s / total:.0f} %)"
                     for name, s in seconds.items() if s > 0)


def _explanation_text(plan: Any, explain_epochs: ExplanationEpochs) -> str:
    """The estimate's account of the explanation stage (docs/estimating-cost.md)."""
    left_out = [name for name, on in (("sanity checks", plan.explain_sanity),
                                      ("MIT-BIH explanations", plan.mitdb_dir)) if on]
    return (f" + explanations of the best {plan.explain_top} in the driver, "
            f"{explain_epochs.fixed:.1f} trial epochs of passes"
            + (f" + scored records within {EXPLANATION_SHARE:.0%} of the study's time (all of "
               f"them: {explain_epochs.budgeted:.1f} epochs)" if explain_epochs.budgeted else "")
            + (f" ({' and '.join(left_out)} not included)" if left_out else ""))


def preset_configs(presets: tuple[str, ...], *, spec: StudySpec, space: str
                   ) -> list[TrainConfig]:
    """The resolved training config of each preset, as a fixed-configuration study trains it
    (its published training, then the study's budget and overrides)."""
    from study.engine.protocols import study_preset_config

    return [resolve_config(spec.trial_config(study_preset_config(name, space=space)))
            for name in presets]


def estimate_fixed(costs: list[ConfigCost], *, n_folds: int, max_epochs: int,
                   concurrency: int, n_final: int,
                   explain_epochs: ExplanationEpochs = NO_EXPLANATIONS) -> tuple[float, float]:
    """(trial seconds, wall seconds) of a study of fixed configurations: every configuration
    on ``n_folds`` folds for ``max_epochs`` epochs (no early stopping), then retrained
    ``n_final`` times (0 or 1 each) on all non-test records, packed on ``concurrency`` slots,
    then ``explain_epochs`` trial epochs (at the mean epoch time) of explanations."""
    runs = [c.epoch_s * max_epochs + c.pretrain_s + TRIAL_START_S for c in costs]
    slots = max(concurrency, 1)
    stage_walls = []
    trial_seconds = 0.0
    for n_runs in (n_folds, n_final):
        if not n_runs:
            continue
        work = [r for r in runs for _ in range(n_runs)]
        trial_seconds += sum(work)
        stage_walls.append(max(sum(work) / min(slots, len(work)), max(work)))
    before = STUDY_START_S + sum(stage_walls)
    explain = explain_epochs.seconds(per_epoch=statistics.mean(c.epoch_s for c in costs),
                                     before_s=before)
    return trial_seconds, STUDY_START_S + sum(stage_walls) + explain


def _fixed_lines(plan: Any, costs: list[ConfigCost], *, slots: int, per_device: float,
                 unit: str, measured: str,
                 explain_epochs: ExplanationEpochs) -> list[str]:
    folds = len(plan.cv_folds) if plan.cv_all_folds else 1
    finals = 1 if plan.test != "none" else 0
    trial_s, wall_s = estimate_fixed(costs, n_folds=folds, max_epochs=plan.max_epochs,
                                     concurrency=slots, n_final=finals,
                                     explain_epochs=explain_epochs)
    per_preset = ", ".join(f"{name} {c.epoch_s:.1f} s"
                           for name, c in zip(plan.presets, costs, strict=True))
    n = len(plan.presets)
    return [
        f"estimate: {_hms(wall_s)} wall on {slots} concurrent trial(s); "
        f"{trial_s * per_device / 3600:.2f} {unit}",
        f"  from timing each of the {n} configuration{'s' if n != 1 else ''} {measured}: "
        f"per trial epoch {per_preset}",
        f"  model: {n} configuration{'s' if n != 1 else ''} x {folds} fold"
        f"{'s' if folds != 1 else ''} x {plan.max_epochs} epochs (no early stopping)"
        + (f" + {n} final training{'s' if n != 1 else ''} x {plan.max_epochs} epochs"
           if finals else "")
        + f", {TRIAL_START_S:g} s start per trial, {STUDY_START_S:g} s per study"
        + _explanation_text(plan, explain_epochs),
    ]


def n_final(plan: Any) -> int:
    """Configurations retrained and scored on the test set when the search ends (the
    ``--baseline`` presets among them)."""
    return max(plan.cv_top_k, 1) + len(plan.baseline) if plan.test != "none" else 0


def n_cv(plan: Any) -> int:
    """Configurations cross-validated when the search ends (the ``--baseline`` presets among
    them); none without ``--cv-top-k``."""
    return plan.cv_top_k + len(plan.baseline) if plan.cv_top_k else 0


def _baseline_text(plan: Any) -> str:
    return f" + {len(plan.baseline)} baseline" if plan.baseline else ""


def _hms(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes >= 60:
        return f"{minutes // 60} h {minutes % 60:02d} min"
    return f"{max(minutes, 1)} min"
