"""Choosing how W&B logs: online for a logged-in user, otherwise offline, never a hang.

Ray's W&B callback raises "No WandB API key found" before any trial when no key is set and the
mode is online, and an online run can wait on a network that is not there. The study decides
the mode up front from what it can see locally (an API key in the environment or in
~/.netrc), without contacting any server.
"""

from __future__ import annotations

import netrc
import os
from pathlib import Path

WANDB_HOST = "api.wandb.ai"
MODES = ("online", "offline", "disabled")


def logged_in() -> bool:
    """Whether W&B credentials are configured on this machine (no network used)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc_path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return netrc.netrc(str(netrc_path)).authenticators(WANDB_HOST) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def resolve_mode(requested: str | None) -> str:
    """``requested`` if given, else "online" when logged in and "offline" otherwise."""
    if requested is not None:
        return requested
    env = os.environ.get("WANDB_MODE")
    if env in MODES:
        return env
    return "online" if logged_in() else "offline"


def offline_hint(study_dir: str) -> str:
    why = "as asked" if logged_in() else "no API key found"
    return (
        f"W&B is offline ({why}): runs are stored under {study_dir}; "
        f"upload them later with `wandb sync {study_dir}/*/*/wandb/offline-run-*`"
    )
