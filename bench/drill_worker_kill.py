"""Drill: SIGKILL one trial's Ray worker mid-epoch and check that the trial resumes from its
last checkpoint and the study finishes complete.

    python -m bench.drill_worker_kill [--keep DIR]

Starts a small synthetic study (cnn space, smoke settings, 3 configurations, 4 epochs,
2 concurrent trials, grace period = max epochs so ASHA stops nothing, --max-failures 2,
W&B disabled). Once a trial has reported epoch 1 (and written its first checkpoint) and is
part-way through epoch 2, it reads the worker's pid from the trial's `result.json`, verifies
that the pid is alive, a Ray worker and in the driver's session, and SIGKILLs it. Checks: the
study exits 0; the killed trial ends completed with epochs exactly 1..max (none lost or
repeated), its first epoch after the kill comes from a new worker and continues from the
checkpoint epoch; Tune recorded the failure; every other trial completed. About 2 minutes.
"""

from __future__ import annotations

import sys

if not __package__:
    sys.exit("run it from the repository root as: python -m bench.drill_worker_kill")

import argparse
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pandas as pd

from bench.common import Checks
from bench.drill_driver_kill import (
    Clock,
    kill_driver,
    read_results,
    reap_session,
    run_in_work_dir,
    start_driver,
)

NAME = "drill"
NUM_SAMPLES = 3
MAX_EPOCHS = 4
STUDY_ARGS = (
    "--space", "cnn", "--dataset", "synthetic", "--smoke", "--synthetic-records", "400",
    "--num-samples", str(NUM_SAMPLES), "--max-epochs", str(MAX_EPOCHS),
    "--grace-period", str(MAX_EPOCHS), "--concurrency", "2", "--max-failures", "2",
    "--wandb-mode", "disabled",
)
KILL_AT_FRACTION = 0.4
"""The kill lands this far into the epoch (by the trial's previous epoch time)."""
DRIVER_TIMEOUT_S = 600


def process_info(pid: int) -> dict[str, Any] | None:
    """Command line and session of a live process, or None when it does not exist."""
    proc = Path("/proc") / str(pid)
    try:
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    if fields[0] == "Z":
        return None
    return {"cmdline": cmdline, "session": int(fields[3])}


def find_victim(tune_dir: Path) -> tuple[str, dict[str, Any]] | None:
    """(trial id, its last result row) of a trial that has checkpointed epoch 1 and not yet
    reported epoch 2, or None."""
    for trial, rows in read_results(tune_dir).items():
        trial_dir = next(tune_dir.glob(f"run_trial_{trial}_*"))
        if (len(rows) == 1 and rows[0]["epoch"] == 1
                and (trial_dir / "checkpoint_000000").is_dir()):
            return trial, rows[0]
    return None


def kill_mid_epoch(proc: subprocess.Popen, *, tune_dir: Path, clock: Clock
                   ) -> tuple[str, int, int] | None:
    """Wait for a trial part-way into epoch 2, verify its worker and SIGKILL it.

    Returns (trial id, killed pid, the epoch of the checkpoint it had) or None (with the
    reason printed) when no such moment came.
    """
    deadline = time.monotonic() + DRIVER_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        found = find_victim(tune_dir) if tune_dir.is_dir() else None
        if found is None:
            time.sleep(0.2)
            continue
        trial, row = found
        epoch_s = float(row["time_this_iter_s"])
        kill_at = row["timestamp"] + KILL_AT_FRACTION * epoch_s
        time.sleep(max(0.0, kill_at - time.time()))
        rows = read_results(tune_dir)[trial]
        if len(rows) != 1:
            clock.say(f"trial {trial} reported epoch 2 before the kill; trying again")
            continue
        pid = int(row["pid"])
        info = process_info(pid)
        if info is None or "ray::" not in info["cmdline"] or info["session"] != proc.pid:
            clock.say(f"pid {pid} of trial {trial} is not a live Ray worker of this study "
                      f"({info}); not killing")
            return None
        os.kill(pid, signal.SIGKILL)
        clock.say(f"SIGKILL worker pid {pid} ({info['cmdline']!r}) of trial {trial}, "
                  f"{time.time() - row['timestamp']:.1f}s into epoch 2 (epoch 1 took "
                  f"{epoch_s:.1f}s; checkpoint_000000 holds epoch 1)")
        return trial, pid, 1
    clock.say("no trial reached epoch 2 while the study ran")
    return None


