"""Recording and snapshots of live fusion results (pure Python: the GUI and the CLI both use it).

:class:`Recorder` consumes results on its own thread through a bounded queue: ``submit()`` never blocks,
so a slow disk can never slow the engine; when the queue is full the result is dropped and counted.

Output frame rate. A video container needs its fps before the first frame is written, but the true rate
of the stream (the engine's output rate, which may be below the cameras' when fusion is slow) is only
known from the timestamps. We buffer the first ``fps_probe_frames`` results (about half a second), take
the median interval of their capture timestamps, open the files at that rate and then write through.
The median ignores the odd late or dropped frame; the sidecar JSON also reports the median over the
whole recording (``fps_measured``) and every frame's timestamps, so any drift is visible and a precise
remux (e.g. ``mkvmerge --timestamps``) remains possible. We chose this over write-then-remux because it
needs no second pass, no external tool, and leaves a playable file even if the process is killed.

:class:`SnapshotWriter` writes PNGs (IR in the display palette, registered IR, VIS, fused, side by side),
the raw 16-bit IR as a 16-bit PNG where the source gives one, and the settings as JSON; every file is
written to a temporary name and renamed, so a crash never leaves a half-written image.
"""

from __future__ import annotations

import datetime as _dt
import json
import queue
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from fusioncam.config import PALETTES, RecordSettings
from fusioncam.errors import FusioncamError
from fusioncam.io.outputs import atomic_write_bytes
from fusioncam.io.sinks import Raw16VideoSink, VideoSink
from fusioncam.processing.color import to_bgr, to_gray

__all__ = [
    "apply_palette",
    "compose_side_by_side",
    "Recorder",
    "RecordingSummary",
    "SnapshotWriter",
    "Raw16VideoSink",
    "estimate_fps",
]

RECORDING_FORMAT_VERSION = 1


# --- display helpers (fixed mappings: the same gray level always gives the same colour) -------------


def _ironbow_lut() -> np.ndarray:
    """A 256-entry 'ironbow' colour map (black-blue-magenta-orange-yellow-white), as thermal cameras use.

    OpenCV has no ironbow; a fixed LUT through cv2.applyColorMap keeps it one call like the built-ins.
    """
    anchors = np.array([0, 40, 90, 150, 200, 235, 255], dtype=np.float32)
    rgb = np.array(
        [
            [0, 0, 0],
            [30, 0, 90],
            [140, 0, 150],
            [220, 60, 40],
            [250, 150, 0],
            [255, 220, 60],
            [255, 255, 240],
        ],
        dtype=np.float32,
    )
    x = np.arange(256, dtype=np.float32)
    lut = np.stack([np.interp(x, anchors, rgb[:, c]) for c in (2, 1, 0)], axis=-1)  # BGR
    return np.clip(np.rint(lut), 0, 255).astype(np.uint8).reshape(256, 1, 3)


_COLORMAPS: dict[str, Any] = {
    "inferno": cv2.COLORMAP_INFERNO,
    "jet": cv2.COLORMAP_JET,
    "turbo": cv2.COLORMAP_TURBO,
    "ironbow": _ironbow_lut(),
}


def apply_palette(ir: np.ndarray, palette: str) -> np.ndarray:
    """Colour an 8-bit IR image with a fixed palette; BGR out. "gray" leaves the intensities unchanged.

    No per-frame rescaling: the 8-bit IR is already mapped with a time-smoothed contrast (16-bit sources)
    or is the camera's own 8-bit output, so colours stay stable from frame to frame.
    """
    if palette not in PALETTES:
        raise FusioncamError(f"unknown palette '{palette}'; choose one of: {', '.join(PALETTES)}")
    gray = to_gray(ir)  # refuses non-8-bit images with a clear message
    if palette == "gray":
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    return cv2.applyColorMap(gray, _COLORMAPS[palette])


def compose_side_by_side(images: Sequence[np.ndarray], height: int | None = None) -> np.ndarray:
    """Concatenate images left to right as BGR, each scaled (aspect kept) to a common height."""
    if not images:
        raise ValueError("compose_side_by_side needs at least one image")
    h = int(height or images[0].shape[0])
    parts = []
    for img in images:
        bgr = to_bgr(img)
        if bgr.shape[0] != h:
            w = max(1, round(bgr.shape[1] * h / bgr.shape[0]))
            bgr = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA)
        parts.append(bgr)
    return np.ascontiguousarray(np.hstack(parts))


