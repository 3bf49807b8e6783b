"""Replay ASHA's decisions offline on learning curves trained without early stopping.

    python -m bench.asha_replay --study runs/BASELINE [--grace-periods 1 2 3]
        [--rung-metrics val/f1_cinc val/loss val/auroc_macro] [--concurrency 2] [--orders 50]
        [--json]

A baseline study (``--scheduler fifo``: every trial trains the full budget) holds each
configuration's whole learning curve. For each setting (grace period x the metric ASHA ranks
the rungs on) this replays Ray Tune's asynchronous successive halving (one bracket, Ray's
cutoff: the (1 - 1/rf) percentile of the scores recorded at the rung so far) over those
curves: trials start in the order the baseline started them, ``--concurrency`` at a time, and
each epoch ends after the seconds it took in the baseline, so rung decisions happen in the
order they would have. A stopped trial frees its slot for the next one. Printed per setting:
the epochs ASHA would have spent against the baseline's, the best study-metric score among the
trials it lets finish against the baseline's best, and how many of the baseline's top 3 it
stops. ``--orders N`` replays each setting under N start orders too (the baseline's, then
seeded shuffles) and prints the mean epoch share, the mean and worst gap and how often the best
was kept: asynchronous decisions depend on which trial reports first. One expensive baseline
serves every setting; confirm the chosen one with a real run.
"""

from __future__ import annotations

import sys

if not __package__:
    sys.exit("run it from the repository root as: python -m bench.asha_replay")

import argparse
import heapq
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from study.cli_choices import RUNG_METRICS
from study.tune.results import asha_milestones

MODES = dict(mode for mode in RUNG_METRICS.values() if mode)
"""The rung metrics a study can rank on (`study.tune.plan.RUNG_METRICS`) -> "min" or "max"; any
other metric (the study's own) is ranked high-is-better."""


@dataclass(frozen=True)
class Curves:
    """Per trial (in start order): the rung metric and the study metric per epoch, and the
    seconds each epoch took."""

    order: list[str]
    rung: dict[str, np.ndarray]
    final: dict[str, np.ndarray]
    seconds: dict[str, np.ndarray]


@dataclass(frozen=True)
class Outcome:
    grace_period: int
    rung_metric: str
    epochs: int
    baseline_epochs: int
    epoch_share: float
    best: float
    baseline_best: float
    gap: float
    top3_stopped: int
    stopped: int


def read_curves(frame: pd.DataFrame, *, rung_metric: str, study_metric: str) -> Curves:
    """The curves of a study's `trials.parquet` rows, trials in Tune's start order."""
    frame = frame.sort_values(["trial_id", "epoch"])
    order = list(frame.groupby("trial_id")["trial_number"].first().sort_values().index)
    grouped = {t: g for t, g in frame.groupby("trial_id")}
    return Curves(
        order=order,
        rung={t: grouped[t][rung_metric].to_numpy(float) for t in order},
        final={t: grouped[t][study_metric].to_numpy(float) for t in order},
        seconds={t: grouped[t]["seconds"].to_numpy(float) for t in order},
    )


def replay(curves: Curves, *, rungs: list[int], reduction_factor: float, mode: str,
           concurrency: int) -> tuple[dict[str, int], set[str]]:
    """Epochs each trial trains under ASHA (its whole curve when no rung stops it), and the
    trials a rung stopped."""
    sign = 1.0 if mode == "max" else -1.0
    recorded: dict[int, list[float]] = {r: [] for r in rungs}
    queue = list(curves.order)
    trained: dict[str, int] = {}
    stopped: set[str] = set()
    events: list[tuple[float, int, str, int]] = []  # (time, start index, trial, epoch)
    started = 0

    def start(trial: str, now: float) -> None:
        nonlocal started
        heapq.heappush(events, (now + curves.seconds[trial][0], started, trial, 1))
        started += 1

    for _ in range(min(concurrency, len(queue))):
        start(queue.pop(0), 0.0)
    while events:
        now, index, trial, epoch = heapq.heappop(events)
        stop = epoch >= len(curves.rung[trial])
        if epoch in recorded:
            score = sign * curves.rung[trial][epoch - 1]
            seen = recorded[epoch]
            if seen and score < np.nanpercentile(seen, (1 - 1 / reduction_factor) * 100):
                stop = True
                stopped.add(trial)
            seen.append(score)
        if stop:
            trained[trial] = epoch
            if queue:
                start(queue.pop(0), now)
        else:
            heapq.heappush(events, (now + curves.seconds[trial][epoch], index, trial, epoch + 1))
    return trained, stopped


