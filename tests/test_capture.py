"""CaptureThread: drop policy (live vs file), end sentinel, watchdog states, reconnect with backoff.

Fake sources here (not fusioncam.io.sources) so each behaviour is scripted exactly. No assertion on
absolute speed: timeouts are generous and only bound how long a test may wait.
"""

from __future__ import annotations

import queue
import threading
import time

import numpy as np
import pytest

from fusioncam.errors import FusioncamError
from fusioncam.io.capture import CapturedFrame, CaptureThread, FrameBuffer, SourceState
from fusioncam.io.frames import Frame


class FakeSource:
    """A scripted source: ``n`` frames (None: endless) at ``fps`` media time.

    ``block_after``: after that many frames the next read blocks until ``release`` is set (a live
    source with no new frame: a flat-field pause, or an unplugged camera whose read hangs).
    ``pause``: (after_n, seconds) one read sleeps that long (a flat-field pause).
    ``fail_after``: reads raise after that many frames of each start() (an unplugged camera;
    start() again "reconnects"). ``fail_starts``: the first K start() calls raise.
    """

    def __init__(
        self,
        n=None,
        fps=30.0,
        live=False,
        period=0.0,
        block_after=None,
        pause=None,
        fail_after=None,
        fail_starts=0,
        t_reset_every=None,
    ):
        self.name = "fake"
        self.fps = fps
        self.size = (8, 6)
        self.is_live = live
        self.frame_count = n
        self.n, self.period = n, period
        self.block_after, self.pause = block_after, pause
        self.fail_after, self.fail_starts = fail_after, fail_starts
        self.t_reset_every = t_reset_every
        self.release = threading.Event()
        self.i = 0
        self.since_start = 0
        self.starts = 0
        self.stops = 0

    def start(self):
        self.starts += 1
        if self.starts <= self.fail_starts:
            raise FusioncamError("cannot open fake")
        self.since_start = 0

    def read(self):
        if self.n is not None and self.i >= self.n:
            return None
        if self.block_after is not None and self.i == self.block_after and not self.release.is_set():
            self.release.wait(10)
        if self.pause is not None and self.i == self.pause[0]:
            time.sleep(self.pause[1])
            self.pause = None
        if self.fail_after is not None and self.since_start >= self.fail_after:
            raise FusioncamError("fake unplugged")
        if self.period:
            time.sleep(self.period)
        i = self.i
        self.i += 1
        self.since_start += 1
        k = i % self.t_reset_every if self.t_reset_every else i
        return Frame(np.full((6, 8), i % 256, np.uint8), k / self.fps, k)

    def stop(self):
        self.stops += 1


