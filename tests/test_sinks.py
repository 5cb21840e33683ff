"""Sinks: complete outputs appear under their names only when finished; failures leave nothing."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from fusioncam.errors import FusioncamError
from fusioncam.io.sinks import ImageDirSink, ImageSink, VideoSink, open_sink, output_kind


def frame(v: int = 100, size=(40, 30), color=False) -> np.ndarray:
    shape = (size[1], size[0], 3) if color else (size[1], size[0])
    return np.full(shape, v, np.uint8)


def read_video(path):
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return fps, frames


def listing(folder):
    return sorted(os.listdir(folder))


class TestVideoSink:
    @pytest.mark.parametrize("ext", [".mp4", ".avi"])
    def test_writes_playable_video(self, tmp_path, ext):
        path = tmp_path / f"out{ext}"
        with VideoSink(path, fps=12.0) as sink:
            for i in range(8):
                sink.write(frame(20 * i, color=i % 2 == 0))  # gray and colour frames both accepted
            assert not path.exists()  # still under its temporary name
            assert listing(tmp_path) == [f".out.partial{ext}"]
        fps, frames = read_video(path)
        assert fps == pytest.approx(12.0) and len(frames) == 8
        assert frames[0].shape == (30, 40, 3)
        assert abs(frames[5][..., 0].mean() - 100) < 6
        assert listing(tmp_path) == [f"out{ext}"]

    def test_exception_aborts_and_keeps_old_output(self, tmp_path):
        path = tmp_path / "out.mp4"
        path.write_bytes(b"previous result")
        with pytest.raises(RuntimeError):
            with VideoSink(path, fps=10) as sink:
                sink.write(frame())
                raise RuntimeError("boom")
        assert path.read_bytes() == b"previous result"
        assert listing(tmp_path) == ["out.mp4"]

    def test_size_change_refused(self, tmp_path):
        sink = VideoSink(tmp_path / "v.avi", fps=10)
        sink.write(frame(size=(40, 30)))
        with pytest.raises(FusioncamError, match="40x30"):
            sink.write(frame(size=(20, 10)))
        sink.abort()
        assert listing(tmp_path) == []

    def test_no_frames_no_file(self, tmp_path):
        with VideoSink(tmp_path / "v.mp4", fps=10):
            pass
        assert listing(tmp_path) == []

    def test_bad_arguments(self, tmp_path):
        with pytest.raises(FusioncamError, match="unknown video type"):
            VideoSink(tmp_path / "v.flv", fps=10)
        with pytest.raises(FusioncamError, match="fps"):
            VideoSink(tmp_path / "v.mp4", fps=0)
        with pytest.raises(FusioncamError, match="does not exist"):
            VideoSink(tmp_path / "missing" / "v.mp4", fps=10)


class TestImageSink:
    def test_one_image(self, tmp_path):
        path = tmp_path / "f.png"
        with ImageSink(path) as sink:
            sink.write(frame(77))
            assert not path.exists()
        assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[0, 0] == 77
        assert listing(tmp_path) == ["f.png"]

    def test_second_frame_is_an_error_and_nothing_written(self, tmp_path):
        path = tmp_path / "f.jpg"
        with pytest.raises(FusioncamError, match="more than one frame"):
            with ImageSink(path) as sink:
                sink.write(frame())
                sink.write(frame())
        assert listing(tmp_path) == []

    def test_unknown_type(self, tmp_path):
        with pytest.raises(FusioncamError):
            ImageSink(tmp_path / "f.xyz")


class TestImageDirSink:
    def test_numbered_frames_appear_on_close(self, tmp_path):
        out = tmp_path / "frames"
        with ImageDirSink(out) as sink:
            for i in range(3):
                sink.write(frame(i))
            assert not out.exists()
        assert listing(out) == ["000000.png", "000001.png", "000002.png"]
        assert cv2.imread(str(out / "000002.png"), cv2.IMREAD_UNCHANGED)[0, 0] == 2
        assert listing(tmp_path) == ["frames"]  # staging folder gone

    def test_named_frames(self, tmp_path):
        with ImageDirSink(tmp_path / "o") as sink:
            sink.write(frame(), name="00012.png")
            with pytest.raises(FusioncamError):
                sink.write(frame(), name="../evil.png")
        assert listing(tmp_path / "o") == ["00012.png"]

    def test_abort_leaves_existing_folder_untouched(self, tmp_path):
        out = tmp_path / "frames"
        out.mkdir()
        (out / "000000.png").write_bytes(b"old")
        with pytest.raises(KeyboardInterrupt):
            with ImageDirSink(out) as sink:
                sink.write(frame())
                raise KeyboardInterrupt
        assert (out / "000000.png").read_bytes() == b"old"
        assert listing(tmp_path) == ["frames"]

    def test_a_shorter_run_replaces_the_whole_folder(self, tmp_path):
        """Frames of an older, longer run must not stay behind the new ones."""
        out = tmp_path / "frames"
        for n in (5, 2):
            with ImageDirSink(out) as sink:
                for i in range(n):
                    sink.write(frame(i))
        assert listing(out) == ["000000.png", "000001.png"]
        assert listing(tmp_path) == ["frames"]  # neither the staging nor the old folder left behind

    def test_folder_with_more_than_images_is_refused(self, tmp_path):
        out = tmp_path / "frames"
        out.mkdir()
        (out / "notes.txt").write_text("mine")
        with pytest.raises(FusioncamError, match="holds more than images"):
            ImageDirSink(out)
        assert (out / "notes.txt").read_text() == "mine"

    def test_two_frames_of_one_name(self, tmp_path):
        with ImageDirSink(tmp_path / "o") as sink:
            sink.write(frame(), name="a.png")
            with pytest.raises(FusioncamError, match="two frames named a.png"):
                sink.write(frame(), name="a.png")

    def test_file_in_the_way(self, tmp_path):
        (tmp_path / "x").write_text("")
        with pytest.raises(FusioncamError, match="not a folder"):
            ImageDirSink(tmp_path / "x")


class TestOpenSink:
    def test_dispatch(self, tmp_path):
        assert isinstance(open_sink(tmp_path / "a.mp4", 30), VideoSink)
        assert isinstance(open_sink(tmp_path / "a.avi", 30), VideoSink)
        assert isinstance(open_sink(tmp_path / "a.png"), ImageSink)
        assert isinstance(open_sink(tmp_path / "frames"), ImageDirSink)
        assert isinstance(open_sink(tmp_path), ImageDirSink)  # an existing folder, even with a dot
        assert output_kind(str(tmp_path / "new.d") + "/") == "dir"

    def test_unknown_extension(self, tmp_path):
        with pytest.raises(FusioncamError, match="cannot tell"):
            open_sink(tmp_path / "a.docx")

    def test_missing_parent_is_refused(self, tmp_path):
        with pytest.raises(FusioncamError, match="does not exist"):
            open_sink(tmp_path / "no" / "frames")
