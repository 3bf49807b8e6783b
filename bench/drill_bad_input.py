"""Drill: bad input gets one clear line naming the file or value and the problem, never a bare
traceback, and nothing is lost.

    python -m bench.drill_bad_input [--data-dir ../shared/data/cinc2017] [--keep DIR]

Runs the user's commands as subprocesses, each with its own bad input:
  - damaged records: the parametrized damaged-record tests (every damage kind, loader and
    `data_io.inspect`), `python -m data_io.inspect` on a copy of real records (synthetic when
    --data-dir holds none) with five records damaged, and a tiny study on that copy, which must
    warn about the quarantined records and still train on the good ones;
  - a study whose every trial diverges (`--set optim/lr=1e30`: after one Adam step the
    activations overflow float32 and the loss is NaN): it must finish, record the trials as
    diverged (with the epoch and batch) in trials.parquet and say so when it ends;
  - an unknown `--space` and `--show-space`;
  - malformed copies of cluster.yaml through `python -m study.check_cluster`;
  - an `--address` where no Ray cluster answers (a closed port, a port that never accepts, one
    that accepts and stays silent, all on 127.0.0.1) or whose host name does not resolve (the
    lookup fails in-process), each timed.
Every command runs under the loopback guard (bench/loopback_guard.py); a last check fails if
any of them tried to reach another machine.
Prints one PASS/FAIL line per check with the first line the user saw. Takes ~3-5 minutes on
2 cores (two tiny studies).
"""

from __future__ import annotations

import sys

if not __package__:
    sys.exit("run it from the repository root as: python -m bench.drill_bad_input")

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench import loopback_guard
from bench.common import DEFAULT_DATA, synthetic_set, work_directory
from bench.dead_ends import closed_port, never_accepting, silent_after_accept
from data_io.cinc_format import write_reference
from data_io.datasets import load_dataset
from data_io.reference import find_reference, read_reference

CINC_CLASSES = load_dataset("cinc2017").labels

REPO = Path(__file__).resolve().parents[1]
CLUSTER_YAML = REPO / "cluster.yaml"
TINY_STUDY = ["--smoke", "--max-epochs", "1", "--grace-period", "1", "--concurrency", "1",
              "--folds", "3", "--explain-top", "0", "--wandb-mode", "disabled"]
ADDRESS_LIMIT_S = 30.0
"""An unreachable --address must be reported within this many seconds."""


@dataclass(frozen=True)
class Ran:
    """A finished command: exit status, its two streams, wall seconds."""

    code: int
    out: str
    err: str
    seconds: float

    @property
    def text(self) -> str:
        return self.out + self.err

    def first_line(self, prefix: str = "") -> str:
        """The first line of stderr starting with ``prefix`` (else of stderr, else of stdout)."""
        lines = [line for line in self.err.splitlines() if line.strip()]
        chosen = [line for line in lines if line.startswith(prefix)] if prefix else lines
        return (chosen or lines or self.out.splitlines() or ["(no output)"])[0]


@dataclass(frozen=True)
class Check:
    what: str
    seen: str
    problems: tuple[str, ...]


def refusal_log(work: Path) -> Path:
    """Where the loopback guard of every command the drill runs logs a refused connection."""
    return work / "loopback-refusals.log"


def run_cli(args: list[str], *, cwd: Path, timeout_s: float) -> Ran:
    """Run ``python ARGS`` as a user would, in its own process group, output to files (a pipe
    nobody reads could block it); the whole group is killed at ``timeout_s``."""
    cwd.mkdir(parents=True, exist_ok=True)
    out_path, err_path = cwd / "stdout.log", cwd / "stderr.log"
    path = os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH"))))
    env = loopback_guard.guarded_env(
        {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": path,
         "RAY_USAGE_STATS_ENABLED": "0", "RAY_USAGE_STATS_REPORT_URL": "http://127.0.0.1:9/"},
        log_path=refusal_log(cwd.parent))
    start = time.perf_counter()
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, stdout=out,
                                stderr=err, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = -9
    seconds = time.perf_counter() - start
    return Ran(code=code, out=out_path.read_text(), err=err_path.read_text(), seconds=seconds)


