"""One capture thread per source: host timestamps, a small bounded buffer, a watchdog and reconnects.

Why a thread per source: camera reads block until the next frame, and two cameras must be read at the
same time so that their frames can be paired by capture time. Each :class:`CaptureThread` reads one
:class:`~fusioncam.io.sources.Source`, stamps every frame with the host's ``time.monotonic()`` the moment
the frame is released, and puts it into a :class:`FrameBuffer` whose back-pressure policy is explicit:

* ``mode="live"`` (cameras, and file sources standing in for cameras): a small buffer (2) that drops
  the OLDEST frame when full, so latency never grows behind a slow consumer; drops are counted;
* ``mode="file"``: a larger buffer that blocks the reader when full, so no frame is ever lost.

The end of a stream is a ``None`` sentinel in the buffer.

Timestamps. Frames come out as :class:`CapturedFrame`, a :class:`~fusioncam.io.frames.Frame` with extra
fields (anything that takes a Frame takes it):

* ``t``: the clock the synchronizer pairs on: ``host_t`` for live sources, ``media_t`` for files
  (whose host arrival times mean nothing when they are read as fast as possible);
* ``host_t``: host ``time.monotonic()`` when the frame was released (end-to-end latency starts here);
* ``media_t``: the source's own timestamp, made monotonic across loops (the position in a file; the
  grab time for cameras);
* ``buffer_ms``: the driver's V4L2 buffer timestamp where OpenCV reports one
  (``CameraSource.last_buffer_ms``; another clock, kept for diagnostics), else NaN;
* ``index``: frames delivered by this thread (monotonic across loops and reconnects);
  ``source_index``: the source's own frame number; ``read_ms``: how long ``read()`` took.

Watchdog. A source that stops delivering (unplugged, read failures) is reported through ``state``
and the ``on_state`` callback: ``running`` -> ``stalled`` after ``watchdog_timeout`` seconds without
a frame. That timeout is also the pause tolerance: a thermal camera's flat-field correction (FFC)
freezes the stream for up to a few seconds and must not count as a disconnect, so nothing is reported
and nothing is reopened before ``watchdog_timeout`` (default 4 s) has passed. After that, a live source
whose reads fail is reopened (``reconnecting``) with exponential backoff. A read that blocks forever
cannot be interrupted safely from another thread (OpenCV captures are not thread-safe), so such a
source stays ``stalled`` until the backend's own read timeout returns (about 10 s for V4L2).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from fusioncam.errors import FusioncamError
from fusioncam.io.frames import Frame

_log = logging.getLogger(__name__)

__all__ = [
    "SourceState",
    "CapturedFrame",
    "FrameBuffer",
    "CaptureThread",
    "DEFAULT_WATCHDOG_TIMEOUT",
    "host_time",
]

#: Seconds without a frame before a source is reported stalled (and, if its reads fail, reopened).
#: Longer than a thermal camera's flat-field pause (typically 0.5-3 s).
DEFAULT_WATCHDOG_TIMEOUT = 4.0


class SourceState(StrEnum):
    """What a capture thread is doing; the GUI shows it next to each view."""

    STARTING = "starting"
    RUNNING = "running"
    STALLED = "stalled"  # no frame for watchdog_timeout seconds
    RECONNECTING = "reconnecting"  # reopening a live source after failures, with backoff
    ENDED = "ended"  # end of a file (not an error)
    FAILED = "failed"  # could not read or reopen; the thread has finished
    STOPPED = "stopped"  # stop() was called

    @property
    def terminal(self) -> bool:
        """True when the thread delivers no more frames."""
        return self in (SourceState.ENDED, SourceState.FAILED, SourceState.STOPPED)


@dataclass(slots=True)
class CapturedFrame(Frame):
    """A :class:`Frame` stamped by a capture thread (see the module docstring for the three clocks)."""

    host_t: float = 0.0
    media_t: float = 0.0
    source_index: int = 0
    read_ms: float = 0.0  # how long the source's read() took (decode, or the wait for the camera)
    buffer_ms: float = float("nan")  # the driver's buffer timestamp (V4L2), where OpenCV reports one


def host_time(frame: Frame) -> float:
    """Host monotonic capture time of a frame (its ``t`` when it was not stamped by a capture thread)."""
    return getattr(frame, "host_t", frame.t)


class FrameBuffer:
    """A bounded FIFO between one producer thread and one consumer with an explicit full policy.

    ``drop_oldest=True``: ``put`` never blocks, the oldest item goes (counted in ``drops``).
    ``drop_oldest=False``: ``put`` blocks until there is room or ``cancel`` is set.
    A deque under a Condition rather than ``queue.Queue`` because Queue cannot drop its oldest item
    atomically.
    """

    def __init__(self, maxsize: int, drop_oldest: bool):
        if maxsize < 1:
            raise FusioncamError(f"buffer size must be >= 1, got {maxsize}")
        self.maxsize = int(maxsize)
        self.drop_oldest = bool(drop_oldest)
        self.drops = 0
        self._items: deque[Any] = deque()
        self._cond = threading.Condition()
        self._closed = False  # a None sentinel has been put; later gets return None at once

    def put(self, item: Any, cancel: threading.Event | None = None) -> bool:
        """Add an item; False when ``cancel`` was set while waiting for room (the item is not added)."""
        with self._cond:
            if self.drop_oldest:
                while len(self._items) >= self.maxsize:
                    self._items.popleft()
                    self.drops += 1
            else:
                while len(self._items) >= self.maxsize and item is not None:
                    if cancel is not None and cancel.is_set():
                        return False
                    self._cond.wait(0.05)
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None) -> Any:
        """The oldest item (None is the end-of-stream sentinel); raises ``queue.Empty`` on timeout."""
        with self._cond:
            if not self._items and self._closed:
                return None
            if not self._cond.wait_for(lambda: bool(self._items), timeout):
                raise queue.Empty
            item = self._items.popleft()
            if item is None:
                self._closed = True
            self._cond.notify_all()
            return item

    def drain(self) -> list[Any]:
        """All items available now, oldest first (possibly ending with the None sentinel)."""
        with self._cond:
            items = list(self._items)
            self._items.clear()
            if items and items[-1] is None:
                self._closed = True
            self._cond.notify_all()
            return items

    def peek_t(self) -> float | None:
        """Timestamp ``t`` of the oldest frame, or None when empty or at the sentinel."""
        with self._cond:
            return self._items[0].t if self._items and self._items[0] is not None else None

    def clear(self) -> None:
        with self._cond:
            self._items.clear()
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


StateCallback = Callable[[str, SourceState, str], None]


class CaptureThread:
    """Reads one source on a daemon thread into a bounded :class:`FrameBuffer`.

    Args:
        source: a :class:`~fusioncam.io.sources.Source` (``start``/``read``/``stop``, ``is_live``,
            ``fps``). The thread starts and stops it.
        name: the stream's name in states and messages ("ir", "vis").
        mode: "live" (drop oldest, never block) or "file" (block, lose nothing); default from
            ``source.is_live`` ... "live" for cameras, "file" for files.
        buffer_size: buffer capacity; default 2 in live mode, 32 in file mode.
        pace: release file frames at their own timestamps (a stand-in for a camera); ignored for live
            sources, which pace themselves.
        clock: what ``t`` holds: "host", "media", or "auto" (host for live sources, media for files).
        watchdog_timeout: seconds without a frame before ``stalled`` and, for live sources whose reads
            fail, before reopening (the flat-field-pause tolerance; see the module docstring).
        reconnect: reopen a source that fails; default True for live sources only (reopening a file
            would restart it).
        backoff_initial, backoff_max: reconnect delays double from ``backoff_initial`` up to
            ``backoff_max`` seconds.
        max_reconnects: attempts before giving up (``failed``); None retries forever.
        on_state: ``on_state(name, state, detail)``, called from the capture or watchdog thread on
            every state change.
        wake: an Event set after every put, so one consumer can wait on several threads at once.
    """

    def __init__(
        self,
        source: Any,
        *,
        name: str = "source",
        mode: str | None = None,
        buffer_size: int | None = None,
        pace: bool = False,
        clock: str = "auto",
        watchdog_timeout: float = DEFAULT_WATCHDOG_TIMEOUT,
        reconnect: bool | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 8.0,
        max_reconnects: int | None = None,
        retry_interval: float = 0.02,
        on_state: StateCallback | None = None,
        wake: threading.Event | None = None,
    ):
        self.source = source
        self.name = name
        self.is_live = bool(getattr(source, "is_live", False))
        mode = mode or ("live" if self.is_live else "file")
        if mode not in ("live", "file"):
            raise FusioncamError(f"capture mode must be 'live' or 'file', got {mode!r}")
        if clock not in ("auto", "host", "media"):
            raise FusioncamError(f"capture clock must be 'auto', 'host' or 'media', got {clock!r}")
        if watchdog_timeout <= 0:
            raise FusioncamError(f"watchdog timeout must be > 0 s, got {watchdog_timeout}")
        self.mode = mode
        self.buffer = FrameBuffer(buffer_size or (2 if mode == "live" else 32), drop_oldest=mode == "live")
        self.pace = bool(pace) and not self.is_live
        self.clock = ("host" if self.is_live else "media") if clock == "auto" else clock
        self.watchdog_timeout = float(watchdog_timeout)
        self.reconnect = self.is_live if reconnect is None else bool(reconnect)
        self.backoff_initial = float(backoff_initial)
        self.backoff_max = float(backoff_max)
        self.max_reconnects = max_reconnects
        self.retry_interval = float(retry_interval)
        self.on_state = on_state
        self.wake = wake

        self.frames = 0  # frames put into the buffer
        self.read_failures = 0
        self.reconnects = 0  # successful reopenings
        self.reconnect_attempts = 0
        self.state = SourceState.STARTING
        self.detail = ""
        self.last_frame: CapturedFrame | None = None  # newest frame (for views while nothing pairs)

        self._stop = threading.Event()
        self._state_lock = threading.Lock()
        self._last_host = time.monotonic()  # last frame (or start/reopen) host time, for the watchdog
        self._host_times: deque[float] = deque(maxlen=32)
        self._media_offset = 0.0
        self._last_media: float | None = None
        self._pace_origin: tuple[float, float] | None = None
        self._thread = threading.Thread(target=self._run, name=f"capture-{name}", daemon=True)
        self._watchdog = threading.Thread(target=self._watch, name=f"watchdog-{name}", daemon=True)

    # --- public -------------------------------------------------------------------------------------
    @property
    def fps(self) -> float:
        """The source's nominal frame rate (0 when unknown)."""
        return float(getattr(self.source, "fps", 0.0) or 0.0)

    @property
    def measured_fps(self) -> float:
        """Delivered frames per second over the last 32 frames (host clock)."""
        ts = list(self._host_times)
        return (len(ts) - 1) / (ts[-1] - ts[0]) if len(ts) > 1 and ts[-1] > ts[0] else 0.0

    @property
    def drops(self) -> int:
        """Frames dropped from the buffer because the consumer was slower (live mode only)."""
        return self.buffer.drops

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> CaptureThread:
        self._last_host = time.monotonic()
        self._thread.start()
        self._watchdog.start()
        return self

    def get(self, timeout: float | None = None) -> CapturedFrame | None:
        """Next frame, or None at the end of the stream; raises ``queue.Empty`` on timeout."""
        return self.buffer.get(timeout)

    def drain(self) -> list[CapturedFrame | None]:
        return self.buffer.drain()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop reading: set the stop Event, drain the buffer (unblocks a waiting put), join."""
        self._stop.set()
        self.buffer.clear()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        if self._watchdog.is_alive() and threading.current_thread() is not self._watchdog:
            self._watchdog.join(timeout)
        self.buffer.clear()
        if not self.state.terminal:
            self._set_state(SourceState.STOPPED, "stopped")

    def stats(self) -> dict[str, Any]:
        return {
            "state": str(self.state),
            "detail": self.detail,
            "frames": self.frames,
            "drops": self.drops,
            "read_failures": self.read_failures,
            "reconnects": self.reconnects,
            "fps": self.measured_fps,
            "buffered": len(self.buffer),
        }

    # --- thread bodies ------------------------------------------------------------------------------
    def _set_state(self, state: SourceState, detail: str = "") -> None:
        with self._state_lock:
            if state == self.state and detail == self.detail:
                return
            if self.state.terminal and state != self.state:
                return  # a finished thread does not come back to life
            self.state, self.detail = state, detail
        if self.on_state is not None:
            try:
                self.on_state(self.name, state, detail)
            except Exception:  # noqa: BLE001 - a faulty observer must not kill the capture thread
                pass

    def _finish(self, state: SourceState, detail: str) -> None:
        self._set_state(state, detail)
        self.buffer.put(None)
        if self.wake is not None:
            self.wake.set()

    def _watch(self) -> None:
        period = min(0.25, self.watchdog_timeout / 4)
        while not self._stop.wait(period) and self._thread.is_alive():
            if not self.buffer.drop_oldest and len(self.buffer) >= self.buffer.maxsize:
                continue  # file mode waiting for room: the consumer is slow, the source is fine
            idle = time.monotonic() - self._last_host
            if idle > self.watchdog_timeout and self.state in (SourceState.RUNNING, SourceState.STARTING):
                self._set_state(SourceState.STALLED, f"no frame for {idle:.1f} s")

    def _open(self) -> bool:
        """Start the source; on failure, retry with backoff (reconnectable sources) or fail."""
        try:
            self.source.start()
            self._last_host = time.monotonic()
            return True
        except Exception as e:  # noqa: BLE001 - backends raise anything (cv2.error, OSError, ...)
            if not self.reconnect:
                self._finish(SourceState.FAILED, f"cannot open: {e}")
                return False
            return self._reopen(f"cannot open: {e}")

    def _reopen(self, reason: str) -> bool:
        """Stop and restart the source with exponential backoff; False when stopped or out of attempts."""
        attempt = 0
        while not self._stop.is_set():
            if self.max_reconnects is not None and attempt >= self.max_reconnects:
                self._finish(SourceState.FAILED, f"gave up after {attempt} reconnect attempts: {reason}")
                return False
            delay = min(self.backoff_max, self.backoff_initial * 2**attempt)
            self._set_state(SourceState.RECONNECTING, f"attempt {attempt + 1} in {delay:.1f} s ({reason})")
            try:
                self.source.stop()
            except Exception:  # noqa: BLE001 - the source is broken anyway; we are reopening it
                pass
            if self._stop.wait(delay):
                return False
            attempt += 1
            self.reconnect_attempts += 1
            try:
                self.source.start()
            except Exception as e:  # noqa: BLE001
                reason = f"cannot reopen: {e}"
                continue
            self.reconnects += 1
            self._last_host = time.monotonic()  # a fresh grace period for the reopened source
            self._pace_origin = None
            return True
        return False

    def _media_time(self, t: float) -> float:
        """The source timestamp made monotonic (a looping file restarts its clock at 0)."""
        if self._last_media is not None and t + self._media_offset <= self._last_media:
            period = 1.0 / self.fps if self.fps > 0 else 1.0 / 30.0
            self._media_offset = self._last_media + period - t
        m = t + self._media_offset
        self._last_media = m
        return m

    def _pace_to(self, media_t: float) -> bool:
        """Sleep until a paced file frame is due; False when stopped meanwhile."""
        now = time.monotonic()
        if self._pace_origin is None:
            self._pace_origin = (now, media_t)
            return True
        delay = self._pace_origin[0] + (media_t - self._pace_origin[1]) - now
        if delay > 0:
            return not self._stop.wait(delay)
        if delay < -0.25:  # fell far behind (a blocked put): re-anchor rather than burst to catch up
            self._pace_origin = (now, media_t)
        return True

    def _run(self) -> None:
        try:
            if not self._open():
                return
            while not self._stop.is_set():
                t0 = time.monotonic()
                error: BaseException | None = None
                try:
                    frame = self.source.read()
                except Exception as e:  # noqa: BLE001 - any backend failure is a read failure here
                    frame, error = None, e
                    if not isinstance(e, FusioncamError) and self.read_failures == 0:
                        # not a camera's SourceLost but something unexpected: keep the traceback once
                        _log.warning("%s: read raised %s", self.name, type(e).__name__, exc_info=e)
                t1 = time.monotonic()
                if frame is None:
                    if not self.reconnect:
                        if error is None:
                            self._finish(SourceState.ENDED, "end of stream")
                        else:
                            self._finish(SourceState.FAILED, f"read failed: {error}")
                        return
                    self.read_failures += 1
                    reason = f"read failed: {error}" if error is not None else "no frame"
                    if t1 - self._last_host >= self.watchdog_timeout:
                        if not self._reopen(reason):
                            return
                    else:  # within the pause tolerance: retry quietly
                        self._stop.wait(self.retry_interval)
                    continue
                media_t = self._media_time(float(frame.t))
                if self.pace and not self._pace_to(media_t):
                    return
                host_t = time.monotonic()
                out = CapturedFrame(
                    image=frame.image,
                    t=host_t if self.clock == "host" else media_t,
                    index=self.frames,
                    raw=frame.raw,
                    host_t=host_t,
                    media_t=media_t,
                    source_index=int(frame.index),
                    read_ms=(t1 - t0) * 1000.0,
                    buffer_ms=float(getattr(self.source, "last_buffer_ms", float("nan"))),
                )
                if not self.buffer.put(out, cancel=self._stop):
                    return
                self.frames += 1
                self.last_frame = out
                self._last_host = time.monotonic()  # after a put that may have waited for room
                self._host_times.append(host_t)
                if self.wake is not None:
                    self.wake.set()
                if self.state != SourceState.RUNNING:
                    self._set_state(SourceState.RUNNING, "")
        finally:
            try:
                self.source.stop()
            except Exception:  # noqa: BLE001 - closing a broken source must not raise from the thread
                pass
            if self.wake is not None:
                self.wake.set()
