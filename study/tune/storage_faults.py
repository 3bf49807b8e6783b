"""Recognising a study storage that filled up or turned read-only, and saying so in one line.

A full or read-only disk reaches the driver in many wrappings: an `OSError` from a trial that
was saving its checkpoint (inside Ray's task error), Optuna's storage error over SQLAlchemy over
`sqlite3`, or SQLite's vague "unable to open database file". `storage_problem` unwraps them,
`storage_state` asks the file system itself, and `storage_fault_message` tells the user what
failed where and the command that continues the study once the storage takes writes again.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import tempfile
from pathlib import Path

from study.tune.plan import Plan, default_study_dir

EXIT_STORAGE = 3
STORAGE_ERRNOS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
}
"""OSError numbers that mean the study's storage cannot take writes -> the words for them."""
SQLITE_STORAGE_CODES = {
    sqlite3.SQLITE_FULL: "no space left on device",
    sqlite3.SQLITE_READONLY: "read-only file system (or database)",
    sqlite3.SQLITE_CANTOPEN: "cannot open the database file",
}
"""The same for SQLite (the Optuna storage), by primary result code."""


class StorageError(RuntimeError):
    """The study's storage filled up or turned read-only; the message names the path, the
    problem and the command that continues the study."""


def storage_problem(exc: BaseException | None) -> tuple[str, str | None] | None:
    """(problem, file name or None) when ``exc`` or an exception it wraps says the storage is
    full or not writable, else None.

    Follows Ray's task errors (``.cause``: a trial's ``RayTaskError(OSError)``) and chained
    exceptions (Optuna's ``StorageInternalError`` over SQLAlchemy over ``sqlite3``).
    """
    pending, seen = [exc], set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in STORAGE_ERRNOS:
            filename = current.filename
            return STORAGE_ERRNOS[current.errno], None if filename is None else str(filename)
        code = getattr(current, "sqlite_errorcode", None)
        if isinstance(current, sqlite3.Error) and code is not None \
                and code & 0xFF in SQLITE_STORAGE_CODES:
            return SQLITE_STORAGE_CODES[code & 0xFF], None
        pending.extend([getattr(current, "cause", None), current.__cause__, current.__context__])
    return None


def storage_state(path: str) -> str | None:
    """"read-only file system", "no space left on device", ... when the file system holding
    ``path`` is so now, else None: the cause behind vaguer errors (SQLite's "unable to open
    database file" on a read-only disk).

    Asks statvfs, then tries to create an empty file there: ext4 turned read-only by an error
    (``emergency_ro``) still reports itself read-write to statvfs.
    """
    existing = Path(path)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    directory = existing if existing.is_dir() else existing.parent
    try:
        stats = os.statvfs(directory)
        if stats.f_flag & os.ST_RDONLY:
            return "read-only file system"
        if stats.f_bavail == 0:
            return "no space left on device"
        tempfile.TemporaryFile(dir=directory).close()
    except OSError as exc:
        return STORAGE_ERRNOS.get(exc.errno)
    return None


def resume_command(plan: Plan) -> str:
    """The command that continues ``plan``'s study (``--name`` from the directory it ran in
    when the study lives in the default place)."""
    if Path(plan.study_dir) == default_study_dir(plan.name):
        return f"python -m study.run --resume --name {plan.name}"
    return f"python -m study.run --resume --study-dir {plan.study_dir}"


def storage_fault_message(problem: str, *, path: str, plan: Plan,
                          trials: list[str] | None = None) -> str:
    """One line: what failed where, that completed trials are kept, and how to go on."""
    failed = (f"{len(trials)} trial(s) could not save their checkpoints ({', '.join(trials)}); "
              if trials else "")
    return (f"{problem} writing {path}: {failed}the study stopped, completed trials are kept. "
            f"Free space (or make the storage writable) and run `{resume_command(plan)}`")