def failure_record(tune_dir: Path, trial: str) -> str:
    """What Tune wrote about the trial's failure: its error file's last line."""
    trial_dir = next(tune_dir.glob(f"run_trial_{trial}_*"))
    error = trial_dir / "error.txt"
    if not error.is_file():
        return ""
    lines = [line for line in error.read_text().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def run_checks(report: Checks, *, study_dir: Path, tune_dir: Path, code: int, log: Path,
               trial: str, pid: int, checkpoint_epoch: int) -> None:
    tail = " | ".join(log.read_text().strip().splitlines()[-3:])
    report.check(code == 0, "the study exits 0", f"exit {code}: {tail}")
    rows = read_results(tune_dir).get(trial, [])
    epochs = [r["epoch"] for r in rows]
    print(f"  result.json of {trial}: (epoch, pid, iterations_since_restore) = "
          + ", ".join(f"({r['epoch']}, {r['pid']}, {r['iterations_since_restore']})"
                      for r in rows))
    after = [r for r in rows if r["pid"] != pid]
    first_after = after[0] if after else {}
    report.check(
        first_after.get("epoch") == checkpoint_epoch + 1
        and first_after.get("iterations_since_restore") == 1,
        f"after the kill trial {trial} continued from its checkpoint (epoch "
        f"{checkpoint_epoch}) in a new worker: first new epoch {checkpoint_epoch + 1}",
        "first row from another pid: "
        + json.dumps({k: first_after.get(k) for k in ("epoch", "pid", "iterations_since_restore")}),
    )
    error = failure_record(tune_dir, trial)
    report.check(bool(error), "Tune recorded the worker's death as a trial failure (error.txt)",
                 "no error.txt in the trial directory")
    if error:
        print(f"  error.txt: {error}")
    parquet = study_dir / "trials.parquet"
    if not parquet.is_file():
        report.check(False, "trials.parquet written", f"missing at {parquet}")
        return
    frame = pd.read_parquet(parquet)
    want = list(range(1, MAX_EPOCHS + 1))
    killed = frame[frame["trial_id"] == trial]
    killed_epochs = killed["epoch"].tolist()
    killed_reason = set(killed["stop_reason"])
    report.check(killed_epochs == want and killed_reason == {"completed"} and epochs == want,
                 f"the killed trial {trial} is completed with epochs exactly {want} "
                 "(trials.parquet and result.json)",
                 f"parquet epochs {killed_epochs} {killed_reason}, result.json epochs {epochs}")
    others = frame[frame["trial_id"] != trial]
    bad = {t: (g["epoch"].tolist(), sorted(set(g["stop_reason"])))
           for t, g in others.groupby("trial_id")
           if g["epoch"].tolist() != want or set(g["stop_reason"]) != {"completed"}}
    n_others = others["trial_id"].nunique()
    report.check(not bad and n_others == NUM_SAMPLES - 1,
                 f"all {NUM_SAMPLES - 1} other trials completed with epochs {want}",
                 f"{n_others} other trials; not complete: {bad}")


def drill(work: Path, *, clock: Clock, drivers: list[subprocess.Popen]) -> int:
    """Run the study, kill one worker, check; returns the exit code."""
    study_dir = work / "runs" / NAME
    tune_dir = study_dir / f"{NAME}-tune"
    proc = start_driver([*STUDY_ARGS, "--name", NAME, "--cache-dir", str(work / "cache")],
                        cwd=work, log_name="driver.log")
    drivers.append(proc)
    clock.say(f"driver started, pid {proc.pid}; waiting for a trial to checkpoint epoch 1")
    killed = kill_mid_epoch(proc, tune_dir=tune_dir, clock=clock)
    if killed is None:
        kill_driver(proc)
        report = Checks("worker_kill")
        report.check(False, "a trial worker was killed mid-epoch", f"see {proc.log_path}")
        return report.verdict()
    trial, pid, checkpoint_epoch = killed
    try:
        code = proc.wait(timeout=DRIVER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        code = -1
        kill_driver(proc)
    reap_session(proc.pid)
    clock.say(f"study exited with code {code}")
    report = Checks("worker_kill")
    run_checks(report, study_dir=study_dir, tune_dir=tune_dir, code=code, log=proc.log_path,
               trial=trial, pid=pid, checkpoint_epoch=checkpoint_epoch)
    return report.verdict()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="work in DIR (created, kept) instead of a temporary directory")
    args = parser.parse_args(argv)
    return run_in_work_dir(
        prefix="drill-worker-kill-", keep=args.keep, study_args=STUDY_ARGS,
        drill=lambda work, clock, drivers: drill(work, clock=clock, drivers=drivers),
    )


if __name__ == "__main__":
    raise SystemExit(main())
