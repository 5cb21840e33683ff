"""Pair IR and VIS frames by capture timestamp: nearest neighbours within a tolerance.

Two cameras run at their own rates with their own jitter, so frames are paired by timestamp, never by
arrival order or frame number (the idea of ROS message_filters' ApproximateTimeSynchronizer, much
simplified for two streams). The rule is *mutual nearest neighbours within a tolerance*: an IR frame and
a VIS frame are paired when each is the other's nearest in time and ``|t_ir - t_vis| <= tolerance``.
Frames that have no such partner are dropped and counted per stream.

:class:`Synchronizer` is deterministic and thread-free: ``push(stream, frame)`` returns the pairs that
became certain, oldest first. A decision about the oldest frame needs the next frame of its stream (a
later frame could be nearer to the partner), so a pair normally leaves one frame period after it was
captured. ``eager=True`` removes that wait for live use: the pair leaves as soon as no future frame can
be nearer *given the shortest frame intervals seen lately* on that stream, which is the case at once for
cameras that run in step; the cost is a rare sub-optimal pairing under heavy jitter (still within the
tolerance).

The default tolerance is half a frame period of the slower camera: from the sources' nominal fps when
given (unless a stream is seen to run clearly slower than its nominal rate), else from the median
interval observed on each stream.

:class:`PairPump` moves frames from two capture threads into a Synchronizer, either draining everything
available (live: the consumer wants the newest pair) or pulling frames in timestamp order one at a time
(files read as fast as possible: nothing may be lost, and the synchronizer's bounded queues must not
overflow when one decoder runs ahead of the other).
"""

from __future__ import annotations

import queue
import statistics
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fusioncam.errors import FusioncamError
from fusioncam.io.frames import Frame, FramePair

__all__ = ["Synchronizer", "SyncStats", "PairPump", "STREAMS", "DEFAULT_TOLERANCE"]

STREAMS = ("ir", "vis")
#: Tolerance (s) used only when neither fps nor observed intervals are known when a decision is forced.
DEFAULT_TOLERANCE = 1.0 / 60.0


def _other(stream: str) -> str:
    return "vis" if stream == "ir" else "ir"


@dataclass
class SyncStats:
    """Counters of a :class:`Synchronizer`. Skews are ``t_ir - t_vis`` of the emitted pairs, in ms."""

    pairs: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STREAMS, 0))
    overflow: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STREAMS, 0))
    out_of_order: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STREAMS, 0))
    skew_mean_abs_ms: float = 0.0
    skew_max_abs_ms: float = 0.0
    skew_mean_ms: float = 0.0
    tolerance_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "pairs": self.pairs,
            "dropped": dict(self.dropped),
            "overflow": dict(self.overflow),
            "out_of_order": dict(self.out_of_order),
            "skew_mean_abs_ms": self.skew_mean_abs_ms,
            "skew_max_abs_ms": self.skew_max_abs_ms,
            "skew_mean_ms": self.skew_mean_ms,
            "tolerance_ms": self.tolerance_ms,
        }


