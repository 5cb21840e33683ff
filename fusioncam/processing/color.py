"""Colour handling around the fusers, and the 16-bit thermal to 8-bit mapping.

Fusers work on luminance only (uint8 gray in, uint8 gray out). A colour VIS frame gives a colour result:
its BGR is split into luma Y and chroma (Cr, Cb) with OpenCV's YCrCb conversion (BT.601, the same
weights as ``cv2.COLOR_BGR2GRAY``), the fused image replaces Y, and the VIS chroma is put back. Gray in,
gray out. An IR frame stored as three (nearly) equal channels, as video files and some datasets store
it, is simply converted to gray: thermal images carry no chroma.

16-bit thermal cameras deliver uint16 counts whose useful range is a small, drifting part of 0..65535.
:class:`Thermal16Mapper` maps them to uint8 with a percentile stretch whose bounds are smoothed over time
(an exponential moving average), so the picture does not flicker as hot objects enter and leave the
view; a fixed-range mode maps known counts (or a radiometric range) the same way on every frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from fusioncam.errors import FusioncamError

__all__ = [
    "to_gray",
    "is_color",
    "split_luma",
    "merge_luma",
    "fuse_color",
    "to_bgr",
    "Thermal16Mapper",
]


def _check_u8(img: np.ndarray, what: str) -> None:
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        dtype = getattr(img, "dtype", type(img).__name__)
        raise FusioncamError(
            f"{what} must be an 8-bit image (map 16-bit thermal with Thermal16Mapper first), got {dtype}"
        )
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3, 4)):
        raise FusioncamError(f"{what} must be gray (H, W) or BGR (H, W, 3), got shape {img.shape}")


def is_color(img: np.ndarray) -> bool:
    """True for a (H, W, 3|4) image; a (H, W) or (H, W, 1) image is gray."""
    return img.ndim == 3 and img.shape[2] in (3, 4)


def to_gray(img: np.ndarray) -> np.ndarray:
    """uint8 gray (H, W) of a gray, BGR or BGRA image (a gray input is returned as is, not copied)."""
    _check_u8(img, "image")
    if img.ndim == 2:
        return img
    if img.shape[2] == 1:
        return img[:, :, 0]
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY)
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def to_bgr(img: np.ndarray) -> np.ndarray:
    """uint8 BGR (H, W, 3) of a gray, BGR or BGRA image, for writers and composites that need 3 channels."""
    _check_u8(img, "image")
    if img.ndim == 2 or img.shape[2] == 1:
        return cv2.cvtColor(img.reshape(img.shape[:2]), cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img


def split_luma(img: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(Y, chroma) of an image: Y uint8 (H, W); for colour, chroma is the frame's YCrCb buffer (H, W, 3),
    of which :func:`merge_luma` keeps Cr and Cb; None for gray.

    Keeping the whole buffer rather than a (Cr, Cb) copy lets the live engine put the fused Y back with
    one OpenCV channel insert, which is several times cheaper per frame than numpy channel copies.
    """
    _check_u8(img, "image")
    if not is_color(img):
        return to_gray(img), None
    ycrcb = cv2.cvtColor(to_bgr(img), cv2.COLOR_BGR2YCrCb)
    return cv2.extractChannel(ycrcb, 0), ycrcb


def merge_luma(y: np.ndarray, chroma: np.ndarray | None, *, reuse: bool = False) -> np.ndarray:
    """Inverse of :func:`split_luma`: gray Y when ``chroma`` is None, else BGR from Y and chroma's Cr, Cb.

    ``reuse=True`` writes Y into ``chroma`` itself instead of a copy, for a caller that owns the buffer
    and splits a new frame next time (the live engine).
    """
    if chroma is None:
        return y
    if chroma.shape[:2] != y.shape[:2] or chroma.ndim != 3 or chroma.shape[2] != 3:
        raise FusioncamError(f"luma {y.shape} and YCrCb chroma {chroma.shape} do not match")
    ycrcb = chroma if reuse else chroma.copy()
    cv2.insertChannel(y, ycrcb, 0)
    return cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2BGR)