def outcome(curves: Curves, trained: dict[str, int], *, grace_period: int, rung_metric: str,
            mode: str) -> Outcome:
    """Epochs spent, the best finisher and the top-3 audit of one replayed setting."""
    full = {t: len(c) for t, c in curves.final.items()}
    finals = {t: c[-1] for t, c in curves.final.items()}
    sign = 1.0 if mode == "max" else -1.0
    ranked = sorted(finals, key=lambda t: -sign * finals[t])
    finished = [t for t in ranked if trained[t] == full[t]]
    best = finals[finished[0]] if finished else float("nan")
    epochs, baseline_epochs = sum(trained.values()), sum(full.values())
    return Outcome(
        grace_period=grace_period, rung_metric=rung_metric, epochs=epochs,
        baseline_epochs=baseline_epochs, epoch_share=epochs / baseline_epochs, best=best,
        baseline_best=finals[ranked[0]], gap=finals[ranked[0]] - best,
        top3_stopped=sum(trained[t] < full[t] for t in ranked[:3]),
        stopped=sum(trained[t] < full[t] for t in ranked))


def shuffled(curves: Curves, *, seed: int) -> Curves:
    """The same curves started in another order (seed 0: the baseline's own order)."""
    if seed == 0:
        return curves
    order = [curves.order[i] for i in np.random.default_rng(seed).permutation(len(curves.order))]
    return Curves(order=order, rung=curves.rung, final=curves.final, seconds=curves.seconds)


@dataclass(frozen=True)
class OrderSummary:
    """One setting over several start orders: means, and how often the best was kept."""

    grace_period: int
    rung_metric: str
    n_orders: int
    epoch_share: float
    gap_mean: float
    gap_worst: float
    best_kept: int
    top3_stopped_mean: float


def over_orders(frame: pd.DataFrame, *, study_metric: str, study_mode: str,
                grace_periods: list[int], rung_metrics: list[str], reduction_factor: float,
                concurrency: int, orders: int) -> list[OrderSummary]:
    """`settings` replayed under ``orders`` start orders (the baseline's, then seeded
    shuffles): ASHA's asynchronous decisions depend on which trial reports first."""
    return summarise([settings(frame, study_metric=study_metric, study_mode=study_mode,
                               grace_periods=grace_periods, rung_metrics=rung_metrics,
                               reduction_factor=reduction_factor, concurrency=concurrency,
                               order_seed=k) for k in range(orders)])


def summarise(runs: list[list[Outcome]]) -> list[OrderSummary]:
    """Per setting, the outcomes of every start order (``runs[k]``: order k's settings)."""
    orders = len(runs)
    summaries = []
    for per_order in zip(*runs, strict=True):
        gaps = [r.gap for r in per_order]
        summaries.append(OrderSummary(
            grace_period=per_order[0].grace_period, rung_metric=per_order[0].rung_metric,
            n_orders=orders, epoch_share=float(np.mean([r.epoch_share for r in per_order])),
            gap_mean=float(np.mean(gaps)), gap_worst=float(np.max(gaps)),
            best_kept=sum(g == 0 for g in gaps),
            top3_stopped_mean=float(np.mean([r.top3_stopped for r in per_order]))))
    return summaries