def clear_error(ran: Ran, *, names: str, code: int = 2) -> list[str]:
    """Problems with an error report: the status, one 'error:' line naming ``names``, no
    traceback."""
    problems = []
    if ran.code != code:
        problems.append(f"exit status {ran.code}, expected {code}")
    errors = [line for line in ran.err.splitlines() if line.startswith("error: ")]
    if len(errors) != 1 or names not in errors[0]:
        problems.append(f"expected one 'error:' line naming {names!r}; stderr: {ran.err[-600:]}")
    if "Traceback" in ran.text:
        problems.append("a traceback was printed")
    return problems


# --- damaged records -------------------------------------------------------------------------

def _truncate_mat(directory: Path, record: str, ids: list[str]) -> None:
    path = directory / f"{record}.mat"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _wrong_sampling_rate(directory: Path, record: str, ids: list[str]) -> None:
    path = directory / f"{record}.hea"
    first, rest = path.read_text().split("\n", 1)
    fields = first.split()
    fields[2] = "250"
    path.write_text(" ".join(fields) + "\n" + rest)


def _unknown_label(directory: Path, record: str, ids: list[str]) -> None:
    path = directory / "REFERENCE.csv"
    path.write_text("".join((f"{record},X" if line.startswith(f"{record},") else line) + "\n"
                            for line in path.read_text().splitlines()))


def _signal_missing(directory: Path, record: str, ids: list[str]) -> None:
    (directory / f"{record}.mat").unlink()


def _copied_header(directory: Path, record: str, ids: list[str]) -> None:
    shutil.copy(directory / f"{ids[0]}.hea", directory / f"{record}.hea")


RECORD_DAMAGES: tuple[tuple[str, Callable[[Path, str, list[str]], None], str], ...] = (
    ("truncated .mat", _truncate_mat, ".mat"),
    ("wrong sampling rate in the header", _wrong_sampling_rate, "sampling rate 250 Hz"),
    ("unknown label in REFERENCE.csv", _unknown_label, "unknown label 'X'"),
    (".mat file missing", _signal_missing, ".mat is missing"),
    ("header copied from another record", _copied_header, "header names record"),
)
"""(what, damage(directory, record, all ids), words its quarantine reason must hold)."""


def damaged_copy(*, source: Path, dest: Path, n_records: int) -> tuple[dict[str, str], int]:
    """Copy (real files, never links: they get damaged) the first ``n_records`` of ``source``
    and damage one record per kind; returns {damaged record: expected words}, records kept."""
    labels = read_reference(find_reference(source), classes=CINC_CLASSES).labels
    ids = sorted(labels)[:n_records]
    dest.mkdir(parents=True)
    for record in ids:
        for suffix in (".hea", ".mat"):
            shutil.copyfile(source / f"{record}{suffix}", dest / f"{record}{suffix}")
    write_reference(directory=dest, labels={r: labels[r] for r in ids})
    victims = {}
    for (_, damage, words), record in zip(RECORD_DAMAGES, ids[1::7], strict=False):
        damage(dest, record, ids)
        victims[record] = words
    return victims, len(ids) - len(victims)


def check_damage_tests(work: Path) -> Check:
    ran = run_cli(["-m", "pytest", "-q", "-p", "no:cacheprovider",
                   str(REPO / "tests" / "data_io" / "test_cinc2017.py"),
                   "-k", "damaged or inspect"], cwd=work / "pytest", timeout_s=300)
    summary = next((line for line in reversed(ran.out.splitlines()) if " in " in line), "")
    passed = int(m.group(1)) if (m := re.search(r"(\d+) passed", summary)) else 0
    failed = re.search(r"(\d+) (failed|error)", summary)
    problems = [f"exit status {ran.code}: {ran.out[-800:]}"] if ran.code else []
    if failed or not passed:
        problems.append(f"pytest summary: {summary!r}")
    return Check("every damaged-record kind is quarantined with a reason (pytest -k 'damaged "
                 "or inspect')", summary.strip("= "), tuple(problems))