def fuse_color(fuser, ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
    """Fuse a registered IR frame with a VIS frame of the same size; colour in VIS gives colour out.

    IR is reduced to gray (thermal has no chroma), the fuser fuses the two luminances, and when VIS is
    colour the fused Y is recombined with the VIS chroma. Returns uint8 gray (H, W) or BGR (H, W, 3).
    """
    if ir.shape[:2] != vis.shape[:2]:
        raise FusioncamError(
            f"IR {ir.shape[1]}x{ir.shape[0]} and VIS {vis.shape[1]}x{vis.shape[0]} differ in size; "
            "register IR onto VIS first"
        )
    ir_y = to_gray(ir)
    vis_y, chroma = split_luma(vis)
    fused_y = fuser.fuse(ir_y, vis_y)
    if fused_y.shape != vis_y.shape or fused_y.dtype != np.uint8:
        name = getattr(fuser, "name", type(fuser).__name__)
        raise FusioncamError(
            f"fuser '{name}' returned {fused_y.dtype} {fused_y.shape} for inputs {vis_y.shape}; "
            "fusers must return uint8 gray of the input size"
        )
    return merge_luma(fused_y, chroma)


class Thermal16Mapper:
    """Maps 16-bit thermal counts to uint8 for fusion and display, smoothly over time.

    Percentile mode (the default): on each frame the ``low``-th and ``high``-th percentiles of the counts
    are measured (exactly, from a 65536-bin histogram), and the bounds actually used follow them with an
    exponential moving average, ``bound += alpha * (measured - bound)``. ``alpha = 1`` follows each frame
    (flickers when a hot object enters), small values (the default 0.1, a time constant of about 10
    frames) adapt smoothly. The first frame after construction or :meth:`reset` sets the bounds directly.
    Counts at or below the low bound map to 0, at or above the high bound to 255, linearly in between.

    Fixed mode (``fixed_range=(lo, hi)``): the same linear map on every frame, for radiometric cameras
    or when a constant rendering is wanted; no statistics are measured.

    ``min_span`` keeps the bounds at least that many counts apart so a uniform scene (a lens cap, a
    wall) is not stretched into noise. 8-bit input passes through unchanged.
    """

    def __init__(
        self,
        low: float = 1.0,
        high: float = 99.0,
        alpha: float = 0.1,
        fixed_range: Sequence[float] | None = None,
        min_span: float = 64.0,
    ):
        if not 0.0 <= low < high <= 100.0:
            raise FusioncamError(f"Thermal16Mapper: need 0 <= low < high <= 100, got {low}, {high}")
        if not 0.0 < alpha <= 1.0:
            raise FusioncamError(f"Thermal16Mapper: alpha must be in (0, 1], got {alpha}")
        if fixed_range is not None:
            lo, hi = (float(v) for v in fixed_range)
            if not hi > lo:
                raise FusioncamError(f"Thermal16Mapper: fixed_range needs lo < hi, got {fixed_range}")
            fixed_range = (lo, hi)
        self.low = float(low)
        self.high = float(high)
        self.alpha = float(alpha)
        self.fixed_range: tuple[float, float] | None = fixed_range
        self.min_span = float(min_span)
        self._bounds: tuple[float, float] | None = None

    @property
    def bounds(self) -> tuple[float, float] | None:
        """The (lo, hi) counts used for the last frame (None before the first frame in percentile mode)."""
        return self.fixed_range or self._bounds

    def reset(self) -> None:
        """Forget the smoothed bounds (a new camera or a scene cut): the next frame sets them directly."""
        self._bounds = None

    def measure(self, raw: np.ndarray) -> tuple[float, float]:
        """The ``low`` and ``high`` percentiles of one uint16 frame (no smoothing)."""
        hist = np.bincount(raw.ravel(), minlength=65536)
        cdf = np.cumsum(hist)
        n = cdf[-1]
        # Nearest-rank percentiles: the smallest count whose cumulative share reaches the percentile.
        lo = int(np.searchsorted(cdf, max(1, np.ceil(self.low / 100.0 * n))))
        hi = int(np.searchsorted(cdf, max(1, np.ceil(self.high / 100.0 * n))))
        return float(lo), float(hi)

    def update(self, raw: np.ndarray) -> tuple[float, float]:
        """Advance the smoothed bounds with one frame and return the (lo, hi) to use for it."""
        if self.fixed_range is not None:
            return self.fixed_range
        lo, hi = self.measure(raw)
        if self._bounds is None:
            b_lo, b_hi = lo, hi
        else:
            b_lo, b_hi = self._bounds
            b_lo += self.alpha * (lo - b_lo)
            b_hi += self.alpha * (hi - b_hi)
        self._bounds = (b_lo, b_hi)
        return b_lo, b_hi

    def apply(self, raw: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
        """Map ``raw`` to uint8 with explicit (lo, hi) bounds, through a 65536-entry lookup table."""
        lo, hi = bounds
        if hi - lo < self.min_span:
            mid = 0.5 * (lo + hi)
            lo, hi = mid - 0.5 * self.min_span, mid + 0.5 * self.min_span
        counts = np.arange(65536, dtype=np.float32)
        lut = np.clip(np.rint((counts - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)
        return lut[raw]

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        """uint8 rendering of one frame (gray (H, W), or per channel for a multi-channel frame)."""
        if raw.dtype == np.uint8:
            return raw
        if raw.dtype != np.uint16:
            raise FusioncamError(f"Thermal16Mapper takes uint16 (or uint8) frames, got {raw.dtype}")
        return self.apply(raw, self.update(raw))
