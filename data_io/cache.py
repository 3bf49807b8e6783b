"""A compact, memory-mapped cache of a loaded data set, keyed by what it was built from.

Parsing thousands of WFDB files per trial is slow; the cache stores every signal as one int16
array plus offsets, labels and metadata, and maps it back in milliseconds. The key is a
fingerprint of the source files (name, size, modification time) and of the preprocessing
settings, so a changed file or setting selects another entry: a stale cache is never used.
Each entry also records a checksum of its arrays and of its metadata, and the key it was built
for, all verified on every load, so a damaged entry (or files copied in from another entry) is
detected and rebuilt rather than silently used. Entries are built in a temporary directory
and renamed into place, so a process killed mid-build leaves nothing half-written; a file lock
makes concurrent trials on one node wait for a single build instead of repeating it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import platformdirs
import xxhash
from filelock import FileLock

from data_io.datasets import load_dataset
from data_io.errors import DatasetError
from data_io.preprocess import resample_arrays
from data_io.records import EcgArrays, Quarantined

CACHE_ENV = "ECG_STUDY_CACHE_DIR"
CACHE_FORMAT = 3
ARRAY_FILES: tuple[str, ...] = ("signals", "offsets", "labels")
SOURCE_SUFFIXES: tuple[str, ...] = (".hea", ".mat", ".csv", ".dat", ".atr", ".npy", ".json")
SOURCE_NAMES: tuple[str, ...] = ("RECORDS",)
META_FIELDS: tuple[str, ...] = (
    "format", "key", "record_ids", "classes", "fs_hz", "adc_gain", "quarantined", "checksums",
    "meta_checksum",
)

log = logging.getLogger(__name__)


def resolve_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """The cache location: ``cache_dir`` if given, else ``$ECG_STUDY_CACHE_DIR``, else the
    user's cache directory (e.g. ``~/.cache/ecg-study`` on Linux)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    from_env = os.environ.get(CACHE_ENV)
    if from_env:
        return Path(from_env).expanduser()
    return Path(platformdirs.user_cache_dir("ecg-study"))


def source_fingerprint(directory: str | Path) -> str:
    """A hex digest of every source file's name, size and modification time in ``directory``."""
    digest = hashlib.sha256()
    with os.scandir(directory) as entries:
        stats = sorted(
            (e.name, e.stat().st_size, e.stat().st_mtime_ns)
            for e in entries
            if e.is_file() and (e.name.endswith(SOURCE_SUFFIXES) or e.name in SOURCE_NAMES)
        )
    for name, size, mtime_ns in stats:
        digest.update(f"{name}\0{size}\0{mtime_ns}\n".encode())
    return digest.hexdigest()


