"""Benchmark: trials started per minute by the study's scheduling stack on 1, 2 and 4 Ray nodes.

    python -m bench.scheduler_throughput [--nodes 1 2 4] [--trials 40] [--space cnn]

For each node count N, a local multi-node Ray cluster (`ray.cluster_utils.Cluster`: a head
and N-1 worker raylets of 1 CPU each, token authentication on, as in
tests/study/tune/test_multinode.py) runs one search of ``--trials`` no-op trials with the study's
own searcher (`study.tune.tuning.searcher`: Optuna TPE through OptunaSearch on an SQLite RDB
storage, behind a ConcurrencyLimiter of N) and scheduler (`study.tune.tuning.scheduler`: ASHA), one
trial per CPU. The trainable reports a single result and returns, so what is measured is pure
scheduling: searcher, ASHA, actor start and stop, result handling.

Throughput = (trials - 1) / (last trial start - first trial start), where a trial's start is
Tune's own timestamp ``Trial.run_metadata.start_time`` (set when its actor is up and the trial
turns RUNNING); Ray's start-up before the first trial is excluded and shown apart. Every node
of these clusters shares the same physical cores, so the ratio shows what the stack does with
more slots on a saturated machine, not what N real machines would give.
"""

from __future__ import annotations

import sys

if not __package__:
    sys.exit("run it from the repository root as: python -m bench.scheduler_throughput")

import argparse
import dataclasses
import json
import os
import secrets
import statistics
import tempfile
import time
import zlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import ray
from ray import tune

from bench.ray_cluster import local_cluster, token_auth
from data_io.datasets import load_dataset
from search_spaces import load_space
from study.tune import tuning
from study.tune.plan import Plan


def noop_trial(config: dict[str, Any]) -> None:
    """The trainable: report one result (a score derived from the config) and return.

    Module level, so it is importable like `study.tune.trainable.run_trial`. ``entered_unix`` is
    when the trial's function began in its actor; ``node`` shows where Ray placed it.
    """
    entered = time.time()
    text = json.dumps(config, sort_keys=True, default=str).encode()
    tune.report({
        load_dataset("synthetic").metric.key: zlib.crc32(text) / 2**32,
        "entered_unix": entered,
        "node": ray.get_runtime_context().get_node_id(),
    })


class TrialClock(tune.Callback):
    """Driver-side clock of every trial: Tune's start time and when the trial ended."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.ended: dict[str, float] = {}

    def on_trial_complete(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self.ended[trial.trial_id] = time.time()

    def on_trial_error(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self.ended[trial.trial_id] = time.time()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.started = {t.trial_id: t.run_metadata.start_time for t in trials
                        if t.run_metadata.start_time is not None}


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One search on one cluster; times in seconds."""

    nodes: int
    trials: int
    nodes_used: int
    fit_s: float
    startup_s: float
    span_s: float
    entry_s: float
    start_to_end_s: float
    refill_s: float

    @property
    def per_minute(self) -> float:
        return 60.0 * (self.trials - 1) / self.span_s


def bench_plan(*, workdir: Path, space: str, n_trials: int, concurrency: int, seed: int) -> Plan:
    """A study plan as `study.tune.plan.make_plan` would resolve it, every field given."""
    load_space(space)  # an unknown space fails here
    metric = load_dataset("synthetic").metric
    name = f"sched-{concurrency}n"
    return Plan(
        name=name,
        space=space,
        dataset="synthetic",
        data_dir=str(workdir / "data"),
        study_dir=str(workdir),
        storage_path=str(workdir),
        optuna_storage=f"sqlite:///{workdir / 'optuna.db'}",
        optuna_study_name=f"{name}-{secrets.token_hex(4)}",
        metric=metric.key,
        mode=metric.mode,
        num_samples=n_trials,
        max_epochs=12,
        grace_period=1,
        reduction_factor=3.0,
        concurrency=concurrency,
        cpus_per_trial=1.0,
        gpus_per_trial=0.0,
        fold=0,
        n_folds=8,
        seed=seed,
        fs_hz=150.0,
        address=None,
        wandb_mode="disabled",
        smoke=False,
        synthetic_records=48,
        cv_top_k=0,
        explain_top=0,
        max_failures=0,
        cache_dir=None,
        resume=False,
        mitdb_dir=None,
        sampler="tpe",
        scheduler="asha",
        fixed={},
    )


