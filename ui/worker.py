"""The bridge between the live pipeline (plain Python threads) and Qt.

``LivePipeline`` calls ``on_result`` from its engine thread. There we only do cheap, per-result work
that must see every result (hand it to the recorder's queue, colour the IR with the palette: ~1 ms), keep
the newest result, and wake the UI with a queued signal -- at most one wake-up is ever pending, so when
the UI is slower than the engine it paints only the newest result and never builds a backlog.

Starting (opening cameras, loading MGFusion and CLIP can take seconds), stopping and switching the
fusion method run on short-lived background threads and report back through signals, so the UI thread
never waits on them. Errors a user can cause (:class:`FusioncamError`) arrive as the ``error`` signal.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from PyQt6.QtCore import QObject, Qt, pyqtSignal

from fusioncam.config import Settings
from fusioncam.errors import FusioncamError
from fusioncam.io.recording import apply_palette
from fusioncam.processing.color import to_bgr
from fusioncam.processing.fusers import fuser_info

__all__ = ["DisplayFrames", "PipelineLike", "PipelineFactory", "PipelineWorker", "build_pipeline"]


#: used when the chosen network method cannot be loaded, so the window still shows a fused picture
FALLBACK_METHOD = "laplacian"


class PipelineLike(Protocol):
    engine: Any

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...


#: (settings, on_result, on_status) -> a pipeline, not yet started.
PipelineFactory = Callable[[Settings, Callable[[Any], None], Callable[..., None]], PipelineLike]


def build_pipeline(settings: Settings, on_result: Callable[[Any], None], on_status: Callable[..., None]):
    """The real pipeline: two sources, the fusion engine and the live pipeline around them."""
    from fusioncam.io.sources import open_source
    from fusioncam.live.engine import FusionEngine, LivePipeline
    from fusioncam.processing.registration import Rig

    s = settings
    rig = Rig.load(s.engine.rig) if s.engine.rig else None
    ir = open_source(s.sources.ir, loop=s.sources.loop, thermal16=s.sources.thermal16 or None)
    try:
        vis = open_source(s.sources.vis, loop=s.sources.loop)
    except BaseException:
        _close_quietly(ir)
        raise
    try:
        options = s.engine.fuser_options()
        # Options go to set_fuser, not to the constructor: the engine would also pass constructor options
        # to a classical fuser chosen later, which takes no weights.
        first = FALLBACK_METHOD if options else s.engine.method
        engine = FusionEngine(first, rig=rig, device=s.engine.device, clip_refresh=s.engine.clip_refresh)
        if options:
            engine.set_fuser(s.engine.method, **options)
        tol = s.sources.sync_tolerance_ms
        return LivePipeline(
            ir,
            vis,
            engine,
            pace=s.sources.pace,
            loop=s.sources.loop,
            sync_tolerance=None if tol is None else tol / 1000.0,
            on_result=on_result,
            on_status=on_status,
        )
    except BaseException:
        _close_quietly(ir)
        _close_quietly(vis)
        raise


def _close_quietly(source: Any) -> None:
    for name in ("stop", "close", "release"):
        fn = getattr(source, name, None)
        if callable(fn):
            try:
                fn()
            except Exception:
                pass
            return


#: How long stopping waits for the fusion thread to finish its frame: a network on a busy CPU can take
#: seconds per frame, and a thread still inside torch when the interpreter exits aborts the process.
STOP_TIMEOUT_S = 60.0


def _stop_pipeline(pipeline: Any) -> None:
    if "timeout" in inspect.signature(pipeline.stop).parameters:
        pipeline.stop(timeout=STOP_TIMEOUT_S)
    else:
        pipeline.stop()


@dataclass
class DisplayFrames:
    """What the three views show for one result (prepared off the UI thread)."""

    result: Any
    ir: np.ndarray
    vis: np.ndarray
    fused: np.ndarray


class PipelineWorker(QObject):
    """Owns one LivePipeline at a time and turns its callbacks into Qt signals."""

    frame_ready = pyqtSignal()  # a new result is waiting in latest(); coalesced
    status = pyqtSignal(str, bool)  # a source/pipeline message (e.g. "IR: reconnecting"), is_error
    started = pyqtSignal()
    stopped = pyqtSignal()
    error = pyqtSignal(str)
    method_active = pyqtSignal(str)  # the method the engine really uses (after a start or a switch)
    _done = pyqtSignal()  # a background job finished (its payload is in _finished)
    _finished_signal = pyqtSignal()  # the pipeline ended by itself (end of files, a source failed)

    def __init__(self, factory: PipelineFactory | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._factory = factory or build_pipeline
        self._lock = threading.Lock()
        self._pipeline: PipelineLike | None = None
        self._latest: DisplayFrames | None = None
        self._wake_pending = False
        self._consumers: list[Callable[[Any], None]] = []
        self._threads: list[threading.Thread] = []
        self.palette = "inferno"
        self.state = "idle"  # idle | starting | running | stopping
        self._ended_while_starting = False  # the pipeline ended before its start job was adopted
        self.results = 0
        self._times: deque[float] = deque(maxlen=16)  # arrival times of the last results
        self._finished: list[tuple[str, Any, str | None]] = []
        self._done.connect(self._drain, Qt.ConnectionType.QueuedConnection)
        self._finished_signal.connect(self._pipeline_ended, Qt.ConnectionType.QueuedConnection)

    # --- pipeline callbacks (engine / capture threads) ---
    def _on_result(self, result: Any) -> None:
        for consumer in list(self._consumers):
            consumer(result)  # the recorder's submit(): non-blocking
        frames = DisplayFrames(
            result=result,
            ir=apply_palette(result.pair.ir.image, self.palette),
            vis=to_bgr(result.vis if getattr(result, "vis", None) is not None else result.pair.vis.image),
            fused=result.fused,
        )
        with self._lock:
            self._latest = frames
            self.results += 1
            self._times.append(time.monotonic())
            wake = not self._wake_pending
            self._wake_pending = True
        if wake:
            self.frame_ready.emit()

    def _on_status(self, name: str, state: str, detail: str = "") -> None:
        """``LivePipeline``'s on_status(name, state, detail) -> "IR: reconnecting (detail)"."""
        label = {"ir": "IR", "vis": "VIS"}.get(str(name), str(name))
        text = f"{label}: {state}" + (f" ({detail})" if detail else "")
        self.status.emit(text, str(state) in ("error", "failed"))
        if name == "pipeline" and str(state) in ("ended", "failed"):
            self._finished_signal.emit()  # no more results will come: tidy up on the UI thread

    # --- UI-thread API ---
    def latest(self) -> DisplayFrames | None:
        """Take the newest prepared result (None if nothing new since the last call)."""
        with self._lock:
            frames, self._latest = self._latest, None
            self._wake_pending = False
        return frames

    def result_rate(self) -> float:
        """Results per second over the last (up to 16) results: the rate of a slow network too, where a
        fixed two-second window would often hold fewer than two results and read 0."""
        with self._lock:
            ts = list(self._times)
        if len(ts) < 2:
            return 0.0
        span = max(ts[-1] - ts[0], time.monotonic() - ts[-1])  # a stalled engine decays toward 0
        return (len(ts) - 1) / span if span > 0 else 0.0

    def add_consumer(self, fn: Callable[[Any], None]) -> None:
        self._consumers.append(fn)

    def remove_consumer(self, fn: Callable[[Any], None]) -> None:
        if fn in self._consumers:
            self._consumers.remove(fn)

    @property
    def pipeline(self) -> PipelineLike | None:
        return self._pipeline

    @property
    def engine(self) -> Any:
        return getattr(self._pipeline, "engine", None)

    def stats(self) -> dict[str, Any] | None:
        p = self._pipeline
        if p is None or self.state != "running":
            return None
        try:
            st = p.stats()
            return st.as_dict() if hasattr(st, "as_dict") else dict(st)
        except Exception:  # stats are informative; a race at shutdown must not break the UI
            return None

    def start(self, settings: Settings) -> None:
        """Build and start a pipeline in the background; ``started`` or ``error`` follows."""
        if self.state != "idle":
            return
        self.state = "starting"
        self._ended_while_starting = False
        snapshot = settings.copy()

        def job():
            note = None
            try:
                pipeline = self._factory(snapshot, self._on_result, self._on_status)
            except FusioncamError as e:
                # A network method that cannot load (no trained weights, no CLIP) must not leave the user
                # with an empty window: fuse with a classical method and say why in the status bar.
                method = snapshot.engine.method
                if method == FALLBACK_METHOD or fuser_info(method).classical:
                    raise
                note = f"{method} unavailable ({e}); fusing with {FALLBACK_METHOD}"
                snapshot.engine.method = FALLBACK_METHOD
                pipeline = self._factory(snapshot, self._on_result, self._on_status)
            try:
                pipeline.start()
            except BaseException:
                _stop_pipeline(pipeline)
                raise
            return pipeline, note

        self._background("start", job)

    def stop(self, wait: bool = False) -> None:
        """Stop the pipeline; with ``wait`` synchronously (window close), else in the background."""
        if wait:
            if self.state == "starting":
                self.state = "stopping"  # a start finishing meanwhile is stopped, not adopted
            self._join_background()
            pipeline, self._pipeline = self._pipeline, None
            if pipeline is not None:
                _stop_pipeline(pipeline)
            self.state = "idle"
            return
        if self.state != "running":
            return
        self.state = "stopping"
        pipeline = self._pipeline

        def job():
            _stop_pipeline(pipeline)
            return None

        self._background("stop", job)

    def set_method(self, name: str, options: dict[str, Any] | None = None) -> None:
        """Switch the fuser of the running engine (loading a network may take a while: background)."""
        engine = self.engine
        if engine is None:
            return
        self._background("method", lambda: engine.set_fuser(name, **(options or {})))

    def set_clip_refresh(self, k: int) -> None:
        engine = self.engine
        if engine is not None:
            engine.clip_refresh = int(k)

    def set_rig(self, rig: Any) -> None:
        engine = self.engine
        if engine is not None:
            engine.set_rig(rig)

    def _pipeline_ended(self) -> None:
        if self.state == "running":
            self.stop()  # joins the finished threads in the background; then ``stopped``, Start is enabled
        elif self.state == "starting":
            # A source that fails at once can end the pipeline before the start job is adopted (both
            # arrive as queued signals): remember it, or the worker would stay "running" for ever.
            self._ended_while_starting = True

    # --- background jobs ---
    def _background(self, kind: str, job: Callable[[], Any]) -> None:
        def run():
            try:
                payload = (kind, job(), None)
            except FusioncamError as e:
                payload = (kind, None, str(e))
            except Exception as e:  # a bug or an OS failure: shown, never a crash of the UI
                payload = (kind, None, f"{type(e).__name__}: {e}")
            with self._lock:
                self._finished.append(payload)
            self._done.emit()

        t = threading.Thread(target=run, name=f"fusioncam-ui-{kind}", daemon=True)
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()

    def _join_background(self, timeout: float = 60.0) -> None:
        for t in self._threads:
            t.join(timeout)
        self._threads = []
        self._drain()  # adopt a pipeline whose start finished while we waited, so it gets stopped

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._finished:
                    return
                kind, out, err = self._finished.pop(0)
            self._handle_done(kind, out, err)

    def _handle_done(self, kind: str, out: Any, err: str | None) -> None:
        if kind == "start":
            if err is not None:
                self.state = "idle"
                self.error.emit(err)
            elif self.state == "starting":
                self._pipeline, note = out
                self.state = "running"
                self.started.emit()
                self.method_active.emit(str(getattr(self.engine, "method", "")))
                if note:
                    self.error.emit(note)
                if self._ended_while_starting:
                    self._ended_while_starting = False
                    self.stop()
            else:  # stopped while starting: stop what was started
                _stop_pipeline(out[0])
        elif kind == "stop":
            self._pipeline = None
            self.state = "idle"
            with self._lock:
                self._latest = None
            if err is not None:
                self.error.emit(err)
            self.stopped.emit()
        elif kind == "method":
            if err is not None:
                self.error.emit(err)
            engine = self.engine
            if engine is not None:  # what actually runs (the old method if the switch failed)
                self.method_active.emit(str(engine.method))
