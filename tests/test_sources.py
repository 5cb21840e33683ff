"""Frame sources: files, sequences, images, cameras (where absent: the error), the synthetic source."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from fusioncam.errors import FusioncamError
from fusioncam.io.frames import Frame
from fusioncam.io.sources import (
    CameraSource,
    ImageSequenceSource,
    ImageSource,
    Source,
    SourceKind,
    SourceLost,
    SyntheticSource,
    VideoFileSource,
    classify_spec,
    natural_key,
    open_source,
)

SAMPLES = Path(__file__).resolve().parents[1] / "assets" / "samples"


def write_video(path: Path, n: int = 10, size=(48, 32), fps: float = 10.0, color: bool = True) -> Path:
    """A tiny MJPG .avi (or mp4v .mp4) whose frame i has mean brightness 20 * i."""
    fourcc = "MJPG" if path.suffix == ".avi" else "mp4v"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size, True)
    assert w.isOpened()
    for i in range(n):
        img = np.full((size[1], size[0], 3), 20 * i % 256, np.uint8)
        if color:
            img[:, :, 2] = 255 - img[:, :, 2]
        w.write(img)
    w.release()
    return path


def write_images(folder: Path, names: list[str], size=(16, 12), dtype=np.uint8) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, name in enumerate(names):
        img = np.full((size[1], size[0]), i + 1, dtype) * (100 if dtype == np.uint16 else 10)
        p = folder / name
        assert cv2.imwrite(str(p), img)
        paths.append(p)
    return paths


class TestClassify:
    @pytest.mark.parametrize("spec", [0, "0", "3", "/dev/video7"])
    def test_cameras(self, spec):
        assert classify_spec(spec) is SourceKind.CAMERA

    def test_files(self, tmp_path):
        write_images(tmp_path / "seq", ["a.png"])
        vid = write_video(tmp_path / "v.avi", n=2)
        assert classify_spec(tmp_path / "seq") is SourceKind.SEQUENCE
        assert classify_spec(str(tmp_path / "seq" / "*.png")) is SourceKind.SEQUENCE
        assert classify_spec(tmp_path / "seq" / "a.png") is SourceKind.IMAGE
        assert classify_spec(vid) is SourceKind.VIDEO
        assert classify_spec("synthetic:32x24") is SourceKind.SYNTHETIC

    def test_missing(self, tmp_path):
        with pytest.raises(FusioncamError, match="input not found"):
            classify_spec(tmp_path / "nope.mp4")
        with pytest.raises(FusioncamError, match="does not exist"):
            open_source(tmp_path / "nodir" / "x.png")

    def test_natural_sort(self):
        names = ["f10.png", "f2.png", "F1.png"]
        assert sorted(names, key=natural_key) == ["F1.png", "f2.png", "f10.png"]


class TestVideoFile:
    def test_reads_all_frames_with_timestamps(self, tmp_path):
        path = write_video(tmp_path / "v.avi", n=10, fps=10.0)
        with open_source(path) as src:
            assert isinstance(src, VideoFileSource) and isinstance(src, Source)
            assert src.fps == pytest.approx(10.0) and src.size == (48, 32) and src.frame_count == 10
            assert not src.is_live
            frames = list(src)
        assert [f.index for f in frames] == list(range(10))
        np.testing.assert_allclose([f.t for f in frames], np.arange(10) / 10.0, atol=1e-6)
        assert frames[3].image.shape == (32, 48, 3) and frames[3].image.dtype == np.uint8
        assert abs(frames[3].image[..., 0].mean() - 60) < 4  # decoded content matches frame 3

    def test_loop_keeps_time_increasing(self, tmp_path):
        path = write_video(tmp_path / "v.avi", n=4, fps=10.0)
        src = open_source(path, loop=True)
        src.start()
        frames = [src.read() for _ in range(10)]
        src.stop()
        assert src.frame_count is None
        ts = [f.t for f in frames]
        assert all(b > a for a, b in zip(ts, ts[1:], strict=False))
        np.testing.assert_allclose(ts, np.arange(10) / 10.0, atol=1e-6)
        assert [f.index for f in frames] == list(range(10))
        # the content restarts with the file
        assert abs(frames[4].image[..., 0].mean() - frames[0].image[..., 0].mean()) < 4

    def test_restart_with_start(self, tmp_path):
        path = write_video(tmp_path / "v.avi", n=3)
        src = VideoFileSource(path)
        with src:
            assert len(list(src)) == 3
        with src:
            assert len(list(src)) == 3

    def test_not_a_video(self, tmp_path):
        bad = tmp_path / "bad.mp4"
        bad.write_bytes(b"this is not a video" * 50)
        with pytest.raises(FusioncamError, match="bad.mp4"):
            open_source(bad).start()

    def test_empty_file(self, tmp_path):
        bad = tmp_path / "empty.avi"
        bad.touch()
        with pytest.raises(FusioncamError, match="empty.avi"):
            VideoFileSource(bad).start()

    def test_directory_is_not_a_video(self, tmp_path):
        with pytest.raises(FusioncamError, match="directory"):
            VideoFileSource(tmp_path)

    def test_sample_clip(self):
        path = SAMPLES / "ir_0111_1716.mp4"
        if not path.is_file():
            pytest.skip("sample clip not in assets/samples")
        with open_source(path) as src:
            assert src.fps == pytest.approx(30.0) and src.size == (640, 480) and src.frame_count == 151
            f0, f1 = src.read(), src.read()
        assert f1.t - f0.t == pytest.approx(1 / 30, abs=1e-6)


class TestImageSequence:
    def test_directory_natural_order(self, tmp_path):
        write_images(tmp_path, ["f10.png", "f2.png", "f1.png", "notes.txt"][:3])
        (tmp_path / "notes.txt").write_text("not an image")
        src = open_source(tmp_path, fps=5)
        assert isinstance(src, ImageSequenceSource)
        assert [p.name for p in src.files] == ["f1.png", "f2.png", "f10.png"]
        with src:
            frames = list(src)
        assert [f.t for f in frames] == pytest.approx([0.0, 0.2, 0.4])
        # f1 was written third (value 30), f2 second (20), f10 first (10)
        assert [int(f.image[0, 0]) for f in frames] == [30, 20, 10]
        assert src.frame_count == 3 and src.size == (16, 12) and src.fps == 5

    def test_glob_and_default_fps(self, tmp_path):
        write_images(tmp_path, ["a1.png", "a2.png", "b1.png"])
        with open_source(str(tmp_path / "a*.png")) as src:
            frames = list(src)
        assert len(frames) == 2 and src.fps == 30.0
        assert frames[1].t == pytest.approx(1 / 30)

    def test_sixteen_bit_is_mapped_and_kept(self, tmp_path):
        write_images(tmp_path, ["1.png", "2.png"], dtype=np.uint16)
        with open_source(tmp_path) as src:
            f = src.read()
        assert f.raw is not None and f.raw.dtype == np.uint16 and f.raw[0, 0] == 100
        assert f.image.dtype == np.uint8

    def test_empty_directory(self, tmp_path):
        with pytest.raises(FusioncamError, match="no images"):
            open_source(tmp_path)
        with pytest.raises(FusioncamError, match="no images"):
            open_source(str(tmp_path / "*.png"))

    def test_unreadable_image_is_named(self, tmp_path):
        write_images(tmp_path, ["1.png"])
        (tmp_path / "2.png").write_bytes(b"garbage")
        with open_source(tmp_path) as src:
            src.read()
            with pytest.raises(FusioncamError, match="2.png"):
                src.read()

    def test_loop(self, tmp_path):
        write_images(tmp_path, ["1.png", "2.png"])
        with open_source(tmp_path, loop=True) as src:
            frames = [src.read() for _ in range(5)]
        assert [int(f.image[0, 0]) for f in frames] == [10, 20, 10, 20, 10]
        assert frames[4].t == pytest.approx(4 / 30)


class TestImage:
    def test_single_image(self, tmp_path):
        (p,) = write_images(tmp_path, ["x.png"])
        with open_source(p) as src:
            assert isinstance(src, ImageSource) and src.frame_count == 1
            frames = list(src)
        assert len(frames) == 1 and frames[0].t == 0.0 and frames[0].image.shape == (12, 16)

    def test_repeat(self, tmp_path):
        (p,) = write_images(tmp_path, ["x.png"])
        with ImageSource(p, repeat=3, fps=10) as src:
            frames = list(src)
        assert [f.t for f in frames] == pytest.approx([0, 0.1, 0.2])
        with open_source(p, loop=True) as src:
            assert src.frame_count is None
            assert all(src.read() is not None for _ in range(50))

    def test_bad_image(self, tmp_path):
        p = tmp_path / "x.jpg"
        p.write_bytes(b"\xff\xd8 not really a jpeg")
        with pytest.raises(FusioncamError, match="cannot decode image"):
            open_source(p).start()

    def test_missing_image(self, tmp_path):
        with pytest.raises(FusioncamError, match="not found"):
            ImageSource(tmp_path / "x.png")

    def test_16bit_colour_photo_keeps_its_colour(self, tmp_path):
        """Only single-channel 16-bit images are thermal counts; a deep colour photo stays colour."""
        bgr8 = np.zeros((12, 16, 3), np.uint8)
        bgr8[..., 2] = 200  # red
        bgr8[:, 8:, 0] = 90
        cv2.imwrite(str(tmp_path / "c16.png"), bgr8.astype(np.uint16) * 257)
        with open_source(tmp_path / "c16.png") as src:
            (frame,) = list(src)
        assert frame.raw is None and frame.image.dtype == np.uint8
        np.testing.assert_array_equal(frame.image, bgr8)


class TestCamera:
    def test_missing_device_is_a_clear_error(self):
        dev = "/dev/video99"
        if Path(dev).exists():
            pytest.skip(f"{dev} exists on this machine")
        src = open_source(dev, thermal16=True)
        assert isinstance(src, CameraSource) and src.is_live and src.fourcc == "Y16 "
        with pytest.raises(FusioncamError, match="video99"):
            src.start()

    def test_index_that_cannot_be_opened(self):
        src = open_source("63")
        assert isinstance(src, CameraSource) and src.device == 63
        with pytest.raises(FusioncamError, match="cannot open camera 63"):
            src.start()

    def test_y16_bytes_are_reinterpreted(self):
        cam = CameraSource(0, thermal16=True)
        cam.size = (4, 2)
        raw = np.arange(8, dtype="<u2").reshape(2, 4) + 30000
        as_bytes = raw.view(np.uint8).reshape(2, 8)
        np.testing.assert_array_equal(cam._as_u16(as_bytes), raw)
        with pytest.raises(SourceLost, match="16-bit"):
            cam._as_u16(np.zeros((2, 3), np.uint8))


class FakeV4L2:
    """Stands in for ``cv2.VideoCapture`` on a V4L2 camera: records what is set, serves frames.

    ``y16`` makes it hand Y16 frames back as OpenCV does with RGB conversion off (uint16, or raw bytes
    with ``as_bytes``); ``unplug_after`` makes ``grab`` fail from that frame on, as an unplugged camera.
    """

    opened: list[FakeV4L2] = []

    def __init__(
        self, device, backend, *, size=(8, 6), fps=25.0, y16=False, as_bytes=False, unplug_after=None
    ):
        self.device, self.backend, self.props = device, backend, {}
        self.w, self.h = size
        self.fps, self.y16, self.as_bytes, self.unplug_after = fps, y16, as_bytes, unplug_after
        self.n = 0
        self.released = False
        FakeV4L2.opened.append(self)

    def isOpened(self):
        return True

    def set(self, prop, value):
        self.props[prop] = value
        return True

    def get(self, prop):
        return {
            cv2.CAP_PROP_FPS: self.fps,
            cv2.CAP_PROP_FRAME_WIDTH: float(self.w),
            cv2.CAP_PROP_FRAME_HEIGHT: float(self.h),
            cv2.CAP_PROP_POS_MSEC: 40.0 * self.n,
        }.get(prop, 0.0)

    def grab(self):
        if self.unplug_after is not None and self.n >= self.unplug_after:
            return False
        self.n += 1
        return True

    def retrieve(self):
        if self.y16:
            raw = (np.arange(self.w * self.h, dtype="<u2").reshape(self.h, self.w) + 30000 + self.n).astype(
                "<u2"
            )
            return True, (raw.view(np.uint8).reshape(self.h, 2 * self.w) if self.as_bytes else raw)
        return True, np.full((self.h, self.w, 3), self.n % 256, np.uint8)

    def release(self):
        self.released = True


@pytest.fixture
def fake_camera(monkeypatch):
    """Install :class:`FakeV4L2` in place of ``cv2.VideoCapture``; returns a setter for its options."""
    FakeV4L2.opened = []
    options: dict = {}
    monkeypatch.setattr(cv2, "VideoCapture", lambda device, backend: FakeV4L2(device, backend, **options))
    return options


class TestCameraWithFakeDevice:
    """The camera path without a camera: what is asked of the driver and what comes out of read()."""

    def test_8bit_camera_frames_and_settings(self, fake_camera):
        cam = CameraSource(2, size=(8, 6), fps=30, fourcc="MJPG")
        cam.start()
        cap = FakeV4L2.opened[-1]
        assert cap.device == 2 and cap.backend == cv2.CAP_V4L2
        assert cap.props[cv2.CAP_PROP_FOURCC] == cv2.VideoWriter_fourcc(*"MJPG")
        assert cap.props[cv2.CAP_PROP_FRAME_WIDTH] == 8 and cap.props[cv2.CAP_PROP_FPS] == 30
        assert cv2.CAP_PROP_CONVERT_RGB not in cap.props  # colour conversion stays on for 8-bit
        assert cam.fps == 25.0 and cam.size == (8, 6)  # what the driver granted, not what was asked
        f0, f1 = cam.read(), cam.read()
        assert f0.image.shape == (6, 8, 3) and f0.raw is None
        assert (f0.index, f1.index) == (0, 1) and f0.t <= f1.t
        assert cam.last_buffer_ms == 80.0
        cam.stop()
        assert cap.released

    @pytest.mark.parametrize("as_bytes", [False, True])
    def test_y16_thermal_keeps_counts_and_maps_to_8bit(self, fake_camera, as_bytes):
        fake_camera.update(y16=True, as_bytes=as_bytes)
        cam = CameraSource("0", thermal16=True)
        cam.start()
        cap = FakeV4L2.opened[-1]
        assert cap.props[cv2.CAP_PROP_FOURCC] == cv2.VideoWriter_fourcc(*"Y16 ")
        assert cap.props[cv2.CAP_PROP_CONVERT_RGB] == 0
        f = cam.read()
        assert f.raw.dtype == np.uint16 and f.raw.shape == (6, 8) and int(f.raw.min()) == 30001
        assert f.image.dtype == np.uint8 and f.image.shape == (6, 8)
        assert f.image[0, 0] < f.image[-1, -1]  # counts rise along the rows: so does the rendering

    def test_driver_without_fps_keeps_the_requested_rate(self, fake_camera):
        fake_camera.update(fps=0.0)
        cam = CameraSource(1, fps=9.0)
        cam.start()
        assert cam.fps == 9.0

    def test_unplugged_camera_raises_source_lost(self, fake_camera):
        fake_camera.update(unplug_after=2)
        cam = CameraSource(1)
        cam.start()
        cam.read(), cam.read()
        with pytest.raises(SourceLost, match="stopped delivering"):
            cam.read()

    def test_read_before_start_is_a_clear_error(self):
        with pytest.raises(FusioncamError, match="not started"):
            CameraSource(1).read()

    def test_capture_thread_reconnects_an_unplugged_camera(self, fake_camera):
        """Through the capture thread: after the camera drops, it is reopened and frames flow again."""
        from fusioncam.io.capture import CaptureThread

        fake_camera.update(unplug_after=3)
        thread = CaptureThread(
            CameraSource(1), name="vis", watchdog_timeout=0.05, backoff_initial=0.01, backoff_max=0.02
        )
        thread.start()
        try:
            deadline = time.monotonic() + 5.0
            while (thread.reconnects < 1 or thread.frames < 5) and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            thread.stop()
        assert thread.reconnects >= 1 and thread.frames >= 5
        assert len(FakeV4L2.opened) >= 2 and FakeV4L2.opened[0].released


class TestSynthetic:
    def test_count_size_timestamps(self):
        with SyntheticSource(size=(40, 30), fps=20, count=5) as src:
            frames = list(src)
        assert len(frames) == 5 and frames[0].image.shape == (30, 40)
        assert [f.t for f in frames] == pytest.approx([0, 0.05, 0.1, 0.15, 0.2])
        assert not np.array_equal(frames[0].image, frames[1].image)  # it moves

    def test_thermal16(self):
        with SyntheticSource(thermal16=True, count=2) as src:
            f = src.read()
        assert f.raw.dtype == np.uint16 and f.raw.min() >= 30000 and f.image.dtype == np.uint8

    def test_unplug_and_reconnect(self):
        src = SyntheticSource(count=None, fail_after=3, live=True)
        src.start()
        got = [src.read() for _ in range(3)]
        assert all(isinstance(f, Frame) for f in got)
        with pytest.raises(SourceLost):
            src.read()
        src.start()  # reconnect
        assert src.read().index == 3

    def test_fail_to_open(self):
        src = SyntheticSource(fail_starts=2)
        for _ in range(2):
            with pytest.raises(FusioncamError):
                src.start()
        src.start()
        assert src.read() is not None

    def test_spec(self):
        src = open_source("synthetic:32x24", loop=True)
        src.start()
        assert src.read().image.shape == (24, 32) and src.frame_count is None
        with pytest.raises(FusioncamError, match="synthetic"):
            open_source("synthetic:big")

    def test_bad_fps(self):
        with pytest.raises(FusioncamError, match="fps"):
            open_source("synthetic", fps=0)
