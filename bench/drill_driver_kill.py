"""Drill: SIGKILL a study's driver three times at random moments, resume, and check that
nothing finished was lost, changed or duplicated.

    python -m bench.drill_driver_kill [--kills 3] [--seed 0] [--keep DIR]

Starts a small synthetic study (cnn space, smoke settings, 8 configurations, 3 epochs,
2 concurrent trials, W&B disabled) as a subprocess. Once Ray Tune is active in the study's
experiment directory, it waits a seeded random delay (so kills land in different phases:
during restore, mid-epoch, between trials), snapshots every trial's `result.json`, and kills
the driver's process group (driver, local Ray and its workers). Then `--resume --name NAME`,
again, and after the last kill a resume that must finish. Checks: the final resume exits 0;
`trials.parquet` holds exactly the requested trials; every trial finished before a kill keeps
identical per-epoch results; no (trial, epoch) row twice; no Optuna trial left RUNNING; every
trial of `trials.parquet` is exactly one Optuna trial; every trial completed or early_stopped.
Takes about 4-5 minutes on 2 cores.
"""

from __future__ import annotations

import sys

if not __package__:
    sys.exit("run it from the repository root as: python -m bench.drill_driver_kill")

import argparse
import contextlib
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from bench.common import Checks
from study.tune.optuna_truth import agreement

NAME = "drill"
STUDY_ARGS = (
    "--space", "cnn", "--dataset", "synthetic", "--smoke", "--synthetic-records", "160",
    "--num-samples", "8", "--max-epochs", "3", "--grace-period", "1", "--concurrency", "2",
    "--wandb-mode", "disabled",
)
NUM_SAMPLES = 8
MAX_EPOCHS = 3
ALLOWED_STOP_REASONS = ("completed", "early_stopped")
DRIVER_TIMEOUT_S = 600


class Clock:
    """Seconds since the drill began, for progress lines."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def say(self, line: str) -> None:
        print(f"[{time.monotonic() - self.start:5.0f}s] {line}", flush=True)


# --- the driver process ---------------------------------------------------------------------

def start_driver(args: list[str], *, cwd: Path, log_name: str) -> subprocess.Popen:
    """`python -m study.run ARGS` in its own session, output to ``cwd/log_name`` (a file, not
    a pipe: a pipe nobody drains while the drill polls would block the driver)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with open(cwd / log_name, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "study.run", *args], cwd=cwd, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc.log_path = cwd / log_name
    proc.started_unix = time.time()
    return proc


