"""Reading calibration images: any depth in, 8-bit gray out, and frame pairs from folders, globs or videos.

Calibration looks at single still frames, so a 16-bit thermal frame is mapped to 8 bits with one fixed
min/max stretch of that frame (robust percentiles). That per-image stretch is fine here because nothing
is shown as video; the live pipeline uses the time-smoothed mapping of ``fusioncam.processing.color`` instead.
"""

from __future__ import annotations

import glob
from pathlib import Path

import cv2
import numpy as np

from fusioncam.errors import FusioncamError

__all__ = ["to_gray8", "content_mask", "read_gray", "list_images", "read_frames", "IMAGE_EXTS", "VIDEO_EXTS"]

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm")
VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm")


def to_gray8(image: np.ndarray) -> np.ndarray:
    """Any OpenCV image (gray/BGR/BGRA, 8/16-bit or float) -> uint8 gray.

    Single-channel deeper than 8 bits (thermal counts): a stretch between the 0.5 and 99.5 percentiles
    of this frame (calibration only; see the module docstring). 16-bit colour: scaled 65535 -> 255.
    """
    img = np.asarray(image)
    if img.dtype == np.uint16 and img.ndim == 3:
        # a deep colour photo, not thermal counts: the fixed full-range scale, as the sources do
        img = cv2.convertScaleAbs(img, alpha=255.0 / 65535.0)
    if img.ndim == 3:
        if img.shape[2] == 1:
            img = img[:, :, 0]
        elif img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY)
        elif img.shape[2] == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        else:
            raise FusioncamError(f"unsupported image with {img.shape[2]} channels")
    elif img.ndim != 2:
        raise FusioncamError(f"unsupported image shape {img.shape}")
    if img.dtype == np.uint8:
        return img
    f = img.astype(np.float32)
    lo, hi = np.percentile(f, [0.5, 99.5])
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((f - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)


def content_mask(gray: np.ndarray) -> np.ndarray:
    """uint8 mask (255 = image content) excluding the black fill around an already warped image.

    The fill is the exactly-zero area connected to the image border (a dark night sky or a black object
    inside the picture stays content). The step from content to fill would otherwise be the strongest
    edge in the picture, so the mask is eroded a little past it.
    """
    zero = (gray == 0).astype(np.uint8)
    if not zero.any():
        return np.full(gray.shape, 255, np.uint8)
    n, labels = cv2.connectedComponents(zero, connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    border = border[border > 0]
    fill = np.isin(labels, border)
    if not fill.any():
        return np.full(gray.shape, 255, np.uint8)
    m = (~fill).astype(np.uint8)
    return cv2.erode(m, np.ones((7, 7), np.uint8)) * 255


def read_gray(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 gray (16-bit thermal PNG/TIFF included); clear error if unreadable."""
    p = Path(path)
    if p.is_dir():
        raise FusioncamError(f"{p} is a folder; give an image file")
    if not p.is_file():
        raise FusioncamError(f"image not found: {p}")
    img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FusioncamError(f"cannot read image {p} (not an image OpenCV can decode)")
    return to_gray8(img)


def list_images(spec: str | Path) -> list[Path]:
    """Image files named by ``spec``: one file, a folder (sorted by name) or a glob pattern."""
    p = Path(spec)
    if p.is_dir():
        files = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_EXTS)
    elif p.is_file():
        files = [p]
    else:
        files = sorted(Path(q) for q in glob.glob(str(spec)) if Path(q).suffix.lower() in IMAGE_EXTS)
    if not files:
        raise FusioncamError(f"no images found at {spec}")
    return files


def read_frames(spec: str | Path, every: int = 1, limit: int | None = None) -> list[np.ndarray]:
    """Gray uint8 frames from a video file (every ``every``-th frame), or images from a folder/glob."""
    if every < 1:
        raise FusioncamError(f"--every must be >= 1, got {every}")
    p = Path(spec)
    if p.is_file() and p.suffix.lower() in VIDEO_EXTS:
        cap = cv2.VideoCapture(str(p))
        if not cap.isOpened():
            raise FusioncamError(f"cannot open video {p}")
        frames: list[np.ndarray] = []
        i = 0
        try:
            while limit is None or len(frames) < limit:
                ok, frame = cap.read()
                if not ok:
                    break
                if i % every == 0:
                    frames.append(to_gray8(frame))
                i += 1
        finally:
            cap.release()
        if not frames:
            raise FusioncamError(f"no frames could be read from video {p}")
        return frames
    files = list_images(spec)[::every]
    if limit is not None:
        files = files[:limit]
    return [read_gray(f) for f in files]
