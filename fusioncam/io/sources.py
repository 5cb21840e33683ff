"""Frame sources: video files, image sequences, single images, V4L2 cameras and a synthetic source.

Every source has the same small contract (:class:`Source`): ``start()`` opens it, ``read()`` returns
the next :class:`~fusioncam.io.frames.Frame` or ``None`` at the end of a finite stream, ``stop()`` releases
it; it is a context manager (``with open_source(spec) as src:``) and an iterator of frames.
``fps``, ``size`` and ``frame_count`` are filled in by ``start()`` where the backend knows them.

Sources read as fast as they can; pacing file sources to real time is the capture thread's job, which
can use ``fps``. Timestamps ``Frame.t`` are seconds: the stream position for files (the container's
time, or index / fps), ``time.monotonic()`` taken when the frame was grabbed for cameras.

A live source whose device stops delivering (a camera unplugged) raises :class:`SourceLost` from
``read()``; a finite source never raises at its end, it returns ``None``. After :class:`SourceLost` a
caller may ``stop()`` and ``start()`` again to reconnect.

:func:`open_source` picks the backend from a spec string through a dispatch table (:data:`BUILDERS`),
so adding a backend is one entry.
"""

from __future__ import annotations

import enum
import glob as _glob
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from fusioncam.errors import FusioncamError
from fusioncam.io.frames import Frame
from fusioncam.processing.color import Thermal16Mapper

__all__ = [
    "Source",
    "SourceKind",
    "SourceLost",
    "BaseSource",
    "VideoFileSource",
    "ImageSequenceSource",
    "ImageSource",
    "CameraSource",
    "SyntheticSource",
    "open_source",
    "classify_spec",
    "IMAGE_EXTS",
    "natural_key",
]

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pnm")
DEFAULT_SEQUENCE_FPS = 30.0


class SourceLost(FusioncamError):
    """A live source stopped delivering frames (camera unplugged, driver error)."""


@runtime_checkable
class Source(Protocol):
    """What every frame source offers; see the module docstring for the semantics."""

    name: str
    fps: float | None
    size: tuple[int, int] | None  # (width, height)
    is_live: bool
    frame_count: int | None  # None where unknown or unbounded (cameras, looping files)

    def start(self) -> None: ...

    def read(self) -> Frame | None: ...

    def stop(self) -> None: ...

    def __enter__(self) -> Source: ...

    def __exit__(self, *exc) -> None: ...


