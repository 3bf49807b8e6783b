"""A pyarrow file system for Ray Tune's local storage on which every file appears whole.

Tune copies its experiment state, result files and checkpoints into the storage path with
`pyarrow.fs.copy_files`, which truncates a target before writing it; a disk that fills up (or
turns read-only) mid-copy would leave a truncated file that a later restore misreads. This
module knows only pyarrow and the operating system; `study.tune.tuning` hands it to Tune.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import pyarrow
import pyarrow.fs


class _WholeFileWriter(io.RawIOBase):
    """A binary file that appears under its name only when closed after every write
    succeeded; until then it is a temporary file beside it, removed on failure."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self._path = path
        fd, self._tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".",
                                         prefix=f".{os.path.basename(path)}.", suffix=".tmp")
        self._file = os.fdopen(fd, "wb", buffering=0)
        self._complete = True

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        try:
            while view:
                view = view[self._file.write(view):]
        except BaseException:
            # Arrow abandons a stream whose write failed without closing it, and __del__ may
            # never run before the process exits: remove the partial file now.
            self._complete = False
            self._file.close()
            Path(self._tmp).unlink(missing_ok=True)
            raise
        return len(data)

    def __del__(self) -> None:
        # Arrow's copy abandons a stream without closing it when a read or write fails.
        self._complete = False
        super().__del__()

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._complete:
                os.fsync(self._file.fileno())
                os.replace(self._tmp, self._path)
        finally:
            self._file.close()
            Path(self._tmp).unlink(missing_ok=True)
            super().close()


class WholeFileLocalFileSystem(pyarrow.fs.FileSystemHandler):
    """Ray Tune's storage on a local or mounted file system, where each file Tune writes
    (experiment state, result files, checkpoints) appears whole or not at all.

    Tune copies files into its storage with `pyarrow.fs.copy_files`, which truncates the
    target and then writes it: a disk filling up mid-copy leaves a truncated
    `experiment_state-*.json`, and `Tuner.restore` then drops every trial and restarts the
    search with what is left of the sample budget (found by `bench.drill_storage`). Here a
    file is written under a temporary name beside its target and renamed over it once complete.
    """

    def __init__(self) -> None:
        self._local = pyarrow.fs.LocalFileSystem()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WholeFileLocalFileSystem)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def get_type_name(self) -> str:
        return "whole-file-local"

    def normalize_path(self, path):
        return self._local.normalize_path(path)

    def get_file_info(self, paths):
        return self._local.get_file_info(paths)

    def get_file_info_selector(self, selector):
        return self._local.get_file_info(selector)

    def create_dir(self, path, recursive):
        self._local.create_dir(path, recursive=recursive)

    def delete_dir(self, path):
        self._local.delete_dir(path)

    def delete_dir_contents(self, path, missing_dir_ok=False):
        self._local.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self):
        raise OSError("refusing to delete the contents of the root directory")

    def delete_file(self, path):
        self._local.delete_file(path)

    def move(self, src, dest):
        self._local.move(src, dest)

    def copy_file(self, src, dest):
        with self._local.open_input_stream(src) as source, \
                self.open_output_stream(dest, None) as target:
            target.upload(source)

    def open_input_stream(self, path):
        return self._local.open_input_stream(path)

    def open_input_file(self, path):
        return self._local.open_input_file(path)

    def open_output_stream(self, path, metadata):
        return pyarrow.PythonFile(_WholeFileWriter(path), mode="w")

    def open_append_stream(self, path, metadata):
        return self._local.open_append_stream(path)