def run_search(plan: Plan) -> tuple[tune.ResultGrid, TrialClock, float, float]:
    """Fit the no-op search on the connected cluster: (results, clock, fit start, fit end)."""
    clock = TrialClock()
    milestones = [plan.max_epochs]
    run_config = dataclasses.replace(
        tuning.run_config(plan, None, name=f"{plan.name}-tune", milestones=milestones,
                          job_type="search"),
        callbacks=[clock, tuning.optuna_recorder(plan, milestones=milestones)], verbose=0,
    )
    tuner = tune.Tuner(
        tune.with_resources(noop_trial, {"cpu": plan.cpus_per_trial, "gpu": plan.gpus_per_trial}),
        tune_config=tune.TuneConfig(search_alg=tuning.searcher(plan),
                                    scheduler=tuning.scheduler(plan),
                                    num_samples=plan.num_samples),
        run_config=run_config,
    )
    began = time.time()
    grid = tuner.fit()
    return grid, clock, began, time.time()


def measure(*, n_nodes: int, n_trials: int, space: str, seed: int) -> Measurement:
    """Start an ``n_nodes`` cluster, run the search on it, and time its trials."""
    with tempfile.TemporaryDirectory(prefix="sched-bench-") as tmp, local_cluster(n_nodes) as cl:
        plan = bench_plan(workdir=Path(tmp), space=space, n_trials=n_trials,
                          concurrency=n_nodes, seed=seed)
        ray.init(address=cl.address, log_to_driver=False)
        try:
            grid, clock, began, finished = run_search(plan)
        finally:
            ray.shutdown()
    errors = [r.error for r in grid if r.error is not None]
    if errors:
        raise RuntimeError(f"{len(errors)} no-op trial(s) failed; first: {errors[0]}")
    return summarize(grid=grid, clock=clock, began=began, finished=finished, n_nodes=n_nodes)


def summarize(*, grid: tune.ResultGrid, clock: TrialClock, began: float, finished: float,
              n_nodes: int) -> Measurement:
    """Per-trial timeline -> the figures of one row (medians over trials)."""
    entered = {r.metrics["trial_id"]: r.metrics["entered_unix"] for r in grid}
    starts = sorted(clock.started.values())
    ends = sorted(clock.ended.values())
    # With N slots, the k-th trial to start (k > N) waits for the (k - N)-th trial to end.
    refills = [start - end for start, end in zip(starts[n_nodes:], ends, strict=False)]
    return Measurement(
        nodes=n_nodes,
        trials=len(starts),
        nodes_used=len({r.metrics["node"] for r in grid}),
        fit_s=finished - began,
        startup_s=starts[0] - began,
        span_s=starts[-1] - starts[0],
        entry_s=statistics.median(entered[t] - clock.started[t] for t in entered),
        start_to_end_s=statistics.median(clock.ended[t] - clock.started[t] for t in entered),
        refill_s=statistics.median(refills) if refills else float("nan"),
    )