def settings(frame: pd.DataFrame, *, study_metric: str, study_mode: str, grace_periods: list[int],
             rung_metrics: list[str], reduction_factor: float,
             concurrency: int, order_seed: int = 0) -> list[Outcome]:
    """Every grace period x rung metric, replayed on one baseline's curves."""
    max_epochs = int(frame["epoch"].max())
    complete = frame.groupby("trial_id")["epoch"].max() == max_epochs
    frame = frame[frame["trial_id"].isin(complete[complete].index)]
    results = []
    for rung_metric in rung_metrics:
        curves = shuffled(read_curves(frame, rung_metric=rung_metric, study_metric=study_metric),
                          seed=order_seed)
        for grace in grace_periods:
            rungs = [m for m in asha_milestones(grace_period=grace,
                                                reduction_factor=reduction_factor,
                                                max_epochs=max_epochs) if m < max_epochs]
            trained, _ = replay(curves, rungs=rungs, reduction_factor=reduction_factor,
                             mode=MODES.get(rung_metric, "max"), concurrency=concurrency)
            results.append(outcome(curves, trained, grace_period=grace,
                                   rung_metric=rung_metric, mode=study_mode))
    return results


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def table(results: list[Outcome]) -> str:
    return _markdown(
        ["grace", "rung metric", "epochs (share of baseline)", "best vs baseline (gap)",
         "top 3 stopped", "stopped"],
        [[str(r.grace_period), r.rung_metric,
          f"{r.epochs} / {r.baseline_epochs} (**{r.epoch_share:.2f}**)",
          f"{r.best:.4f} vs {r.baseline_best:.4f} (**{r.gap:.3f}**)", str(r.top3_stopped),
          str(r.stopped)] for r in results])


def order_table(results: list[OrderSummary]) -> str:
    return _markdown(
        ["grace", "rung metric", "epochs (mean share)", "gap mean / worst", "best kept",
         "top 3 stopped (mean)"],
        [[str(r.grace_period), r.rung_metric, f"**{r.epoch_share:.2f}**",
          f"{r.gap_mean:.3f} / {r.gap_worst:.3f}", f"{r.best_kept} of {r.n_orders}",
          f"{r.top3_stopped_mean:.2f}"] for r in results])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.asha_replay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", type=Path, required=True, action="append",
                        help="a baseline study directory (--scheduler fifo); repeatable")
    parser.add_argument("--grace-periods", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--rung-metrics", nargs="+", default=None,
                        help="default: the study metric, val/loss and val/auroc_macro")
    parser.add_argument("--reduction-factor", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=None,
                        help="trials at once (default: the baseline study's)")
    parser.add_argument("--orders", type=int, default=1,
                        help="also replay under this many start orders (the baseline's, then "
                             "seeded shuffles) and summarise them")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    report = {}
    for study_dir in args.study:
        plan = json.loads((study_dir / "study.json").read_text())["plan"]
        frame = pd.read_parquet(study_dir / "trials.parquet")
        if plan["scheduler"] != "fifo":
            parser.error(f"{study_dir}: a baseline must train every trial the full budget "
                         "(--scheduler fifo)")
        per_order = [settings(frame, study_metric=plan["metric"], study_mode=plan["mode"],
                              grace_periods=args.grace_periods,
                              rung_metrics=args.rung_metrics or [plan["metric"], *MODES],
                              reduction_factor=args.reduction_factor,
                              concurrency=args.concurrency or plan["concurrency"], order_seed=k)
                     for k in range(max(args.orders, 1))]
        results = per_order[0]  # the baseline's own start order
        report[str(study_dir)] = [asdict(r) for r in results]
        summaries = summarise(per_order) if args.orders > 1 else []
        if summaries:
            report[f"{study_dir} over {args.orders} orders"] = [asdict(r) for r in summaries]
        if not args.json:
            print(f"{study_dir} ({plan['space']}, {frame['trial_id'].nunique()} trials, "
                  f"{int(frame['epoch'].max())} epochs):")
            print(table(results))
            if summaries:
                print(f"over {args.orders} start orders (the baseline's, then shuffles):")
                print(order_table(summaries))
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
