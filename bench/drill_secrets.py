"""Drill: does the W&B API key end up in anything a study or its report writes?

    python -m bench.drill_secrets [--num-samples 3] [--timeout-s 600] [--keep DIR]

Sets WANDB_API_KEY to a fresh random sentinel (40 hex digits, the shape of a real key), runs a
small real study with W&B logging offline (nothing is sent), builds its report with
`python -m reports.build`, then searches every byte of: the driver's and the report builder's
output, study.json, the study directory (W&B offline runs, Ray Tune's params/result/state
files, everything else; parquet and npz contents decoded too), the report directory, the Ray
session of the study (found by the driver's process id, which Ray puts in the session
directory's name) and W&B's per-user directories. Prints PASS/FAIL per place with the files
holding the key, then `drill secrets: PASS` or `FAIL (n of m checks failed)`; exit 0 / 1.

Also reports the W&B mode the study chooses by default when a key is present: "online", which
cannot work without a network, so the study here runs with `--wandb-mode offline` (and
WANDB_MODE=offline). About 2-3 minutes on 2 cores.
"""

from __future__ import annotations

import sys

if not __package__:
    sys.exit("run it from the repository root as: python -m bench.drill_secrets")

import argparse
import io
import os
import re
import secrets
import shutil
import stat
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Iterable
from pathlib import Path

from bench.common import Checks

STUDY_ARGS = ["--space", "cnn", "--dataset", "synthetic", "--smoke", "--synthetic-records", "48",
              "--max-epochs", "2", "--grace-period", "1", "--concurrency", "2",
              "--explain-top", "1", "--name", "secrets"]
SESSION_PATTERN = re.compile(r"(/\S+/session_[0-9_-]+_(\d+))/")
WANDB_USER_DIRS = ("~/.config/wandb", "~/.cache/wandb", "~/.local/share/wandb", "~/.netrc")
START = time.monotonic()


def progress(line: str) -> None:
    print(f"[{time.monotonic() - START:5.0f} s] {line}", flush=True)


def files_under(root: Path) -> Iterable[Path]:
    """Regular files under ``root`` (or ``root`` itself), links and sockets left out."""
    if root.is_file() and not root.is_symlink():
        yield root
        return
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            try:
                if stat.S_ISREG(path.lstat().st_mode):
                    yield path
            except OSError:
                continue


def decoded(path: Path, raw: bytes) -> bytes:
    """The bytes to search: the file, plus the decompressed contents of parquet and npz."""
    extra = b""
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            extra = repr(pq.read_table(io.BytesIO(raw)).to_pylist()).encode()
        elif path.suffix in (".npz", ".zip"):
            with zipfile.ZipFile(io.BytesIO(raw)) as archive:
                extra = b"".join(archive.read(name) for name in archive.namelist())
    except Exception as exc:  # an unreadable file is searched as raw bytes only
        extra = f"(could not decode: {exc})".encode()
    return raw + extra


def holders(paths: Iterable[Path], *, needle: bytes) -> tuple[list[Path], int]:
    """Files among ``paths`` that contain ``needle``, and how many files were searched."""
    found, searched = [], 0
    for path in paths:
        try:
            raw = path.read_bytes()
        except OSError:
            continue
        searched += 1
        if needle in decoded(path, raw):
            found.append(path)
    return found, searched


def check_place(checks: Checks, *, what: str, paths: list[Path], needle: bytes,
                root: Path | None = None) -> None:
    found, searched = holders(paths, needle=needle)
    names = [str(p.relative_to(root)) if root else str(p) for p in found]
    checks.check(searched > 0 and not found,
                 f"key not in {what} ({searched} files searched)",
                 f"found in {', '.join(names)}" if found else "no file to search")


def run_logged(args: list[str], *, cwd: Path, env: dict[str, str], log: Path,
               timeout_s: float) -> tuple[int | None, int]:
    """Run ``python ARGS`` in its own process group with output to ``log``;
    (exit code or None on timeout, pid)."""
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        return proc.wait(timeout=timeout_s), proc.pid
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
        return None, proc.pid


def default_wandb_mode(env: dict[str, str]) -> str:
    """What `study.tune.wandb_mode.resolve_mode` picks with ``env`` and no --wandb-mode."""
    code = "from study.tune.wandb_mode import resolve_mode; print(resolve_mode(None))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)
    return done.stdout.strip() or f"(failed: {done.stderr.strip()[-200:]})"


