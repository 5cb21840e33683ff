"""The real-time fusion engine and the live pipeline around it.

:class:`FusionEngine` turns one :class:`~fusioncam.io.frames.FramePair` into a :class:`FusedResult`:
register IR onto VIS -> CLIP features (cached) -> fuse the luminance -> put the VIS chroma back, with a
timing per stage. It is the one place that decides the device: ``device="auto"`` takes CUDA when torch
sees a GPU, else the CPU. Classical fusers are OpenCV code and always run on the CPU (uploading a frame
to fuse it with one addWeighted would only cost time); network fusers (anything with ``fuse_tensor``)
run on the chosen device, with registration there too (kornia on CUDA) and fp16 autocast on CUDA.

CLIP feature cache. CLIP embeds whole images, and consecutive video frames embed almost identically,
so a fuser that uses CLIP gets features computed on every K-th frame (``clip_refresh``) and on a scene
change, and reused in between. The scene-change detector is deliberately cheap: the mean absolute
difference of 32x32 thumbnails (IR and VIS luminance, the larger of the two) against the thumbnails
taken at the last refresh, over ``scene_change_threshold`` gray levels.

:class:`LivePipeline` owns two :class:`~fusioncam.io.capture.CaptureThread`, a
:class:`~fusioncam.live.sync.Synchronizer` and ONE worker thread that fuses. Capture never waits for the
worker (live buffers drop their oldest frame); when fusion is slower than the cameras the worker fuses
the newest pair and counts the ones it skipped. ``on_result`` is called on the worker thread; the GUI
bridges it to a Qt signal (no Qt here).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from fusioncam.errors import FusioncamError
from fusioncam.io.capture import DEFAULT_WATCHDOG_TIMEOUT, CaptureThread, SourceState, host_time
from fusioncam.io.frames import FramePair
from fusioncam.live.sync import PairPump, Synchronizer
from fusioncam.processing.color import merge_luma, split_luma, to_gray
from fusioncam.processing.fusers import Fuser, create_fuser, fuser_info
from fusioncam.processing.registration import Rig, warp_ir_to_vis, warp_ir_to_vis_torch

__all__ = [
    "FusedResult",
    "FusionEngine",
    "LivePipeline",
    "PipelineStats",
    "resolve_device",
    "DEFAULT_SCENE_CHANGE_THRESHOLD",
]

_log = logging.getLogger(__name__)

#: Mean absolute difference (gray levels, 0..255) of 32x32 thumbnails that counts as a new scene.
#: Consecutive frames of a moving street scene differ by 1-4; a cut or a fast pan by 15 or more.
DEFAULT_SCENE_CHANGE_THRESHOLD = 12.0
_THUMB = (32, 32)
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str = "auto") -> str:
    """ "auto" -> "cuda" when torch sees a GPU, else "cpu"; "cuda[:N]" is checked to be available."""
    device = str(device or "auto").lower()
    if device == "cpu":
        return "cpu"
    if device != "auto" and not device.startswith("cuda"):
        raise FusioncamError(f"unknown device '{device}'; choose auto, cpu or cuda")
    import torch

    has_cuda = torch.cuda.is_available()
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    if not has_cuda:
        raise FusioncamError(f"device '{device}' asked for but torch sees no CUDA GPU; use --device cpu")
    return device


def _is_torch_fuser(fuser: Any) -> bool:
    return callable(getattr(fuser, "fuse_tensor", None))


def _uses_clip(fuser: Any) -> bool:
    return bool(getattr(fuser, "uses_clip", False)) and callable(getattr(fuser, "encode_clip", None))


@dataclass
class FusedResult:
    """One fused frame and how it was made.

    Attributes:
        pair: the input pair (``pair.ir.raw`` keeps a 16-bit thermal frame for snapshots).
        ir_registered: uint8 gray IR warped into the VIS image plane.
        vis: the VIS image as the source gave it (gray or BGR).
        fused: uint8, BGR when VIS is colour (fused luminance + VIS chroma), else gray.
        timings: stage -> milliseconds ("prepare", "registration", "clip", "fusion", "color",
            "total"; the pipeline adds "capture", "wait", "sync" and "deliver").
        clip_refreshed: True when CLIP features were computed for this frame (False when reused or
            when the fuser does not use CLIP).
        index: 0-based number of this result in the engine's output.
        latency_ms: from the host capture time of the newer frame of the pair to the end of fusion.
        method: the fuser's name; device: where it ran.
    """

    pair: FramePair
    ir_registered: np.ndarray
    vis: np.ndarray
    fused: np.ndarray
    timings: dict[str, float]
    clip_refreshed: bool
    index: int
    latency_ms: float
    method: str = ""
    device: str = "cpu"


@dataclass(frozen=True)
class _Active:
    """The fuser in use and where it runs, swapped as one object so a frame never sees half a change."""

    fuser: Any
    device: str
    spec: Any  # what set_fuser was given (a name is rebuilt by set_device)


class FusionEngine:
    """register -> CLIP (cached) -> fuse -> colour, on one device; thread-safe setters for the GUI.

    The setters (``set_fuser``, ``set_rig``, ``set_device``, ``clip_refresh``) never wait for the frame
    being fused: each frame reads the settings once when it starts, and a change applies from the next
    frame. ``set_fuser`` with a network name loads it in the calling thread (the GUI calls it off the UI
    thread) while the old fuser keeps running. K counts fused frames: when fusion is slower than the
    cameras, skipped pairs do not count.

    Args:
        fuser: a :class:`~fusioncam.processing.fusers.Fuser` or a registered name ("average",
            "mgfusion", ...).
        rig: the IR->VIS homography; None when the cameras already see the same pixels (IR is then
            only resized to the VIS size where they differ).
        device: "auto", "cpu" or "cuda[:N]" (see the module docstring).
        clip_refresh: K >= 1: CLIP features are computed every K frames (1 = every frame).
        scene_change_threshold: thumbnail difference that forces a CLIP refresh (None: never).
        fp16: autocast network fusers to float16 on CUDA (ignored on the CPU).
        fuser_options: keyword arguments for :func:`~fusioncam.processing.fusers.create_fuser` when
            ``fuser`` is a name (e.g. weights).
        device_registration: warp IR with kornia on the fuser's device (network fusers); None: on CUDA
            only (on the CPU, OpenCV's warp is faster).
    """

    def __init__(
        self,
        fuser: Fuser | str = "average",
        rig: Rig | None = None,
        device: str = "auto",
        clip_refresh: int = 8,
        scene_change_threshold: float | None = DEFAULT_SCENE_CHANGE_THRESHOLD,
        fp16: bool = True,
        fuser_options: dict[str, Any] | None = None,
        device_registration: bool | None = None,
    ):
        self._lock = threading.Lock()  # serialises process() calls only; setters never take it
        self.device_registration = device_registration
        self._device_request = device
        self.fp16 = bool(fp16)
        self.scene_change_threshold = scene_change_threshold
        self._clip_refresh = self._check_refresh(clip_refresh)
        self._rig = rig
        self._fuser_options = dict(fuser_options or {})
        self._active = _Active(None, "cpu", None)
        self._index = 0
        self.clip_refreshes = 0
        self.clip_reuses = 0
        self.scene_changes = 0
        self._reset_clip_cache()
        self.set_fuser(fuser)

    # --- settings (thread-safe; the GUI changes them while the worker runs) -------------------------
    @staticmethod
    def _check_refresh(k: int) -> int:
        try:
            k = int(k)
        except (TypeError, ValueError):
            raise FusioncamError(f"CLIP refresh interval must be an integer >= 1, got {k!r}") from None
        if k < 1:
            raise FusioncamError(f"CLIP refresh interval must be >= 1 frame, got {k}")
        return k

    @property
    def clip_refresh(self) -> int:
        return self._clip_refresh

    @clip_refresh.setter
    def clip_refresh(self, k: int) -> None:
        self._clip_refresh = self._check_refresh(k)

    @property
    def fuser(self) -> Any:
        return self._active.fuser

    @property
    def method(self) -> str:
        return _name(self._active.fuser)

    @property
    def device(self) -> str:
        """Where fusion runs: "cpu" for classical fusers, else the resolved device."""
        return self._active.device

    @property
    def uses_clip(self) -> bool:
        return _uses_clip(self._active.fuser)

    @property
    def rig(self) -> Rig | None:
        return self._rig

    def set_rig(self, rig: Rig | None) -> None:
        self._rig = rig

    def set_fuser(self, fuser: Fuser | str, **options: Any) -> None:
        """Switch the fusion method. A name is built first (it may load a network), then swapped in."""
        opts = {**self._fuser_options, **options}
        if isinstance(fuser, str):
            name = fuser
            classical = fuser_info(name).classical
            device = "cpu" if classical else resolve_device(self._device_request)
            accepted = _accepted_kwargs(fuser_info(name).factory, default=True)
            # Options meant for another method (e.g. a network's `weights`) are not passed on.
            opts = {k: v for k, v in opts.items() if k in accepted}
            if not classical and "device" in accepted:
                opts.setdefault("device", device)
                if device.startswith("cuda") and "half" in accepted:
                    opts.setdefault("half", self.fp16)
            new = create_fuser(name, **opts)
        else:
            new = fuser
            device = resolve_device(self._device_request) if _is_torch_fuser(new) else "cpu"
            to = getattr(new, "to", None)
            if _is_torch_fuser(new) and callable(to) and str(getattr(new, "device", device)) != device:
                to(device)
        if _is_torch_fuser(new):
            device = str(getattr(new, "device", device))
        self._active = _Active(new, device, fuser)  # the CLIP cache notices the new fuser itself

    def set_device(self, device: str) -> None:
        """Change the device ("auto", "cpu", "cuda"); a named network fuser is rebuilt there."""
        resolve_device(device)  # validate before changing anything
        previous, self._device_request = self._device_request, device
        try:
            self.set_fuser(self._active.spec)
        except BaseException:
            self._device_request = previous  # the old fuser keeps running where it was
            raise

    # --- the CLIP cache -------------------------------------------------------------------------------
    def _reset_clip_cache(self) -> None:
        self._clip_owner: Any = None  # the fuser that computed the cached features
        self._clip_features: Any = None
        self._clip_shape: tuple[int, ...] | None = None
        self._since_refresh = 0
        self._ref_thumbs: tuple[np.ndarray, np.ndarray] | None = None

    @staticmethod
    def _thumbs(ir: np.ndarray, vis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (
            cv2.resize(ir, _THUMB, interpolation=cv2.INTER_AREA),
            cv2.resize(vis, _THUMB, interpolation=cv2.INTER_AREA),
        )

    def _scene_changed(self, thumbs: tuple[np.ndarray, np.ndarray]) -> bool:
        if self.scene_change_threshold is None or self._ref_thumbs is None:
            return False
        diff = max(float(cv2.absdiff(a, b).mean()) for a, b in zip(thumbs, self._ref_thumbs, strict=True))
        return diff > self.scene_change_threshold

    def _need_refresh(self, fuser: Any, thumbs, shape: tuple[int, ...], k: int) -> bool:
        if self._clip_owner is not fuser or self._clip_features is None or self._clip_shape != shape:
            return True
        if self._since_refresh >= k:
            return True
        if self._scene_changed(thumbs):
            self.scene_changes += 1
            return True
        return False

    def stats(self) -> dict[str, Any]:
        return {
            "frames": self._index,
            "method": self.method,
            "device": self._active.device,
            "clip_refresh": self._clip_refresh,
            "clip_refreshes": self.clip_refreshes,
            "clip_reuses": self.clip_reuses,
            "scene_changes": self.scene_changes,
        }

    # --- processing -----------------------------------------------------------------------------------
    def process(self, pair: FramePair) -> FusedResult:
        """Fuse one pair. Raises :class:`FusioncamError` for frames it cannot fuse."""
        with self._lock:
            return self._process(pair)

    def _process(self, pair: FramePair) -> FusedResult:
        t_start = time.perf_counter()
        tm: dict[str, float] = {}
        vis = pair.vis.image
        ir_gray = to_gray(pair.ir.image)
        vis_y, chroma = split_luma(vis)
        vis_size = (vis_y.shape[1], vis_y.shape[0])
        t = _lap(tm, "prepare", t_start)

        active, rig = self._active, self._rig  # this frame's settings, read once
        fuser = active.fuser
        refreshed = False
        if _is_torch_fuser(fuser):
            ir_reg, fused_y, refreshed, t = self._fuse_torch(active, rig, ir_gray, vis_y, vis_size, tm, t)
        else:
            ir_reg = self._register_cpu(ir_gray, vis_size, rig)
            t = _lap(tm, "registration", t)
            tm["clip"] = 0.0
            fused_y = fuser.fuse(ir_reg, vis_y)
            t = _lap(tm, "fusion", t)
        if fused_y.shape != vis_y.shape or fused_y.dtype != np.uint8:
            raise FusioncamError(
                f"fuser '{_name(fuser)}' returned {fused_y.dtype} {fused_y.shape}, "
                f"expected uint8 {vis_y.shape}"
            )
        fused = merge_luma(fused_y, chroma, reuse=True)  # this frame's own buffer
        t = _lap(tm, "color", t)
        tm["total"] = (t - t_start) * 1000.0
        newest = max(host_time(pair.ir), host_time(pair.vis))
        result = FusedResult(
            pair=pair,
            ir_registered=ir_reg,
            vis=vis,
            fused=fused,
            timings=tm,
            clip_refreshed=refreshed,
            index=self._index,
            latency_ms=(time.monotonic() - newest) * 1000.0,
            method=_name(fuser),
            device=active.device,
        )
        self._index += 1
        return result

    @staticmethod
    def _register_cpu(ir: np.ndarray, vis_size: tuple[int, int], rig: Rig | None) -> np.ndarray:
        if rig is not None:
            return warp_ir_to_vis(ir, rig, vis_size)
        if (ir.shape[1], ir.shape[0]) != vis_size:
            return cv2.resize(ir, vis_size, interpolation=cv2.INTER_LINEAR)
        return ir

    def _fuse_torch(self, active: _Active, rig: Rig | None, ir_gray, vis_y, vis_size, tm, t):
        import torch
        import torch.nn.functional as F

        fuser = active.fuser
        dev = torch.device(active.device)
        cuda = dev.type == "cuda"
        on_device = cuda if self.device_registration is None else self.device_registration
        with torch.inference_mode():
            if on_device:  # registration with kornia on the device; only uint8 frames cross the bus
                ir_t = torch.from_numpy(ir_gray).to(dev, non_blocking=True)[None, None].float().div_(255.0)
                if rig is not None:
                    ir_t = warp_ir_to_vis_torch(ir_t, rig, vis_size)
                elif (ir_gray.shape[1], ir_gray.shape[0]) != vis_size:
                    ir_t = F.interpolate(
                        ir_t, size=(vis_size[1], vis_size[0]), mode="bilinear", align_corners=False
                    )
                ir_reg_t = ir_t.mul(255.0).round_().to(torch.uint8)
                ir_reg = None
            else:
                ir_reg = self._register_cpu(ir_gray, vis_size, rig)
                ir_t = _tensor01(ir_reg, dev)
            vis_t = _tensor01(vis_y, dev)
            if cuda:
                torch.cuda.synchronize(dev)  # honest per-stage timings
            t = _lap(tm, "registration", t)

            autocast = (
                torch.autocast("cuda", dtype=torch.float16)
                if cuda and self.fp16
                else contextlib.nullcontext()
            )
            refreshed = False
            feats = None
            with autocast:
                if _uses_clip(fuser):
                    thumbs = self._thumbs(ir_gray, vis_y)
                    if self._need_refresh(fuser, thumbs, tuple(vis_t.shape), self._clip_refresh):
                        self._clip_features = fuser.encode_clip(ir_t, vis_t)
                        self._clip_owner = fuser
                        self._clip_shape = tuple(vis_t.shape)
                        self._ref_thumbs = thumbs
                        self._since_refresh = 0
                        self.clip_refreshes += 1
                        refreshed = True
                    else:
                        self.clip_reuses += 1
                    self._since_refresh += 1
                    feats = self._clip_features
                    if cuda:
                        torch.cuda.synchronize(dev)
                t = _lap(tm, "clip", t)
                out = (
                    fuser.fuse_tensor(ir_t, vis_t, clip_features=feats)
                    if feats is not None
                    else (fuser.fuse_tensor(ir_t, vis_t))
                )
            fused_y = _u8(out)
            if ir_reg is None:
                ir_reg = ir_reg_t[0, 0].cpu().numpy()
        t = _lap(tm, "fusion", t)
        return ir_reg, fused_y, refreshed, t


def _tensor01(img: np.ndarray, dev: Any) -> Any:
    """uint8 (H, W) -> float 1 x 1 x H x W in [0, 1] on ``dev``.

    On the CPU the conversion is done by numpy, not torch: a small element-wise torch op wakes torch's
    thread pool, which costs milliseconds per op on a busy 2-core machine (measured: 15 ms against
    0.1 ms for numpy at 640x480). On CUDA the uint8 frame is uploaded and converted there.
    """
    import torch

    if dev.type == "cpu":
        return torch.from_numpy(np.multiply(img, np.float32(1.0 / 255.0), dtype=np.float32))[None, None]
    return torch.from_numpy(img).to(dev, non_blocking=True)[None, None].float().div_(255.0)


def _u8(t: Any) -> np.ndarray:
    """N x 1 x H x W float in [0, 1] -> uint8 (H, W) of the first image (numpy on the CPU, see above)."""
    import torch

    if t.device.type == "cpu":
        a = t[0, 0].float().numpy()
        return np.clip(a * np.float32(255.0) + np.float32(0.5), 0, 255).astype(np.uint8)
    return t.float().clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)[0, 0].cpu().numpy()


def _name(fuser: Any) -> str:
    return str(getattr(fuser, "name", type(fuser).__name__))


def _lap(tm: dict[str, float], stage: str, t_prev: float) -> float:
    now = time.perf_counter()
    tm[stage] = (now - t_prev) * 1000.0
    return now


def _accepted_kwargs(factory: Callable[..., Any], default: bool = False) -> set[str] | _All:
    """Names a factory takes; everything when it has ``**kwargs`` (the lazy mgfusion factory does)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return _All() if default else set()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return _All()
    return {p.name for p in params}


class _All:
    def __contains__(self, item: object) -> bool:
        return True


# --- the live pipeline -------------------------------------------------------------------------------


@dataclass
class PipelineStats:
    """A snapshot of a :class:`LivePipeline` for the status bar and the benchmark.

    ``dropped_pairs`` estimates the camera pairs the user did not see: frames of the slower stream
    captured minus pairs fused (it includes ``skipped_pairs``, frames dropped by the live capture
    buffers and frames the synchronizer could not pair).
    """

    fps: float = 0.0  # fused frames/s over the last 2 s (or the last 5 results within 10 s when slower)
    latency_ms_mean: float = 0.0  # over the last ~60 results
    latency_ms_last: float = 0.0
    pairs: int = 0  # pairs made by the synchronizer
    fused: int = 0
    skipped_pairs: int = 0  # pairs not fused because a newer one was ready (fusion slower than capture)
    dropped_pairs: int = 0
    errors: int = 0
    # stage -> mean ms over ~60 results (stages added with LivePipeline.record_timing included)
    timings_ms: dict[str, float] = field(default_factory=dict)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)  # "ir"/"vis" -> capture stats
    sync: dict[str, Any] = field(default_factory=dict)
    engine: dict[str, Any] = field(default_factory=dict)
    state: str = "idle"

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


