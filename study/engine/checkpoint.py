"""Self-describing training checkpoints: state dicts plus the config and library versions.

Written atomically (temp file + rename) so a process killed while saving leaves the previous
checkpoint intact, and read with `torch.load(..., weights_only=True)` so a checkpoint file can
never execute code.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import nn

from data_io.atomic import atomic_path
from models.layers import set_pool_mean_share

CHECKPOINT_FORMAT = 1


def library_versions() -> dict[str, str]:
    """Versions that decide whether a checkpoint can be reproduced."""
    versions = {"python": platform.python_version(), "torch": str(torch.__version__)}
    for package in ("ecg-study", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "unknown"
    return versions


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (plus format and versions) to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": CHECKPOINT_FORMAT, "versions": library_versions(), **state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint` (tensors land on the CPU).

    Raises:
        ValueError: the file is not a checkpoint of this format.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors on damaged files
        raise ValueError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an ecg-study checkpoint (format {CHECKPOINT_FORMAT})")
    return state


def restore_model(model: nn.Module, state: Mapping[str, Any]) -> nn.Module:
    """Load a checkpoint's weights into ``model`` with the pooling it was scored with.

    A trial stopped while its pooling still started as the mean (`optim.pool_mean_fraction`)
    keeps that share; checkpoints written before the option existed pooled as configured.
    """
    model.load_state_dict(state["model_state"])
    set_pool_mean_share(model, state.get("pool_mean_share", 0.0))
    return model