def check_inspect(data: Path, *, victims: dict[str, str], kept: int, work: Path) -> Check:
    ran = run_cli(["-m", "data_io.inspect", str(data), "--quiet"], cwd=work / "inspect",
                  timeout_s=120)
    lines = ran.out.splitlines()
    problems = [f"exit status {ran.code}"] if ran.code else []
    if not lines or not lines[0].startswith(f"{data}: {kept} records"):
        problems.append(f"first line should count {kept} good records: {lines[:1]}")
    if f"quarantined: {len(victims)}" not in lines:
        problems.append(f"no 'quarantined: {len(victims)}' line")
    for record, words in victims.items():
        reason = next((line for line in lines if line.strip().startswith(f"{record}:")), "")
        if words not in reason:
            problems.append(f"{record}'s reason lacks {words!r}: {reason!r}")
    if "Traceback" in ran.text:
        problems.append("a traceback was printed")
    first_reason = next((line.strip() for line in lines if line.startswith("  ")), "")
    return Check(f"data_io.inspect on a copy with {len(victims)} damaged records lists each with "
                 "its reason and exits 0", f"{lines[0] if lines else ''} | {first_reason}",
                 tuple(problems))


def check_study_on_damaged(data: Path, *, victims: dict[str, str], kept: int,
                           work: Path) -> Check:
    cwd = work / "study-damaged"
    ran = run_cli(["-m", "study.run", "--space", "cnn", "--dataset", "cinc2017",
                   "--data-dir", str(data), "--num-samples", "1", "--name", "damaged",
                   "--cache-dir", str(work / "cache"), *TINY_STUDY], cwd=cwd, timeout_s=480)
    seen = ran.first_line("warning:")
    problems = [f"exit status {ran.code}: {ran.text[-800:]}"] if ran.code else []
    expected = (f"warning: {len(victims)} records quarantined (see python -m data_io.inspect "
                f"{data} --dataset cinc2017)")
    if expected not in ran.err:
        problems.append(f"no line {expected!r}")
    study_dir = cwd / "runs" / "damaged"
    if (study_dir / "study.json").is_file():
        records = json.loads((study_dir / "study.json").read_text())["data"]["records"]
        if records != kept:
            problems.append(f"study.json counts {records} records, expected {kept}")
    else:
        problems.append("no study.json")
    if (study_dir / "trials.parquet").is_file():
        frame = pd.read_parquet(study_dir / "trials.parquet")
        if not frame["stop_reason"].isin(["completed", "early_stopped"]).any():
            problems.append(f"no trial trained: {frame['stop_reason'].unique().tolist()}")
    else:
        problems.append("no trials.parquet")
    return Check(f"a study on that copy warns about the quarantine and trains on the {kept} good "
                 "records", seen, tuple(problems))


# --- diverging trials ------------------------------------------------------------------------

def check_diverged_study(work: Path) -> list[Check]:
    cwd = work / "study-diverged"
    ran = run_cli(["-m", "study.run", "--space", "cnn", "--dataset", "synthetic",
                   "--synthetic-records", "48", "--num-samples", "2", "--name", "nan",
                   "--set", "optim/lr=1e30", "--cache-dir", str(work / "cache"),
                   *TINY_STUDY], cwd=cwd, timeout_s=480)
    study_dir = cwd / "runs" / "nan"
    finished = [] if ran.code in (0, 2) else [f"exit status {ran.code}: {ran.text[-800:]}"]
    if "Traceback" in ran.text:
        finished.append("a traceback was printed")
    summary = next((line for line in ran.out.splitlines() if line.startswith("study nan:")), "")
    checks = [Check("a study whose every trial diverges finishes without a traceback",
                    f"exit {ran.code} after {ran.seconds:.0f} s", tuple(finished))]

    recorded: list[str] = []
    message = ""
    if (study_dir / "trials.parquet").is_file():
        frame = pd.read_parquet(study_dir / "trials.parquet")
        trials = frame.drop_duplicates("trial_id", keep="last")
        if len(trials) != 2 or set(trials["stop_reason"]) != {"diverged"}:
            recorded.append(f"stop reasons: {trials['stop_reason'].tolist()}")
        messages = trials["message"].fillna("").tolist() if "message" in trials else []
        message = messages[0] if messages else ""
        where = re.compile(r"diverged at epoch \d+: loss is \S+ at batch \d+")
        if not messages or not all(where.search(m) for m in messages):
            recorded.append(f"messages do not say where: {messages}")
        unmeasured = frame[frame.get("trial_status", pd.Series(dtype=str)) == "diverged"]
        scored = unmeasured["val/f1_cinc"].dropna() if "val/f1_cinc" in unmeasured else []
        if len(unmeasured) != 2 or len(scored):
            recorded.append(f"the diverged rows carry scores {list(scored)} (NaN expected)")
    else:
        recorded.append("no trials.parquet")
    checks.append(Check("trials.parquet records each trial as diverged, saying where, with "
                        "no score (NaN)",
                        message, tuple(recorded)))

    lines = ran.out.splitlines()
    where = [line.strip() for line in lines if line.strip().startswith("diverged: trial ")]
    said = [] if re.search(r"\bdiverged 2\b", summary) else [f"summary: {summary!r}"]
    if len(where) != 2 or not all("diverged at epoch" in line for line in where):
        said.append(f"no line per trial saying where it diverged: {where}")
    checks.append(Check("the printed summary says every trial diverged, and where",
                        f"{summary} | {where[0] if where else ''}", tuple(said)))

    no_best_line = next((line for line in lines if line.startswith("no best trial")), "")
    no_best = [] if no_best_line else [f"no 'no best trial' line after: {summary!r}"]
    if (study_dir / "best_config.json").exists():
        no_best.append("best_config.json written although no trial finished")
    checks.append(Check("with no best trial the summary says so in one line (no crash)",
                        no_best_line, tuple(no_best)))
    return checks


