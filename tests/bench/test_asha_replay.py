"""The offline ASHA replay decides as Ray Tune's ASHA does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from bench.asha_replay import Curves, over_orders, replay, settings, shuffled


def _curves(rung: dict[str, list[float]], seconds: dict[str, list[float]] | None = None):
    order = list(rung)
    return Curves(order=order, rung={t: np.array(v) for t, v in rung.items()},
                  final={t: np.array(v) for t, v in rung.items()},
                  seconds={t: np.array((seconds or {}).get(t, [1.0] * len(v)))
                           for t, v in rung.items()})


def test_a_trial_below_the_rungs_cutoff_so_far_stops():
    # rf 2: the cutoff is the median of the scores recorded before the trial's.
    curves = _curves({"a": [0.5, 0.6], "b": [0.3, 0.9], "c": [0.6, 0.7], "d": [0.4, 0.8]})
    trained, stopped = replay(curves, rungs=[1], reduction_factor=2.0, mode="max",
                              concurrency=1)
    assert stopped == {"b", "d"}
    assert trained == {"a": 2, "b": 1, "c": 2, "d": 1}
    # Ranked on a loss (low is better) the same numbers stop the others.
    _, stopped = replay(curves, rungs=[1], reduction_factor=2.0, mode="min", concurrency=1)
    assert stopped == {"c"}


def test_concurrent_trials_reach_the_rung_in_the_order_of_their_epoch_times():
    # a's first epoch takes 10 s, b's 1 s: b is recorded first and a is compared with it.
    curves = _curves({"a": [0.5, 0.5], "b": [0.6, 0.6]}, {"a": [10.0, 1.0], "b": [1.0, 1.0]})
    _, stopped = replay(curves, rungs=[1], reduction_factor=2.0, mode="max", concurrency=2)
    assert stopped == {"a"}
    _, stopped = replay(curves, rungs=[1], reduction_factor=2.0, mode="max", concurrency=1)
    assert stopped == set()  # in sequence a goes first and b, above it, goes on


def test_replaying_a_real_asha_study_repeats_its_decisions(finished_study):
    study_dir, _ = finished_study
    record = json.loads((study_dir / "study.json").read_text())
    plan, rung = record["plan"], record["asha_rung"]
    frame = pd.read_parquet(study_dir / "trials.parquet")
    assert plan["scheduler"] == "asha" and plan["concurrency"] == 1
    curves = Curves(
        order=list(frame.groupby("trial_id")["trial_number"].first().sort_values().index),
        rung={t: g.sort_values("epoch")[rung["metric"]].to_numpy(float)
              for t, g in frame.groupby("trial_id")},
        final={}, seconds={t: np.ones(len(g)) for t, g in frame.groupby("trial_id")})
    rungs = [m for m in record["asha_milestones"] if m < plan["max_epochs"]]
    trained, stopped = replay(curves, rungs=rungs, reduction_factor=plan["reduction_factor"],
                              mode=rung["mode"], concurrency=1)
    last = frame.sort_values("epoch").drop_duplicates("trial_id", keep="last")
    assert stopped == set(last.loc[last["stop_reason"] == "early_stopped", "trial_id"])
    assert stopped  # the study stopped some: the comparison means something
    assert trained == dict(zip(last["trial_id"], last["epoch"].astype(int), strict=True))


def test_settings_report_epochs_best_and_top3_against_the_baseline():
    rows = []
    for n, (trial, curve) in enumerate({"a": [0.5, 0.6, 0.7], "b": [0.3, 0.4, 0.9],
                                        "c": [0.6, 0.6, 0.6], "d": [0.2, 0.2, 0.2]}.items()):
        rows += [{"trial_id": trial, "trial_number": n, "epoch": e + 1, "val/s": v,
                  "val/loss": 1 - v, "seconds": 1.0} for e, v in enumerate(curve)]
    (result,) = settings(pd.DataFrame(rows), study_metric="val/s", study_mode="max",
                         grace_periods=[1], rung_metrics=["val/s"], reduction_factor=2.0,
                         concurrency=1)
    # rung 1 stops b (0.3 < 0.5) and d; rung 2 (epoch 2) stops nothing recorded after a, c.
    assert result.baseline_best == 0.9 and result.top3_stopped == 1
    assert result.best == 0.7 and round(result.gap, 3) == 0.2
    assert result.epochs == 3 + 1 + 3 + 1 and result.baseline_epochs == 12


def test_other_start_orders_change_the_decisions_and_are_summarised():
    rows = []
    for n, (trial, curve) in enumerate({"a": [0.5, 0.6, 0.7], "b": [0.3, 0.4, 0.9],
                                        "c": [0.6, 0.6, 0.6], "d": [0.2, 0.2, 0.2]}.items()):
        rows += [{"trial_id": trial, "trial_number": n, "epoch": e + 1, "val/s": v,
                  "seconds": 1.0} for e, v in enumerate(curve)]
    frame = pd.DataFrame(rows)
    curves = _curves({"a": [1.0], "b": [1.0], "c": [1.0]})
    assert shuffled(curves, seed=0) is curves
    assert sorted(shuffled(curves, seed=3).order) == ["a", "b", "c"]
    kwargs = {"study_metric": "val/s", "study_mode": "max", "grace_periods": [1],
              "rung_metrics": ["val/s"], "reduction_factor": 2.0, "concurrency": 1}
    gaps = {settings(frame, **kwargs, order_seed=k)[0].gap for k in range(20)}
    assert 0.0 in gaps and max(gaps) > 0  # b is kept when it reports first, stopped otherwise
    (summary,) = over_orders(frame, **kwargs, orders=20)
    each = [settings(frame, **kwargs, order_seed=k)[0] for k in range(20)]
    assert summary.n_orders == 20
    assert summary.best_kept == sum(r.gap == 0 for r in each)
    assert summary.gap_worst == max(r.gap for r in each)
    assert summary.epoch_share == np.mean([r.epoch_share for r in each])


def _default_replay(tmp_path, baseline: str, *, max_epochs: int, orders: int):
    """The study defaults (grace period, rung metric) for ``max_epochs``, and their replay
    over ``orders`` start orders of a stored real-records baseline: {grace period: summary}
    for grace 1 and the default, both ranked on the default rung metric."""
    from study import run
    from study.tune import plan as plan_module

    frame = pd.read_parquet(Path(__file__).resolve().parents[2] / "bench/results" / baseline
                            / "trials.parquet")
    args = run.build_parser().parse_args(
        ["--space", "cnn", "--dataset", "synthetic", "--name", "g", "--study-dir",
         str(tmp_path / "study"), "--wandb-mode", "disabled", "--max-epochs", str(max_epochs)])
    plan = plan_module.make_plan(args, wandb_mode="disabled")
    assert plan.rung == ("val/auroc_macro", "max")
    return plan.grace_period, {s.grace_period: s for s in over_orders(
        frame, study_metric="val/f1_cinc", study_mode="max",
        grace_periods=[1, plan.grace_period], rung_metrics=[plan.rung[0]],
        reduction_factor=plan.reduction_factor, concurrency=2, orders=orders)}


def test_the_defaults_keep_the_best_of_the_stored_6_epoch_real_records_baseline(tmp_path):
    # bench/results/asha_baseline_cnn_warmup: the `cnn` space on 600 real CinC records, 6 epochs
    # under today's training defaults (one-epoch warm-up), whose replay chose the grace period.
    grace, summary = _default_replay(tmp_path, "asha_baseline_cnn_warmup", max_epochs=6,
                                     orders=10)
    assert grace == 2
    assert summary[grace].best_kept == 10 and summary[grace].gap_worst == 0.0
    assert summary[1].gap_mean > 0.01  # a rung at the warm-up's end loses the best in some orders


def test_the_defaults_meet_the_target_on_the_stored_12_epoch_real_records_baseline(tmp_path):
    # bench/results/asha_baseline_cnn_12epochs: the same 24 configurations for the default
    # budget of 12 epochs. Target: the best within 0.01 of the baseline's at <= 45 % of its epochs.
    grace, summary = _default_replay(tmp_path, "asha_baseline_cnn_12epochs", max_epochs=12,
                                     orders=20)
    assert summary[grace].best_kept >= 19 and summary[grace].gap_mean <= 0.01
    assert summary[grace].epoch_share <= 0.45
