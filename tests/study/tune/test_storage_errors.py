"""A study whose storage fills up or turns read-only stops with one `error:` line naming the
path, the problem and the resume command (exit 3), whether the fault reaches the driver as an
OSError, as a trial's Ray task error or through Optuna's SQLite storage. Fast: no Ray runs
(`python -m bench.drill_storage` runs the real thing on a small tmpfs)."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
import sys
from types import SimpleNamespace

import optuna
import pytest
from ray.exceptions import RayTaskError

from study import run
from study.run import build_parser
from study.tune import storage_faults, tuning
from study.tune.plan import StudyError, make_plan
from study.tune.storage_faults import storage_fault_message, storage_problem

SYNTHETIC = ["--space", "cnn", "--dataset", "synthetic", "--synthetic-records", "16", "--smoke",
             "--wandb-mode", "disabled"]


def _raised(exc: BaseException) -> BaseException:
    """``exc`` after a real raise (so it carries a traceback, as Ray's errors need)."""
    try:
        raise exc
    except BaseException as caught:
        return caught


def _trial_error(exc: OSError) -> BaseException:
    """What a ResultGrid holds for a trial whose function raised ``exc``."""
    return RayTaskError("train", "traceback", _raised(exc)).as_instanceof_cause()


def _readonly_sqlite_error(tmp_path) -> optuna.exceptions.StorageInternalError:
    """A real SQLite write refused on a read-only database, wrapped as Optuna wraps it."""
    path = tmp_path / "ro.db"
    sqlite3.connect(path).close()
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        connection.execute("CREATE TABLE t (x INTEGER)")
    except sqlite3.OperationalError as exc:
        try:
            raise optuna.exceptions.StorageInternalError("commit failed") from exc
        except optuna.exceptions.StorageInternalError as wrapped:
            return wrapped
    finally:
        connection.close()
    raise AssertionError("the read-only database accepted a write")


def test_storage_problems_are_recognised_through_wrappers(tmp_path):
    full = OSError(errno.ENOSPC, "No space left on device", "/data/study/trials.parquet")
    assert storage_problem(full) == ("no space left on device", "/data/study/trials.parquet")
    assert storage_problem(_trial_error(OSError(errno.EROFS, "Read-only file system"))) == (
        "read-only file system", None)
    problem, _ = storage_problem(_readonly_sqlite_error(tmp_path))
    assert problem.startswith("read-only")


@pytest.mark.parametrize("exc", [ValueError("bad"), OSError(errno.ENOENT, "missing"), None,
                                 RuntimeError("NaN loss")])
def test_other_errors_are_not_storage_problems(exc):
    assert storage_problem(exc) is None


def _plan(tmp_path, monkeypatch, *extra: str):
    monkeypatch.chdir(tmp_path)
    return make_plan(build_parser().parse_args([*SYNTHETIC, "--name", "s", *extra]),
                     wandb_mode="disabled")


def test_message_names_path_problem_trials_and_the_resume_command(tmp_path, monkeypatch):
    plan = _plan(tmp_path, monkeypatch)
    message = storage_fault_message("no space left on device", path="/mnt/x", plan=plan,
                                    trials=["ab12", "cd34"])
    assert message.startswith("no space left on device writing /mnt/x: 2 trial(s)")
    assert "(ab12, cd34)" in message and "completed trials are kept" in message
    assert message.endswith("`python -m study.run --resume --name s`")
    elsewhere = _plan(tmp_path, monkeypatch, "--study-dir", str(tmp_path / "other"))
    assert f"--resume --study-dir {tmp_path / 'other'}`" in storage_fault_message(
        "read-only file system", path="/mnt/x", plan=elsewhere)


class _FakeTuner:
    def __init__(self, outcome):
        self.outcome = outcome

    def fit(self):
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


def _main_with_fit(outcome, *, tmp_path, monkeypatch, capsys) -> tuple[int, str]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("ray.init", lambda **kwargs: None)
    monkeypatch.setattr(tuning, "search_tuner",
                        lambda plan, spec, milestones: _FakeTuner(outcome))
    code = run.main([*SYNTHETIC, "--name", "s"])
    return code, capsys.readouterr().err


def test_a_full_disk_during_the_search_is_one_error_line_and_exit_3(tmp_path, monkeypatch,
                                                                      capsys):
    full = _raised(OSError(errno.ENOSPC, "No space left on device"))
    code, err = _main_with_fit(full, tmp_path=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert code == storage_faults.EXIT_STORAGE
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert err.rstrip().endswith(line)
    assert line.startswith(f"error: no space left on device writing {tmp_path / 'runs' / 's'}")
    assert "--resume --name s" in line


def test_trials_failing_on_a_read_only_disk_are_reported_together(tmp_path, monkeypatch, capsys):
    grid = [
        SimpleNamespace(path=f"/x/run_trial_{trial}_1_a=1", error=error)
        for trial, error in [("aaa1", _trial_error(OSError(errno.EROFS, "Read-only"))),
                             ("bbb2", None),
                             ("ccc3", _trial_error(OSError(errno.EROFS, "Read-only")))]
    ]
    code, err = _main_with_fit(grid, tmp_path=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert code == storage_faults.EXIT_STORAGE
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert err.rstrip().endswith(line)
    assert "read-only file system writing" in line and "s-tune" in line
    assert "2 trial(s) could not save their checkpoints (aaa1, ccc3)" in line
    assert not (tmp_path / "runs" / "s" / "trials.parquet").exists()


WRITE_PAST_LIMIT = """
import json, resource, signal, sys
import pyarrow.fs as pfs
from study.tune.whole_file_fs import WholeFileLocalFileSystem
target_fs = {"whole": pfs.PyFileSystem(WholeFileLocalFileSystem()),
             "local": pfs.LocalFileSystem()}[sys.argv[1]]
small, big, dst = sys.argv[2] + ".small", sys.argv[2] + ".big", sys.argv[3]
open(small, "w").write(json.dumps({"trials": "a" * 1000}))
open(big, "w").write(json.dumps({"trials": "b" * 60_000}))
pfs.copy_files(small, dst, destination_filesystem=target_fs)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit: EFBIG, as a full disk: ENOSPC
resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))
try:
    pfs.copy_files(big, dst, destination_filesystem=target_fs)
except OSError as exc:
    print("copy failed:", exc)
"""


@pytest.mark.parametrize(("filesystem", "intact"), [("whole", True), ("local", False)])
def test_tune_storage_files_appear_whole_or_not_at_all(filesystem, intact, tmp_path):
    """A copy that fails part-way keeps the previous file with WholeFileLocalFileSystem;
    pyarrow's own local file system leaves it truncated (the reason for the class)."""
    target = tmp_path / "storage" / "experiment_state-x.json"
    target.parent.mkdir()
    done = subprocess.run([sys.executable, "-c", WRITE_PAST_LIMIT, filesystem,
                           str(tmp_path / "state.json"), str(target)],
                          capture_output=True, text=True, timeout=60)
    assert "copy failed" in done.stdout, done.stdout + done.stderr
    try:
        parsed = json.loads(target.read_text())
    except ValueError:
        parsed = None
    assert (parsed == {"trials": "a" * 1000}) is intact
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary left


def test_resume_refuses_a_damaged_experiment_state(tmp_path):
    tuning.check_restorable(str(tmp_path))  # nothing to check
    (tmp_path / "experiment_state-2026-01-01_00-00-00.json").write_text('{"trial_data": []}')
    tuning.check_restorable(str(tmp_path))
    (tmp_path / "experiment_state-2026-01-02_00-00-00.json").write_text('{"trial_data": [{"x')
    with pytest.raises(StudyError, match=r"experiment state .*2026-01-02.* is damaged"):
        tuning.check_restorable(str(tmp_path))


@pytest.mark.parametrize(("flag", "available", "state"), [
    (0, 100, None), (os.ST_RDONLY, 100, "read-only file system"),
    (0, 0, "no space left on device"),
])
def test_storage_state_reads_the_file_system(flag, available, state, tmp_path, monkeypatch):
    seen = []

    def statvfs(path):
        seen.append(path)
        return SimpleNamespace(f_flag=flag, f_bavail=available)

    monkeypatch.setattr(os, "statvfs", statvfs)
    assert storage_faults.storage_state(str(tmp_path / "not" / "yet")) == state
    assert seen == [tmp_path]  # the nearest existing directory


def test_storage_state_tries_a_write_where_statvfs_says_writable(tmp_path, monkeypatch):
    """ext4 turned read-only by an error (emergency_ro) still reports read-write to statvfs."""
    monkeypatch.setattr(os, "statvfs", lambda path: SimpleNamespace(f_flag=0, f_bavail=100))

    def refuse(**kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(storage_faults.tempfile, "TemporaryFile", refuse)
    assert storage_faults.storage_state(str(tmp_path)) == "read-only file system"