class Synchronizer:
    """Mutual-nearest-timestamp pairing of two streams ("ir", "vis") with a tolerance.

    Args:
        tolerance: the largest ``|t_ir - t_vis|`` (s) of a pair; None: half a frame period of the
            slower stream (from ``fps`` or, when unknown, from the observed intervals).
        fps: nominal frame rates ``{"ir": 30, "vis": 22}`` (0 or None where unknown).
        max_queue: frames held per stream while waiting for the other; beyond it the oldest is dropped
            (counted as overflow), so a stalled stream cannot make the other's queue grow.
        eager: emit a pair without waiting for proof from the next frame (see the module docstring).

    Thread-safe (``with lock:``), but needs no thread: tests drive it with ``push`` and ``end``.
    Timestamps must increase within a stream; a frame older than its predecessor is dropped.
    """

    def __init__(
        self,
        tolerance: float | None = None,
        *,
        fps: Mapping[str, float | None] | None = None,
        max_queue: int = 8,
        eager: bool = False,
    ):
        if tolerance is not None and not tolerance > 0:
            raise FusioncamError(f"sync tolerance must be > 0 s, got {tolerance}")
        if max_queue < 2:
            raise FusioncamError(f"sync queue must hold at least 2 frames, got {max_queue}")
        self._tolerance = tolerance
        self._fps = {s: float((fps or {}).get(s) or 0.0) for s in STREAMS}
        self.max_queue = int(max_queue)
        self.eager = bool(eager)
        self._lock = threading.Lock()
        self._q: dict[str, deque[Frame]] = {s: deque() for s in STREAMS}
        self._ended = dict.fromkeys(STREAMS, False)
        self._last_t: dict[str, float | None] = dict.fromkeys(STREAMS, None)
        self._gone_t: dict[str, float | None] = dict.fromkeys(STREAMS, None)  # last frame taken out
        self._intervals: dict[str, deque[float]] = {s: deque(maxlen=31) for s in STREAMS}
        self._stats = SyncStats()
        self._skew_sum_abs = 0.0
        self._skew_sum = 0.0

    # --- public -------------------------------------------------------------------------------------
    @property
    def tolerance(self) -> float | None:
        """The tolerance in force (s), or None while it cannot be known yet."""
        with self._lock:
            return self._effective_tolerance()

    def push(self, stream: str, frame: Frame) -> list[FramePair]:
        """Add one frame of ``stream`` ("ir" or "vis"); return the pairs that became certain."""
        if stream not in STREAMS:
            raise FusioncamError(f"unknown stream {stream!r}; expected 'ir' or 'vis'")
        with self._lock:
            if self._ended[stream]:
                raise FusioncamError(f"frame pushed on stream '{stream}' after its end")
            last = self._last_t[stream]
            if last is not None and frame.t <= last:
                self._stats.out_of_order[stream] += 1
                self._stats.dropped[stream] += 1
                return []
            if last is not None:
                self._intervals[stream].append(frame.t - last)
            self._last_t[stream] = frame.t
            q = self._q[stream]
            q.append(frame)
            if len(q) > self.max_queue:
                q.popleft()
                self._stats.overflow[stream] += 1
                self._stats.dropped[stream] += 1
            return self._match()

    def end(self, stream: str) -> list[FramePair]:
        """Mark the end of ``stream``: pending decisions that waited for its next frame are taken."""
        with self._lock:
            self._ended[stream] = True
            return self._match()

    def set_fps(self, stream: str, fps: float | None) -> None:
        """Give a stream's nominal frame rate once known (sources learn it when started)."""
        with self._lock:
            self._fps[stream] = float(fps or 0.0)

    def ended(self, stream: str) -> bool:
        return self._ended[stream]

    @property
    def exhausted(self) -> bool:
        """No pair can ever come out again (a stream ended and nothing that could pair is left)."""
        with self._lock:
            return any(self._ended[s] and not self._q[s] for s in STREAMS)

    def pending(self, stream: str) -> int:
        with self._lock:
            return len(self._q[stream])

    def last_t(self, stream: str) -> float | None:
        """Timestamp of the last frame pushed on ``stream``."""
        return self._last_t[stream]

    def stats(self) -> SyncStats:
        with self._lock:
            s = self._stats
            tol = self._effective_tolerance()
            return SyncStats(
                pairs=s.pairs,
                dropped=dict(s.dropped),
                overflow=dict(s.overflow),
                out_of_order=dict(s.out_of_order),
                skew_mean_abs_ms=s.skew_mean_abs_ms,
                skew_max_abs_ms=s.skew_max_abs_ms,
                skew_mean_ms=s.skew_mean_ms,
                tolerance_ms=None if tol is None else tol * 1000.0,
            )

    # --- internals (called with the lock held) -------------------------------------------------------
    def _period(self, stream: str) -> float | None:
        """Frame period: nominal (fps) unless the stream is seen to be clearly slower than it claims
        (cameras report a CAP_PROP_FPS they do not deliver, e.g. 9 Hz thermal cores saying 30)."""
        iv = self._intervals[stream]
        seen = statistics.median(iv) if iv else None
        if self._fps[stream] > 0:
            nominal = 1.0 / self._fps[stream]
            if seen is not None and len(iv) >= 5 and seen > 1.25 * nominal:
                return seen
            return nominal
        return seen

    def _effective_tolerance(self) -> float | None:
        if self._tolerance is not None:
            return self._tolerance
        periods = [p for p in (self._period(s) for s in STREAMS) if p is not None]
        if len(periods) < 2 and not any(self._ended.values()):
            return None  # wait for one interval on each stream
        return 0.5 * max(periods) if periods else DEFAULT_TOLERANCE

    def _drop_head(self, stream: str) -> None:
        self._gone_t[stream] = self._q[stream].popleft().t
        self._stats.dropped[stream] += 1

    def _emit(self, a: str, pairs: list[FramePair]) -> None:
        x = self._q[a].popleft()
        y = self._q[_other(a)].popleft()
        self._gone_t[a], self._gone_t[_other(a)] = x.t, y.t
        pair = FramePair(ir=x, vis=y) if a == "ir" else FramePair(ir=y, vis=x)
        s = self._stats
        s.pairs += 1
        skew = pair.skew
        self._skew_sum += skew
        self._skew_sum_abs += abs(skew)
        s.skew_mean_ms = 1000.0 * self._skew_sum / s.pairs
        s.skew_mean_abs_ms = 1000.0 * self._skew_sum_abs / s.pairs
        s.skew_max_abs_ms = max(s.skew_max_abs_ms, 1000.0 * abs(skew))
        pairs.append(pair)

    def _match(self) -> list[FramePair]:
        pairs: list[FramePair] = []
        while True:
            qi, qv = self._q["ir"], self._q["vis"]
            if not qi or not qv:
                for s in STREAMS:  # the other stream ended with nothing left: these can never pair
                    while self._q[s] and self._ended[_other(s)] and not self._q[_other(s)]:
                        self._drop_head(s)
                return pairs
            tol = self._effective_tolerance()
            if tol is None:
                return pairs
            # x: the oldest frame of all (stream a). Every queued frame of b is at least as late, so x's
            # nearest partner is b's head y, unless b's last frame taken out was nearer (then x has no
            # mutual partner). Pair x and y if x is also y's nearest (a's next frame is not nearer).
            a = "ir" if qi[0].t <= qv[0].t else "vis"
            qa, qb = self._q[a], self._q[_other(a)]
            x, y = qa[0], qb[0]
            gap = y.t - x.t
            if gap > tol:
                self._drop_head(a)  # x's best partner is out of tolerance: x can never pair
                continue
            gone = self._gone_t[_other(a)]
            if gone is not None and abs(x.t - gone) < gap:
                self._drop_head(a)  # x's nearest partner was an earlier b frame, already taken
                continue
            if len(qa) >= 2:
                if abs(qa[1].t - y.t) < gap:
                    self._drop_head(a)  # y prefers a's next frame
                else:
                    self._emit(a, pairs)
                continue
            if self._ended[a]:
                self._emit(a, pairs)
                continue
            if self.eager:
                iv = sorted(self._intervals[a])
                # a's next frame comes at least about p after x (p: a low percentile of the recent
                # intervals, robust to the odd back-to-back pair after a hiccup); it is nearer to y only
                # if it comes before y + gap, i.e. never when gap <= p / 2.
                if iv and gap <= 0.5 * iv[len(iv) // 10]:
                    self._emit(a, pairs)
                    continue
            return pairs  # wait for a's next frame


class PairPump:
    """Feeds a :class:`Synchronizer` from two capture threads (objects with ``get``, ``drain``).

    ``lossless=False`` (live): :meth:`poll` drains everything the capture buffers hold and returns all
    pairs now certain; the caller fuses the newest and skips the rest. ``lossless=True`` (files read as
    fast as possible): :meth:`poll` pulls frames in timestamp order, one at a time from the stream that is
    behind, and returns as soon as there is a pair, so nothing is lost or overflows.
    """

    def __init__(
        self,
        sync: Synchronizer,
        ir: Any,
        vis: Any,
        *,
        lossless: bool = False,
        wake: threading.Event | None = None,
    ):
        self.sync = sync
        self.captures = {"ir": ir, "vis": vis}
        self.lossless = lossless
        self.wake = wake or threading.Event()
        self.sync_ms_total = 0.0  # time spent in the synchronizer (a pipeline stage)
        self.frames_in = 0

    @property
    def finished(self) -> bool:
        return self.sync.exhausted

    def _push(self, stream: str, frame: Any) -> list[FramePair]:
        t0 = time.perf_counter()
        out = self.sync.end(stream) if frame is None else self.sync.push(stream, frame)
        self.sync_ms_total += (time.perf_counter() - t0) * 1000.0
        if frame is not None:
            self.frames_in += 1
        return out

    def poll(self, timeout: float = 0.1) -> list[FramePair]:
        """Pairs that became certain; an empty list after ``timeout`` seconds without any."""
        return self._poll_lossless(timeout) if self.lossless else self._poll_live(timeout)

    def _poll_live(self, timeout: float) -> list[FramePair]:
        pairs: list[FramePair] = []
        deadline = time.monotonic() + timeout
        while not pairs and not self.finished:
            for stream, cap in self.captures.items():
                if self.sync.ended(stream):
                    continue
                for f in cap.drain():
                    pairs += self._push(stream, f)
                    if f is None:
                        break
            if pairs:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.wake.wait(left)
            self.wake.clear()
        return pairs

    def _poll_lossless(self, timeout: float) -> list[FramePair]:
        deadline = time.monotonic() + timeout
        while not self.finished:
            open_ = [s for s in STREAMS if not self.sync.ended(s)]
            if not open_:
                return []
            # the stream that is behind in time gives the next frame (a merge by timestamp)
            stream = min(open_, key=lambda s: (self.sync.last_t(s) is not None, self.sync.last_t(s) or 0.0))
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            try:
                f = self.captures[stream].get(timeout=left)
            except queue.Empty:
                return []
            pairs = self._push(stream, f)
            if pairs:
                return pairs
        return []
