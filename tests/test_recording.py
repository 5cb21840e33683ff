"""Recorder (playable files, frame count, fps from timestamps, sidecar, drops) and SnapshotWriter."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from fusioncam.config import RecordSettings
from fusioncam.errors import FusioncamError
from fusioncam.io.frames import FramePair
from fusioncam.io.recording import (
    Recorder,
    SnapshotWriter,
    apply_palette,
    compose_side_by_side,
    estimate_fps,
)
from fusioncam.io.sources import SyntheticSource
from fusioncam.live.engine import FusionEngine

W, H = 64, 48


def make_results(n: int, fps: float = 25.0, thermal16: bool = False, t0: float = 100.0) -> list:
    """Real FusedResults from the engine on synthetic frames stamped at ``fps``."""
    ir = SyntheticSource((W, H), fps=fps, count=n, thermal16=thermal16, t0=t0, seed=1)
    vis = SyntheticSource((W, H), fps=fps, count=n, color=True, t0=t0, seed=2)
    ir.start()
    vis.start()
    engine = FusionEngine("average", device="cpu")
    return [engine.process(FramePair(ir.read(), vis.read())) for _ in range(n)]


def read_video(path: Path) -> tuple[int, float, tuple[int, int]]:
    """(frames actually decoded, container fps, (w, h)) with OpenCV, as a player would read it."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"{path} is not playable"
    fps = cap.get(cv2.CAP_PROP_FPS)
    n, size = 0, None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n += 1
        size = (frame.shape[1], frame.shape[0])
    cap.release()
    return n, fps, size


class TestRecorder:
    def test_playable_files_with_frame_count_fps_and_sidecar(self, tmp_path: Path) -> None:
        results = make_results(40, fps=25.0)
        rec = Recorder(
            tmp_path,
            RecordSettings(side_by_side=True, raw_ir=True, raw_vis=True),
            settings={"engine": {"method": "average"}},
        )
        folder = rec.start()
        for r in results:
            assert rec.submit(r)
        summary = rec.stop()
        assert summary.error is None and summary.frames == 40 and summary.dropped == 0
        assert set(summary.files) == {"fused", "side_by_side", "ir", "vis"}
        for name, path in summary.files.items():
            n, fps, size = read_video(path)
            assert n == 40, name
            assert fps == pytest.approx(25.0, abs=0.01), name
            assert size == ((3 * W, H) if name == "side_by_side" else (W, H)), name
        assert not [p for p in folder.iterdir() if "partial" in p.name]
        meta = json.loads((folder / "recording.json").read_text())
        assert meta["frames"] == 40 and meta["fps"] == pytest.approx(25.0)
        assert meta["settings"] == {"engine": {"method": "average"}}
        assert [f["vis_index"] for f in meta["frames_info"]] == list(range(40))
        assert meta["frames_info"][1]["t"] - meta["frames_info"][0]["t"] == pytest.approx(0.04)

    def test_raw_16bit_ir_is_recorded_losslessly(self, tmp_path: Path) -> None:
        results = make_results(6, thermal16=True)
        rec = Recorder(tmp_path, RecordSettings(raw_ir=True))
        rec.start()
        for r in results:
            rec.submit(r)
        summary = rec.stop()
        assert summary.files["ir_raw16"].name == "ir_raw16.mkv" and summary.files["ir"].is_file()
        cap = cv2.VideoCapture(str(summary.files["ir_raw16"]), cv2.CAP_FFMPEG, [cv2.CAP_PROP_CONVERT_RGB, 0])
        got = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            got.append(frame.reshape(H, W))
        assert len(got) == 6
        assert all(
            g.dtype == np.uint16 and np.array_equal(g, r.pair.ir.raw)
            for g, r in zip(got, results, strict=True)
        )

    def test_fps_comes_from_the_timestamps(self, tmp_path: Path) -> None:
        summary = _record(tmp_path, make_results(20, fps=10.0))
        assert summary.fps == pytest.approx(10.0)
        assert read_video(summary.files["fused"])[1] == pytest.approx(10.0, abs=0.01)

    def test_short_recording_is_finalised(self, tmp_path: Path) -> None:
        summary = _record(tmp_path, make_results(4, fps=20.0))  # fewer than the fps probe
        assert summary.frames == 4 and summary.fps == pytest.approx(20.0)
        assert read_video(summary.files["fused"])[0] == 4

    def test_files_appear_only_when_stopped(self, tmp_path: Path) -> None:
        results = make_results(20)
        rec = Recorder(tmp_path, RecordSettings(), fps_probe_frames=5)
        folder = rec.start()
        for r in results:
            rec.submit(r)
        while rec.written < 20 and rec.error is None:
            threading.Event().wait(0.01)
        assert not (folder / "fused.mp4").exists()  # still a temporary name while recording
        rec.stop()
        assert (folder / "fused.mp4").is_file()
        assert rec.stop() is rec.stop()  # idempotent

    def test_nothing_recorded_leaves_nothing(self, tmp_path: Path) -> None:
        rec = Recorder(tmp_path, RecordSettings())
        folder = rec.start()
        summary = rec.stop()
        assert summary.frames == 0 and summary.files == {} and not folder.exists()

    def test_full_queue_drops_and_counts_without_blocking(self, tmp_path: Path) -> None:
        release = threading.Event()

        class SlowSink:
            def __init__(self) -> None:
                self.n = 0

            def write(self, frame: np.ndarray) -> None:
                release.wait(10)
                self.n += 1

            def close(self) -> None: ...

            def abort(self) -> None: ...

        sinks: list[SlowSink] = []

        def factory(path, fps, size):
            sinks.append(SlowSink())
            return sinks[-1]

        rec = Recorder(tmp_path, RecordSettings(queue_size=2), fps_probe_frames=2, sink_factory=factory)
        rec.start()
        results = make_results(12)
        accepted = [rec.submit(r) for r in results]  # returns at once although the sink is stuck
        release.set()
        summary = rec.stop()
        assert summary.dropped == accepted.count(False) >= 12 - 2 - 2 - 1
        assert summary.frames == accepted.count(True) == sinks[0].n

    def test_a_failing_writer_is_reported_not_raised(self, tmp_path: Path) -> None:
        def factory(path, fps, size):
            raise FusioncamError("disk full")

        rec = Recorder(tmp_path, RecordSettings(), fps_probe_frames=2, sink_factory=factory)
        rec.start()
        for r in make_results(5):
            rec.submit(r)
        summary = rec.stop()
        assert summary.error and "disk full" in summary.error
        assert json.loads(summary.sidecar.read_text())["error"] == summary.error

    def test_each_recording_gets_its_own_folder(self, tmp_path: Path) -> None:
        a = _record(tmp_path, make_results(3))
        b = _record(tmp_path, make_results(3))
        assert a.folder != b.folder and a.files["fused"].is_file() and b.files["fused"].is_file()


