"""Reading a W&B run back from its offline files with wandb's own reader, no network.

`wandb leet inspect --json RUN_DIR` (public CLI since wandb 0.31) has wandb-core parse the
run's ``run-<id>.wandb`` transaction log and print every record, a
``wandb.proto.wandb_internal_pb2.Record``, as one JSON object a line, values decoded. This
module folds those records into what W&B shows of the run after `wandb sync`. (wandb 0.31 has
no Python reader left: ``wandb.sdk.internal.datastore`` is gone.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wandb
from packaging.version import Version

READER_SINCE = Version("0.31")
"""The first wandb whose CLI prints a run's records as JSON (`wandb leet inspect --json`)."""


def records(run_dir: Path) -> list[dict[str, Any]]:
    """Every record of the run in ``run_dir`` (an ``offline-run-*`` directory), in order.

    Raises:
        RuntimeError: wandb too old, or its reader failed on the run's file.
    """
    if Version(wandb.__version__) < READER_SINCE:
        raise RuntimeError(f"reading runs back needs wandb >= {READER_SINCE} "
                           f"(`wandb leet inspect --json`); this is {wandb.__version__}")
    # Offline: wandb-core reports nothing to W&B's servers (`--no-observability`).
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_ERROR_REPORTING": "false"}
    done = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json",
                           str(run_dir)], capture_output=True, text=True, env=env, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"`wandb leet inspect` failed on {run_dir}: {done.stderr.strip()}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config or summary values -> {"a/b": value} (how W&B's columns name them)."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict) and not value.get("_type"):
            flat.update(_flat(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


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
    exit_code: int | None = None
    files: list[str] = field(default_factory=list)

    @property
    def flat_config(self) -> dict[str, Any]:
        """The config as W&B's run table shows it: ``model/depth``, ``optim/lr``, ..."""
        return _flat(self.config)


def _fold(run: Run, record: dict[str, Any]) -> None:
    kind = record["type"]
    body = record.get(kind) or {}
    if kind == "run":
        run.run_id, run.name = body.get("run_id", ""), body.get("display_name", "")
        run.group, run.job_type = body.get("run_group", ""), body.get("job_type", "")
        run.tags = list(body.get("tags", []))
        run.config.update(body.get("config", {}).get("update", {}))
    elif kind == "config":
        run.config.update(body.get("update", {}))
    elif kind == "history":
        run.history.append(body.get("item", {}))
    elif kind == "summary":
        run.summary.update(body.get("update", {}))
    elif kind == "files":
        run.files += [f["path"] for f in body.get("files", [])]
    elif kind == "exit":
        run.exit_code = body.get("exit_code", 0)


def read_run(run_dir: Path) -> Run:
    """The run in an ``offline-run-*`` directory, folded from its records in order."""
    run = Run()
    for record in records(run_dir):
        _fold(run, record)
    return run


def logged_media(row: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The media objects of a history row (charts, tables, HTML), by key.

    wandb's reader prints a logged object's fields as dotted keys (``figures/x._type``,
    ``figures/x.path``, ...), the way W&B's UI names them; this gathers them back.
    """
    names = [key.removesuffix("._type") for key in row if key.endswith("._type")]
    return {name: {key.removeprefix(f"{name}."): value for key, value in row.items()
                   if key.startswith(f"{name}.")} for name in names}
