"""Exceptions raised by data_io: a whole data set that cannot be used, or one bad record."""

from __future__ import annotations


class DatasetError(ValueError):
    """A data directory or file cannot be used at all (missing, empty, unreadable).

    The message names the path and the problem, and says what to do where that is known.
    """


class RecordError(ValueError):
    """One record is unusable; the message becomes its quarantine reason."""