def session_pids(sid: int) -> list[int]:
    """Live processes of session ``sid`` (the driver started it, so all of them are ours)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # Fields after the ")" of the command name: state ppid pgrp session ...
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def kill_driver(proc: subprocess.Popen) -> list[int]:
    """SIGKILL the driver's process group, reap it, and make sure nothing of its session
    (Ray's GCS, raylet, workers) lives on; returns the pids that needed a second kill."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return reap_session(proc.pid)


def reap_session(sid: int, *, wait_s: float = 15.0) -> list[int]:
    """Wait for session ``sid`` to empty, SIGKILLing stragglers (by pid) after ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while session_pids(sid) and time.monotonic() < deadline:
        time.sleep(0.5)
    stragglers = session_pids(sid)
    for pid in stragglers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return stragglers


# --- reading the Tune experiment ------------------------------------------------------------

def trial_id_of(trial_dir: Path) -> str:
    """``run_trial_<id>_<n>_<params>_<date>`` -> ``<id>``."""
    return trial_dir.name.split("_")[2]


def read_results(tune_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Trial id -> its `result.json` rows (one per reported epoch); a line still being
    written is skipped."""
    trials = {}
    for trial_dir in sorted(tune_dir.glob("run_trial_*")):
        rows = []
        path = trial_dir / "result.json"
        lines = path.read_text().splitlines() if path.is_file() else []
        for line in lines:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        trials[trial_id_of(trial_dir)] = rows
    return trials


def tune_statuses(tune_dir: Path) -> dict[str, str]:
    """Trial id -> status in Tune's newest experiment snapshot ({} while none is readable)."""
    snapshots = sorted(tune_dir.glob("experiment_state-*.json"), key=lambda p: p.stat().st_mtime)
    if not snapshots:
        return {}
    try:
        state = json.loads(snapshots[-1].read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    statuses = {}
    for trial_json, _ in state.get("trial_data", []):
        trial = json.loads(trial_json)
        statuses[trial["trial_id"]] = trial["status"]
    return statuses


def finished_trials(results: dict[str, list[dict[str, Any]]], statuses: dict[str, str], *,
                    max_epochs: int) -> dict[str, list[dict[str, Any]]]:
    """The trials that are over: full budget reported, or TERMINATED in Tune's snapshot
    (an ASHA stop)."""
    return {
        trial: rows for trial, rows in results.items()
        if rows and (max(r["epoch"] for r in rows) >= max_epochs
                     or statuses.get(trial) == "TERMINATED")
    }


def describe_state(results: dict[str, list[dict[str, Any]]], statuses: dict[str, str], *,
                   max_epochs: int, now_unix: float) -> str:
    """One line: how far the study is and what the running trials are doing."""
    done = finished_trials(results, statuses, max_epochs=max_epochs)
    running = [t for t in results if t not in done]
    if not results:
        return "no trial started yet (Ray/Tune starting or restoring)"
    parts = []
    for trial in running:
        rows = results[trial]
        if not rows:
            parts.append(f"{trial} starting (no epoch reported)")
            continue
        last = rows[-1]
        parts.append(f"{trial} mid-epoch {last['epoch'] + 1} "
                     f"(epoch {last['epoch']} reported {now_unix - last['timestamp']:.1f}s ago)")
    phase = "; ".join(parts) if parts else "between trials (none running)"
    return f"{len(results)} trials started, {len(done)} finished; {phase}"


def live_dir(proc: subprocess.Popen) -> Path | None:
    """The driver's own copy of the experiment (Ray's session directory), which Tune syncs
    to the study directory only at experiment snapshots; None until the driver names it."""
    match = re.search(r"--logdir (\S+?)`?$", proc.log_path.read_text(), flags=re.MULTILINE)
    return Path(match.group(1)) if match else None


def ray_session(proc: subprocess.Popen) -> Path | None:
    """The Ray session directory a finished or killed driver started (Ray leaves it behind);
    only ``/tmp/ray/session_<date>_<driver pid>`` counts, so nothing else is touched."""
    live = live_dir(proc)
    for parent in live.parents if live else ():
        if parent.name.startswith("session_") and parent.name.endswith(f"_{proc.pid}"):
            return parent
    return None


def wait_for_tune(proc: subprocess.Popen, tune_dir: Path, *, timeout_s: float) -> bool:
    """Wait until this driver's Tune writes into the experiment directory (for a resume: a
    file newer than the driver); False if the driver exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if tune_dir.is_dir() and any(p.stat().st_mtime >= proc.started_unix
                                     for p in tune_dir.iterdir()):
            return True
        time.sleep(0.2)
    return proc.poll() is None and tune_dir.is_dir()


# --- checks ---------------------------------------------------------------------------------

def same_value(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def compared_keys(row: dict[str, Any]) -> list[str]:
    """The per-epoch values `trials.parquet` must carry unchanged: metrics (``split/name``),
    the learning rate and the epoch's seconds."""
    return sorted(k for k in row if "/" in k or k in ("epoch", "lr", "seconds"))


def diff_trial(rows: list[dict[str, Any]], frame: pd.DataFrame, *,
               ignore: tuple[str, ...] = ()) -> str | None:
    """None if ``frame`` (the trial's parquet rows) holds exactly ``rows``' epochs and
    values (but the ``ignore`` keys), else what differs."""
    got = frame.sort_values("epoch").to_dict("records")
    want_epochs = [r["epoch"] for r in rows]
    got_epochs = [int(r["epoch"]) for r in got]
    if want_epochs != got_epochs:
        return f"epochs {want_epochs} before the kill, {got_epochs} at the end"
    for want, have in zip(rows, got, strict=True):
        for key in (k for k in compared_keys(want) if k not in ignore):
            if key not in have or not same_value(want[key], have[key]):
                return f"epoch {want['epoch']} {key}: {want[key]!r} -> {have.get(key)!r}"
    return None


def optuna_states(db: Path) -> dict[str, int]:
    """Optuna trial state -> count in the study's SQLite storage."""
    storage = f"sqlite:///{db}"
    (summary,) = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).trials
    return pd.Series([t.state.name for t in trials]).value_counts().to_dict()


def optuna_tune_ids(db: Path) -> list[str]:
    """The Tune trial id of every Optuna trial that ran (`study.tune.optuna_truth` tags them)."""
    storage = f"sqlite:///{db}"
    (summary,) = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).trials
    return [t.user_attrs["tune_trial_id"] for t in trials if "tune_trial_id" in t.user_attrs]


