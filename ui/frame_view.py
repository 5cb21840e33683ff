"""A widget that shows a numpy frame, scaled to fit with its aspect ratio kept.

The QImage is built over the ndarray's own buffer (no copy) and the widget keeps a reference to that
ndarray for as long as the QImage lives, so Qt never reads freed memory and a frame never tears (the
array is never written to after it is handed over: producers make a new array per frame). Painting is a
single scaled ``drawImage``; no per-frame image processing happens here.
"""

from __future__ import annotations

import time

import numpy as np
from PyQt6.QtCore import QPointF, QRectF, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent
from PyQt6.QtWidgets import QSizePolicy, QWidget

__all__ = ["FrameView", "ndarray_to_qimage"]


def ndarray_to_qimage(arr: np.ndarray) -> tuple[QImage, np.ndarray]:
    """A QImage viewing ``arr`` (uint8 gray or BGR); returns it with the array that must stay alive."""
    if arr.dtype != np.uint8:
        raise ValueError(f"FrameView shows uint8 images, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    if arr.ndim == 2:
        fmt = QImage.Format.Format_Grayscale8
    elif arr.shape[2] == 3:
        fmt = QImage.Format.Format_BGR888
    else:
        raise ValueError(f"FrameView shows gray or BGR images, got shape {arr.shape}")
    img = QImage(arr.data, w, h, arr.strides[0], fmt)
    return img, arr


class FrameView(QWidget):
    """Shows the latest frame given to :meth:`set_frame`; emits ``clicked(x, y)`` in image pixels."""

    clicked = pyqtSignal(float, float)

    def __init__(self, title: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self._array: np.ndarray | None = None  # keeps the QImage's buffer alive
        self._qimage: QImage | None = None
        self._markers: list[tuple[float, float, str]] = []
        self.paint_ms = 0.0  # duration of the last paint (the "display" stage, on the UI thread)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(120, 90)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    # --- data ---
    def set_frame(self, frame: np.ndarray | None) -> None:
        if frame is None:
            self._qimage, self._array = None, None
        else:
            self._qimage, self._array = ndarray_to_qimage(frame)
        self.update()

    def frame(self) -> np.ndarray | None:
        """The array currently shown (read-only use)."""
        return self._array

    def set_markers(self, markers: list[tuple[float, float, str]]) -> None:
        """Labelled points drawn over the image, in image pixel coordinates (the calibration dialog)."""
        self._markers = list(markers)
        self.update()

    # --- geometry ---
    def image_rect(self) -> QRectF:
        """Where the image is drawn: fitted into the widget, aspect kept, centred."""
        if self._qimage is None:
            return QRectF()
        iw, ih = self._qimage.width(), self._qimage.height()
        scale = min(self.width() / iw, self.height() / ih)
        w, h = iw * scale, ih * scale
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def widget_to_image(self, p: QPointF) -> tuple[float, float] | None:
        r = self.image_rect()
        if self._qimage is None or not r.contains(p):
            return None
        x = (p.x() - r.x()) * self._qimage.width() / r.width() - 0.5
        y = (p.y() - r.y()) * self._qimage.height() / r.height() - 0.5
        return x, y

    def image_to_widget(self, x: float, y: float) -> QPointF:
        r = self.image_rect()
        assert self._qimage is not None
        return QPointF(
            r.x() + (x + 0.5) * r.width() / self._qimage.width(),
            r.y() + (y + 0.5) * r.height() / self._qimage.height(),
        )

    # --- Qt events ---
    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        if event.button() == Qt.MouseButton.LeftButton:
            pos = self.widget_to_image(event.position())
            if pos is not None:
                self.clicked.emit(*pos)
        super().mousePressEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt API)
        t0 = time.perf_counter()
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(24, 24, 24))
        if self._qimage is not None:
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            p.drawImage(self.image_rect(), self._qimage)
            if self._markers:
                p.setRenderHint(QPainter.RenderHint.Antialiasing)
                for x, y, label in self._markers:
                    c = self.image_to_widget(x, y)
                    p.setPen(QColor(0, 255, 0))
                    p.drawEllipse(c, 5.0, 5.0)
                    p.drawText(c + QPointF(7, -7), label)
        else:
            p.setPen(QColor(140, 140, 140))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "no frame")
        if self.title:
            p.setPen(QColor(255, 255, 255))
            p.drawText(QRectF(8, 4, self.width() - 16, 20), Qt.AlignmentFlag.AlignLeft, self.title)
        p.end()
        self.paint_ms = (time.perf_counter() - t0) * 1000.0