class BaseSource:
    """Shared plumbing: context manager, iteration, and the attributes of :class:`Source`."""

    is_live = False

    def __init__(self, name: str, fps: float | None = None):
        self.name = name
        self.fps: float | None = fps
        self.size: tuple[int, int] | None = None
        self.frame_count: int | None = None

    def start(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def read(self) -> Frame | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def stop(self) -> None:
        pass

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def natural_key(s: str) -> list:
    """Sort key that orders "frame2" before "frame10"."""
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", s)]


def load_image(path: Path, mapper: Thermal16Mapper | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Read an image file as (uint8 image, raw uint16 or None); 16-bit gray files (thermal counts) go
    through ``mapper`` and are kept in ``raw``; 16-bit colour files are scaled to 8-bit colour.

    Unicode paths work (the bytes are decoded with ``cv2.imdecode``). Alpha is dropped.
    """
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except FileNotFoundError:
        raise FusioncamError(f"image not found: {path}") from None
    except OSError as e:
        raise FusioncamError(f"cannot read image {path}: {e.strerror or e}") from None
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise FusioncamError(f"cannot decode image {path} (not an image format OpenCV reads)")
    if img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    elif img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    raw = None
    if img.dtype == np.uint16 and img.ndim == 3:
        # A deep colour photo (a visible camera's 16-bit PNG/TIFF), not thermal counts: keep the colour,
        # with the fixed full-range scale 65535 -> 255 (no per-image stretch).
        img = cv2.convertScaleAbs(img, alpha=255.0 / 65535.0)
    elif img.dtype == np.uint16:
        raw = img
        img = (mapper or Thermal16Mapper())(raw)
    elif img.dtype != np.uint8:
        raise FusioncamError(f"image {path} has pixel type {img.dtype}; only 8- and 16-bit are supported")
    return img, raw


# --- video files -----------------------------------------------------------------------------------


class VideoFileSource(BaseSource):
    """A video file decoded by ``cv2.VideoCapture`` (FFmpeg backend in the pip wheel).

    ``t`` is the container's presentation time of each frame (``CAP_PROP_POS_MSEC``) where it increases,
    else ``index / fps``. With ``loop=True`` the file restarts at its end; indices and timestamps keep
    increasing (the next pass starts one frame period after the last frame), and ``frame_count`` is None.
    """

    def __init__(self, path: str | Path, loop: bool = False):
        path = Path(path)
        super().__init__(path.name)
        if not path.exists():
            raise FusioncamError(f"video not found: {path}")
        if path.is_dir():
            raise FusioncamError(f"{path} is a directory, not a video")
        self.path = path
        self.loop = loop
        self._cap: cv2.VideoCapture | None = None
        self._pending: np.ndarray | None = None  # the first frame, decoded by start() to check the file
        self._index = 0  # frames returned so far (all passes)
        self._local = 0  # frames returned in this pass
        self._offset = 0.0  # time added to this pass's timestamps
        self._last_local_t = -1.0

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise FusioncamError(f"cannot open video {self.path} (not a video OpenCV can decode)")
        return cap

    def start(self) -> None:
        self.stop()
        cap = self._open()
        ok, img = cap.read()
        if not ok or img is None:
            cap.release()
            raise FusioncamError(f"cannot decode video {self.path}: no frame could be read")
        self._cap = cap
        self._pending = img
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if np.isfinite(fps) and 0 < fps < 1000 else None
        self.size = (img.shape[1], img.shape[0])
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        count = int(count) if np.isfinite(count) else 0
        self.frame_count = None if self.loop or count <= 0 else count
        self._index = self._local = 0
        self._offset = 0.0
        self._last_local_t = -1.0

    def _local_time(self, cap: cv2.VideoCapture) -> float:
        msec = cap.get(cv2.CAP_PROP_POS_MSEC)
        t = msec / 1000.0 if np.isfinite(msec) else -1.0
        if (self._local == 0 and t >= 0) or t > self._last_local_t >= 0:
            return t
        return self._local / self.fps if self.fps else float(self._local)

    def read(self) -> Frame | None:
        if self._cap is None:
            raise FusioncamError(f"video {self.path} is not started")
        if self._pending is not None:
            img, self._pending = self._pending, None
        else:
            ok, img = self._cap.read()
            if not ok or img is None:
                if not self.loop or self._local == 0:
                    return None
                self._restart()
                ok, img = self._cap.read()
                if not ok or img is None:
                    return None
        t_local = self._local_time(self._cap)
        frame = Frame(img, self._offset + t_local, self._index)
        self._last_local_t = t_local
        self._index += 1
        self._local += 1
        return frame

    def _restart(self) -> None:
        """Reopen the file for the next pass (seeking to 0 is unreliable with some codecs)."""
        period = 1.0 / self.fps if self.fps else 1.0 / DEFAULT_SEQUENCE_FPS
        self._offset += self._last_local_t + period
        self._cap.release()
        self._cap = self._open()
        self._local = 0
        self._last_local_t = -1.0

    def stop(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self._pending = None


# --- image sequences and single images --------------------------------------------------------------


class ImageSequenceSource(BaseSource):
    """The images of a directory, or of a glob pattern, in natural order (frame2 before frame10).

    ``t = index / fps`` with ``fps`` configurable (default 30). 16-bit images are mapped to 8-bit by
    one :class:`Thermal16Mapper` shared over the sequence (smooth over time), the uint16 kept in ``raw``.
    An image that cannot be read raises :class:`FusioncamError` naming it.
    """

    def __init__(
        self,
        spec: str | Path,
        fps: float | None = None,
        loop: bool = False,
        mapper: Thermal16Mapper | None = None,
    ):
        spec = str(spec)
        path = Path(spec)
        if path.is_dir():
            files = [p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file()]
            where = f"directory {path}"
        elif _is_glob(spec):
            files = [Path(p) for p in _glob.glob(spec) if Path(p).suffix.lower() in IMAGE_EXTS]
            files = [p for p in files if p.is_file()]
            where = f"pattern {spec}"
        else:
            raise FusioncamError(f"not a directory or a glob pattern: {spec}")
        if not files:
            raise FusioncamError(f"no images ({', '.join(IMAGE_EXTS[:4])}, ...) in {where}")
        super().__init__(path.name if path.is_dir() else spec, fps or DEFAULT_SEQUENCE_FPS)
        self.files = sorted(files, key=lambda p: natural_key(p.name))
        self.loop = loop
        self.mapper = mapper or Thermal16Mapper()
        self.frame_count = None if loop else len(self.files)
        self._index = 0

    def start(self) -> None:
        self._index = 0
        self.mapper.reset()
        img, _ = load_image(self.files[0], Thermal16Mapper())
        self.size = (img.shape[1], img.shape[0])

    def read(self) -> Frame | None:
        n = len(self.files)
        if self._index >= n and not self.loop:
            return None
        img, raw = load_image(self.files[self._index % n], self.mapper)
        frame = Frame(img, self._index / self.fps, self._index, raw)
        self._index += 1
        return frame


class ImageSource(BaseSource):
    """One image file, returned once or ``repeat`` times (``repeat=None``: forever, for a still stand-in).

    ``t = index / fps`` (fps defaults to 30 when repeated; a single frame has t = 0).
    """

    def __init__(
        self,
        path: str | Path,
        repeat: int | None = 1,
        fps: float | None = None,
        mapper: Thermal16Mapper | None = None,
    ):
        path = Path(path)
        if not path.is_file():
            raise FusioncamError(f"image not found: {path}")
        if repeat is not None and repeat < 1:
            raise FusioncamError(f"repeat must be >= 1 or None, got {repeat}")
        super().__init__(path.name, fps if fps else (None if repeat == 1 else DEFAULT_SEQUENCE_FPS))
        self.path = path
        self.repeat = repeat
        self.frame_count = repeat
        self.mapper = mapper or Thermal16Mapper()
        self._img: np.ndarray | None = None
        self._raw: np.ndarray | None = None
        self._index = 0

    def start(self) -> None:
        self._img, self._raw = load_image(self.path, self.mapper)
        self.size = (self._img.shape[1], self._img.shape[0])
        self._index = 0

    def read(self) -> Frame | None:
        if self._img is None:
            raise FusioncamError(f"image source {self.path} is not started")
        if self.repeat is not None and self._index >= self.repeat:
            return None
        t = self._index / self.fps if self.fps else float(self._index)
        frame = Frame(self._img, t, self._index, self._raw)
        self._index += 1
        return frame


# --- cameras ----------------------------------------------------------------------------------------


class CameraSource(BaseSource):
    """A V4L2 camera (``/dev/videoN`` or an index), 8-bit, or 16-bit thermal with ``thermal16=True``.

    In 16-bit mode OpenCV's RGB conversion is switched off (``CAP_PROP_CONVERT_RGB = 0``) and the Y16
    FOURCC requested, so ``Frame.raw`` holds the camera's uint16 counts and ``Frame.image`` their 8-bit
    rendering by a :class:`Thermal16Mapper` (smoothed over time; pass your own to configure it).

    ``Frame.t`` is ``time.monotonic()`` right after ``grab()`` returned, i.e. when the frame reached the
    host. Where the backend also reports the driver's buffer timestamp, it is kept in
    :attr:`last_buffer_ms` (``CAP_PROP_POS_MSEC`` of the last frame, in the driver's clock, NaN where
    not given) for diagnostics; it is not on the host's clock, so pairing uses ``t``.
    A camera that stops delivering raises :class:`SourceLost` from :meth:`read`.
    """

    is_live = True

    def __init__(
        self,
        device: str | int,
        thermal16: bool = False,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        fourcc: str | None = None,
        mapper: Thermal16Mapper | None = None,
        backend: int = cv2.CAP_V4L2,
    ):
        if isinstance(device, str) and device.isdigit():
            device = int(device)
        super().__init__(device if isinstance(device, str) else f"camera {device}", fps)
        self.device = device
        self.thermal16 = thermal16
        self.requested_size = size
        self.requested_fps = fps
        self.fourcc = "Y16 " if thermal16 and fourcc is None else fourcc
        self.mapper = mapper or Thermal16Mapper()
        self.backend = backend
        self.last_buffer_ms = float("nan")
        self._cap: cv2.VideoCapture | None = None
        self._index = 0

    def start(self) -> None:
        self.stop()
        if isinstance(self.device, str) and not Path(self.device).exists():
            raise FusioncamError(f"camera {self.device} not found (is it plugged in?)")
        cap = cv2.VideoCapture(self.device, self.backend)
        if not cap.isOpened():
            cap.release()
            raise FusioncamError(
                f"cannot open camera {self.device} (busy, no permission, or not a video capture device)"
            )
        if self.fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.fourcc[:4].ljust(4)))
        if self.requested_size:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.requested_size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.requested_size[1])
        if self.requested_fps:
            cap.set(cv2.CAP_PROP_FPS, self.requested_fps)
        if self.thermal16:
            cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)
        self._cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if np.isfinite(fps) and 0 < fps < 1000 else self.requested_fps
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.size = (w, h) if w > 0 and h > 0 else None
        self.mapper.reset()
        self._index = 0

    def read(self) -> Frame | None:
        if self._cap is None:
            raise FusioncamError(f"camera {self.device} is not started")
        if not self._cap.grab():
            raise SourceLost(f"camera {self.device} stopped delivering frames (unplugged?)")
        t = time.monotonic()
        ok, img = self._cap.retrieve()
        if not ok or img is None:
            raise SourceLost(f"camera {self.device} returned no image")
        self.last_buffer_ms = float(self._cap.get(cv2.CAP_PROP_POS_MSEC))
        raw = None
        if self.thermal16:
            raw = self._as_u16(img)
            img = self.mapper(raw)
        frame = Frame(img, t, self._index, raw)
        self._index += 1
        if self.size is None:
            self.size = frame.size
        return frame

    def _as_u16(self, img: np.ndarray) -> np.ndarray:
        """The (H, W) uint16 frame, whatever shape the backend hands back for Y16."""
        if img.dtype == np.uint16:
            return img if img.ndim == 2 else img[:, :, 0]
        # Some backends return Y16 as raw bytes (H, W*2) uint8 or (1, N); reinterpret little-endian.
        if img.dtype == np.uint8 and self.size:
            w, h = self.size
            if img.size == w * h * 2:
                return np.ascontiguousarray(img).view("<u2").reshape(h, w)
        raise SourceLost(
            f"camera {self.device} did not deliver 16-bit frames (got {img.dtype} {img.shape}); "
            "it may not support Y16: open it without thermal16"
        )

    def stop(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


# --- synthetic ---------------------------------------------------------------------------------------


class SyntheticSource(BaseSource):
    """Generated frames for tests and demos without files or cameras.

    A textured background drifting right and a bright square (a "hot target") moving along a circle, so
    both registration and fusion have something to see. ``count`` frames (None: endless), ``t = t0 +
    index / fps`` (or ``time.monotonic()`` with ``live=True``). ``thermal16=True`` makes uint16 counts
    in ``raw`` (a few hundred counts of contrast around 30000, like a microbolometer) rendered to 8-bit by
    a :class:`Thermal16Mapper`. ``fail_after=N`` raises :class:`SourceLost` on the read after N frames of
    each ``start()`` (an unplugged camera; ``start()`` again "reconnects"); ``fail_starts=K`` makes the
    first K ``start()`` calls fail as a camera that cannot be opened would.
    """

    def __init__(
        self,
        size: tuple[int, int] = (64, 48),
        fps: float = 30.0,
        count: int | None = 30,
        thermal16: bool = False,
        color: bool = False,
        live: bool = False,
        fail_after: int | None = None,
        fail_starts: int = 0,
        t0: float = 0.0,
        seed: int = 0,
        name: str = "synthetic",
    ):
        super().__init__(name, fps)
        self.size = (int(size[0]), int(size[1]))
        self.frame_count = count
        self.thermal16 = thermal16
        self.color = color
        self.is_live = live
        self.fail_after = fail_after
        self.fail_starts = fail_starts
        self.t0 = t0
        self.mapper = Thermal16Mapper()
        w, h = self.size
        rng = np.random.default_rng(seed)
        tex = rng.integers(0, 256, size=(max(1, h // 4), max(1, w // 4)), dtype=np.uint8)
        self._texture = cv2.resize(tex, (w, h), interpolation=cv2.INTER_LINEAR)
        self._index = 0
        self._since_start = 0
        self._started = False
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        if self.starts <= self.fail_starts:
            raise FusioncamError(f"cannot open {self.name} (simulated failure {self.starts})")
        self._started = True
        self._since_start = 0
        if not self.is_live:
            self._index = 0

    def make_image(self, index: int) -> np.ndarray:
        """The uint8 gray frame number ``index`` (deterministic)."""
        w, h = self.size
        img = np.roll(self._texture, index, axis=1) // 2 + 40
        r = max(2, min(w, h) // 8)
        cx = int(w / 2 + (w / 4) * np.cos(index / 10.0))
        cy = int(h / 2 + (h / 4) * np.sin(index / 10.0))
        cv2.rectangle(img, (cx - r, cy - r), (cx + r, cy + r), 250, thickness=-1)
        return img

    def read(self) -> Frame | None:
        if not self._started:
            raise FusioncamError(f"{self.name} is not started")
        if self.count_reached():
            return None
        if self.fail_after is not None and self._since_start >= self.fail_after:
            self._started = False
            raise SourceLost(f"{self.name} stopped delivering frames (simulated unplug)")
        i = self._index
        img = self.make_image(i)
        raw = None
        if self.thermal16:
            raw = (30000 + img.astype(np.uint16) * 2).astype(np.uint16)
            img = self.mapper(raw)
        elif self.color:
            img = cv2.merge([img, np.roll(img, 3, axis=0), 255 - img])
        t = time.monotonic() if self.is_live else self.t0 + i / self.fps
        self._index += 1
        self._since_start += 1
        return Frame(img, t, i, raw)

    def count_reached(self) -> bool:
        return self.frame_count is not None and self._index >= self.frame_count


# --- dispatch ----------------------------------------------------------------------------------------


class SourceKind(enum.Enum):
    CAMERA = "camera"
    VIDEO = "video"
    IMAGE = "image"
    SEQUENCE = "sequence"
    SYNTHETIC = "synthetic"


def _is_glob(spec: str) -> bool:
    return any(c in spec for c in "*?[")


def classify_spec(spec: str | int | Path) -> SourceKind:
    """Which backend a spec names: an int, a digit string or ``/dev/video*`` is a camera; ``synthetic``
    (optionally ``synthetic:WxH``) the generator; a directory or a glob an image sequence; a file with
    an image extension one image; any other file a video. A missing path raises :class:`FusioncamError`.
    """
    if isinstance(spec, int):
        return SourceKind.CAMERA
    s = str(spec)
    if not s:
        raise FusioncamError("empty source: give a file, a directory, a glob or /dev/videoN")
    if s.isdigit() or s.startswith("/dev/video"):
        return SourceKind.CAMERA
    if s == "synthetic" or s.startswith("synthetic:"):
        return SourceKind.SYNTHETIC
    p = Path(s)
    if p.is_dir():
        return SourceKind.SEQUENCE
    if p.is_file():
        return SourceKind.IMAGE if p.suffix.lower() in IMAGE_EXTS else SourceKind.VIDEO
    if _is_glob(s):
        return SourceKind.SEQUENCE
    if not p.parent.exists():
        raise FusioncamError(f"input not found: {s} (folder {p.parent} does not exist)")
    raise FusioncamError(f"input not found: {s}")


def _synthetic(spec: str, loop: bool, fps: float | None, thermal16: bool | None) -> SyntheticSource:
    size = (64, 48)
    if ":" in spec:
        m = re.fullmatch(r"synthetic:(\d+)x(\d+)", spec)
        if not m:
            raise FusioncamError(f"bad synthetic spec {spec!r}; use synthetic or synthetic:WIDTHxHEIGHT")
        size = (int(m[1]), int(m[2]))
    return SyntheticSource(size, fps or 30.0, None if loop else 30, thermal16=bool(thermal16))


BUILDERS: dict[SourceKind, Callable[[str, bool, float | None, bool | None], Source]] = {
    SourceKind.CAMERA: lambda s, loop, fps, t16: CameraSource(s, thermal16=bool(t16), fps=fps),
    SourceKind.VIDEO: lambda s, loop, fps, t16: VideoFileSource(s, loop=loop),
    SourceKind.IMAGE: lambda s, loop, fps, t16: ImageSource(s, repeat=None if loop else 1, fps=fps),
    SourceKind.SEQUENCE: lambda s, loop, fps, t16: ImageSequenceSource(s, fps=fps, loop=loop),
    SourceKind.SYNTHETIC: _synthetic,
}


def open_source(
    spec: str | int | Path,
    *,
    loop: bool = False,
    fps: float | None = None,
    thermal16: bool | None = None,
) -> Source:
    """Build (not start) the source a spec names; see :func:`classify_spec` for the rules.

    Args:
        loop: restart file sources at their end, timestamps still increasing (the demo).
        fps: frame rate of image sequences and repeated images (default 30), or the rate requested from
            a camera. Ignored for video files, whose container gives it.
        thermal16: cameras: read raw 16-bit (Y16). Files are detected from their pixel type (16-bit
            PNG/TIFF are mapped smoothly and kept raw) and ignore it.
    """
    if fps is not None and not fps > 0:
        raise FusioncamError(f"fps must be positive, got {fps}")
    kind = classify_spec(spec)
    return BUILDERS[kind](spec if isinstance(spec, int) else str(spec), loop, fps, thermal16)