def cache_key(*, directory: str | Path, settings: dict) -> str:
    """Fingerprint of the sources plus the settings (any change gives another key)."""
    payload = json.dumps(
        {"format": CACHE_FORMAT, "source": source_fingerprint(directory), "settings": settings},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def load_cached(
    dataset: str,
    directory: str | Path,
    *,
    fs_hz: float | None = None,
    options: dict[str, str] | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> EcgArrays:
    """Load a data set (`data_io.datasets`) from ``directory`` through the cache, building the
    entry when needed.

    Args:
        dataset: a name from `data_io.datasets.dataset_names`.
        directory: the data set's source directory.
        fs_hz: resample to this rate before caching (None keeps the source rate).
        options: the data set's options (defaults filled in for missing ones).
        cache_dir: where entries live (see `resolve_cache_dir`).
        progress: show progress bars while building.

    Raises:
        DatasetError: the directory cannot hold the data set, or nothing loaded; an unknown
            option.
    """
    definition = load_dataset(dataset)
    resolved = definition.resolve_options(options or {})
    directory = Path(directory).expanduser()
    definition.check(directory)  # missing, empty or unlabelled: the loader's own error
    settings = {"dataset": definition.name, "options": resolved, "fs_hz": fs_hz,
                "facts": dict(definition.facts)}

    def build() -> EcgArrays:
        arrays = definition.load(directory, options=resolved, progress=progress)
        if fs_hz is None:
            return arrays
        # None: the resampler decides (a bar only for large sets); False: never.
        return resample_arrays(arrays, target_fs_hz=fs_hz, progress=None if progress else False)

    return cached(
        name=definition.name,
        key=cache_key(directory=directory, settings=settings),
        build=build,
        cache_dir=resolve_cache_dir(cache_dir),
        source=str(directory.resolve()),
        settings=settings,
    )


def load_cinc2017_cached(
    directory: str | Path,
    *,
    fs_hz: float | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> EcgArrays:
    """`load_cached` of the ``cinc2017`` data set."""
    return load_cached("cinc2017", directory, fs_hz=fs_hz, cache_dir=cache_dir,
                       progress=progress)


def cached(
    *,
    name: str,
    key: str,
    build: Callable[[], EcgArrays],
    cache_dir: Path,
    source: str,
    settings: dict,
) -> EcgArrays:
    """Return the entry ``name-key`` from ``cache_dir``, building it with ``build`` if absent
    or damaged."""
    entry = cache_dir / f"{name}-{key[:24]}"
    arrays = _try_read(entry, key=key, warn=True)
    if arrays is not None:
        return arrays
    cache_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(entry) + ".lock"):
        # Another process may have built it while we waited (its damage was reported above).
        arrays = _try_read(entry, key=key, warn=False)
        if arrays is not None:
            return arrays
        _remove_damaged(entry)
        _remove_leftovers(entry)
        log.info("building data cache %s from %s", entry, source)
        _write_entry(entry, arrays=build(), source=source, settings=settings, key=key)
    return read_entry(entry, key=key)


def read_entry(entry: Path, *, key: str | None = None) -> EcgArrays:
    """Memory-map a cache entry, verifying its checksums (and its key, when given).

    Raises:
        DatasetError: the entry is missing, incomplete, was built for another key, or its
            metadata or arrays do not match the checksums recorded when it was written. The
            message names the file and the problem.
    """
    meta = _read_meta(entry / "meta.json", key=key)
    arrays = {n: _load_array(entry / f"{n}.npy") for n in ARRAY_FILES}
    for n in ARRAY_FILES:
        if _checksum(arrays[n]) != meta["checksums"].get(n):
            raise DatasetError(f"data cache file {entry / (n + '.npy')} fails its checksum")
    try:
        return EcgArrays(
            signals=arrays["signals"],
            offsets=np.asarray(arrays["offsets"]),
            record_ids=tuple(meta["record_ids"]),
            labels=np.asarray(arrays["labels"]),
            classes=tuple(meta["classes"]),
            fs_hz=float(meta["fs_hz"]),
            adc_gain=float(meta["adc_gain"]),
            quarantined=tuple(Quarantined(**q) for q in meta["quarantined"]),
        )
    except (TypeError, ValueError) as exc:  # consistent checksums but unusable contents
        raise DatasetError(f"data cache {entry} holds inconsistent arrays ({exc})") from exc


def _read_meta(path: Path, *, key: str | None) -> dict:
    """The entry's metadata, checked against its own checksum, its format and ``key``."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:  # missing, unreadable, not JSON or not UTF-8
        raise DatasetError(f"data cache file {path} is missing or unreadable ({exc})") from exc
    if not isinstance(meta, dict):
        raise DatasetError(f"data cache file {path} does not hold a JSON object")
    missing = [field for field in META_FIELDS if field not in meta]
    if missing:
        raise DatasetError(f"data cache file {path} lacks {', '.join(missing)}")
    if meta["meta_checksum"] != _meta_checksum(meta):
        raise DatasetError(f"data cache file {path} fails its checksum")
    if meta["format"] != CACHE_FORMAT or (key is not None and meta["key"] != key):
        raise DatasetError(f"data cache file {path} belongs to another cache entry "
                           f"(format {meta['format']}, key {str(meta['key'])[:24]})")
    return meta


def _load_array(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError, EOFError) as exc:  # missing, truncated, damaged header
        raise DatasetError(f"data cache file {path} is missing or unreadable ({exc})") from exc


def _try_read(entry: Path, *, key: str, warn: bool) -> EcgArrays | None:
    if not entry.is_dir():
        return None
    try:
        return read_entry(entry, key=key)
    except DatasetError as exc:
        if warn:
            log.warning("%s; rebuilding it", exc)
        return None


def _meta_checksum(meta: dict) -> str:
    """Checksum of every metadata field but itself, in a canonical JSON form."""
    body = {k: v for k, v in meta.items() if k != "meta_checksum"}
    return xxhash.xxh3_128_hexdigest(json.dumps(body, sort_keys=True).encode())


def _checksum(array: np.ndarray) -> str:
    return xxhash.xxh3_128_hexdigest(np.ascontiguousarray(array).view(np.uint8))


def _write_entry(
    entry: Path, *, arrays: EcgArrays, source: str, settings: dict, key: str
) -> None:
    tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".{entry.name}.tmp-"))
    try:
        data = {"signals": arrays.signals, "offsets": arrays.offsets, "labels": arrays.labels}
        for n, array in data.items():
            np.save(tmp / f"{n}.npy", np.ascontiguousarray(array))
        meta = {
            "format": CACHE_FORMAT,
            "key": key,
            "source": source,
            "settings": settings,
            "record_ids": list(arrays.record_ids),
            "classes": list(arrays.classes),
            "fs_hz": arrays.fs_hz,
            "adc_gain": arrays.adc_gain,
            "quarantined": [q.to_dict() for q in arrays.quarantined],
            "checksums": {n: _checksum(a) for n, a in data.items()},
        }
        meta = json.loads(json.dumps(meta))  # the checksum covers what a reader will parse
        meta["meta_checksum"] = _meta_checksum(meta)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        _fsync_dir(tmp)
        os.rename(tmp, entry)
        _fsync_dir(entry.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove_damaged(entry: Path) -> None:
    """Move a damaged entry aside before deleting it, so readers never see it half-deleted."""
    if entry.exists():
        trash = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".{entry.name}.trash-"))
        os.rename(entry, trash / "entry")
        shutil.rmtree(trash, ignore_errors=True)


def _remove_leftovers(entry: Path) -> None:
    """Delete temporary directories of builds that were killed (we hold the entry's lock)."""
    for leftover in entry.parent.glob(f".{entry.name}.*-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _fsync_dir(directory: Path) -> None:
    for path in directory.iterdir():
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