def ray_session(log: Path, *, pid: int) -> Path | None:
    """The Ray session directory the driver started: the one its log names whose name ends
    in the driver's process id (other Ray sessions on this machine are left alone)."""
    for match in SESSION_PATTERN.finditer(log.read_text(errors="replace")):
        if int(match.group(2)) == pid:
            return Path(match.group(1))
    ray_tmp = Path(os.environ.get("RAY_TMPDIR", tempfile.gettempdir())) / "ray"
    named = sorted(ray_tmp.glob(f"session_*_{pid}"))
    return named[-1] if named else None


def tail(log: Path, n: int = 5) -> str:
    return " | ".join(log.read_text(errors="replace").strip().splitlines()[-n:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, default=3, help="trials of the study")
    parser.add_argument("--timeout-s", type=float, default=600.0,
                        help="limit of the study and of the report build")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="work in DIR and keep it (logs, study, report)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="drill-secrets-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    key = secrets.token_hex(20)
    needle = key.encode()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    base_env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", WANDB_API_KEY=key)
    checks = Checks("secrets")
    try:
        chosen = default_wandb_mode(base_env)
        print(f"W&B mode the study picks with the key set and no --wandb-mode or WANDB_MODE: "
              f"{chosen}" + (" (cannot work without a network here)" if chosen == "online"
                             else ""))
        print("the study runs with --wandb-mode offline and WANDB_MODE=offline: nothing is sent")
        env = {**base_env, "WANDB_MODE": "offline"}
        progress(f"study with WANDB_API_KEY set to a random sentinel, {args.num_samples} trials")
        code, pid = run_logged(
            ["-m", "study.run", *STUDY_ARGS, "--num-samples", str(args.num_samples),
             "--wandb-mode", "offline", "--cache-dir", str(work / "cache")],
            cwd=work, env=env, log=work / "driver.log", timeout_s=args.timeout_s)
        study_dir = work / "runs" / "secrets"
        checks.check(code == 0, "the study finishes", f"exit {code}: {tail(work / 'driver.log')}")
        offline_runs = list(study_dir.glob("*-tune/*/wandb/offline-run-*"))
        checks.check(bool(offline_runs), f"W&B wrote offline runs ({len(offline_runs)})",
                     "no */wandb/offline-run-* under the study directory")
        progress("building the report")
        report_dir = work / "report"
        report_code, _ = run_logged(
            ["-m", "reports.build", "--study", str(study_dir), "--out", str(report_dir)],
            cwd=work, env=env, log=work / "report.log", timeout_s=args.timeout_s)
        checks.check(report_code == 0, "the report builds",
                     f"exit {report_code}: {tail(work / 'report.log')}")
        progress("searching for the key")
        session = ray_session(work / "driver.log", pid=pid)
        study_files = list(files_under(study_dir))
        in_wandb = [p for p in study_files if "wandb" in p.relative_to(study_dir).parts]
        in_tune = [p for p in study_files if p.relative_to(study_dir).parts[0].endswith("-tune")
                   and p not in in_wandb]
        check_place(checks, what="the driver's and report builder's output",
                    paths=[work / "driver.log", work / "report.log"], needle=needle, root=work)
        check_place(checks, what="study.json", paths=[study_dir / "study.json"], needle=needle,
                    root=study_dir)
        check_place(checks, what="the W&B offline runs", paths=in_wandb, needle=needle,
                    root=study_dir)
        check_place(checks, what="Ray Tune's experiment files (params, results, state, "
                                 "checkpoints)", paths=in_tune, needle=needle, root=study_dir)
        check_place(checks, what="the rest of the study directory",
                    paths=[p for p in study_files if p not in in_wandb and p not in in_tune],
                    needle=needle, root=study_dir)
        check_place(checks, what="the report directory", paths=list(files_under(report_dir)),
                    needle=needle, root=report_dir)
        if checks.check(session is not None and session.is_dir(),
                        "the study's Ray session found (by the driver's process id)",
                        f"no session_*_{pid} named in the driver's output"):
            check_place(checks, what=f"the Ray session logs ({session}/logs)",
                        paths=list(files_under(session / "logs")), needle=needle,
                        root=session)
            check_place(checks, what="the rest of the Ray session directory",
                        paths=[p for p in files_under(session)
                               if "logs" not in p.relative_to(session).parts],
                        needle=needle, root=session)
        recent = [p for d in WANDB_USER_DIRS for p in files_under(Path(d).expanduser())
                  if p.stat().st_mtime >= started]
        found, _ = holders(recent, needle=needle)
        checks.check(not found, f"key not in W&B's per-user files ({len(recent)} written "
                                f"during the drill under {', '.join(WANDB_USER_DIRS)})",
                     f"found in {', '.join(map(str, found))}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work directory kept: {work}")
    return checks.verdict()


if __name__ == "__main__":
    raise SystemExit(main())