def run_checks(report: Checks, *, study_dir: Path, final_code: int, final_log: Path,
               finished_before_kills: dict[str, tuple[int, list[dict[str, Any]]]]) -> None:
    tail = " | ".join(final_log.read_text().strip().splitlines()[-3:])
    report.check(final_code == 0, "the final resume exits 0", f"exit {final_code}: {tail}")
    parquet = study_dir / "trials.parquet"
    if not parquet.is_file():
        report.check(False, "trials.parquet written", f"missing at {parquet}")
        return
    frame = pd.read_parquet(parquet)
    n_trials = frame["trial_id"].nunique()
    report.check(n_trials == NUM_SAMPLES, f"trials.parquet holds exactly {NUM_SAMPLES} trials",
                 f"{n_trials} trials: {sorted(frame['trial_id'].unique())}")
    problems = []
    for trial, (kill, rows) in sorted(finished_before_kills.items()):
        trial_rows = frame[frame["trial_id"] == trial]
        problem = "missing" if trial_rows.empty else diff_trial(rows, trial_rows)
        if problem:
            problems.append(f"{trial} (finished before kill {kill}): {problem}")
    report.check(not problems, f"all {len(finished_before_kills)} trials finished before a kill "
                 "are still there with identical per-epoch results", "; ".join(problems))
    dup = frame[frame.duplicated(["trial_id", "epoch"], keep=False)]
    report.check(dup.empty, "no (trial, epoch) row is duplicated",
                 dup[["trial_id", "epoch"]].to_string(index=False))
    states = optuna_states(study_dir / "optuna.db")
    report.check(states.get("RUNNING", 0) == 0, "no Optuna trial left RUNNING in optuna.db",
                 f"states {states}")
    print(f"  optuna.db trial states: {states}")
    tags = Counter(optuna_tune_ids(study_dir / "optuna.db"))
    twice = {t: n for t, n in tags.items() if n > 1}
    untold = set(frame["trial_id"]) - set(tags)
    report.check(not twice and not untold, "every trial of trials.parquet is exactly one "
                 "Optuna trial (none counted twice, none missing)",
                 f"twice {twice}, missing {sorted(untold)}")
    reasons = frame.drop_duplicates("trial_id").set_index("trial_id")["stop_reason"]
    bad = reasons[~reasons.isin(ALLOWED_STOP_REASONS)]
    report.check(bad.empty, "every trial's stop_reason is completed or early_stopped",
                 bad.to_dict())
    print(f"  stop reasons: {reasons.value_counts().to_dict()}")


def print_notes(*, study_dir: Path,
                unsynced_before_kills: dict[str, tuple[int, list[dict[str, Any]]]]) -> None:
    """Facts worth knowing that are not pass/fail criteria: how trials finished only in the
    killed driver's live copy ended, and whether optuna.db agrees with trials.parquet."""
    parquet = study_dir / "trials.parquet"
    if not parquet.is_file():
        return
    frame = pd.read_parquet(parquet)
    for trial, (kill, rows) in sorted(unsynced_before_kills.items()):
        # A rerun epoch takes different wall time; everything else should be identical.
        problem = diff_trial(rows, frame[frame["trial_id"] == trial], ignore=("seconds",))
        print(f"NOTE {trial} had finished only in the live copy before kill {kill}; rerun "
              f"after the resume: " + ("identical per-epoch metrics" if problem is None
                                       else f"differs: {problem}"))
    storage = f"sqlite:///{study_dir / 'optuna.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    print("NOTE " + agreement(frame=frame, storage_url=storage, study_name=summary.study_name))


# --- the drill ------------------------------------------------------------------------------

def kill_at_random(proc: subprocess.Popen, *, tune_dir: Path, delay_s: float, kill: int,
                   clock: Clock) -> tuple[dict[str, list[dict[str, Any]]],
                                          dict[str, list[dict[str, Any]]]] | None:
    """Wait for Tune, then ``delay_s``, snapshot the finished trials and SIGKILL the driver.

    Returns the trials finished in the study directory, and those that had reported the full
    budget in the driver's live copy but not yet in the study directory; None if the driver
    exited before the kill.
    """
    if not wait_for_tune(proc, tune_dir, timeout_s=DRIVER_TIMEOUT_S):
        return None
    clock.say(f"kill {kill}: Tune is active; killing in {delay_s:.1f}s")
    deadline = time.monotonic() + delay_s
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    if proc.poll() is not None:
        return None
    statuses = tune_statuses(tune_dir)
    results = read_results(tune_dir)
    live = live_dir(proc)
    # A resumed driver's live copy holds only what it has written so far: take the longer.
    live_results = {**results}
    for trial, rows in (read_results(live) if live and live.is_dir() else {}).items():
        if len(rows) >= len(live_results.get(trial, [])):
            live_results[trial] = rows
    now = time.time()
    stragglers = kill_driver(proc)
    clock.say(f"kill {kill}: SIGKILL at {now - proc.started_unix:.1f}s into this driver")
    clock.say("  driver's live view:  "
              + describe_state(live_results, statuses, max_epochs=MAX_EPOCHS, now_unix=now))
    clock.say("  study directory:     "
              + describe_state(results, statuses, max_epochs=MAX_EPOCHS, now_unix=now))
    if stragglers:
        clock.say(f"kill {kill}: {len(stragglers)} process(es) of the killed session needed "
                  f"a second SIGKILL: {stragglers}")
    unsynced = {t: rows for t, rows in live_results.items()
                if rows and rows[-1]["epoch"] >= MAX_EPOCHS
                and len(results.get(t, [])) < len(rows)}
    return finished_trials(results, statuses, max_epochs=MAX_EPOCHS), unsynced


