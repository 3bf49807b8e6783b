"""Argument types shared by the command lines (argparse ``type=`` callables)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def whole_number(*, at_least: int) -> Callable[[str], int]:
    """An argparse type accepting a whole number >= ``at_least``, with a message that says
    what was wrong."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < at_least:
            raise argparse.ArgumentTypeError(f"must be {at_least} or more, got {value}")
        return value

    return parse