def result_side_by_side(result: Any, palette: str) -> np.ndarray:
    """The composite of a fused result: IR (registered, in the palette) | VIS | fused, at VIS height."""
    vis = _result_vis(result)
    return compose_side_by_side(
        [apply_palette(result.ir_registered, palette), vis, result.fused], height=vis.shape[0]
    )


def _result_vis(result: Any) -> np.ndarray:
    vis = getattr(result, "vis", None)
    return vis if vis is not None else result.pair.vis.image


# --- atomic file writes ------------------------------------------------------------------------------


def _write_png(path: Path, img: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", img)
    if not ok:  # pragma: no cover - OpenCV encodes every uint8/uint16 gray or BGR image
        raise FusioncamError(f"cannot encode {path.name} as PNG")
    atomic_write_bytes(path, buf.tobytes())


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=_json_default) + "\n").encode())


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    return str(x)


def _stamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%d_%H%M%S")


def _unique_dir(parent: Path, name: str) -> Path:
    path = parent / name
    n = 1
    while path.exists():
        n += 1
        path = parent / f"{name}_{n}"
    return path


# --- fps from timestamps -------------------------------------------------------------------------------


def estimate_fps(timestamps: Sequence[float], fallback: float) -> float:
    """1 / median positive interval of ``timestamps`` (robust to a late frame or a loop wrap-around)."""
    dts = [b - a for a, b in zip(timestamps, timestamps[1:], strict=False) if b > a]
    if not dts:
        return float(fallback)
    fps = 1.0 / statistics.median(dts)
    return float(min(max(fps, 0.5), 1000.0))


# --- video recording -----------------------------------------------------------------------------------


class VideoSinkLike(Protocol):
    def write(self, frame: np.ndarray) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


#: (path, fps, (width, height)) -> a video sink; the codec follows the path's extension.
SinkFactory = Callable[[Path, float, tuple[int, int]], VideoSinkLike]


def _default_sink_factory(path: Path, fps: float, size: tuple[int, int]) -> VideoSinkLike:
    return VideoSink(path, fps, size)  # the project's one video writer (temp name, rename on close)


@dataclass
class RecordingSummary:
    folder: Path
    files: dict[str, Path]
    sidecar: Path | None
    frames: int
    dropped: int
    fps: float
    error: str | None = None


@dataclass
class _Item:
    result: Any
    host_time: float
    wall_time: float