def searcher_seconds(*, space: str, n_trials: int, seed: int) -> tuple[float, float]:
    """Mean seconds per trial of `study.tune.tuning.searcher`'s suggest and of recording its end
    (`study.tune.optuna_truth.OptunaRecorder`: one result and the tell, SQLite writes), called in a
    loop without Ray or Tune."""
    with tempfile.TemporaryDirectory(prefix="sched-searcher-") as tmp:
        plan = bench_plan(workdir=Path(tmp), space=space, n_trials=n_trials, concurrency=1,
                          seed=seed)
        search = tuning.searcher(plan)
        recorder = tuning.optuna_recorder(plan, milestones=[1])
        suggest = tell = 0.0
        for k in range(n_trials):
            trial_id = f"t{k}"
            t0 = time.perf_counter()
            config = search.suggest(trial_id)
            t1 = time.perf_counter()
            text = json.dumps(config, sort_keys=True, default=str).encode()
            result = {plan.metric: zlib.crc32(text) / 2**32, "epoch": 1}
            trial = SimpleNamespace(trial_id=trial_id, config=config, last_result=result)
            recorder.on_trial_result(0, [], trial, result)
            recorder.on_trial_complete(0, [], trial)
            suggest += t1 - t0
            tell += time.perf_counter() - t1
    return suggest / n_trials, tell / n_trials


def print_report(rows: list[Measurement], *, searcher: tuple[float, float]) -> None:
    base = rows[0].per_minute
    ratio_head = f"vs {rows[0].nodes} node"
    print(f"\n{'nodes':>5} {'trials':>6} {'nodes used':>10} {'fit wall s':>10} "
          f"{'startup s':>9} {'span s':>7} {'trials/min':>10} {ratio_head:>9}")
    for row in rows:
        print(f"{row.nodes:>5} {row.trials:>6} {row.nodes_used:>10} {row.fit_s:>10.1f} "
              f"{row.startup_s:>9.1f} {row.span_s:>7.1f} {row.per_minute:>10.1f} "
              f"{row.per_minute / base:>8.2f}x")
    print("\nwhere a trial's time goes (medians over trials, seconds):")
    suggest, tell = searcher
    print(f"{'nodes':>5} {'CPU cycle':>9} {'RUNNING->fn':>11} {'RUNNING->ended':>14} "
          f"{'ended->next RUNNING':>19} {'minus suggest':>13}")
    for row in rows:
        cycle = row.nodes * 60.0 / row.per_minute
        print(f"{row.nodes:>5} {cycle:>9.2f} {row.entry_s:>11.2f} {row.start_to_end_s:>14.2f} "
              f"{row.refill_s:>19.2f} {row.refill_s - suggest:>13.2f}")
    print(f"searcher alone (OptunaSearch TPE + SQLite, no Ray, same trial count): "
          f"suggest {suggest * 1000:.0f} ms + tell {tell * 1000:.0f} ms per trial")
    print("  CPU cycle: seconds between trial starts on one CPU slot (nodes x 60 / trials/min)")
    print("  RUNNING->fn: the trial's actor is up -> the trainable's first line runs")
    print("  RUNNING->ended: -> the driver saw the trial end (report, ASHA, tell, actor stop)")
    print("  ended->next RUNNING: a CPU is freed -> the next trial's actor is up (searcher "
          "suggest, new worker process, actor start)")
    print("  minus suggest: that gap less the searcher's mean suggest time (Ray and Tune "
          "starting the next actor)")
    print(f"note: all {max(row.nodes for row in rows)} nodes are raylets on this one machine "
          f"and share its {os.cpu_count()} CPU cores with the driver, the GCS and any other "
          "load; more nodes add slots, not cores.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 4],
                        help="node counts to measure (1 CPU per node, one trial per CPU)")
    parser.add_argument("--trials", type=int, default=40, help="no-op trials per search")
    parser.add_argument("--space", default="cnn", help="search space whose define() TPE samples")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.trials < 2 or min(args.nodes) < 1:
        print("error: need --trials >= 2 and node counts >= 1", file=sys.stderr)
        return 2
    rows = []
    with token_auth():
        for n_nodes in args.nodes:
            print(f"[{n_nodes} node(s)] starting the cluster, {args.trials} trials ...", flush=True)
            row = measure(n_nodes=n_nodes, n_trials=args.trials, space=args.space,
                          seed=args.seed)
            print(f"[{n_nodes} node(s)] {row.per_minute:.1f} trials/min", flush=True)
            rows.append(row)
    searcher = searcher_seconds(space=args.space, n_trials=args.trials, seed=args.seed)
    print_report(rows, searcher=searcher)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
