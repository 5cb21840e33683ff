"""The main window: IR, VIS and fused views, the controls, recording, snapshots and the status bar.

The window holds no pipeline state of its own: the settings are a :class:`fusioncam.config.Settings`
object (the same the CLI builds and the per-user file stores), the pipeline lives in
:class:`~fusioncam.ui.worker.PipelineWorker`, and recording/snapshots are the pure-Python
:mod:`fusioncam.io.recording`. Slow actions (start, stop, switching method, finalising a recording,
writing a snapshot) run on background threads; the UI thread only paints and updates labels.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QAction, QCloseEvent
from PyQt6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QLabel,
    QMainWindow,
    QSizePolicy,
    QSpinBox,
    QToolBar,
    QWidget,
)

from fusioncam.assets import DEFAULT_WEIGHTS, shipped_weight_names
from fusioncam.config import DEVICES, LAYOUTS, PALETTES, Settings, load_settings, save_settings
from fusioncam.errors import FusioncamError
from fusioncam.io.recording import Recorder, RecordingSummary, SnapshotWriter
from fusioncam.processing.fusers import fuser_info, list_fusers

from .frame_view import FrameView
from .worker import PipelineFactory, PipelineWorker

#: seconds an error or the result of a recording or snapshot stays in the status bar before routine
#: source-state lines may replace it (they come in bursts right after, e.g. "pipeline: stopped")
STICKY_S = 8.0

__all__ = ["MainWindow", "format_stats"]


def _num(d: dict[str, Any], *keys: str) -> float | None:
    for k in keys:
        v = d.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    return None


def format_stats(stats: dict[str, Any] | None) -> str:
    """One status-bar line from ``LivePipeline.stats()``: fps, latency, dropped/skipped, source states."""
    if not stats:
        return ""
    parts = []
    fps = _num(stats, "fps")
    if fps is not None:
        parts.append(f"{fps:.1f} fps" if fps >= 1 else f"{fps:.2f} fps")  # a network on a CPU: 0.25 fps
    lat = _num(stats, "latency_ms_mean", "latency_ms")
    if lat is not None:
        parts.append(f"latency {lat:.0f} ms")
    for label, keys in (("dropped", ("dropped_pairs", "dropped")), ("skipped", ("skipped_pairs", "skipped"))):
        v = _num(stats, *keys)
        if v is not None:
            parts.append(f"{label} {int(v)}")
    states = stats.get("sources") or {}
    if isinstance(states, dict):
        for name, st in states.items():
            state = st.get("state", "") if isinstance(st, dict) else st
            parts.append(f"{str(name).upper()}: {state}")
    engine = stats.get("engine") or {}
    if isinstance(engine, dict) and engine.get("method"):
        parts.append(f"{engine['method']} on {engine.get('device', '?')}")
    return "  |  ".join(parts)


class MainWindow(QMainWindow):
    """The live fusion window. ``settings`` is edited in place and saved on close to ``settings_path``."""

    _job_done = pyqtSignal(object)  # (callback, value, error) from a background thread

    def __init__(
        self,
        settings: Settings,
        *,
        settings_path: Path | None = None,
        persist_sources: bool = True,
        pipeline_factory: PipelineFactory | None = None,
        autostart: bool = True,
        record_on_start: bool = False,
        title: str = "fusioncam",
    ) -> None:
        super().__init__()
        self.settings = settings
        self.settings_path = settings_path
        self.persist_sources = persist_sources
        self._record_on_start = record_on_start
        self._restart_pending = False
        self._closing = False
        self._jobs: list[threading.Thread] = []
        self.recorder: Recorder | None = None
        self.last_recording: RecordingSummary | None = None
        self.last_snapshot: dict[str, Path] | None = None
        self.last_error: str | None = None
        self._sticky_until = 0.0  # until then, routine status lines leave the message bar alone
        self._calibration_dialog: Any = None
        self.painted = 0
        self.status_messages: list[str] = []  # recent source/pipeline messages (newest last)
        self._last_frames = None

        self.setWindowTitle(title)
        self.worker = PipelineWorker(pipeline_factory, self)
        self.worker.palette = settings.display.palette
        self.worker.frame_ready.connect(self._paint_latest, Qt.ConnectionType.QueuedConnection)
        self.worker.status.connect(self._on_status)
        self.worker.error.connect(self.show_error)
        self.worker.started.connect(self._on_started)
        self.worker.stopped.connect(self._on_stopped)
        self.worker.method_active.connect(self._on_method_active)
        self._job_done.connect(self._on_job_done, Qt.ConnectionType.QueuedConnection)

        self.ir_view = FrameView("IR")
        self.vis_view = FrameView("VIS")
        self.fused_view = FrameView("Fused")
        self._build_controls()
        self._central = QWidget()
        self._grid = QGridLayout(self._central)
        self._grid.setContentsMargins(4, 4, 4, 4)
        self._grid.setSpacing(4)
        self.setCentralWidget(self._central)
        self.apply_layout(settings.display.layout)

        # Our own message label (left, stretching) rather than QStatusBar.showMessage, which would be
        # hidden behind the stats; the stats stay on the right.
        self.message_label = QLabel("")
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # a long message must not widen the window
        self.message_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.stats_label = QLabel("stopped")
        self.statusBar().addWidget(self.message_label, 1)
        self.statusBar().addPermanentWidget(self.stats_label)
        self._message_timer = QTimer(self)
        self._message_timer.setSingleShot(True)
        self._message_timer.timeout.connect(lambda: self.message_label.setText(""))
        self._stats_timer = QTimer(self)
        self._stats_timer.setInterval(500)
        self._stats_timer.timeout.connect(self.update_status)
        self._stats_timer.start()
        self.resize(1260, 440)  # three 4:3 views side by side, toolbar and status bar; fits a 1280 screen
        self._sync_actions()
        if autostart:
            QTimer.singleShot(0, self.start)

    # --- construction ---
    def _build_controls(self) -> None:
        tb = QToolBar("Controls", self)
        tb.setMovable(False)
        self.addToolBar(tb)
        s = self.settings

        self.start_action = QAction("Start", self, triggered=self.start)
        self.stop_action = QAction("Stop", self, triggered=self.stop)
        self.record_action = QAction("Record", self, checkable=True, toggled=self._record_toggled)
        self.snapshot_action = QAction("Snapshot", self, triggered=self.snapshot)
        self.calibrate_action = QAction("Calibration...", self, triggered=self.open_calibration)
        for a, key in (
            (self.start_action, "F5"),
            (self.stop_action, "Shift+F5"),
            (self.record_action, "Ctrl+R"),
            (self.snapshot_action, "Ctrl+Shift+S"),
        ):
            a.setShortcut(key)
            a.setToolTip(f"{a.text()} ({key})")
            tb.addAction(a)
        tb.addSeparator()

        methods = list_fusers(video_only=True)  # still-image baselines would flicker here
        if s.engine.method not in methods:
            methods.append(s.engine.method)
        self.method_box = self._combo(tb, "Method", methods, s.engine.method, self._method_changed)
        weights = shipped_weight_names()
        if s.engine.weights and s.engine.weights not in weights:
            weights.append(s.engine.weights)  # a checkpoint file from the settings or --weights
        self.weights_box = self._combo(
            tb, "Weights", weights, s.engine.weights or DEFAULT_WEIGHTS, self._weights_changed
        )
        self.weights_box.setToolTip(
            "MGFusion checkpoint: mgfusion_fast_noclip runs live on a CPU; mgfusion_noclip is the larger"
            " GPU quality preset (see the model cards in assets/weights)"
        )
        self.device_box = self._combo(tb, "Device", list(DEVICES), s.engine.device, self._device_changed)
        tb.addWidget(QLabel(" CLIP every "))
        self.clip_spin = QSpinBox()
        self.clip_spin.setRange(1, 1000)
        self.clip_spin.setValue(s.engine.clip_refresh)
        self.clip_spin.setSuffix(" frames")
        self.clip_spin.valueChanged.connect(self._clip_changed)
        tb.addWidget(self.clip_spin)
        self.palette_box = self._combo(
            tb, "IR palette", list(PALETTES), s.display.palette, self._palette_changed
        )
        self.layout_box = self._combo(tb, "Layout", list(LAYOUTS), s.display.layout, self.apply_layout)
        tb.addSeparator()
        tb.addAction(self.calibrate_action)

        menu = self.menuBar().addMenu("&Record")
        self.rec_sbs_action = self._toggle(menu, "Also record side by side", "side_by_side")
        self.rec_ir_action = self._toggle(
            menu, "Also record raw IR (16-bit cameras: lossless counts too)", "raw_ir"
        )
        self.rec_vis_action = self._toggle(menu, "Also record raw VIS", "raw_vis")
        menu.addSeparator()
        menu.addAction(QAction("Output folder...", self, triggered=self._choose_output_dir))
        rig_menu = self.menuBar().addMenu("R&ig")  # also here: on a narrow window the toolbar hides it
        rig_menu.addAction(self.calibrate_action)

    def _combo(self, tb: QToolBar, label: str, items: list[str], value: str, slot: Callable) -> QComboBox:
        tb.addWidget(QLabel(f" {label} "))
        box = QComboBox()
        box.addItems(items)
        box.setCurrentText(value)
        box.currentTextChanged.connect(slot)
        tb.addWidget(box)
        return box

    def _toggle(self, menu, text: str, attr: str) -> QAction:
        a = QAction(text, self, checkable=True)
        a.setChecked(bool(getattr(self.settings.record, attr)))
        a.toggled.connect(lambda on: setattr(self.settings.record, attr, bool(on)))
        menu.addAction(a)
        return a

    def apply_layout(self, layout: str) -> None:
        """Side by side (three equal views) or the fused view large with IR and VIS stacked beside it."""
        if layout not in LAYOUTS:
            return
        self.settings.display.layout = layout
        for v in (self.ir_view, self.vis_view, self.fused_view):
            self._grid.removeWidget(v)
        for i in range(3):
            self._grid.setColumnStretch(i, 0)
            self._grid.setRowStretch(i, 0)
        if layout == "side_by_side":
            for col, v in enumerate((self.ir_view, self.vis_view, self.fused_view)):
                self._grid.addWidget(v, 0, col)
                self._grid.setColumnStretch(col, 1)
            self._grid.setRowStretch(0, 1)
        else:
            self._grid.addWidget(self.fused_view, 0, 0, 2, 1)
            self._grid.addWidget(self.ir_view, 0, 1)
            self._grid.addWidget(self.vis_view, 1, 1)
            self._grid.setColumnStretch(0, 3)
            self._grid.setColumnStretch(1, 1)
            self._grid.setRowStretch(0, 1)
            self._grid.setRowStretch(1, 1)

    # --- pipeline control ---
    @property
    def running(self) -> bool:
        return self.worker.state == "running"

    def start(self) -> None:
        if self._closing or self.worker.state != "idle":
            return
        self.message("starting...")
        self.worker.start(self.settings)
        self._sync_actions()

    def stop(self) -> None:
        if self.record_action.isChecked():
            self.record_action.setChecked(False)
        self.worker.stop()
        self._sync_actions()

    def _on_started(self) -> None:
        if self._closing:
            return
        self.message("running", 3000)
        self._sync_actions()
        if self._record_on_start:
            self._record_on_start = False
            self.record_action.setChecked(True)

    def _on_stopped(self) -> None:
        if self.recorder is not None and not self._closing:  # ended by itself: finalise the recording
            self.record_action.setChecked(False)
        self._sync_actions()
        self.stats_label.setText("stopped")
        if self._restart_pending and not self._closing:
            self._restart_pending = False
            self.start()

    def _sync_actions(self) -> None:
        state = self.worker.state
        self.start_action.setEnabled(state == "idle")
        self.stop_action.setEnabled(state == "running")
        self.record_action.setEnabled(state == "running" or self.record_action.isChecked())
        self.snapshot_action.setEnabled(self._last_frames is not None)
        network = self.method_box.currentText() == "mgfusion"  # CLIP refresh and weights are its own
        engine = self.worker.engine
        # the shipped weights have no CLIP blocks: then there is nothing to refresh (unknown until running)
        clip = network and (engine is None or engine.method != "mgfusion" or engine.uses_clip)
        self.clip_spin.setEnabled(clip)
        self.clip_spin.setToolTip(
            "CLIP features are recomputed every K frames (and on a scene change)"
            if clip or not network
            else "these weights have no CLIP blocks: nothing to refresh"
        )
        self.weights_box.setEnabled(network)

    # --- controls ---
    def _method_changed(self, name: str) -> None:
        self.settings.engine.method = name
        self.worker.set_method(name, self.settings.engine.fuser_options(name))
        self._sync_actions()

    def _weights_changed(self, name: str) -> None:
        self.settings.engine.weights = None if name == DEFAULT_WEIGHTS else name
        method = self.method_box.currentText()
        if method == "mgfusion":
            # Named even for the default: the engine keeps the options it was started with otherwise.
            self.worker.set_method(method, {**self.settings.engine.fuser_options(method), "weights": name})

    def _on_method_active(self, name: str) -> None:
        if name and name != self.method_box.currentText():
            self.method_box.blockSignals(True)
            self.method_box.setCurrentText(name)
            self.method_box.blockSignals(False)
        self._sync_actions()  # the new fuser may or may not use CLIP
        # settings.engine.method keeps the user's choice: a fallback (no weights yet) is not saved

    def _device_changed(self, device: str) -> None:
        self.settings.engine.device = device
        if fuser_info(self.settings.engine.method).classical:
            return  # classical fusers run on the CPU whatever the device: no restart, no cut recording
        if self.worker.state == "running":  # the engine owns its device: restart it there
            self._restart_pending = True
            self.stop()

    def _clip_changed(self, k: int) -> None:
        self.settings.engine.clip_refresh = int(k)
        self.worker.set_clip_refresh(int(k))

    def _palette_changed(self, name: str) -> None:
        self.settings.display.palette = name
        self.worker.palette = name

    def _choose_output_dir(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Recording and snapshot folder", str(Path(self.settings.record.output_dir).expanduser())
        )
        if folder:
            self.settings.record.output_dir = folder

    # --- frames and status ---
    def _paint_latest(self) -> None:
        frames = self.worker.latest()
        if frames is None:
            return
        self._last_frames = frames
        self.ir_view.set_frame(frames.ir)
        self.vis_view.set_frame(frames.vis)
        self.fused_view.set_frame(frames.fused)
        if self.painted == 0:
            self._sync_actions()
        self.painted += 1

    @property
    def last_result(self) -> Any:
        return None if self._last_frames is None else self._last_frames.result

    def _on_status(self, message: str, is_error: bool) -> None:
        if is_error:
            self.show_error(message)
        elif time.monotonic() >= self._sticky_until:  # routine source states never hide an error
            self.message(message, 10000)
        self.status_messages.append(message)
        del self.status_messages[:-50]

    def update_status(self) -> None:
        stats = self.worker.stats()
        if stats is not None and not stats.get("fps"):  # a slow network: under one result per 2 s
            stats["fps"] = self.worker.result_rate()
            result = self.last_result
            if not stats.get("latency_ms_mean") and result is not None:
                stats["latency_ms_mean"] = getattr(result, "latency_ms", 0.0)
        text = format_stats(stats)
        self.stats_label.setToolTip(self._details(stats))
        rec = self.recorder
        if rec is not None:
            text += f"  |  REC {rec.written} frames" + (f", {rec.dropped} dropped" if rec.dropped else "")
            if rec.error and self.last_error != rec.error:
                self.show_error(rec.error)
        if text:
            self.stats_label.setText(text)

    def message(self, text: str, timeout_ms: int = 0, error: bool = False, sticky_s: float = 0.0) -> None:
        """Show a message in the status bar (cleared after ``timeout_ms``; 0 keeps it). For ``sticky_s``
        seconds routine status lines (a source running, stopped) do not replace it."""
        self._sticky_until = time.monotonic() + sticky_s
        self.message_label.setText(text)
        self.message_label.setToolTip(text)
        self.message_label.setStyleSheet("color: #d03030;" if error else "")
        self._message_timer.stop()
        if timeout_ms:
            self._message_timer.start(timeout_ms)

    def _details(self, stats: dict[str, Any] | None) -> str:
        """The status bar's tooltip: per-stage timings (incl. display and recording) and counters."""
        if not stats:
            return ""
        stages = dict(stats.get("timings_ms") or {})
        stages["display (UI thread)"] = sum(
            v.paint_ms for v in (self.ir_view, self.vis_view, self.fused_view)
        )
        if self.recorder is not None and self.recorder.frame_ms is not None:
            stages["recording (own thread)"] = self.recorder.frame_ms
        lines = ["mean ms per frame:"] + [f"  {k}: {v:.1f}" for k, v in stages.items()]
        engine = stats.get("engine") or {}
        if engine.get("clip_refreshes") or engine.get("clip_reuses"):
            lines.append(
                f"CLIP: {engine.get('clip_refreshes', 0)} computed, {engine.get('clip_reuses', 0)} reused"
            )
        lines.append(
            f"pairs {stats.get('pairs', 0)}, fused {stats.get('fused', 0)}, errors {stats.get('errors', 0)}"
        )
        return "\n".join(lines)

    def show_error(self, message: str) -> None:
        """User errors go to the status bar (and stay until the next message); never a crash."""
        self.last_error = message
        self.message(f"Error: {message}", error=True, sticky_s=STICKY_S)
        self._sync_actions()

    # --- recording ---
    def _record_toggled(self, on: bool) -> None:
        if on and self.recorder is None:
            try:
                self.start_recording()
            except FusioncamError as e:
                self.record_action.blockSignals(True)
                self.record_action.setChecked(False)
                self.record_action.blockSignals(False)
                self.show_error(str(e))
        elif not on and self.recorder is not None:
            self.stop_recording()

    def start_recording(self) -> Path:
        rec = Recorder(
            self.settings.record.output_dir,
            self.settings.record,
            palette=self.settings.display.palette,
            settings=self.settings.to_dict(),
        )
        folder = rec.start()
        self.recorder = rec
        self.worker.add_consumer(rec.submit)
        self.message(f"recording to {folder}", 5000)
        return folder

    def stop_recording(self, wait: bool = False) -> None:
        rec, self.recorder = self.recorder, None
        if rec is None:
            return
        self.worker.remove_consumer(rec.submit)
        if wait:
            self._recording_done(rec.stop())
        else:
            self._run_job(rec.stop, self._recording_done)

    def _recording_done(self, summary: RecordingSummary) -> None:
        self.last_recording = summary
        if summary.error:
            self.show_error(summary.error)
        else:
            msg = f"recorded {summary.frames} frames at {summary.fps:.2f} fps to {summary.folder}"
            if summary.dropped:
                msg += f" ({summary.dropped} dropped)"
            self.message(msg, 10000, sticky_s=STICKY_S)

    # --- snapshot ---
    def snapshot(self) -> None:
        if self._last_frames is None:
            self.show_error("no frame to save yet")
            return
        writer = SnapshotWriter(self.settings.record.output_dir, palette=self.settings.display.palette)
        result, settings = self._last_frames.result, self.settings.to_dict()
        self._run_job(lambda: writer.write(result, settings), self._snapshot_done)

    def _snapshot_done(self, paths: dict[str, Path]) -> None:
        self.last_snapshot = paths
        folder = next(iter(paths.values())).parent if paths else ""
        self.message(f"snapshot: {len(paths)} files in {folder}", 10000, sticky_s=STICKY_S)

    # --- calibration ---
    def live_frames(self) -> tuple[Any, Any] | None:
        """The newest (IR, VIS) frames as captured (before registration), or None."""
        result = self.last_result
        return None if result is None else (result.pair.ir.image, result.pair.vis.image)

    def open_calibration(self) -> None:
        from .calibration_dialog import CalibrationDialog

        if self._calibration_dialog is not None and self._calibration_dialog.isVisible():
            self._calibration_dialog.raise_()  # one dialog: a second click brings it to the front
            self._calibration_dialog.activateWindow()
            return

        frames = self.live_frames() or (None, None)
        dlg = CalibrationDialog(
            *frames, rig_path=self.settings.engine.rig, frame_source=self.live_frames, parent=self
        )
        dlg.rig_applied.connect(self._rig_applied)
        dlg.show()
        self._calibration_dialog = dlg

    def _rig_applied(self, rig: Any, path: str) -> None:
        try:
            self.worker.set_rig(rig)
        except FusioncamError as e:
            self.show_error(str(e))
            return
        if path:  # kept for the next run
            self.settings.engine.rig = path
            self.message(f"rig applied ({path})", 5000)
        else:
            self.message("rig applied for this run only: save it in the dialog to keep it", 8000)

    # --- background jobs ---
    def _run_job(self, fn: Callable[[], Any], done: Callable[[Any], None]) -> None:
        def run():
            try:
                self._job_done.emit((done, fn(), None))
            except FusioncamError as e:
                self._job_done.emit((done, None, str(e)))
            except Exception as e:
                self._job_done.emit((done, None, f"{type(e).__name__}: {e}"))

        t = threading.Thread(target=run, name="fusioncam-ui-job", daemon=True)
        self._jobs = [j for j in self._jobs if j.is_alive()] + [t]
        t.start()

    def _on_job_done(self, payload: tuple[Callable[[Any], None], Any, str | None]) -> None:
        done, value, err = payload
        if err is not None:
            self.show_error(err)
        elif not self._closing:
            done(value)

    # --- shutdown ---
    def shutdown(self) -> None:
        """Stop the pipeline, finalise a recording, wait for background jobs, save the settings."""
        if self._closing:
            return
        self._closing = True
        self._stats_timer.stop()
        self.worker.stop(wait=True)  # no more results: the recorder then gets everything there was
        if self.recorder is not None:
            self.stop_recording(wait=True)
        for j in self._jobs:
            j.join(30)
        self._jobs = []
        if self.settings_path is not None:
            to_save = self.settings.copy()
            if not self.persist_sources:  # the demo: keep the user's own sources and rig in the file
                stored = Settings()
                if self.settings_path.is_file():
                    try:
                        stored = load_settings(self.settings_path)
                    except FusioncamError:
                        pass
                to_save.sources = stored.sources
                to_save.engine.rig = stored.engine.rig
            try:
                save_settings(to_save, self.settings_path)
            except FusioncamError as e:
                self.last_error = str(e)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt API)
        self.shutdown()
        event.accept()
