"""Atomic file writes: write under a temporary name beside the target, then rename.

A process killed mid-write leaves the previous file (or none) under the final name, never a
half-written one. Used for every file the project writes that another process may read.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` only if the block succeeds.

    The temporary file lives in the destination directory so that `os.replace` is an atomic
    rename on the same file system; its contents are flushed to disk before the rename.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8, newlines kept as given) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(text.encode("utf-8"))


def write_parquet(frame, path: str | os.PathLike[str]) -> None:
    """Write the pandas DataFrame ``frame`` to ``path`` atomically, without its index."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