class Recorder:
    """Writes fused results to video files from its own thread; ``submit()`` never blocks.

    Each recording goes to a new folder ``<output_dir>/fusioncam_<date>_<time>/`` holding ``fused.mp4``
    and, as chosen in :class:`RecordSettings`, ``side_by_side.mp4``, ``ir.mp4`` (the IR as captured,
    before registration; 8-bit), ``ir_raw16.mkv`` (a 16-bit camera's raw counts, lossless FFV1, with
    ``raw_ir``) and ``vis.mp4``, plus ``recording.json`` (settings, counts and per-frame
    timestamps). Files are written under temporary names and renamed when the recording stops.
    """

    def __init__(
        self,
        output_dir: str | Path,
        record: RecordSettings | None = None,
        *,
        palette: str = "inferno",
        settings: dict[str, Any] | None = None,
        fps_probe_frames: int = 15,
        fallback_fps: float = 30.0,
        sink_factory: SinkFactory | None = None,
    ) -> None:
        self.record = record or RecordSettings()
        self.output_dir = Path(output_dir).expanduser()
        self.palette = palette
        self.settings = settings or {}
        self.fps_probe_frames = max(2, int(fps_probe_frames))
        self.fallback_fps = float(fallback_fps)
        self._sink_factory = sink_factory or _default_sink_factory
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=self.record.queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._sinks: dict[str, VideoSinkLike] = {}
        self._sizes: dict[str, tuple[int, int]] = {}
        self._pending: list[tuple[_Item, dict[str, np.ndarray]]] = []
        self._frames_info: list[dict[str, Any]] = []
        self._fps: float | None = None
        self.folder: Path | None = None
        self.written = 0
        self.dropped = 0
        self.frame_ms: float | None = None  # time to compose and encode one result (moving average)
        self.error: str | None = None
        self._summary: RecordingSummary | None = None

    # --- control ---
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Path:
        """Create the recording folder and start the writer thread; returns the folder."""
        if self._thread is not None:
            raise FusioncamError("this recorder was already started; make a new one for a new recording")
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            self.folder = _unique_dir(self.output_dir, f"fusioncam_{_stamp()}")
            self.folder.mkdir()
        except OSError as e:
            raise FusioncamError(
                f"cannot create recording folder in {self.output_dir}: {e.strerror or e}"
            ) from None
        self._thread = threading.Thread(target=self._run, name="fusioncam-recorder", daemon=True)
        self._thread.start()
        return self.folder

    def submit(self, result: Any) -> bool:
        """Queue a result for writing; False (and counted as dropped) if the queue is full or stopped."""
        if self._thread is None or self._stop.is_set():
            return False
        try:
            self._queue.put_nowait(_Item(result, time.monotonic(), time.time()))
            return True
        except queue.Full:
            with self._lock:
                self.dropped += 1
            return False

    def stop(self, timeout: float = 30.0) -> RecordingSummary:
        """Write what is queued, finalise the files (rename) and the sidecar JSON; idempotent."""
        if self._summary is not None:
            return self._summary
        if self._thread is None:
            raise FusioncamError("the recorder was not started")
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():  # pragma: no cover - a disk that hangs for `timeout` seconds
            self.error = self.error or f"recorder did not finish within {timeout:.0f} s"
        self._summary = self._finalise()
        return self._summary

    # --- writer thread ---
    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=0.05)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            if self.error is not None:
                continue  # keep draining so submit() never blocks; nothing more is written
            try:
                self._handle(item)
            except Exception as e:  # a full disk, a codec failure: keep the app alive, report it
                self.error = f"recording failed: {e}"
                self._abort_sinks()

    def _frames_of(self, result: Any) -> dict[str, np.ndarray]:
        frames = {"fused": to_bgr(result.fused)}
        if self.record.side_by_side:
            frames["side_by_side"] = result_side_by_side(result, self.palette)
        if self.record.raw_ir:
            frames["ir"] = to_bgr(result.pair.ir.image)
            if result.pair.ir.raw is not None:  # a 16-bit camera: its counts, losslessly
                frames["ir_raw16"] = result.pair.ir.raw
        if self.record.raw_vis:
            frames["vis"] = to_bgr(result.pair.vis.image)
        return frames

    def _handle(self, item: _Item) -> None:
        t0 = time.perf_counter()
        self._handle_timed(item)
        ms = (time.perf_counter() - t0) * 1000.0
        self.frame_ms = ms if self.frame_ms is None else 0.9 * self.frame_ms + 0.1 * ms

    def _handle_timed(self, item: _Item) -> None:
        frames = self._frames_of(item.result)
        self._frames_info.append(self._info(item))
        if self._fps is None:
            self._pending.append((item, frames))
            if len(self._pending) >= self.fps_probe_frames:
                self._open_and_flush()
            return
        self._write(frames)

    def _info(self, item: _Item) -> dict[str, Any]:
        r = item.result
        return {
            "n": len(self._frames_info),
            "t": float(r.pair.vis.t),
            "t_ir": float(r.pair.ir.t),
            "host_time": round(item.host_time, 6),
            "wall_time": round(item.wall_time, 6),
            "ir_index": int(r.pair.ir.index),
            "vis_index": int(r.pair.vis.index),
            "result_index": int(getattr(r, "index", -1)),
            "latency_ms": _maybe_float(getattr(r, "latency_ms", None)),
        }

    def _open_and_flush(self) -> None:
        ts = [it.result.pair.vis.t for it, _ in self._pending]
        self._fps = round(estimate_fps(ts, self.fallback_fps), 3)
        assert self.folder is not None
        for name, img in self._pending[0][1].items():
            size = (img.shape[1], img.shape[0])
            self._sizes[name] = size
            factory = Raw16VideoSink if name == "ir_raw16" else self._sink_factory
            self._sinks[name] = factory(self._path(name), self._fps, size)
        pending, self._pending = self._pending, []
        for _, frames in pending:
            self._write(frames)

    def _path(self, name: str) -> Path:
        assert self.folder is not None
        return self.folder / (f"{name}.mkv" if name == "ir_raw16" else f"{name}.{self.record.container}")

    def _write(self, frames: dict[str, np.ndarray]) -> None:
        for name, img in frames.items():
            if name not in self._sinks:  # e.g. raw counts that appeared after a camera was reopened
                continue
            size = self._sizes[name]
            if (img.shape[1], img.shape[0]) != size:  # a camera reopened at another resolution
                img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
            self._sinks[name].write(img)
        with self._lock:
            self.written += 1

    def _abort_sinks(self) -> None:
        for sink in self._sinks.values():
            try:
                sink.abort()
            except Exception:  # pragma: no cover - best effort on an already failing disk
                pass
        self._sinks.clear()

    def _finalise(self) -> RecordingSummary:
        assert self.folder is not None
        files: dict[str, Path] = {}
        if self.error is None:
            try:
                if self._pending:  # fewer frames than the probe: estimate from what there is
                    self._open_and_flush()
                for name, sink in self._sinks.items():
                    sink.close()
                    files[name] = self._path(name)
            except Exception as e:
                self.error = f"recording failed: {e}"
                self._abort_sinks()
                files = {}
        sidecar = None
        if self._frames_info or self.error:
            sidecar = self.folder / "recording.json"
            _write_json(sidecar, self._sidecar(files))
        elif not any(self.folder.iterdir()):
            self.folder.rmdir()  # nothing was recorded: leave no empty folder behind
        return RecordingSummary(
            folder=self.folder,
            files=files,
            sidecar=sidecar,
            frames=self.written,
            dropped=self.dropped,
            fps=float(self._fps or 0.0),
            error=self.error,
        )

    def _sidecar(self, files: dict[str, Path]) -> dict[str, Any]:
        ts = [f["t"] for f in self._frames_info]
        return {
            "format_version": RECORDING_FORMAT_VERSION,
            "created": _dt.datetime.now().isoformat(timespec="seconds"),
            "streams": {k: p.name for k, p in files.items()},
            "fps": self._fps,
            "fps_method": f"median capture-timestamp interval of the first {self.fps_probe_frames} frames",
            "fps_measured": round(estimate_fps(ts, 0.0), 3) if len(ts) > 1 else None,
            "frames": self.written,
            "dropped": self.dropped,
            "error": self.error,
            "timestamps": "t: VIS capture time (s, source clock); host_time: time.monotonic() at submit",
            "palette": self.palette,
            "settings": self.settings,
            "frames_info": self._frames_info,
        }