# --- spaces, cluster.yaml, address -----------------------------------------------------------

def check_unknown_space(work: Path) -> list[Check]:
    checks = []
    for args, what in ((["--space", "nope", "--dataset", "synthetic"], "--space nope"),
                       (["--show-space", "nope"], "--show-space nope")):
        ran = run_cli(["-m", "study.run", *args], cwd=work / "space", timeout_s=60)
        problems = clear_error(ran, names="'nope'")
        if "cnn" not in ran.err:
            problems.append("the known spaces are not listed")
        checks.append(Check(f"{what}: one error line listing the known spaces",
                            ran.first_line("error:"), tuple(problems)))
    return checks


CLUSTER_BREAKS: tuple[tuple[str, str, str, str], ...] = (
    ("a YAML syntax error", "\nmax_workers: 8\n", "\nmax_workers: [8\n", " line "),
    ("an unknown top-level key", "idle_timeout_minutes: 10", "idle_timeout_minute: 10",
     "'idle_timeout_minute' was unexpected"),
    ("a node type without resources", "    resources: {CPU: 4, GPU: 1}\n", "",
     "available_node_types[ray.worker.gpu]: 'resources' is a required property"),
    ("a fractional GPU count", "resources: {CPU: 4, GPU: 1}", "resources: {CPU: 4, GPU: 0.5}",
     "0.5 is not of type 'integer'"),
    ("provider without type", "  type: aws\n", "", "provider: 'type' is a required property"),
    ("an undefined head node type", "head_node_type: ray.head.cpu",
     "head_node_type: ray.head.big", "`head_node_type` must be one of"),
)
"""(what, text replaced in cluster.yaml, its replacement, words the error must hold)."""


def check_cluster_files(work: Path) -> list[Check]:
    cwd = work / "cluster"
    ran = run_cli(["-m", "study.check_cluster", str(CLUSTER_YAML)], cwd=cwd, timeout_s=60)
    problems = [] if ran.code == 0 and ": valid (" in ran.out else [f"exit {ran.code}: {ran.text}"]
    checks = [Check("study.check_cluster accepts the repository's cluster.yaml",
                    ran.out.strip(), tuple(problems))]
    text = CLUSTER_YAML.read_text()
    for i, (what, old, new, words) in enumerate(CLUSTER_BREAKS):
        path = cwd / f"broken-{i}.yaml"
        if text.count(old) != 1:
            checks.append(Check(f"cluster.yaml with {what}", "", (f"{old!r} not in the file",)))
            continue
        path.write_text(text.replace(old, new))
        ran = run_cli(["-m", "study.check_cluster", str(path)], cwd=cwd, timeout_s=60)
        problems = clear_error(ran, names=str(path))
        if words not in ran.err:
            problems.append(f"the error lacks {words!r}")
        checks.append(Check(f"cluster.yaml with {what}: exit 2, one line", ran.first_line(),
                            tuple(problems)))
    return checks


