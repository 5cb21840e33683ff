"""Frame containers passed between pipeline stages.

At the edges of the pipeline frames are numpy arrays as OpenCV gives them: uint8 gray (H, W) or BGR
(H, W, 3). A 16-bit thermal camera's raw uint16 frame is kept in ``raw`` while ``image`` holds the
8-bit rendering made by :mod:`fusioncam.processing.color`'s time-smoothed contrast mapping.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Frame", "FramePair"]


@dataclass(slots=True)
class Frame:
    """One image from one source.

    Attributes:
        image: uint8 gray (H, W) or BGR (H, W, 3).
        t: timestamp in seconds. For cameras, host ``time.monotonic()`` at capture; for files, the
            position in the stream (index / fps, or the container's timestamp).
        index: 0-based frame number within its source.
        raw: the original uint16 thermal frame where the source is 16-bit, else None.
    """

    image: np.ndarray
    t: float
    index: int
    raw: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), OpenCV's order."""
        h, w = self.image.shape[:2]
        return w, h


@dataclass(slots=True)
class FramePair:
    """An IR and a VIS frame judged to show the same instant; ``skew = ir.t - vis.t`` in seconds."""

    ir: Frame
    vis: Frame

    @property
    def skew(self) -> float:
        return self.ir.t - self.vis.t
