"""A small progress bar for long CLI work: frames, frames/s and ETA on one self-rewriting line.

Drawn only when the stream is a terminal; redirected to a file or a pipe (CI, tests) it stays silent
until :meth:`ProgressBar.close`, which prints one summary line either way. Written here rather than
adding tqdm as a dependency for twenty lines.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressBar", "format_seconds"]


def format_seconds(s: float) -> str:
    s = max(0, int(round(s)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class ProgressBar:
    """``update(n)`` per unit of work; ``close(note)`` prints "label: N frames in S s (R frames/s) note".

    Args:
        total: expected number of units, or None when unknown (then no bar and no ETA).
        label: prefix of the line, e.g. "fuse".
        stream: where to draw (stderr by default).
        min_interval: seconds between redraws, so drawing never costs noticeable time.
        unit: the word for one unit.
    """

    def __init__(
        self,
        total: int | None = None,
        label: str = "",
        stream: TextIO | None = None,
        min_interval: float = 0.2,
        unit: str = "frames",
        width: int = 28,
    ):
        self.total = total if total and total > 0 else None
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.min_interval = min_interval
        self.unit = unit
        self.width = width
        self.n = 0
        self._t0 = time.perf_counter()
        self._last_draw = 0.0
        self._drawn = False
        self._closed = False
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = bool(isatty and isatty())

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._t0

    @property
    def rate(self) -> float:
        e = self.elapsed
        return self.n / e if e > 0 else 0.0

    def update(self, n: int = 1) -> None:
        self.n += n
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last_draw >= self.min_interval or (self.total and self.n >= self.total):
            self._last_draw = now
            self._draw()

    def line(self) -> str:
        """The current progress text (without the carriage return)."""
        rate = self.rate
        head = f"{self.label}: " if self.label else ""
        if self.total:
            frac = min(1.0, self.n / self.total)
            fill = int(round(frac * self.width))
            bar = "#" * fill + "-" * (self.width - fill)
            eta = format_seconds((self.total - self.n) / rate) if rate > 0 else "?"
            return f"{head}[{bar}] {self.n}/{self.total} {self.unit} {rate:.1f}/s ETA {eta}"
        return f"{head}{self.n} {self.unit} {rate:.1f}/s {format_seconds(self.elapsed)}"

    def _draw(self) -> None:
        self.stream.write("\r" + self.line() + "\033[K")
        self.stream.flush()
        self._drawn = True

    def summary(self, note: str = "") -> str:
        head = f"{self.label}: " if self.label else ""
        tail = f" {note}" if note else ""
        return f"{head}{self.n} {self.unit} in {self.elapsed:.1f} s ({self.rate:.1f} {self.unit}/s){tail}"

    def close(self, note: str = "") -> None:
        """Replace the bar by the summary line (printed also when the stream is not a terminal)."""
        if self._closed:
            return
        self._closed = True
        prefix = "\r\033[K" if self._drawn else ""
        self.stream.write(prefix + self.summary(note) + "\n")
        self.stream.flush()

    def abort(self) -> None:
        """Erase the bar without a summary (the caller reports the error instead)."""
        if self._closed:
            return
        self._closed = True
        if self._drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
