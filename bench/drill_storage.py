"""Drill: the study's storage fills up or turns read-only in the middle of a study.

    python -m bench.drill_storage [--num-samples 6] [--timeout-s 300] [--keep DIR]

Needs root: it mounts file systems (otherwise it says it cannot run here and exits 2). Two
scenarios, each a small real study (synthetic data, 3 epochs, fifo, the trunk fixed at depth 4
so checkpoints stay ~3 MB) whose `--study-dir` is on its own file system:

- full: a 64 MiB tmpfs; once two trials completed, a filler file beside the study directory
  takes the remaining space; given back with `mount -o remount,size=256m`.
- read-only: an ext4 image on a loop device mounted `errors=remount-ro`; once two trials
  completed the kernel's own error path (`/sys/fs/ext4/loopN/trigger_fs_error`) turns it
  read-only, as a failing disk does. (`mount -o remount,ro` is refused with "mount point is
  busy" while the driver holds optuna.db open.) Given back by unmounting, `e2fsck -fy` and a
  read-write mount.

Checks per scenario: the driver exits 3 within the timeout and its last line is one `error:`
naming the storage path, the problem and a resume command; the study directory is intact
(study.json, folds.csv and best_config.json parse, optuna.db opens with Optuna, no half-written
trials.parquet, every Tune experiment state parses and `Tuner.can_restore`); then the printed
resume command finishes the study with all trials, keeping the per-epoch scores of the trials
that had completed before the fault. Prints PASS/FAIL per check and `drill storage: PASS` or
`FAIL (n of m checks failed)`; exit 0 / 1. About 3-5 minutes on 2 cores.
"""

from __future__ import annotations

import sys

if not __package__:
    sys.exit("run it from the repository root as: python -m bench.drill_storage")

import argparse
import errno
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import Checks
from data_io.datasets import load_dataset
from study.tune.progress import RAY_LOG

MAX_EPOCHS = 3
COMPLETED_BEFORE_FAULT = 2
METRIC = load_dataset("synthetic").metric.key  # the metric of the drills' data set
STUDY_ARGS = ["--space", "cnn", "--dataset", "synthetic", "--smoke", "--synthetic-records", "48",
              "--max-epochs", str(MAX_EPOCHS), "--grace-period", "1", "--scheduler", "fifo",
              "--concurrency", "2", "--wandb-mode", "disabled", "--explain-top", "1",
              "--set", "model/depth=4", "--set", "model/pool_every=1"]
RESUME_PATTERN = re.compile(r"`(python -m study\.run --resume [^`]+)`")
START = time.monotonic()


def progress(line: str) -> None:
    print(f"[{time.monotonic() - START:5.0f} s] {line}", flush=True)


def sh(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True)


class TmpfsFull:
    """A small tmpfs filled up by a filler file; space given back by growing the tmpfs."""

    name = "full"
    problem = "no space left on device"

    def __init__(self, work: Path) -> None:
        self.mount_dir = work / "mnt"

    def mount(self) -> None:
        self.mount_dir.mkdir(parents=True)
        _run_or_raise("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(self.mount_dir))

    def inject(self) -> str:
        filler = self.mount_dir / "filler"
        written = 0
        with open(filler, "wb") as fh:
            try:
                while True:
                    fh.write(b"\0" * (1 << 20))
                    fh.flush()
                    written += 1 << 20
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
        return f"filler took the remaining {written >> 20} MiB"

    def give_back(self) -> str:
        _run_or_raise("mount", "-o", "remount,size=256m", str(self.mount_dir))
        return "tmpfs grown to 256 MiB (filler kept)"

    def unmount(self) -> None:
        _unmount(self.mount_dir)


class Ext4ReadOnly:
    """An ext4 image on a loop device that the kernel turns read-only on an error."""

    name = "read-only"
    problem = "read-only file system"

    def __init__(self, work: Path) -> None:
        self.mount_dir = work / "mnt"
        self.image = work / "ext4.img"

    def mount(self) -> None:
        self.mount_dir.mkdir(parents=True)
        with open(self.image, "wb") as fh:
            fh.truncate(128 << 20)
        _run_or_raise("mkfs.ext4", "-q", "-F", str(self.image))
        self._mount_rw()

    def _mount_rw(self) -> None:
        _run_or_raise("mount", "-o", "loop,errors=remount-ro", str(self.image),
                      str(self.mount_dir))

    def _error_trigger(self) -> Path:
        device = sh("findmnt", "-n", "-o", "SOURCE", str(self.mount_dir)).stdout.strip()
        return Path("/sys/fs/ext4") / Path(device).name / "trigger_fs_error"

    def inject(self) -> str:
        sh("sync", "-f", str(self.mount_dir))  # what was written before the fault stays
        self._error_trigger().write_text("1")
        probe = self.mount_dir / ".probe"
        try:
            probe.write_text("x")
        except OSError as exc:
            return f"kernel remounted it read-only (a new file: {exc.strerror})"
        probe.unlink()
        raise RuntimeError("trigger_fs_error did not make the file system read-only")

    def give_back(self) -> str:
        _unmount(self.mount_dir)
        fsck = sh("e2fsck", "-fy", str(self.image))
        self._mount_rw()
        return f"unmounted, e2fsck exit {fsck.returncode}, mounted read-write again"

    def unmount(self) -> None:
        _unmount(self.mount_dir)


SCENARIOS = {scenario.name: scenario for scenario in (TmpfsFull, Ext4ReadOnly)}


def _run_or_raise(*command: str) -> None:
    done = sh(*command)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip() or done.returncode}")


