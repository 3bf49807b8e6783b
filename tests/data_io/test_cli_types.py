"""data_io.cli_types: the shared argparse types."""

from __future__ import annotations

import argparse

import pytest

from data_io.cli_types import whole_number


def test_whole_number_accepts_its_range_and_says_what_is_wrong():
    at_least_one = whole_number(at_least=1)
    assert at_least_one("3") == 3
    with pytest.raises(argparse.ArgumentTypeError, match="must be 1 or more, got 0"):
        at_least_one("0")
    with pytest.raises(argparse.ArgumentTypeError, match=r"expected a whole number, got '2\.5'"):
        at_least_one("2.5")
    assert whole_number(at_least=0)("0") == 0