def drill(work: Path, *, kills: int, seed: int, max_delay_s: float, clock: Clock,
          drivers: list[subprocess.Popen]) -> int:
    """Run the kills and the final resume (each driver started is appended to ``drivers``);
    returns the exit code."""
    rng = random.Random(seed)
    study_dir = work / "runs" / NAME
    tune_dir = study_dir / f"{NAME}-tune"
    first = [*STUDY_ARGS, "--name", NAME, "--cache-dir", str(work / "cache")]
    resume = ["--resume", "--name", NAME]
    finished_before: dict[str, tuple[int, list[dict[str, Any]]]] = {}
    unsynced_before: dict[str, tuple[int, list[dict[str, Any]]]] = {}
    for kill in range(1, kills + 1):
        proc = start_driver(first if kill == 1 else resume, cwd=work, log_name=f"driver-{kill}.log")
        drivers.append(proc)
        clock.say(f"driver {kill} started ({'new study' if kill == 1 else 'resume'}), "
                  f"pid {proc.pid}")
        snapshot = kill_at_random(proc, tune_dir=tune_dir, delay_s=rng.uniform(0, max_delay_s),
                                  kill=kill, clock=clock)
        if snapshot is None:
            code = proc.wait()
            clock.say(f"kill {kill}: the driver exited (code {code}) before the kill; "
                      f"see {proc.log_path}")
            reap_session(proc.pid)
            break
        finished, unsynced = snapshot
        for trial, rows in finished.items():
            finished_before.setdefault(trial, (kill, rows))
        for trial, rows in unsynced.items():
            unsynced_before.setdefault(trial, (kill, rows))
        clock.say(f"kill {kill}: {len(finished)} trials finished in the study directory: "
                  + ", ".join(f"{t}@{len(r)}ep" for t, r in sorted(finished.items())))
        if unsynced:
            clock.say(f"kill {kill}: not yet synced there (lost with the driver, Tune reruns "
                      f"them from a checkpoint): {', '.join(sorted(unsynced))} had finished "
                      f"{MAX_EPOCHS} epochs in the driver's live copy")
    final = start_driver(resume, cwd=work, log_name="driver-final.log")
    drivers.append(final)
    clock.say(f"final resume started, pid {final.pid}; waiting for it to finish")
    try:
        code = final.wait(timeout=DRIVER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        code = -1
        kill_driver(final)
    reap_session(final.pid)
    clock.say(f"final resume exited with code {code}")
    report = Checks("driver_kill")
    run_checks(report, study_dir=study_dir, final_code=code, final_log=final.log_path,
               finished_before_kills=finished_before)
    print_notes(study_dir=study_dir, unsynced_before_kills=unsynced_before)
    return report.verdict()


def remove_work(work: Path, *, drivers: list[subprocess.Popen], keep: bool) -> None:
    """Delete the Ray session directories the drivers left behind and, unless kept, the
    work directory."""
    for proc in drivers:
        session = ray_session(proc)
        if session is not None:
            shutil.rmtree(session, ignore_errors=True)
    if not keep:
        shutil.rmtree(work, ignore_errors=True)


def run_in_work_dir(*, prefix: str, keep: Path | None, study_args: tuple[str, ...],
                    drill: Callable[[Path, Clock, list[subprocess.Popen]], int]) -> int:
    """Run ``drill(work, clock, drivers)`` in ``keep`` or a temporary work directory, then
    remove the Ray sessions of the drivers it started (and the directory unless kept)."""
    clock = Clock()
    work = keep or Path(tempfile.mkdtemp(prefix=prefix))
    work.mkdir(parents=True, exist_ok=True)
    work = work.resolve()
    clock.say(f"work directory {work}; study: {' '.join(study_args)}")
    drivers: list[subprocess.Popen] = []
    try:
        code = drill(work, clock, drivers)
    finally:
        remove_work(work, drivers=drivers, keep=bool(keep))
    clock.say("done")
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=3, help="driver kills before the last resume")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill delays")
    parser.add_argument("--max-delay-s", type=float, default=25.0,
                        help="a kill lands up to this long after Tune becomes active")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="work in DIR (created, kept) instead of a temporary directory")
    args = parser.parse_args(argv)
    return run_in_work_dir(
        prefix="drill-driver-kill-", keep=args.keep, study_args=STUDY_ARGS,
        drill=lambda work, clock, drivers: drill(
            work, kills=args.kills, seed=args.seed, max_delay_s=args.max_delay_s, clock=clock,
            drivers=drivers),
    )


if __name__ == "__main__":
    raise SystemExit(main())