def _maybe_float(x: Any) -> float | None:
    return None if x is None else round(float(x), 3)


# --- snapshots -------------------------------------------------------------------------------------------


_SNAPSHOT_LOCK = threading.Lock()


class SnapshotWriter:
    """Writes one result as PNGs plus a settings JSON into a folder; returns the written paths."""

    def __init__(self, output_dir: str | Path, *, palette: str = "inferno") -> None:
        self.output_dir = Path(output_dir).expanduser()
        self.palette = palette

    def write(
        self, result: Any, settings: dict[str, Any] | None = None, stem: str | None = None
    ) -> dict[str, Path]:
        # Snapshots are written on worker threads: two quick presses must not both find the same stem
        # free and write over each other, so choosing the stem and writing its files is one step.
        with _SNAPSHOT_LOCK:
            return self._write(result, settings, stem)

    def _write(self, result: Any, settings: dict[str, Any] | None, stem: str | None) -> dict[str, Path]:
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise FusioncamError(
                f"cannot create snapshot folder {self.output_dir}: {e.strerror or e}"
            ) from None
        stem = stem or self._free_stem(f"snapshot_{_stamp()}")
        vis = _result_vis(result)
        images: dict[str, np.ndarray] = {
            "ir": apply_palette(result.pair.ir.image, self.palette),
            "ir_registered": to_gray(result.ir_registered),
            "vis": vis,
            "fused": result.fused,
            "side_by_side": result_side_by_side(result, self.palette),
        }
        raw = result.pair.ir.raw
        if raw is not None:
            if raw.dtype != np.uint16:
                raise FusioncamError(f"raw IR must be uint16, got {raw.dtype}")
            images["ir_raw16"] = raw
        paths: dict[str, Path] = {}
        for name, img in images.items():
            path = self.output_dir / f"{stem}_{name}.png"
            _write_png(path, img)
            paths[name] = path
        meta = {
            "created": _dt.datetime.now().isoformat(timespec="seconds"),
            "palette": self.palette,
            "ir_index": int(result.pair.ir.index),
            "vis_index": int(result.pair.vis.index),
            "t_ir": float(result.pair.ir.t),
            "t_vis": float(result.pair.vis.t),
            "timings_ms": dict(getattr(result, "timings", {}) or {}),
            "files": {k: p.name for k, p in paths.items()},
            "settings": settings or {},
        }
        paths["settings"] = self.output_dir / f"{stem}_settings.json"
        _write_json(paths["settings"], meta)
        return paths

    def _free_stem(self, stem: str) -> str:
        n, candidate = 1, stem
        while any(self.output_dir.glob(f"{candidate}_*")):
            n += 1
            candidate = f"{stem}_{n}"
        return candidate