def _unmount(path: Path) -> None:
    """Unmount ``path`` if mounted, waiting up to a minute for processes that still hold it
    (Ray's workers can take a while to exit after the driver)."""
    for _ in range(60):
        if sh("mountpoint", "-q", str(path)).returncode:
            return
        if not sh("umount", str(path)).returncode:
            return
        time.sleep(1)
    raise RuntimeError(f"cannot unmount {path}: still used by {_holders(path)}")


def _holders(path: Path) -> list[str]:
    """Processes with their working directory or an open file under ``path``."""
    holders = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            links = [proc / "cwd", *(proc / "fd").iterdir()]
            if any(str(os.readlink(link)).startswith(str(path)) for link in links):
                holders.append(f"{proc.name} {(proc / 'cmdline').read_bytes()[:80]!r}")
        except OSError:
            continue
    return holders


def cannot_run_reason(work: Path) -> str | None:
    """Why the drill cannot run on this machine, or None."""
    if os.geteuid() != 0:
        return "not root (the drill mounts file systems)"
    probe = work / "probe"
    probe.mkdir()
    try:
        done = sh("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe))
        if done.returncode:
            return f"cannot mount a tmpfs: {done.stderr.strip()}"
        _unmount(probe)
        image = work / "probe.img"
        with open(image, "wb") as fh:
            fh.truncate(16 << 20)
        for command in (("mkfs.ext4", "-q", "-F", str(image)),
                        ("mount", "-o", "loop", str(image), str(probe))):
            try:
                done = sh(*command)
            except FileNotFoundError:
                return f"{command[0]} is not installed"
            if done.returncode:
                return f"cannot {' '.join(command[:2])} an ext4 image: {done.stderr.strip()}"
        device = sh("findmnt", "-n", "-o", "SOURCE", str(probe)).stdout.strip()
        trigger = Path("/sys/fs/ext4") / Path(device).name / "trigger_fs_error"
        if not trigger.exists():  # gone once unmounted: look first
            return f"this kernel has no {trigger} (needed to turn ext4 read-only)"
        _unmount(probe)
        image.unlink()
    finally:
        _unmount(probe)
    return None


def start_driver(args: list[str], *, cwd: Path, log: Path) -> subprocess.Popen:
    """`python -m study.run ARGS` in its own process group, output to ``log``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as fh:
        return subprocess.Popen([sys.executable, "-m", "study.run", *args], cwd=cwd, env=env,
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def wait_driver(proc: subprocess.Popen, *, timeout_s: float) -> int | None:
    """The driver's exit code, or None after killing it (with its local Ray) at the timeout."""
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None


def completed_trials(tune_dir: Path) -> dict[str, list[float]]:
    """Trials whose result.json reached the full budget -> their per-epoch scores."""
    done = {}
    for result in tune_dir.glob("run_trial_*/result.json"):
        rows = []
        for line in result.read_text(errors="replace").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line still being written
        if rows and rows[-1].get("epoch") == MAX_EPOCHS:
            done[result.parent.name.split("_")[2]] = [row[METRIC] for row in rows]
    return done


def wait_for(predicate: Callable[[], bool], *, proc: subprocess.Popen, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if predicate():
            return True
        time.sleep(0.5)
    return predicate()


def last_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def check_fault_report(checks: Checks, *, scenario, code: int | None, log: Path) -> None:
    label = scenario.name
    checks.check(code is not None, f"{label}: driver exits after the fault (no hang)",
                 "killed at the timeout")
    checks.check(code == 3, f"{label}: driver exit code 3 (storage)", f"exit code {code}")
    line = last_line(log)
    print(f"  last line: {line}", flush=True)
    tracebacks = log.read_text(errors="replace").count("Traceback (most recent call last)")
    print(f"  the terminal output above it holds {tracebacks} traceback(s) (Ray's own messages "
          f"go to {RAY_LOG} in the study directory)", flush=True)
    checks.check(line.startswith("error: "), f"{label}: last line is one 'error:' line", line)
    checks.check(scenario.problem in line, f"{label}: it names the problem",
                 f"no {scenario.problem!r}")
    checks.check(str(scenario.mount_dir) in line, f"{label}: it names the storage path",
                 f"no {scenario.mount_dir}")
    checks.check(bool(RESUME_PATTERN.search(line)), f"{label}: it gives the resume command",
                 "no `python -m study.run --resume ...`")


def check_intact(checks: Checks, *, label: str, study_dir: Path) -> None:
    """The study directory as the fault left it (space given back, nothing run since)."""
    import optuna
    import pandas as pd
    from ray import tune

    from data_io.folds import read_folds

    def parses(what: str, load: Callable[[], object]) -> None:
        try:
            load()
        except Exception as exc:  # any failure to read is the finding
            checks.check(False, f"{label}: {what}", f"{type(exc).__name__}: {exc}")
            return
        checks.check(True, f"{label}: {what}")

    parses("study.json parses", lambda: json.loads((study_dir / "study.json").read_text()))
    parses("folds.csv parses", lambda: read_folds(study_dir / "folds.csv"))

    def optuna_trials() -> None:
        storage = optuna.storages.RDBStorage(f"sqlite:///{study_dir / 'optuna.db'}")
        try:
            (summary,) = optuna.get_all_study_summaries(storage)
            trials = optuna.load_study(study_name=summary.study_name, storage=storage).trials
        finally:
            storage.engine.dispose()  # close the file, or the file system cannot be unmounted
        states = sorted({t.state.name for t in trials})
        print(f"  optuna.db: {len(trials)} trials ({', '.join(states)})", flush=True)

    parses("optuna.db opens with Optuna", optuna_trials)
    for name in ("trials.parquet", "cv.parquet"):
        if (study_dir / name).exists():
            parses(f"{name} reads", lambda name=name: pd.read_parquet(study_dir / name))
    if (study_dir / "best_config.json").exists():
        parses("best_config.json parses",
               lambda: json.loads((study_dir / "best_config.json").read_text()))
    leftovers = [p.name for p in study_dir.glob(".*.tmp")]
    checks.check(not leftovers, f"{label}: no half-written files left", ", ".join(leftovers))
    tune_dir = study_dir / f"{study_dir.name}-tune"
    states = sorted(tune_dir.glob("experiment_state-*.json"))
    parses(f"{len(states)} Tune experiment state file(s) parse",
           lambda: [json.loads(p.read_text()) for p in states] and None)
    checks.check(bool(states) and tune.Tuner.can_restore(str(tune_dir)),
                 f"{label}: Tune experiment restorable", f"Tuner.can_restore({tune_dir}) false")


def check_resumed(checks: Checks, *, label: str, study_dir: Path, code: int | None,
                  log: Path, before: dict[str, list[float]], num_samples: int) -> None:
    import pandas as pd

    checks.check(code == 0, f"{label}: resume finishes (exit 0)",
                 f"exit {code}: {last_line(log)}")
    ray_log = study_dir / RAY_LOG  # Ray's own messages: the study's log, not the terminal
    ray_text = ray_log.read_text(errors="replace") if ray_log.is_file() else ""
    checks.check("Restarting experiment" not in log.read_text(errors="replace") + ray_text,
                 f"{label}: Tune restored the experiment (did not restart it)",
                 "Tune logged 'Failed to restore the run state ... Restarting experiment'")
    try:
        frame = pd.read_parquet(study_dir / "trials.parquet")
    except Exception as exc:  # missing or unreadable: the finding
        checks.check(False, f"{label}: trials.parquet after resume", str(exc))
        return
    n_trials = frame["trial_id"].nunique()
    checks.check(n_trials == num_samples, f"{label}: {num_samples} trials after resume",
                 f"{n_trials} trials")
    checks.check(not frame.duplicated(["trial_id", "epoch"]).any(),
                 f"{label}: one row per trial and epoch", "duplicated rows")
    kept = {t: frame.loc[frame.trial_id == t].sort_values("epoch")[METRIC].tolist()
            for t in before}
    changed = [t for t in before if kept[t] != before[t]]
    checks.check(not changed, f"{label}: the {len(before)} trials completed before the fault "
                              "kept with their scores", f"changed or lost: {changed}")
    reasons = frame.drop_duplicates("trial_id")["stop_reason"].value_counts().to_dict()
    print(f"  trials.parquet: {reasons}", flush=True)


def run_scenario(scenario_cls, *, work: Path, checks: Checks, num_samples: int,
                 timeout_s: float, keep: Path | None) -> None:
    scenario = scenario_cls(work)
    label = scenario.name
    scenario.mount()
    try:
        study_dir = scenario.mount_dir / "study"
        tune_dir = study_dir / "study-tune"
        progress(f"{label}: study on {scenario.mount_dir}, {num_samples} trials")
        proc = start_driver([*STUDY_ARGS, "--num-samples", str(num_samples), "--name", "study",
                             "--study-dir", str(study_dir), "--cache-dir", str(work / "cache")],
                            cwd=work, log=work / "driver.log")
        reached = wait_for(lambda: len(completed_trials(tune_dir)) >= COMPLETED_BEFORE_FAULT,
                           proc=proc, timeout_s=timeout_s)
        before = completed_trials(tune_dir)
        if not checks.check(reached and proc.poll() is None,
                            f"{label}: {COMPLETED_BEFORE_FAULT} trials complete before the fault",
                            f"{len(before)} completed, driver exit {proc.poll()}; "
                            f"{last_line(work / 'driver.log')}"):
            wait_driver(proc, timeout_s=0.1)
            return
        progress(f"{label}: trials {sorted(before)} completed; fault: {scenario.inject()}")
        code = wait_driver(proc, timeout_s=timeout_s)
        progress(f"{label}: driver exited with {code}")
        check_fault_report(checks, scenario=scenario, code=code, log=work / "driver.log")
        progress(f"{label}: giving the space back: {scenario.give_back()}")
        check_intact(checks, label=label, study_dir=study_dir)
        match = RESUME_PATTERN.search(last_line(work / "driver.log"))
        resume = shlex.split(match.group(1))[3:] if match else \
            ["--resume", "--study-dir", str(study_dir)]
        progress(f"{label}: resuming with study.run {' '.join(resume)}")
        proc = start_driver(resume, cwd=work, log=work / "resume.log")
        code = wait_driver(proc, timeout_s=timeout_s)
        progress(f"{label}: resume exited with {code}")
        check_resumed(checks, label=label, study_dir=study_dir, code=code,
                      log=work / "resume.log", before=before, num_samples=num_samples)
        if keep is not None:
            shutil.copytree(study_dir, work / "study-copy", symlinks=True)
    finally:
        scenario.unmount()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, default=6,
                        help=f"trials per study (at least {COMPLETED_BEFORE_FAULT + 2})")
    parser.add_argument("--timeout-s", type=float, default=300.0,
                        help="limit of each wait: for trials, for the driver to stop, to resume")
    parser.add_argument("--scenario", choices=SCENARIOS, action="append",
                        help="run only this scenario (repeatable; default: all)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="work in DIR and keep it (logs, copies of the study directories)")
    args = parser.parse_args(argv)
    if args.num_samples < COMPLETED_BEFORE_FAULT + 2:
        parser.error(f"--num-samples must be at least {COMPLETED_BEFORE_FAULT + 2}")
    work = Path(tempfile.mkdtemp(prefix="drill-storage-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    try:
        reason = cannot_run_reason(work)
        if reason is not None:
            print(f"drill storage: cannot run here: {reason}")
            return 2
        checks = Checks("storage")
        for name in args.scenario or list(SCENARIOS):
            scenario_work = work / name
            scenario_work.mkdir()
            run_scenario(SCENARIOS[name], work=scenario_work, checks=checks,
                         num_samples=args.num_samples, timeout_s=args.timeout_s, keep=args.keep)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work directory kept: {work}")
    return checks.verdict()


if __name__ == "__main__":
    raise SystemExit(main())
