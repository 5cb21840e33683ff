"""Writers of fused frames: one image, a folder of numbered PNGs, or a video.

The rule for every sink: an output that looks finished is finished. Frames go to a temporary name in
the destination's folder (``.NAME.partial.EXT`` for files, a ``.NAME.partial-PID`` staging folder for
frame folders) and are renamed into place by :meth:`close`; :meth:`abort` deletes the temporary files,
and a sink used as a context manager aborts when the block raises (including Ctrl-C). An existing
output of the same name is therefore only replaced by a complete one, never damaged by a failed run.

The destination's parent folder must exist: sinks refuse to create missing folders (a typo in a path
should not silently create a tree somewhere); a frames folder itself is created when its parent exists.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from fusioncam.errors import FusioncamError
from fusioncam.io.outputs import check_parent_folder, check_writable_folder
from fusioncam.processing.color import to_bgr

__all__ = [
    "Sink",
    "ImageSink",
    "ImageDirSink",
    "Raw16VideoSink",
    "VideoSink",
    "open_sink",
    "check_output_path",
    "output_kind",
    "VIDEO_CODECS",
    "IMAGE_OUT_EXTS",
]

#: extension -> FOURCC; codecs that OpenCV's pip wheel writes (FFmpeg backend).
VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
IMAGE_OUT_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


@runtime_checkable
class Sink(Protocol):
    path: Path
    frames_written: int

    def write(self, image: np.ndarray) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


def check_output_path(path: str | Path) -> Path:
    """The path as a :class:`Path`, or :class:`FusioncamError` when its folder is missing or not writable."""
    text = os.fspath(path)
    path = Path(text)
    if not text.strip() or path.name in ("", ".", ".."):
        raise FusioncamError(f"output: give a file or folder name, got {text!r}")
    check_parent_folder(path, "output")
    if path.is_dir():  # a frames folder that exists: its files are replaced in place
        check_writable_folder(path, "output")
    return path


def _partial_name(path: Path) -> Path:
    return path.with_name(f".{path.stem}.partial{path.suffix}")


class _SinkBase:
    path: Path
    frames_written: int = 0

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class ImageSink(_SinkBase):
    """One image file (format from the extension); a second frame is an error, not a silent overwrite."""

    def __init__(self, path: str | Path):
        self.path = check_output_path(path)
        if self.path.suffix.lower() not in IMAGE_OUT_EXTS:
            raise FusioncamError(f"unknown image type '{self.path.suffix}' for {self.path}")
        self._tmp = _partial_name(self.path)
        self.frames_written = 0

    def write(self, image: np.ndarray) -> None:
        if self.frames_written:
            raise FusioncamError(
                f"output {self.path} is one image but there is more than one frame; "
                "give a folder or a video (.mp4, .avi) instead"
            )
        ok, buf = cv2.imencode(self.path.suffix.lower(), image)
        if not ok:
            raise FusioncamError(f"cannot encode {self.path.suffix} image for {self.path}")
        try:
            buf.tofile(str(self._tmp))
        except OSError as e:
            self.abort()
            raise FusioncamError(f"cannot write {self.path}: {e.strerror or e}") from None
        self.frames_written = 1

    def close(self) -> None:
        if self.frames_written and self._tmp.exists():
            os.replace(self._tmp, self.path)

    def abort(self) -> None:
        self._tmp.unlink(missing_ok=True)


class ImageDirSink(_SinkBase):
    """Numbered PNGs (``000000.png``, ...) in a folder, moved into it only when :meth:`close` is called.

    The frames are written into a hidden staging folder beside the destination; ``close()`` puts that
    folder in the destination's place, so an existing frames folder is replaced as a whole, like any
    other output (merging would leave frames of an older, longer run behind the new ones). Because of
    that, an existing folder is accepted only when it holds nothing but images. ``abort()`` removes the
    staging folder. ``pattern`` formats the frame number.
    """

    def __init__(self, path: str | Path, pattern: str = "{:06d}.png"):
        self.path = check_output_path(path)
        if self.path.exists() and not self.path.is_dir():
            raise FusioncamError(f"{self.path} exists and is not a folder")
        if self.path.is_dir():
            other = sorted(p.name for p in self.path.iterdir() if p.suffix.lower() not in IMAGE_OUT_EXTS)
            if other:
                raise FusioncamError(
                    f"frames folder {self.path} holds more than images ({', '.join(other[:3])}); the folder "
                    "is replaced as a whole, so give an empty or new one"
                )
        self.pattern = pattern
        self.frames_written = 0
        self._stage = self.path.with_name(f".{self.path.name}.partial-{os.getpid()}")
        self._names: set[str] = set()  # written to the staging folder by this run

    def write(self, image: np.ndarray, name: str | None = None) -> None:
        """Write one frame as ``name`` (a file name in the folder), or the next numbered name."""
        name = name or self.pattern.format(self.frames_written)
        if Path(name).name != name or name.startswith("."):
            raise FusioncamError(f"frame name {name!r} must be a plain file name")
        if name in self._names:
            raise FusioncamError(f"two frames named {name} in {self.path}")
        if not self._names:
            self._stage.mkdir(exist_ok=True)
        ok, buf = cv2.imencode(Path(name).suffix or ".png", image)
        if not ok:
            raise FusioncamError(f"cannot encode frame {name}")
        try:
            buf.tofile(str(self._stage / name))
        except OSError as e:
            raise FusioncamError(f"cannot write {self._stage / name}: {e.strerror or e}") from None
        self._names.add(name)
        self.frames_written += 1

    def close(self) -> None:
        if not self._names:
            return
        old = self.path.with_name(f".{self.path.name}.old-{os.getpid()}")
        had_old = self.path.exists()
        if had_old:
            os.replace(self.path, old)
        try:
            os.replace(self._stage, self.path)
        except OSError as e:
            if had_old:
                os.replace(old, self.path)  # put the older frames back: a failed run changes nothing
            raise FusioncamError(f"cannot move the frames into {self.path}: {e.strerror or e}") from None
        self._names.clear()
        if had_old:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        shutil.rmtree(self._stage, ignore_errors=True)
        self._names.clear()


class VideoSink(_SinkBase):
    """A video through ``cv2.VideoWriter``: mp4v in .mp4/.m4v/.mov, MJPG in .avi/.mkv.

    The writer opens on the first frame (its size fixes the video's); gray frames are written as BGR so
    every player shows them. Frames of another size are refused. The file is ``.NAME.partial.EXT``
    until :meth:`close` renames it.
    """

    def __init__(self, path: str | Path, fps: float, frame_size: tuple[int, int] | None = None):
        self.path = check_output_path(path)
        ext = self.path.suffix.lower()
        if ext not in VIDEO_CODECS:
            raise FusioncamError(
                f"unknown video type '{ext}' for {self.path}; use one of {', '.join(VIDEO_CODECS)}"
            )
        if not fps or not fps > 0:
            raise FusioncamError(f"video fps must be positive, got {fps}")
        self.fps = float(fps)
        self.fourcc = VIDEO_CODECS[ext]
        self.frame_size = frame_size
        self.frames_written = 0
        self._tmp = _partial_name(self.path)
        self._writer: cv2.VideoWriter | None = None

    #: extra cv2.VideoWriter parameters (a subclass writes 16-bit gray with them)
    writer_params: tuple[int, ...] = (cv2.VIDEOWRITER_PROP_IS_COLOR, 1)

    def _open(self, size: tuple[int, int]) -> None:
        writer = cv2.VideoWriter(
            str(self._tmp),
            cv2.CAP_FFMPEG,
            cv2.VideoWriter_fourcc(*self.fourcc),
            self.fps,
            size,
            list(self.writer_params),
        )
        if not writer.isOpened():
            writer.release()
            self._tmp.unlink(missing_ok=True)
            raise FusioncamError(f"cannot write video {self.path} with codec {self.fourcc} at {size}")
        self._writer = writer
        self.frame_size = size

    def _encode(self, image: np.ndarray) -> np.ndarray:
        """The frame as the writer takes it: BGR, so every player shows gray frames too."""
        return to_bgr(image)

    def write(self, image: np.ndarray) -> None:
        size = (image.shape[1], image.shape[0])
        if self._writer is None:
            if self.frame_size is not None and size != tuple(self.frame_size):
                raise FusioncamError(f"frame {size[0]}x{size[1]} does not match video size {self.frame_size}")
            self._open(size)
        elif size != self.frame_size:
            w, h = self.frame_size
            raise FusioncamError(
                f"frame {self.frames_written} is {size[0]}x{size[1]} but the video {self.path.name} is "
                f"{w}x{h}; inputs of varying size need a folder output"
            )
        self._writer.write(self._encode(image))
        self.frames_written += 1

    def close(self) -> None:
        if self._writer is None:
            return
        self._writer.release()
        self._writer = None
        if not self._tmp.is_file() or self._tmp.stat().st_size == 0:
            self._tmp.unlink(missing_ok=True)
            raise FusioncamError(f"writing video {self.path} failed (the encoder produced no data)")
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self._tmp.unlink(missing_ok=True)


def output_kind(path: str | Path) -> str:
    """ "video", "image" or "dir" for an output path (an existing folder, or no extension, is a folder)."""
    p = Path(path)
    ext = p.suffix.lower()
    if p.is_dir() or str(path).endswith(("/", os.sep)) or not ext:
        return "dir"
    if ext in VIDEO_CODECS:
        return "video"
    if ext in IMAGE_OUT_EXTS:
        return "image"
    raise FusioncamError(
        f"cannot tell what to write for {path}: use an image ({', '.join(IMAGE_OUT_EXTS[:3])}...), "
        f"a video ({', '.join(VIDEO_CODECS)}) or a folder"
    )


class Raw16VideoSink(VideoSink):
    """Lossless 16-bit gray video (FFV1 in Matroska, ``.mkv``) for the raw counts of a thermal camera.

    FFV1 keeps every uint16 count exactly (OpenCV reads it back with ``cv2.CAP_PROP_CONVERT_RGB`` set
    to 0). Same temporary-name rule as :class:`VideoSink`, whose writer it reuses with 16-bit params.
    """

    writer_params = (cv2.VIDEOWRITER_PROP_DEPTH, cv2.CV_16U, cv2.VIDEOWRITER_PROP_IS_COLOR, 0)

    def __init__(self, path: str | Path, fps: float, frame_size: tuple[int, int] | None = None):
        super().__init__(path, fps, frame_size)
        if self.path.suffix.lower() != ".mkv":
            raise FusioncamError(f"16-bit video needs a .mkv file, got {self.path.name}")
        self.fourcc = "FFV1"

    def _encode(self, image: np.ndarray) -> np.ndarray:
        if image.dtype != np.uint16 or image.ndim != 2:
            raise FusioncamError(f"raw IR frames must be uint16 gray, got {image.dtype} {image.shape}")
        return np.ascontiguousarray(image)


def open_sink(path: str | Path, fps: float = 30.0, frame_size: tuple[int, int] | None = None):
    """The sink for ``path``: a folder (existing, or no extension) of PNGs, an image file, or a video."""
    kind = output_kind(path)
    if kind == "dir":
        return ImageDirSink(path)
    if kind == "image":
        return ImageSink(path)
    return VideoSink(path, fps, frame_size)