ResultCallback = Callable[[FusedResult], None]
StatusCallback = Callable[[str, str, str], None]


class LivePipeline:
    """Two capture threads -> synchronizer -> one fusion worker -> ``on_result``.

    Args:
        ir_source, vis_source: Source objects or specs for :func:`fusioncam.io.sources.open_source`.
        engine: the :class:`FusionEngine` (its settings may change while running).
        pace: file sources play at their own fps and behave as cameras (small drop-oldest buffers, the
            newest pair fused). ``pace=False`` reads files as fast as possible and fuses every pair
            (nothing skipped: offline processing and the unpaced benchmark). Cameras are always live.
        loop: restart file sources at their end (only used when a spec is given).
        sync_tolerance: pairing tolerance in seconds; None: half a frame period of the slower source.
        on_result: called on the worker thread with each :class:`FusedResult`.
        on_status: ``on_status(name, state, detail)`` with name "ir", "vis" (capture states) or
            "pipeline" ("running", "ended", "failed", "stopped", "error").
        watchdog_timeout: seconds without frames before a source is reported stalled (and reopened if
            it is a camera whose reads fail): the flat-field pause tolerance.
        max_frames: stop after this many fused frames (benchmarks).
    """

    def __init__(
        self,
        ir_source: Any,
        vis_source: Any,
        engine: FusionEngine,
        *,
        pace: bool = True,
        loop: bool = False,
        sync_tolerance: float | None = None,
        on_result: ResultCallback | None = None,
        on_status: StatusCallback | None = None,
        watchdog_timeout: float = DEFAULT_WATCHDOG_TIMEOUT,
        max_frames: int | None = None,
        capture_options: dict[str, Any] | None = None,
    ):
        self.engine = engine
        self.on_result = on_result
        self.on_status = on_status
        self.max_frames = max_frames
        sources = {"ir": _as_source(ir_source, loop), "vis": _as_source(vis_source, loop)}
        live = any(bool(getattr(s, "is_live", False)) for s in sources.values())
        self.realtime = bool(pace) or live
        self._wake = threading.Event()
        opts = dict(capture_options or {})
        self.captures = {
            name: CaptureThread(
                src,
                name=name,
                mode="live" if self.realtime else "file",
                pace=bool(pace),
                watchdog_timeout=watchdog_timeout,
                on_state=self._capture_state,
                wake=self._wake,
                **opts,
            )
            for name, src in sources.items()
        }
        self.sync = Synchronizer(sync_tolerance, eager=self.realtime)
        self.pump = PairPump(
            self.sync, self.captures["ir"], self.captures["vis"], lossless=not self.realtime, wake=self._wake
        )
        self._stop = threading.Event()
        self._done = threading.Event()
        self._worker = threading.Thread(target=self._work, name="fusion-worker", daemon=True)
        self._stats_lock = threading.Lock()
        self._done_times: deque[float] = deque(maxlen=240)
        self._latencies: deque[float] = deque(maxlen=60)
        self._timings: deque[dict[str, float]] = deque(maxlen=60)
        self._extra_timings: dict[str, deque[float]] = {}
        self._fused = 0
        self._skipped = 0
        self._errors = 0
        self._last_error = ""
        self.state = "idle"
        self.started_at: float | None = None
        self.finished_at: float | None = None

    # --- control --------------------------------------------------------------------------------------
    def start(self) -> LivePipeline:
        self.started_at = time.monotonic()
        for cap in self.captures.values():
            cap.start()
        self._worker.start()
        return self

    def stop(self, timeout: float = 3.0) -> None:
        """Stop fusing and capturing; safe to call twice, and from ``on_result``."""
        self._stop.set()
        self._wake.set()
        for cap in self.captures.values():
            cap.stop(timeout)
        if self._worker.is_alive() and threading.current_thread() is not self._worker:
            self._worker.join(timeout)
        if self.state == "running":
            self._set_state("stopped", "")

    def record_timing(self, stage: str, ms: float) -> None:
        """Add a stage timed outside the pipeline (the GUI's "display", the recorder's "recording");
        :meth:`stats` averages it with the others over the last ~60 values."""
        with self._stats_lock:
            self._extra_timings.setdefault(stage, deque(maxlen=60)).append(float(ms))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the pipeline finishes (end of the files, max_frames, stop()); True if it did."""
        return self._done.wait(timeout)

    @property
    def running(self) -> bool:
        return self._worker.is_alive()

    def latest(self, stream: str) -> Any:
        """The newest captured frame of "ir" or "vis" (views can show it while nothing pairs)."""
        return self.captures[stream].last_frame

    def __enter__(self) -> LivePipeline:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- stats ----------------------------------------------------------------------------------------
    def stats(self) -> PipelineStats:
        now = time.monotonic()
        with self._stats_lock:
            recent = [t for t in self._done_times if now - t <= 10.0]
            lat = list(self._latencies)
            timings = [dict(t) for t in self._timings]
            extra = {k: float(np.mean(v)) for k, v in self._extra_timings.items() if v}
            fused, skipped, errors = self._fused, self._skipped, self._errors
        times = [t for t in recent if now - t <= 2.0]
        if len(times) < 5:  # a slow network: the last few results, over up to 10 s
            times = recent[-5:]
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
        mean_t: dict[str, float] = {}
        for tm in timings:
            for k, v in tm.items():
                mean_t[k] = mean_t.get(k, 0.0) + v / len(timings)
        mean_t.update(extra)
        sync = self.sync.stats()
        captured = min(c.frames for c in self.captures.values())
        return PipelineStats(
            fps=fps,
            latency_ms_mean=float(np.mean(lat)) if lat else 0.0,
            latency_ms_last=lat[-1] if lat else 0.0,
            pairs=sync.pairs,
            fused=fused,
            skipped_pairs=skipped,
            dropped_pairs=max(0, captured - fused - sum(len(c.buffer) for c in self.captures.values())),
            errors=errors,
            timings_ms=mean_t,
            sources={n: c.stats() for n, c in self.captures.items()},
            sync=sync.as_dict(),
            engine=self.engine.stats(),
            state=self.state,
        )

    # --- internals ------------------------------------------------------------------------------------
    def _notify(self, name: str, state: str, detail: str) -> None:
        if self.on_status is not None:
            try:
                self.on_status(name, state, detail)
            except Exception:  # noqa: BLE001 - an observer's bug must not stop the pipeline
                pass

    def _set_state(self, state: str, detail: str) -> None:
        if state == self.state:
            return  # stop() and the worker may both report "stopped"
        self.state = state
        self._notify("pipeline", state, detail)

    def _capture_state(self, name: str, state: SourceState, detail: str) -> None:
        self._notify(name, str(state), detail)
        if state == SourceState.RUNNING:
            fps = self.captures[name].fps
            if fps > 0:
                self.sync.set_fps(name, fps)

    def _work(self) -> None:
        self._set_state("running", "")
        try:
            while not self._stop.is_set():
                pairs = self.pump.poll(0.1)
                if not pairs:
                    if self.pump.finished:
                        break
                    continue
                if self.realtime and len(pairs) > 1:
                    with self._stats_lock:
                        self._skipped += len(pairs) - 1
                    pairs = pairs[-1:]
                for pair in pairs:
                    if self._stop.is_set():
                        break
                    self._fuse_one(pair)
                    if self.max_frames is not None and self._fused >= self.max_frames:
                        self._stop.set()
            if self._stop.is_set():
                self._set_state("stopped", "")
            else:
                failed = [n for n, c in self.captures.items() if c.state == SourceState.FAILED]
                if failed:
                    self._set_state("failed", "; ".join(f"{n}: {self.captures[n].detail}" for n in failed))
                else:
                    self._set_state("ended", "end of input")
        finally:
            self.finished_at = time.monotonic()
            self._done.set()

    def _fuse_one(self, pair: FramePair) -> None:
        t_pick = time.monotonic()
        newest = max(host_time(pair.ir), host_time(pair.vis))
        try:
            result = self.engine.process(pair)
        except Exception as e:  # noqa: BLE001 - reported (GUI status bar), the pipeline carries on
            msg = str(e) if isinstance(e, FusioncamError) else f"{type(e).__name__}: {e}"
            with self._stats_lock:
                self._errors += 1
            if msg != self._last_error:
                self._last_error = msg
                if not isinstance(e, FusioncamError):  # a bug, not a user error: keep its traceback
                    _log.error("fusion failed: %s", msg, exc_info=e)
                self._notify("pipeline", "error", msg)
            return
        self._last_error = ""
        tm = result.timings
        tm["capture"] = max(getattr(pair.ir, "read_ms", 0.0), getattr(pair.vis, "read_ms", 0.0))
        tm["wait"] = (t_pick - newest) * 1000.0
        tm["sync"] = self.pump.sync_ms_total / max(1, self.pump.frames_in) * 2.0
        t0 = time.perf_counter()
        if self.on_result is not None:
            try:
                self.on_result(result)
            except Exception as e:  # noqa: BLE001
                self._notify("pipeline", "error", f"result handler failed: {type(e).__name__}: {e}")
        tm["deliver"] = (time.perf_counter() - t0) * 1000.0
        done = time.monotonic()
        with self._stats_lock:
            self._fused += 1
            self._done_times.append(done)
            self._latencies.append(result.latency_ms)
            self._timings.append(dict(tm))


def _as_source(src: Any, loop: bool) -> Any:
    if hasattr(src, "read") and hasattr(src, "start"):
        return src
    from fusioncam.io.sources import open_source

    return open_source(src, loop=loop)
