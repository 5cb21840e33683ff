"""The GUI, offscreen with pytest-qt, on small file and synthetic sources through the real pipeline."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from fusioncam.config import Settings, load_settings
from fusioncam.io.frames import FramePair
from fusioncam.io.sources import SyntheticSource
from fusioncam.live.engine import FusionEngine, LivePipeline
from fusioncam.processing.registration import Rig
from fusioncam.ui.calibration_dialog import CalibrationDialog
from fusioncam.ui.frame_view import FrameView
from fusioncam.ui.main_window import MainWindow, format_stats
from fusioncam.ui.worker import PipelineWorker

W, H = 64, 48


def write_clip(path: Path, n: int = 20, fps: float = 30.0, color: bool = True, seed: int = 0) -> Path:
    src = SyntheticSource((W, H), fps=fps, count=n, color=color, seed=seed)
    src.start()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (W, H), True)
    for frame in src:
        img = frame.image if frame.image.ndim == 3 else cv2.cvtColor(frame.image, cv2.COLOR_GRAY2BGR)
        writer.write(img)
    writer.release()
    return path


def synthetic_factory(ir_kwargs: dict | None = None, vis_kwargs: dict | None = None, watchdog: float = 4.0):
    """A pipeline factory with the real engine and LivePipeline on SyntheticSource objects."""

    def factory(settings: Settings, on_result, on_status):
        ir = SyntheticSource((W, H), **{"count": None, "seed": 1, **(ir_kwargs or {})})
        vis = SyntheticSource((W, H), **{"count": None, "color": True, "seed": 2, **(vis_kwargs or {})})
        engine = FusionEngine(settings.engine.method, device="cpu", clip_refresh=settings.engine.clip_refresh)
        return LivePipeline(
            ir, vis, engine, pace=True, on_result=on_result, on_status=on_status, watchdog_timeout=watchdog
        )

    return factory


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = Settings()
    s.engine.method = "average"
    s.engine.device = "cpu"
    s.record.output_dir = str(tmp_path / "out")
    return s


@pytest.fixture
def make_window(qtbot, tmp_path: Path):
    """Build a MainWindow; at the end close it and check that no thread it started is left running."""
    before = set(threading.enumerate())
    windows: list[MainWindow] = []

    def make(settings: Settings, **kwargs) -> MainWindow:
        kwargs.setdefault("settings_path", tmp_path / "settings.yaml")
        w = MainWindow(settings, **kwargs)
        qtbot.addWidget(w)
        w.resize(900, 360)
        w.show()
        windows.append(w)
        return w

    yield make
    for w in windows:
        w.close()
    qtbot.waitUntil(lambda: not (set(threading.enumerate()) - before), timeout=5000)


def wait_frames(qtbot, w: MainWindow, n: int = 3, timeout: int = 8000) -> None:
    start = w.painted
    qtbot.waitUntil(lambda: w.painted >= start + n, timeout=timeout)


def non_uniform(img: np.ndarray) -> bool:
    return img is not None and img.size > 0 and float(img.std()) > 1.0


def grab_array(view: FrameView) -> np.ndarray:
    """What the widget paints, as an (H, W, 3) RGB array."""
    img = view.grab().toImage()
    img = img.convertToFormat(img.Format.Format_RGB888)
    ptr = img.constBits()
    ptr.setsize(img.sizeInBytes())
    rows = np.frombuffer(ptr, np.uint8).reshape(img.height(), img.bytesPerLine())
    return rows[:, : img.width() * 3].reshape(img.height(), img.width(), 3).copy()


class TestMainWindow:
    def test_file_sources_show_frames_in_all_three_views(
        self, make_window, qtbot, settings, tmp_path
    ) -> None:
        settings.sources.ir = str(write_clip(tmp_path / "ir.mp4", color=False, seed=1))
        settings.sources.vis = str(write_clip(tmp_path / "vis.mp4", seed=2))
        settings.sources.loop = True
        w = make_window(settings)  # the real pipeline factory: open_source on the files
        wait_frames(qtbot, w, 5)
        for view in (w.ir_view, w.vis_view, w.fused_view):
            assert non_uniform(view.frame()), view.title
            assert non_uniform(grab_array(view)), f"{view.title} view paints nothing"
        qtbot.waitUntil(lambda: "fps" in w.stats_label.text(), timeout=3000)
        assert "IR: running" in w.stats_label.text() and "latency" in w.stats_label.text()
        details = w.stats_label.toolTip()
        for stage in ("registration", "fusion", "display (UI thread)"):
            assert stage in details

    def test_palette_and_layout(self, make_window, qtbot, settings) -> None:
        settings.display.palette = "gray"
        w = make_window(settings, pipeline_factory=synthetic_factory())
        wait_frames(qtbot, w)
        ir = w.ir_view.frame()
        assert np.array_equal(ir[:, :, 0], ir[:, :, 2])  # gray palette: equal channels
        w.palette_box.setCurrentText("inferno")
        wait_frames(qtbot, w)
        ir = w.ir_view.frame()
        assert not np.array_equal(ir[:, :, 0], ir[:, :, 2]) and settings.display.palette == "inferno"
        w.layout_box.setCurrentText("fused_large")
        qtbot.waitUntil(lambda: w.fused_view.width() > 2 * w.ir_view.width(), timeout=2000)
        assert w.fused_view.height() > w.ir_view.height()
        w.layout_box.setCurrentText("side_by_side")
        qtbot.waitUntil(lambda: abs(w.fused_view.width() - w.ir_view.width()) <= 2, timeout=2000)

    def test_method_and_clip_refresh_reach_the_engine(self, make_window, qtbot, settings) -> None:
        w = make_window(settings, pipeline_factory=synthetic_factory())
        wait_frames(qtbot, w)
        w.method_box.setCurrentText("max")
        qtbot.waitUntil(lambda: w.worker.engine.method == "max", timeout=3000)
        wait_frames(qtbot, w)
        r = w.last_result
        assert r.method == "max"
        w.clip_spin.setValue(3)
        assert w.worker.engine.clip_refresh == 3 and settings.engine.clip_refresh == 3

    def test_weights_box_switches_the_network_checkpoint(self, make_window, qtbot, settings) -> None:
        from fusioncam.assets import DEFAULT_WEIGHTS, shipped_weight_names

        w = make_window(settings, pipeline_factory=synthetic_factory())
        wait_frames(qtbot, w)
        box = w.weights_box
        assert [box.itemText(i) for i in range(box.count())] == shipped_weight_names()
        assert box.currentText() == DEFAULT_WEIGHTS and not box.isEnabled()  # 'average' takes no weights
        w.method_box.setCurrentText("mgfusion")
        qtbot.waitUntil(lambda: w.worker.engine.method == "mgfusion", timeout=10000)
        assert box.isEnabled() and w.worker.engine.fuser.weights_path.stem == DEFAULT_WEIGHTS
        other = next(n for n in shipped_weight_names() if n != DEFAULT_WEIGHTS)
        box.setCurrentText(other)
        qtbot.waitUntil(lambda: w.worker.engine.fuser.weights_path.stem == other, timeout=20000)
        assert settings.engine.weights == other
        wait_frames(qtbot, w, 1, timeout=20000)
        box.setCurrentText(DEFAULT_WEIGHTS)  # back to the default: named explicitly, saved as None
        qtbot.waitUntil(lambda: w.worker.engine.fuser.weights_path.stem == DEFAULT_WEIGHTS, timeout=20000)
        assert settings.engine.weights is None

    def test_a_busy_ui_paints_only_the_newest_result(self, make_window, qtbot, settings) -> None:
        from PyQt6.QtWidgets import QApplication

        w = make_window(settings, pipeline_factory=synthetic_factory())
        wait_frames(qtbot, w)
        QApplication.processEvents()
        painted, results, first = w.painted, w.worker.results, w.last_result.index
        idle = threading.Event()
        while w.worker.results < results + 4 and not idle.wait(0.05):  # the UI thread is busy here
            pass
        QApplication.processEvents()
        assert w.painted - painted <= 2  # one coalesced wake-up (plus at most one that just arrived)
        assert w.last_result.index >= first + 4  # and it painted the newest result, not the next one

    def test_device_change_restarts_a_network_pipeline(self, make_window, qtbot, settings) -> None:
        made = []
        inner = synthetic_factory()

        def factory(s: Settings, on_result, on_status):
            made.append(s.engine.device)
            return inner(s, on_result, on_status)

        settings.engine.method = "mgfusion"  # the shipped CPU network: small, loads in well under 1 s
        w = make_window(settings, pipeline_factory=factory)
        wait_frames(qtbot, w)
        w.device_box.setCurrentText("auto")
        qtbot.waitUntil(lambda: made == ["cpu", "auto"] and w.worker.state == "running", timeout=10000)
        wait_frames(qtbot, w)

    def test_clip_refresh_is_off_for_weights_without_clip(self, make_window, qtbot, settings) -> None:
        settings.engine.method = "mgfusion"  # the shipped weights: the network without its CLIP blocks
        w = make_window(settings, pipeline_factory=synthetic_factory())
        wait_frames(qtbot, w)
        assert not w.worker.engine.uses_clip
        assert not w.clip_spin.isEnabled() and "no CLIP blocks" in w.clip_spin.toolTip()
        assert w.weights_box.isEnabled()

    def test_device_change_leaves_a_classical_pipeline_and_its_recording(
        self, make_window, qtbot, settings
    ) -> None:
        made = []
        inner = synthetic_factory()

        def factory(s: Settings, on_result, on_status):
            made.append(s.engine.device)
            return inner(s, on_result, on_status)

        w = make_window(settings, pipeline_factory=factory, record_on_start=True)
        qtbot.waitUntil(lambda: w.recorder is not None, timeout=5000)
        w.device_box.setCurrentText("auto")
        wait_frames(qtbot, w, 3)
        assert made == ["cpu"] and w.recorder is not None and settings.engine.device == "auto"

    def test_calibration_dialog_uses_live_frames_and_applies_its_rig(
        self, make_window, qtbot, settings
    ) -> None:
        w = make_window(settings, pipeline_factory=synthetic_factory())
        wait_frames(qtbot, w)
        w.calibrate_action.trigger()
        dlg = w._calibration_dialog
        qtbot.addWidget(dlg)
        assert non_uniform(dlg.ir_view.frame()) and non_uniform(dlg.vis_view.frame())
        first = dlg.ir_view.frame()
        wait_frames(qtbot, w)
        assert dlg.grab_frames() and dlg.ir_view.frame() is not first
        shift = Rig(np.array([[1.0, 0, 3], [0, 1, 0], [0, 0, 1]]), (W, H), (W, H), method="points")
        dlg.rig = shift
        dlg.apply()
        assert w.worker.engine.rig is shift
        wait_frames(qtbot, w)
        assert (w.last_result.ir_registered[:, :3] == 0).all()  # IR now shifted 3 px right onto VIS
        dlg.close()

    def test_closing_while_starting_stops_what_was_started(self, make_window, qtbot, settings) -> None:
        inner, built = synthetic_factory(), []
        gate = threading.Event()

        def slow_factory(s: Settings, on_result, on_status):
            gate.wait(5)  # e.g. loading a network
            built.append(inner(s, on_result, on_status))
            return built[-1]

        w = make_window(settings, pipeline_factory=slow_factory)
        qtbot.waitUntil(lambda: w.worker.state == "starting", timeout=2000)
        threading.Timer(0.2, gate.set).start()
        w.close()  # waits for the start, then stops it
        assert built and not built[0].running and w.worker.state == "idle"

    def test_stop_and_start_again(self, make_window, qtbot, settings) -> None:
        w = make_window(settings, pipeline_factory=synthetic_factory())
        wait_frames(qtbot, w)
        w.stop()
        qtbot.waitUntil(lambda: w.worker.state == "idle", timeout=5000)
        assert w.start_action.isEnabled() and not w.stop_action.isEnabled()
        w.start()
        wait_frames(qtbot, w)

    def test_recording_is_finalised_on_close(self, make_window, qtbot, settings, tmp_path) -> None:
        settings.record.side_by_side = True
        w = make_window(settings, pipeline_factory=synthetic_factory(), record_on_start=True)
        qtbot.waitUntil(lambda: w.recorder is not None and w.recorder.written >= 20, timeout=10000)
        folder = w.recorder.folder
        w.close()  # must stop the pipeline, then write out the queue and rename the files
        assert w.recorder is None and w.last_recording is not None and w.last_recording.error is None
        meta = json.loads((folder / "recording.json").read_text())
        for name in ("fused", "side_by_side"):
            cap = cv2.VideoCapture(str(folder / f"{name}.mp4"))
            assert cap.isOpened()
            n = 0
            while cap.read()[0]:
                n += 1
            assert n == meta["frames"] == w.last_recording.frames >= 20
            assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(30.0, rel=0.1)  # the paced synthetic rate
        assert not [p for p in folder.iterdir() if "partial" in p.name]

    def test_record_button_toggles_a_recording(self, make_window, qtbot, settings) -> None:
        w = make_window(settings, pipeline_factory=synthetic_factory())
        wait_frames(qtbot, w)
        w.record_action.setChecked(True)
        qtbot.waitUntil(lambda: w.recorder.written >= 5, timeout=5000)
        w.update_status()
        assert "REC" in w.stats_label.text() and "recording (own thread)" in w.stats_label.toolTip()
        w.record_action.setChecked(False)
        qtbot.waitUntil(lambda: w.last_recording is not None, timeout=10000)
        assert w.last_recording.files["fused"].is_file() and w.last_recording.frames >= 5

    def test_snapshot_writes_raw16_from_a_16bit_source(self, make_window, qtbot, settings) -> None:
        w = make_window(settings, pipeline_factory=synthetic_factory({"thermal16": True}))
        wait_frames(qtbot, w)
        w.snapshot_action.trigger()
        qtbot.waitUntil(lambda: w.last_snapshot is not None, timeout=5000)
        paths = w.last_snapshot
        for key in ("ir", "ir_registered", "vis", "fused", "side_by_side", "settings"):
            assert paths[key].is_file(), key
        raw = cv2.imread(str(paths["ir_raw16"]), cv2.IMREAD_UNCHANGED)
        assert raw.dtype == np.uint16 and raw.shape == (H, W) and int(raw.min()) >= 30000
        assert json.loads(paths["settings"].read_text())["settings"]["engine"]["method"] == "average"

    def test_source_that_stops_is_reported_and_the_app_carries_on(self, make_window, qtbot, settings) -> None:
        factory = synthetic_factory({"live": True, "fail_after": 10}, {"live": True}, watchdog=0.3)
        w = make_window(settings, pipeline_factory=factory)
        qtbot.waitUntil(
            lambda: any(m.startswith("IR: reconnecting") for m in w.status_messages), timeout=8000
        )
        assert "IR: " in w.message_label.text() or "IR: reconnecting" in w.stats_label.text()
        wait_frames(qtbot, w, 3)  # reopened: fusion goes on
        assert w.worker.state == "running"

    def test_network_that_cannot_load_falls_back_to_a_classical_fuser(
        self, make_window, qtbot, settings
    ) -> None:
        inner = synthetic_factory()

        def factory(s: Settings, on_result, on_status):
            if s.engine.method == "mgfusion":
                from fusioncam.errors import FusioncamError

                raise FusioncamError("no trained weights")
            return inner(s, on_result, on_status)

        settings.engine.method = "mgfusion"
        w = make_window(settings, pipeline_factory=factory)
        wait_frames(qtbot, w)
        assert w.last_result.method == "laplacian" and w.method_box.currentText() == "laplacian"
        assert "mgfusion unavailable (no trained weights)" in w.last_error
        assert settings.engine.method == "mgfusion"  # the user's choice is kept for the next run

    def test_end_of_files_returns_to_idle(self, make_window, qtbot, settings) -> None:
        w = make_window(settings, pipeline_factory=synthetic_factory({"count": 8}, {"count": 8}))
        qtbot.waitUntil(lambda: w.worker.state == "idle" and w.painted > 0, timeout=5000)
        assert any(m.startswith("pipeline: ended") for m in w.status_messages)
        assert w.start_action.isEnabled() and w.last_error is None

    def test_pipeline_that_ends_before_its_start_is_adopted_returns_to_idle(
        self, make_window, qtbot, settings
    ) -> None:
        # A source that fails at once (a corrupt image) ends the pipeline inside start(): the "ended"
        # signal reaches the UI thread before the finished start job does.
        class EndsAtOnce:
            engine = None

            def __init__(self, on_status) -> None:
                self.on_status = on_status

            def start(self) -> None:
                self.on_status("pipeline", "failed", "IR: cannot decode")

            def stop(self) -> None:
                pass

            def stats(self) -> dict:
                return {}

        w = make_window(settings, pipeline_factory=lambda s, on_result, on_status: EndsAtOnce(on_status))
        qtbot.waitUntil(lambda: w.worker.state == "idle" and w.last_error is not None, timeout=3000)
        assert "cannot decode" in w.last_error and w.start_action.isEnabled()

    def test_an_error_is_not_hidden_by_the_routine_lines_after_it(self, make_window, qtbot, settings) -> None:
        w = make_window(settings, pipeline_factory=synthetic_factory())
        wait_frames(qtbot, w)
        w.show_error("mgfusion unavailable (no CUDA); fusing with laplacian")
        w._on_status("VIS: running", False)  # what the sources report right after
        assert "mgfusion unavailable" in w.message_label.text()
        assert "VIS: running" in w.status_messages  # still logged

    def test_quick_snapshots_each_get_their_files(self, make_window, qtbot, settings) -> None:
        w = make_window(settings, pipeline_factory=synthetic_factory())
        wait_frames(qtbot, w)
        done = []
        w._snapshot_done = done.append  # called on the UI thread as each background write finishes
        for _ in range(3):
            w.snapshot()
        qtbot.waitUntil(lambda: len(done) == 3, timeout=5000)
        stems = {p.name.rsplit("_settings", 1)[0] for d in done for k, p in d.items() if k == "settings"}
        assert len(stems) == 3 and len(list(Path(settings.record.output_dir).glob("*_settings.json"))) == 3

    def test_calibration_opens_one_dialog(self, make_window, qtbot, settings) -> None:
        w = make_window(settings, pipeline_factory=synthetic_factory())
        wait_frames(qtbot, w)
        w.open_calibration()
        first = w._calibration_dialog
        w.open_calibration()
        assert w._calibration_dialog is first
        first.close()

    def test_start_error_is_shown_not_raised(self, make_window, qtbot, settings, tmp_path) -> None:
        settings.sources.ir = str(tmp_path / "missing.mp4")
        settings.sources.vis = str(tmp_path / "missing2.mp4")
        w = make_window(settings)
        qtbot.waitUntil(lambda: w.last_error is not None, timeout=5000)
        assert "not found" in w.last_error and "not found" in w.message_label.text()
        assert w.worker.state == "idle" and w.start_action.isEnabled()

    def test_settings_saved_on_close(self, make_window, qtbot, settings, tmp_path) -> None:
        w = make_window(settings, pipeline_factory=synthetic_factory(), settings_path=tmp_path / "s.yaml")
        wait_frames(qtbot, w)
        w.palette_box.setCurrentText("jet")
        w.clip_spin.setValue(5)
        w.rec_ir_action.setChecked(True)
        w.close()
        saved = load_settings(tmp_path / "s.yaml")
        assert saved.display.palette == "jet" and saved.engine.clip_refresh == 5 and saved.record.raw_ir

    def test_demo_does_not_overwrite_the_users_sources(self, make_window, qtbot, settings, tmp_path) -> None:
        path = tmp_path / "s.yaml"
        mine = settings.copy()
        mine.sources.ir, mine.sources.vis, mine.engine.rig = "/dev/video1", "/dev/video0", "my_rig.yaml"
        from fusioncam.config import save_settings

        save_settings(mine, path)
        settings.sources.ir = settings.sources.vis = "synthetic"
        w = make_window(
            settings, pipeline_factory=synthetic_factory(), settings_path=path, persist_sources=False
        )
        w.palette_box.setCurrentText("turbo")
        w.close()
        saved = load_settings(path)
        assert saved.sources.ir == "/dev/video1" and saved.engine.rig == "my_rig.yaml"
        assert saved.display.palette == "turbo"


def test_worker_rate_counts_results_and_prepares_frames(qtbot) -> None:
    ir, vis = SyntheticSource((W, H), seed=1), SyntheticSource((W, H), color=True, seed=2)
    ir.start()
    vis.start()
    engine = FusionEngine("average", device="cpu")
    worker = PipelineWorker()
    assert worker.result_rate() == 0.0 and worker.latest() is None
    with qtbot.waitSignal(worker.frame_ready):
        for _ in range(3):
            worker._on_result(engine.process(FramePair(ir.read(), vis.read())))
    frames = worker.latest()
    assert frames.result.index == 2 and frames.ir.shape == (H, W, 3) and frames.vis.shape == (H, W, 3)
    assert worker.latest() is None  # taken: nothing new until the next result
    assert worker.result_rate() > 0


def test_format_stats() -> None:
    line = format_stats(
        {
            "fps": 29.7,
            "latency_ms_mean": 41.2,
            "dropped_pairs": 3,
            "skipped_pairs": 1,
            "sources": {"ir": {"state": "reconnecting"}, "vis": {"state": "running"}},
            "engine": {"method": "mgfusion", "device": "cpu"},
        }
    )
    for part in (
        "29.7 fps",
        "latency 41 ms",
        "dropped 3",
        "skipped 1",
        "IR: reconnecting",
        "mgfusion on cpu",
    ):
        assert part in line
    assert format_stats(None) == ""


class TestFrameView:
    def test_keeps_the_buffer_and_maps_clicks(self, qtbot) -> None:
        v = FrameView("x")
        qtbot.addWidget(v)
        v.resize(200, 100)
        img = np.zeros((50, 100), np.uint8)
        img[:, 50:] = 255
        v.set_frame(img)
        assert v.frame() is img  # the widget holds the array the QImage points into
        v.show()
        with qtbot.waitSignal(v.clicked) as sig:
            from PyQt6.QtCore import QPoint, Qt

            qtbot.mouseClick(v, Qt.MouseButton.LeftButton, pos=QPoint(150, 50))
        x, y = sig.args
        assert x == pytest.approx(74.5, abs=1) and y == pytest.approx(24.5, abs=1)
        out = grab_array(v)
        assert out[50, 20:80].mean() < 60 and out[50, 120:180].mean() > 200

    def test_rejects_non_uint8(self, qtbot) -> None:
        v = FrameView()
        qtbot.addWidget(v)
        with pytest.raises(ValueError):
            v.set_frame(np.zeros((4, 4), np.float32))


class TestCalibrationDialog:
    def test_load_rig_shows_preview(self, qtbot, tmp_path) -> None:
        ir = SyntheticSource((W, H), seed=1)
        ir.start()
        img = ir.read().image
        rig_path = tmp_path / "rig.yaml"
        Rig.identity((W, H)).save(rig_path)
        dlg = CalibrationDialog(img, img.copy(), rig_path=str(rig_path))
        qtbot.addWidget(dlg)
        assert dlg.rig is not None and non_uniform(dlg.preview_view.frame())
        with qtbot.waitSignal(dlg.rig_applied) as sig:
            dlg.apply()
        assert sig.args[1] == str(rig_path)

    def test_automatic_estimate_runs_off_the_gui_thread(self, qtbot) -> None:
        from test_calibration_auto import _synthetic_pair

        from fusioncam.calibration.report import transfer_error

        vis_H_ir = np.array([[1.2, 0.0, 12.0], [0.0, 1.2, -6.0], [0, 0, 1.0]])
        ir_img, vis_img = _synthetic_pair(vis_H_ir)
        dlg = CalibrationDialog(ir_img, vis_img)
        qtbot.addWidget(dlg)
        with qtbot.waitSignal(dlg.auto_finished, timeout=30000):
            assert dlg.start_auto()
            assert not dlg.auto_button.isEnabled() and "estimating" in dlg.report.toPlainText()
        assert dlg.auto_button.isEnabled() and dlg.rig is not None
        assert transfer_error(dlg.rig.vis_H_ir, vis_H_ir, (400, 300)) < 1.0
        assert dlg.rig.method == "auto" and "automatic estimate" in dlg.report.toPlainText()
        assert non_uniform(dlg.preview_view.frame())

    def test_automatic_refusal_is_reported_not_applied(self, qtbot) -> None:
        flat = np.full((120, 160), 80, np.uint8)
        dlg = CalibrationDialog(flat, flat.copy())
        qtbot.addWidget(dlg)
        with qtbot.waitSignal(dlg.auto_finished, timeout=30000):
            dlg.start_auto()
        assert dlg.rig is None and "refused" in dlg.report.toPlainText()
        assert dlg.auto_button.isEnabled()

    def test_automatic_without_images(self, qtbot) -> None:
        dlg = CalibrationDialog(None, None)
        qtbot.addWidget(dlg)
        assert not dlg.start_auto() and "no images" in dlg.report.toPlainText()

    def test_point_pairs_estimate_a_rig_and_save_it(self, qtbot, tmp_path) -> None:
        vis = SyntheticSource((W, H), seed=2)
        vis.start()
        vis_img = vis.read().image
        H_true = np.array([[1.0, 0, 4.0], [0, 1.0, -3.0], [0, 0, 1]])
        ir_img = cv2.warpPerspective(vis_img, np.linalg.inv(H_true), (W, H))
        dlg = CalibrationDialog(ir_img, vis_img)
        qtbot.addWidget(dlg)
        for x, y in [(10, 10), (50, 8), (52, 40), (8, 38), (30, 22)]:
            dlg.add_point("ir", x, y)
            dlg.add_point("vis", x + 4, y - 3)
        assert dlg.rig is not None
        assert np.allclose(dlg.rig.vis_H_ir, H_true, atol=1e-3)
        assert non_uniform(dlg.preview_view.frame()) and "vis_H_ir" in dlg.report.toPlainText()
        dlg.save_rig(tmp_path / "rig.yaml")
        assert np.allclose(Rig.load(tmp_path / "rig.yaml").vis_H_ir, H_true, atol=1e-3)
        dlg.undo()
        assert len(dlg.vis_points) == len(dlg.ir_points) == 4  # a whole pair is undone
        dlg.add_point("ir", 30, 22)
        dlg.undo()
        assert len(dlg.ir_points) == 4  # a half pair is undone first

    def test_clearing_the_points_drops_the_rig_made_from_them(self, qtbot) -> None:
        img = SyntheticSource((W, H), seed=2)
        img.start()
        vis_img = img.read().image
        dlg = CalibrationDialog(vis_img, vis_img.copy())
        qtbot.addWidget(dlg)
        for x, y in [(10, 10), (50, 8), (52, 40), (8, 38)]:
            dlg.add_point("ir", x, y)
            dlg.add_point("vis", x, y)
        assert dlg.rig is not None
        dlg.clear_points()
        assert dlg.rig is None and dlg.preview_view.frame() is None and dlg.apply() is None
