"""File-safe names for figures and tables (one rule for every analysis)."""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^a-z0-9_.-]+")


def slug(text: str, *, max_chars: int = 60) -> str:
    """Lowercase ``text`` with every run of unsafe characters replaced by '-'."""
    return _UNSAFE.sub("-", str(text).lower()).strip("-.")[:max_chars] or "x"
