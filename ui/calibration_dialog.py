"""The calibration dialog: load a rig file, click point pairs on the IR and VIS images, or estimate the
homography automatically from the scene.

With four or more pairs the homography is estimated by :func:`fusioncam.calibration.estimate_from_points`
(the same estimator as ``fusioncam calibrate``); the preview shows the IR warped onto the VIS image
(checkerboard, blend or edges, from :func:`fusioncam.calibration.check_image`) and the error report, so
the user sees at once whether the points were good. The estimate is recomputed on each click only (a
few milliseconds), never per frame.

"Automatic" runs :func:`fusioncam.calibration.estimate_auto` on the images shown. It takes seconds, so
it runs on a worker thread and reports back through a queued signal; the dialog stays responsive, and
a refusal ("not confident") is shown in the report instead of a rig.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QWidget,
)

from fusioncam.errors import FusioncamError
from fusioncam.processing.registration import Rig

from .frame_view import FrameView

__all__ = ["CalibrationDialog"]

MIN_PAIRS = 4


def _calibration_api():
    """The calibration functions, imported on first use so that opening the dialog stays instant."""
    from fusioncam.calibration import check_image, estimate_from_points, format_report

    return estimate_from_points, check_image, format_report


def _read_image(path: str) -> np.ndarray:
    import cv2

    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FusioncamError(f"cannot read image {path}")
    if img.dtype != np.uint8:  # a 16-bit thermal still: a fixed full-range mapping is enough to click on
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return img


class CalibrationDialog(QDialog):
    """Emits ``rig_applied(rig, path)`` when the user applies a rig (path is "" if it was not saved)."""

    rig_applied = pyqtSignal(object, str)
    auto_finished = pyqtSignal(object, str)  # (Rig or None, error message); emitted from a worker thread

    def __init__(
        self,
        ir: np.ndarray | None,
        vis: np.ndarray | None,
        *,
        rig_path: str | None = None,
        frame_source: Callable[[], tuple[np.ndarray, np.ndarray] | None] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._frame_source = frame_source  # the live window's newest (IR, VIS) frames
        self.setWindowTitle("Calibration: IR -> VIS homography")
        self.ir: np.ndarray | None = ir
        self.vis: np.ndarray | None = vis
        self.ir_points: list[tuple[float, float]] = []
        self.vis_points: list[tuple[float, float]] = []
        self.rig: Rig | None = None
        self.rig_path = rig_path or ""

        self.ir_view = FrameView("IR: click a feature")
        self.vis_view = FrameView("VIS: click the same feature")
        self.preview_view = FrameView("Preview")
        self.ir_view.clicked.connect(lambda x, y: self.add_point("ir", x, y))
        self.vis_view.clicked.connect(lambda x, y: self.add_point("vis", x, y))

        self.mode_box = QComboBox()
        self.mode_box.addItems(["checkerboard", "blend", "edges"])
        self.mode_box.currentTextChanged.connect(lambda _m: self.update_preview())
        self.report = QPlainTextEdit()
        self.report.setReadOnly(True)
        self.report.setMaximumHeight(200)  # the 3x3 matrix and the error lines of an automatic estimate
        self.hint = QLabel()

        buttons = QHBoxLayout()
        for text, slot in (
            ("Grab live frames", self.grab_frames),
            ("Load IR image...", lambda: self._load_image("ir")),
            ("Load VIS image...", lambda: self._load_image("vis")),
            ("Undo point", self.undo),
            ("Clear points", self.clear_points),
            ("Automatic", self.start_auto),
            ("Load rig...", self._load_rig_dialog),
            ("Save rig...", self._save_rig_dialog),
            ("Apply", self.apply),
            ("Close", self.close),
        ):
            b = QPushButton(text)
            b.clicked.connect(slot)
            buttons.addWidget(b)
            if text == "Automatic":
                self.auto_button = b
                b.setToolTip("estimate H from the scene content of these two images (no points, no board)")
        self._auto_thread: threading.Thread | None = None
        self.auto_finished.connect(self._auto_done)
        buttons.addWidget(QLabel("Preview:"))
        buttons.addWidget(self.mode_box)

        grid = QGridLayout(self)
        grid.addWidget(self.ir_view, 0, 0)
        grid.addWidget(self.vis_view, 0, 1)
        grid.addWidget(self.preview_view, 0, 2)
        grid.addWidget(self.hint, 1, 0, 1, 3)
        grid.addWidget(self.report, 2, 0, 1, 3)
        grid.addLayout(buttons, 3, 0, 1, 3)
        grid.setRowStretch(0, 1)
        self.resize(1200, 560)

        self.ir_view.set_frame(ir)
        self.vis_view.set_frame(vis)
        if rig_path:
            try:
                self.load_rig(rig_path)
            except FusioncamError as e:
                self.report.setPlainText(str(e))
        self._refresh_hint()

    # --- points ---
    def add_point(self, which: str, x: float, y: float) -> None:
        pts = self.ir_points if which == "ir" else self.vis_points
        pts.append((float(x), float(y)))
        self._points_changed()

    def undo(self) -> None:
        if len(self.ir_points) > len(self.vis_points):
            self.ir_points.pop()
        elif len(self.vis_points) > len(self.ir_points):
            self.vis_points.pop()
        elif self.ir_points:
            self.ir_points.pop()
            self.vis_points.pop()
        self._points_changed()

    def clear_points(self) -> None:
        self.ir_points.clear()
        self.vis_points.clear()
        if self.rig is not None and self.rig.method == "points" and not self.rig_path:
            # the rig came from the points just cleared (not from a file): it goes with them
            self.rig = None
            self.report.setPlainText("")
            self.update_preview()
        self._points_changed()

    def _points_changed(self) -> None:
        self.ir_view.set_markers([(x, y, str(i + 1)) for i, (x, y) in enumerate(self.ir_points)])
        self.vis_view.set_markers([(x, y, str(i + 1)) for i, (x, y) in enumerate(self.vis_points)])
        n = min(len(self.ir_points), len(self.vis_points))
        if n >= MIN_PAIRS and self.ir is not None and self.vis is not None:
            self.estimate()
        self._refresh_hint()

    def _refresh_hint(self) -> None:
        n = min(len(self.ir_points), len(self.vis_points))
        if self.ir is None or self.vis is None:
            text = "No frames: start the pipeline, or load an IR and a VIS image to pick points on."
        elif n < MIN_PAIRS:
            text = (
                f"{n} point pairs; click the same feature in IR then VIS ({MIN_PAIRS} pairs at least), "
                "or press Automatic to estimate from the scene."
            )
        else:
            text = f"{n} point pairs: the rig below is estimated from them; Apply uses it live."
        self.hint.setText(text)

    def estimate(self) -> Rig | None:
        """Estimate the rig from the picked pairs; errors (e.g. degenerate points) go to the report."""
        estimate, _check, fmt = _calibration_api()
        n = min(len(self.ir_points), len(self.vis_points))
        assert self.ir is not None and self.vis is not None
        try:
            out = estimate(
                np.array(self.ir_points[:n]),
                np.array(self.vis_points[:n]),
                (self.ir.shape[1], self.ir.shape[0]),
                (self.vis.shape[1], self.vis.shape[0]),
            )
            rig = out[0]  # (Rig, report); the report is also rig.report
        except FusioncamError as e:
            self.report.setPlainText(f"cannot estimate the homography: {e}")
            return None
        self.rig = rig
        self.rig_path = ""  # not saved yet
        self.report.setPlainText(fmt(rig))
        self.update_preview()
        return rig

    def update_preview(self) -> None:
        if self.rig is None or self.ir is None or self.vis is None:
            self.preview_view.set_frame(None)
            return
        _estimate, check, _fmt = _calibration_api()
        try:
            self.preview_view.set_frame(check(self.ir, self.vis, self.rig, mode=self.mode_box.currentText()))
        except FusioncamError as e:
            self.report.appendPlainText(str(e))

    # --- automatic ---
    def start_auto(self) -> bool:
        """Start the automatic estimate on the images shown; False if there is nothing to run it on."""
        if self.ir is None or self.vis is None:
            self.report.setPlainText("no images: grab live frames or load an IR and a VIS image first")
            return False
        if self._auto_thread is not None and self._auto_thread.is_alive():
            return False
        ir, vis = self.ir.copy(), self.vis.copy()
        self.auto_button.setEnabled(False)
        self.report.setPlainText("estimating the homography from the scene content (a few seconds)...")

        def work() -> None:
            from fusioncam.calibration import estimate_auto

            try:
                rig, _report = estimate_auto(ir, vis)
            except FusioncamError as e:
                self.auto_finished.emit(None, str(e))
            else:
                self.auto_finished.emit(rig, "")

        self._auto_thread = threading.Thread(target=work, name="calibration-auto", daemon=True)
        self._auto_thread.start()
        return True

    def _auto_done(self, rig: Rig | None, error: str) -> None:
        self.auto_button.setEnabled(True)
        if rig is None:
            self.report.setPlainText(error)
            return
        _estimate, _check, fmt = _calibration_api()
        self.rig, self.rig_path = rig, ""
        self.report.setPlainText(f"automatic estimate from the scene\n{fmt(rig)}")
        self.update_preview()

    # --- files ---
    def _load_image(self, which: str) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, f"{which.upper()} image", "", "Images (*.png *.jpg *.jpeg *.tif *.tiff *.bmp)"
        )
        if not path:
            return
        try:
            self.set_image(which, _read_image(path))
        except FusioncamError as e:
            self.report.setPlainText(str(e))

    def set_image(self, which: str, img: np.ndarray) -> None:
        if which == "ir":
            self.ir = img
            self.ir_view.set_frame(img)
        else:
            self.vis = img
            self.vis_view.set_frame(img)
        self.clear_points()
        self.update_preview()

    def grab_frames(self) -> bool:
        """Take the newest live frames to pick points on (the points already picked are cleared)."""
        frames = self._frame_source() if self._frame_source is not None else None
        if frames is None:
            self.report.setPlainText("no live frames: start the pipeline in the main window first")
            return False
        self.ir, self.vis = frames
        self.ir_view.set_frame(self.ir)
        self.vis_view.set_frame(self.vis)
        self.clear_points()
        self.update_preview()
        return True

    def load_rig(self, path: str | Path) -> Rig:
        _estimate, _check, fmt = _calibration_api()
        rig = Rig.load(path)
        self.rig, self.rig_path = rig, str(path)
        self.report.setPlainText(f"{path}\n{fmt(rig)}")
        self.update_preview()
        return rig

    def save_rig(self, path: str | Path) -> None:
        if self.rig is None:
            raise FusioncamError("no rig to save: pick at least four point pairs or load a rig first")
        self.rig.save(path)
        self.rig_path = str(path)

    def _load_rig_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load rig", "", "Rig (*.yaml *.yml)")
        if path:
            try:
                self.load_rig(path)
            except FusioncamError as e:
                self.report.setPlainText(str(e))

    def _save_rig_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save rig", "rig.yaml", "Rig (*.yaml *.yml)")
        if path:
            try:
                self.save_rig(path)
                self.report.appendPlainText(f"saved to {path}")
            except FusioncamError as e:
                self.report.appendPlainText(str(e))

    def apply(self) -> Any:
        if self.rig is None:
            self.report.setPlainText("no rig to apply: pick at least four point pairs or load a rig first")
            return None
        self.rig_applied.emit(self.rig, self.rig_path)
        return self.rig
