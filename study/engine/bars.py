"""Progress bars with ETA for long loops (training batches, evaluation, explanations).

On a terminal a tqdm bar on stderr; when stderr is not a terminal (a CI log, a file, a pipe)
one plain line at every quarter, and at the first step after `HEARTBEAT_S` without a line, so
logs stay short and a long loop is never silent for long; off entirely when disabled (e.g.
inside Ray trials, whose output nobody watches).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
LINE_STEPS = 4  # lines per loop when stderr is not a terminal: 25 %, 50 %, 75 %, 100 %
HEARTBEAT_S = 20.0  # and a line at the first step this long after the last line


class LineProgress:
    """tqdm's ``update``/``close`` as one line per quarter of ``total`` on ``stream``, and one
    at the first update ``heartbeat_s`` or more after the last line."""

    def __init__(self, *, total: int, desc: str, unit: str, stream: TextIO,
                 heartbeat_s: float = HEARTBEAT_S) -> None:
        self.total, self.desc, self.unit, self.stream = total, desc, unit, stream
        self.heartbeat_s = heartbeat_s
        self.n = 0
        self._next_step = 1
        self._started = self._last_line = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        crossed = False
        while self.total and self._next_step <= LINE_STEPS and \
                self.n * LINE_STEPS >= self._next_step * self.total:
            self._next_step += 1
            crossed = True
        # one line however many quarters this update passed
        if crossed or time.monotonic() - self._last_line >= self.heartbeat_s:
            self._line()

    def _line(self) -> None:
        self._last_line = time.monotonic()
        elapsed = self._last_line - self._started
        left = elapsed * (self.total - self.n) / max(self.n, 1)
        eta = f", ETA {left:.0f} s" if self.n < self.total else ""
        print(f"{self.desc}: {100 * self.n // self.total}% ({self.n}/{self.total} {self.unit}) "
              f"{elapsed:.0f} s{eta}", file=self.stream, flush=True)

    def close(self) -> None:
        """Nothing to clear: every line is already written."""


class _Silent:
    n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def close(self) -> None:
        """Nothing was shown."""


def bar(*, total: int, desc: str, unit: str = "it", enabled: bool = True,
        stream: TextIO | None = None) -> Any:
    """An object with ``update(n)`` and ``close()`` reporting progress of ``total`` steps."""
    stream = stream or sys.stderr
    if not enabled or total <= 0:
        return _Silent()
    if stream.isatty():
        return tqdm(total=total, desc=desc, unit=unit, file=stream, leave=False,
                    dynamic_ncols=True, mininterval=0.5)
    return LineProgress(total=total, desc=desc, unit=unit, stream=stream)


def track(items: Iterable[T], *, total: int, desc: str, unit: str = "it",
          enabled: bool = True) -> Iterator[T]:
    """Iterate ``items`` while `bar` reports them."""
    progress = bar(total=total, desc=desc, unit=unit, enabled=enabled)
    try:
        for item in items:
            yield item
            progress.update(1)
    finally:
        progress.close()