def check_unreachable_addresses(work: Path) -> list[Check]:
    """Every kind of address where no Ray cluster answers, all on this machine: a closed
    port, a port that never accepts, one that accepts and stays silent, and a host name that
    does not resolve ("localhost" made to fail in-process by `bench.no_dns --unknown`, so no
    resolver is asked and no other host is named)."""
    checks = []
    with never_accepting() as dropped, silent_after_accept() as silent:
        cases = ((closed_port(), "Connection refused", []),
                 (dropped, "no answer within", []),
                 (silent, "no answer within", []),
                 ("localhost:6379", "host name localhost not found",
                  ["-m", "bench.no_dns", "--unknown", "localhost"]))
        for i, (address, reason, launcher) in enumerate(cases):
            args = launcher or ["-m"]
            ran = run_cli([*args, "study.run", "--space", "cnn", "--dataset", "synthetic",
                           "--synthetic-records", "48", "--name", f"addr{i}", "--address",
                           address, "--cache-dir", str(work / "cache"), *TINY_STUDY],
                          cwd=work / "address", timeout_s=240)
            problems = clear_error(ran, names=f"cannot join the Ray cluster at {address}: ")
            if reason not in ran.err:
                problems.append(f"the error does not say {reason!r}")
            if ran.seconds > ADDRESS_LIMIT_S:
                problems.append(f"took {ran.seconds:.0f} s (limit {ADDRESS_LIMIT_S:g} s)")
            checks.append(Check(f"--address {address}: a clear error in {ran.seconds:.1f} s",
                                ran.first_line("error:"), tuple(problems)))
    return checks


def check_stayed_on_this_machine(work: Path) -> Check:
    """No command of the drill tried to reach another machine (the loopback guard's log)."""
    refused = loopback_guard.refusals(refusal_log(work))
    probes = loopback_guard.probes(refusal_log(work))
    return Check("no command tried to reach another machine",
                 f"{len(refused)} refusals logged; {len(probes)} cloud-metadata probes by Ray "
                 "refused before sending", tuple(refused[:5]))


# --- driver ----------------------------------------------------------------------------------

def record_source(data_dir: Path, work: Path) -> Path:
    if (data_dir / "REFERENCE.csv").is_file():
        print(f"records: real CinC 2017 records from {data_dir}")
        return data_dir
    print(f"records: none at {data_dir}; writing synthetic ones")
    return synthetic_set(dest=work / "synthetic", n_records=60, seed=0)


def run_drill(args: argparse.Namespace, work: Path) -> list[Check]:
    checks: list[Check] = []
    print("... damaged-record tests (pytest)", flush=True)
    checks.append(check_damage_tests(work))
    source = record_source(args.data_dir, work)
    damaged = work / "damaged"
    victims, kept = damaged_copy(source=source, dest=damaged, n_records=args.records)
    print(f"... data_io.inspect and a tiny study on {damaged} ({len(victims)} damaged)",
          flush=True)
    checks.append(check_inspect(damaged, victims=victims, kept=kept, work=work))
    checks.append(check_study_on_damaged(damaged, victims=victims, kept=kept, work=work))
    print("... a study whose every trial diverges (--set optim/lr=1e30)", flush=True)
    checks += check_diverged_study(work)
    print("... unknown spaces, malformed cluster.yaml, unreachable --address", flush=True)
    checks += check_unknown_space(work)
    checks += check_cluster_files(work)
    checks += check_unreachable_addresses(work)
    checks.append(check_stayed_on_this_machine(work))
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA,
                        help="CinC 2017 records to copy and damage (default: "
                             "../shared/data/cinc2017; synthetic records when it holds none)")
    parser.add_argument("--records", type=int, default=60,
                        help="records in the damaged copy (five of them damaged)")
    parser.add_argument("--keep", type=Path, help="keep the work directory here (must not exist)")
    args = parser.parse_args(argv)
    if args.keep and args.keep.exists():
        print(f"error: --keep {args.keep} exists; pass a new directory", file=sys.stderr)
        return 2
    start = time.perf_counter()
    with work_directory(prefix="drill-bad-input-", keep=args.keep) as work:
        checks = run_drill(args, work)
    for check in checks:
        if check.problems:
            print(f"FAIL {check.what}: {'; '.join(check.problems)} [user saw: {check.seen}]")
        else:
            print(f"PASS {check.what} [user saw: {check.seen}]")
    failed = sum(bool(check.problems) for check in checks)
    print(f"({time.perf_counter() - start:.0f} s)")
    print("drill bad_input: PASS" if not failed
          else f"drill bad_input: FAIL ({failed} of {len(checks)} checks failed)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