def _record(tmp_path: Path, results: list):
    rec = Recorder(tmp_path, RecordSettings())
    rec.start()
    for r in results:
        rec.submit(r)
    return rec.stop()


class TestEstimateFps:
    def test_median_ignores_outliers_and_wraps(self) -> None:
        ts = [i / 30 for i in range(10)] + [0.0, 1 / 30] + [0.5 + i / 30 for i in range(5)]
        assert estimate_fps(ts, 7.0) == pytest.approx(30.0)

    def test_fallback_without_intervals(self) -> None:
        assert estimate_fps([1.0], 12.0) == 12.0
        assert estimate_fps([], 12.0) == 12.0


class TestSnapshot:
    def test_writes_all_images_settings_and_raw16(self, tmp_path: Path) -> None:
        result = make_results(3, thermal16=True)[-1]
        paths = SnapshotWriter(tmp_path / "snaps", palette="ironbow").write(
            result, {"display": {"palette": "ironbow"}}
        )
        assert set(paths) == {"ir", "ir_registered", "vis", "fused", "side_by_side", "ir_raw16", "settings"}
        for p in paths.values():
            assert p.is_file() and p.stat().st_size > 0
        raw = cv2.imread(str(paths["ir_raw16"]), cv2.IMREAD_UNCHANGED)
        assert raw.dtype == np.uint16 and np.array_equal(raw, result.pair.ir.raw)
        sbs = cv2.imread(str(paths["side_by_side"]))
        assert sbs.shape == (H, 3 * W, 3)
        assert np.array_equal(cv2.imread(str(paths["fused"])), result.fused)
        meta = json.loads(paths["settings"].read_text())
        assert meta["settings"] == {"display": {"palette": "ironbow"}} and meta["files"]["ir_raw16"]
        assert not [p for p in (tmp_path / "snaps").iterdir() if p.name.startswith(".")]

    def test_8bit_source_has_no_raw_file_and_names_do_not_collide(self, tmp_path: Path) -> None:
        result = make_results(2)[-1]
        w = SnapshotWriter(tmp_path)
        a, b = w.write(result), w.write(result)
        assert "ir_raw16" not in a and a["fused"] != b["fused"] and a["fused"].is_file()


class TestPalette:
    @pytest.mark.parametrize("palette", ["inferno", "ironbow", "jet", "turbo"])
    def test_fixed_mapping_no_autoscale(self, palette: str) -> None:
        """The same gray level gets the same colour whatever else is in the frame (no flicker)."""
        dark = np.full((4, 4), 100, np.uint8)
        wide = dark.copy()
        wide[0, 0], wide[0, 1] = 0, 255
        a, b = apply_palette(dark, palette), apply_palette(wide, palette)
        assert a.shape == (4, 4, 3) and np.array_equal(a[2, 2], b[2, 2])
        assert not np.array_equal(b[0, 0], b[0, 1])

    def test_gray_keeps_intensities(self) -> None:
        g = np.arange(256, dtype=np.uint8).reshape(16, 16)
        out = apply_palette(g, "gray")
        assert all(np.array_equal(out[:, :, c], g) for c in range(3))

    def test_bad_inputs(self) -> None:
        with pytest.raises(FusioncamError, match="palette"):
            apply_palette(np.zeros((4, 4), np.uint8), "rainbow")
        with pytest.raises(FusioncamError):
            apply_palette(np.zeros((4, 4), np.uint16), "gray")

    def test_side_by_side_scales_to_common_height(self) -> None:
        out = compose_side_by_side([np.zeros((10, 20), np.uint8), np.zeros((20, 20, 3), np.uint8)], height=10)
        assert out.shape == (10, 30, 3)
