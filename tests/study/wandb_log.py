"""Reading a W&B run back from its offline transaction log (``run-<id>.wandb``), no network.

wandb 0.31 ships no Python reader for these files: `wandb sync` and `wandb leet` read them in
the Go core (the Python ``wandb.sdk.internal.datastore`` is gone; ``wandb.beta.LocalApi`` is
not released). The file is the LevelDB log format (32 KiB blocks of chunks with a 7-byte
header: CRC-32, length, chunk type) after W&B's 7-byte file header, and every record is a
``wandb.proto.wandb_internal_pb2.Record``: W&B's own schema, which this module decodes.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2

FILE_HEADER = struct.Struct("<4sHB")  # ident ":W&B", magic 0xBEE1, version 0
CHUNK_HEADER = struct.Struct("<IHB")  # CRC-32 of (type byte + data), data length, chunk type
BLOCK_BYTES = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list[wandb_internal_pb2.Record]:
    """Every record of a ``.wandb`` file, checksums verified.

    Raises:
        ValueError: not a W&B transaction log, or a chunk fails its checksum.
    """
    data = path.read_bytes()
    ident, magic, version = FILE_HEADER.unpack_from(data, 0)
    if (ident, magic, version) != (b":W&B", 0xBEE1, 0):
        raise ValueError(f"{path}: not a W&B transaction log (header {data[:7]!r})")
    out, pending, offset = [], b"", FILE_HEADER.size
    while offset + CHUNK_HEADER.size <= len(data):
        room = BLOCK_BYTES - offset % BLOCK_BYTES
        if room < CHUNK_HEADER.size:  # a block's tail too short for a header is padding
            offset += room
            continue
        crc, length, kind = CHUNK_HEADER.unpack_from(data, offset)
        chunk = data[offset + CHUNK_HEADER.size: offset + CHUNK_HEADER.size + length]
        if kind == 0 and length == 0:  # zero padding at the end of a block
            offset += room
            continue
        if zlib.crc32(bytes([kind]) + chunk) & 0xFFFFFFFF != crc:
            raise ValueError(f"{path}: chunk at byte {offset} fails its checksum")
        offset += CHUNK_HEADER.size + length
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            out.append(record)
    return out


def _items(items) -> dict[str, Any]:
    """Config, summary or history items -> {"a/b": value} (nested keys joined with "/")."""
    return {"/".join(item.nested_key) if item.nested_key else item.key:
            json.loads(item.value_json) for item in items}


@dataclass
class Run:
    """What W&B's servers would show of one run after `wandb sync`."""

    run_id: str = ""
    name: str = ""
    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    step_metrics: dict[str, str] = field(default_factory=dict)
    exit_code: int | None = None
    files: list[str] = field(default_factory=list)


def read_run(run_dir: Path) -> Run:
    """The run in an ``offline-run-*`` directory, folded from its records in order."""
    (log,) = run_dir.glob("run-*.wandb")
    run = Run()
    for record in records(log):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.run_id, run.name, run.group, run.job_type = r.run_id, r.display_name, \
                r.run_group, r.job_type
            run.tags = list(r.tags)
            run.config.update(_items(r.config.update))
        elif kind == "config":
            run.config.update(_items(record.config.update))
        elif kind == "history":
            run.history.append(_items(record.history.item))
        elif kind == "summary":
            run.summary.update(_items(record.summary.update))
            for item in record.summary.remove:
                run.summary.pop(item.key, None)
        elif kind == "metric" and record.metric.step_metric:
            run.step_metrics[record.metric.name or record.metric.glob_name] = \
                record.metric.step_metric
        elif kind == "files":
            run.files += [f.path for f in record.files.files]
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    return run