def wait_for(cond, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return False


def collect(cap: CaptureThread, timeout=5.0, delay=0.0):
    out = []
    while True:
        f = cap.get(timeout=timeout)
        if f is None:
            return out
        out.append(f)
        if delay:
            time.sleep(delay)


class StateLog:
    def __init__(self):
        self.states = []

    def __call__(self, name, state, detail):
        self.states.append(state)


class TestFrameBuffer:
    def test_drop_oldest_keeps_the_newest(self):
        b = FrameBuffer(2, drop_oldest=True)
        for i in range(5):
            b.put(i)
        assert b.drain() == [3, 4] and b.drops == 3

    def test_blocking_put_waits_for_room_and_can_be_cancelled(self):
        b = FrameBuffer(1, drop_oldest=False)
        b.put(1)
        cancel = threading.Event()
        cancel.set()
        assert b.put(2, cancel) is False
        with pytest.raises(queue.Empty):
            FrameBuffer(1, False).get(timeout=0.01)

    def test_sentinel_is_sticky(self):
        b = FrameBuffer(2, drop_oldest=True)
        b.put(None)
        assert b.get(0.1) is None and b.get(0.1) is None


class TestDropPolicy:
    def test_file_mode_loses_no_frame_under_a_slow_consumer(self):
        cap = CaptureThread(FakeSource(n=40), name="ir", mode="file", buffer_size=3).start()
        frames = collect(cap, delay=0.002)
        assert [f.source_index for f in frames] == list(range(40))
        assert cap.drops == 0 and cap.frames == 40
        assert cap.state == SourceState.ENDED
        cap.stop()

    def test_live_mode_drops_the_oldest_under_a_slow_consumer(self):
        src = FakeSource(live=True, block_after=50)
        cap = CaptureThread(src, name="vis", mode="live", buffer_size=2).start()
        assert wait_for(lambda: cap.frames == 50)
        got = cap.drain()  # the consumer comes back late: only the newest frames are there
        assert [f.source_index for f in got] == [48, 49]
        assert cap.drops == 48
        src.release.set()
        cap.stop()
        assert cap.state == SourceState.STOPPED

    def test_frames_are_stamped_with_host_and_media_time(self):
        cap = CaptureThread(FakeSource(n=5, fps=10.0), mode="file").start()
        t_before = time.monotonic()
        frames = collect(cap)
        cap.stop()
        assert all(isinstance(f, CapturedFrame) for f in frames)
        assert [f.media_t for f in frames] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
        assert [f.t for f in frames] == [f.media_t for f in frames]  # files pair on media time
        hosts = [f.host_t for f in frames]
        assert hosts == sorted(hosts) and hosts[-1] <= time.monotonic() and hosts[0] > t_before - 5

    def test_live_sources_pair_on_host_time(self):
        src = FakeSource(live=True, block_after=3)
        cap = CaptureThread(src).start()
        assert wait_for(lambda: cap.frames == 3)
        frames = cap.drain()
        src.release.set()
        cap.stop()
        assert all(f.t == f.host_t for f in frames)

    def test_media_time_stays_monotonic_across_a_loop(self):
        cap = CaptureThread(FakeSource(n=12, fps=10.0, t_reset_every=5), mode="file").start()
        ts = [f.t for f in collect(cap)]
        cap.stop()
        assert all(b > a for a, b in zip(ts, ts[1:], strict=False))

    def test_paced_file_is_not_released_faster_than_its_fps(self):
        cap = CaptureThread(FakeSource(n=6, fps=50.0), mode="live", buffer_size=10, pace=True).start()
        frames = collect(cap)
        cap.stop()
        assert frames[-1].host_t - frames[0].host_t >= 5 / 50.0 - 0.005

    def test_stop_unblocks_a_producer_waiting_for_room(self):
        cap = CaptureThread(FakeSource(n=None), mode="file", buffer_size=2).start()
        assert wait_for(lambda: cap.frames == 2)
        cap.stop(timeout=2.0)
        assert not cap.alive and cap.state == SourceState.STOPPED


class TestWatchdog:
    def test_pause_shorter_than_the_tolerance_is_not_reported(self):
        log = StateLog()
        src = FakeSource(live=True, period=0.002, pause=(10, 0.3), n=40)
        cap = CaptureThread(src, watchdog_timeout=1.0, on_state=log).start()
        assert wait_for(lambda: cap.frames >= 30)
        cap.stop()
        assert SourceState.STALLED not in log.states
        assert SourceState.RECONNECTING not in log.states
        assert cap.reconnects == 0

    def test_source_that_stops_delivering_is_reported_stalled_then_running(self):
        log = StateLog()
        src = FakeSource(live=True, period=0.002, block_after=5)
        cap = CaptureThread(src, watchdog_timeout=0.15, on_state=log).start()
        assert wait_for(lambda: SourceState.STALLED in log.states)
        src.release.set()
        assert wait_for(lambda: cap.frames > 10)
        cap.stop()
        i = log.states.index(SourceState.STALLED)
        assert log.states[i - 1] == SourceState.RUNNING and SourceState.RUNNING in log.states[i + 1 :]

    def test_a_slow_consumer_in_file_mode_is_not_a_stall(self):
        log = StateLog()
        cap = CaptureThread(
            FakeSource(n=None), mode="file", buffer_size=2, watchdog_timeout=0.1, on_state=log
        ).start()
        assert wait_for(lambda: cap.frames == 2)
        time.sleep(0.4)  # nobody reads: the reader waits for room far longer than the timeout
        assert cap.state == SourceState.RUNNING and SourceState.STALLED not in log.states
        assert cap.get(timeout=1.0).source_index == 0
        cap.stop()

    def test_failing_reads_reconnect_with_backoff(self):
        log = StateLog()
        src = FakeSource(live=True, period=0.001, fail_after=5)
        cap = CaptureThread(src, watchdog_timeout=0.05, backoff_initial=0.01, on_state=log).start()
        assert wait_for(lambda: cap.reconnects >= 2 and cap.frames >= 15)
        cap.stop()
        assert SourceState.RECONNECTING in log.states
        assert src.starts >= 3 and cap.read_failures > 0
        assert log.states[-1] == SourceState.STOPPED

    def test_pause_tolerance_also_covers_failed_reads(self):
        # read errors during a flat-field pause shorter than the tolerance: retried, not reopened
        src = FakeSource(live=True, period=0.001, fail_after=5)
        cap = CaptureThread(src, watchdog_timeout=5.0).start()
        assert wait_for(lambda: cap.read_failures >= 5)
        cap.stop()
        assert cap.reconnects == 0 and src.starts == 1

    def test_gives_up_after_max_reconnects(self):
        log = StateLog()
        src = FakeSource(live=True, fail_starts=100)
        cap = CaptureThread(src, backoff_initial=0.005, max_reconnects=3, on_state=log).start()
        assert cap.get(timeout=5.0) is None  # the end sentinel
        assert cap.state == SourceState.FAILED and "gave up after 3" in cap.detail
        assert SourceState.RECONNECTING in log.states and src.starts == 4
        cap.stop()

    def test_file_read_error_fails_with_the_message(self):
        cap = CaptureThread(FakeSource(n=None, fail_after=3), mode="file").start()
        frames = collect(cap)
        assert len(frames) == 3
        assert cap.state == SourceState.FAILED and "fake unplugged" in cap.detail
        cap.stop()
        assert cap.state == SourceState.FAILED  # stop() does not hide the failure

    def test_bad_arguments(self):
        with pytest.raises(FusioncamError, match="mode"):
            CaptureThread(FakeSource(), mode="fast")
        with pytest.raises(FusioncamError, match="watchdog"):
            CaptureThread(FakeSource(), watchdog_timeout=0)
