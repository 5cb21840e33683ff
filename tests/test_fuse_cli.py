"""`fusioncam fuse` end to end, in-process: images, folders, videos, side-by-side, bad inputs."""

from __future__ import annotations

import io
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from fusioncam.cli import main
from fusioncam.errors import FusioncamError
from fusioncam.offline.fuse import compose_side_by_side, fuse_files
from fusioncam.processing.registration import Rig
from fusioncam.progress import ProgressBar, format_seconds

SAMPLES = Path(__file__).resolve().parents[1] / "assets" / "samples"


def write_pair_images(folder: Path, n: int, size=(48, 32), names=None, vis_color=True) -> tuple[Path, Path]:
    ir_dir, vis_dir = folder / "ir", folder / "vis"
    ir_dir.mkdir(parents=True)
    vis_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        name = names[i] if names else f"{i:03d}.png"
        ir = np.full((size[1], size[0]), 30, np.uint8)
        ir[8:16, 8 + i : 16 + i] = 250
        vis = rng.integers(
            60, 160, (size[1], size[0], 3) if vis_color else (size[1], size[0]), dtype=np.uint8
        )
        cv2.imwrite(str(ir_dir / name), ir)
        cv2.imwrite(str(vis_dir / name), vis)
    return ir_dir, vis_dir


def write_video(path: Path, n: int, size=(48, 32), fps: float = 10.0, gray_ir: bool = False) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size, True)
    assert w.isOpened()
    for i in range(n):
        img = np.full((size[1], size[0], 3), 40, np.uint8)
        if gray_ir:
            img[8:16, 8 + i : 16 + i] = 250
        else:
            img[..., 1] = 100 + 5 * i
        w.write(img)
    w.release()
    return path


def video_info(path: Path) -> tuple[int, float, tuple[int, int]]:
    """(frames actually decoded, fps, (w, h))."""
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    n, size = 0, None
    while True:
        ok, img = cap.read()
        if not ok:
            break
        n += 1
        size = (img.shape[1], img.shape[0])
    cap.release()
    return n, fps, size


def run_cli(capsys, *args) -> tuple[int, str, str]:
    rc = main(["fuse", *map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class TestHappyPaths:
    def test_two_images_colour_result(self, tmp_path, capsys):
        ir_dir, vis_dir = write_pair_images(tmp_path, 1)
        out = tmp_path / "fused.png"
        rc, _, err = run_cli(capsys, "--ir", ir_dir / "000.png", "--vis", vis_dir / "000.png", "-o", out)
        assert rc == 0, err
        img = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
        assert img.shape == (32, 48, 3)
        assert "fuse: 1 frames" in err and "laplacian" in err

    def test_shipped_weights_by_name(self, tmp_path, capsys):
        # --weights takes a shipped checkpoint's name, as `fusioncam eval` and the live app do
        ir_dir, vis_dir = write_pair_images(tmp_path, 1)
        out = tmp_path / "fused.png"
        ir, vis = ir_dir / "000.png", vis_dir / "000.png"
        args = ["--ir", ir, "--vis", vis, "-o", out, "--method", "mgfusion", "--device", "cpu"]
        rc, _, err = run_cli(capsys, *args, "--weights", "mgfusion_fast_noclip")
        assert rc == 0, err
        assert cv2.imread(str(out)).shape == (32, 48, 3)
        rc, _, err = run_cli(capsys, *args, "--weights", "mgfusion_nope")
        assert rc == 2 and "nor is it a shipped checkpoint: mgfusion_fast_noclip" in err

    def test_image_folders_keep_vis_names(self, tmp_path, capsys):
        names = ["a1.png", "a2.png", "a10.png"]
        ir_dir, vis_dir = write_pair_images(tmp_path, 3, names=names)
        out = tmp_path / "out"
        rc, _, err = run_cli(capsys, "--ir", ir_dir, "--vis", vis_dir, "-o", out, "--method", "average")
        assert rc == 0, err
        assert sorted(os.listdir(out)) == sorted(names)
        assert "warning" not in err

    def test_video_with_side_by_side_and_frames(self, tmp_path, capsys):
        ir = write_video(tmp_path / "ir.avi", 10, gray_ir=True)
        vis = write_video(tmp_path / "vis.avi", 10)
        out, sbs, frames = tmp_path / "f.mp4", tmp_path / "sbs.avi", tmp_path / "frames"
        rc, _, err = run_cli(
            capsys, "--ir", ir, "--vis", vis, "-o", out, "--side-by-side", sbs, "--frames-dir", frames
        )
        assert rc == 0, err
        assert video_info(out) == (10, pytest.approx(10.0), (48, 32))
        assert video_info(sbs) == (10, pytest.approx(10.0), (144, 32))
        assert len(os.listdir(frames)) == 10
        assert not [p for p in os.listdir(tmp_path) if "partial" in p]

    def test_max_frames_and_count_mismatch_reported(self, tmp_path, capsys):
        ir = write_video(tmp_path / "ir.avi", 7)
        vis = write_video(tmp_path / "vis.avi", 5)
        rc, _, err = run_cli(capsys, "--ir", ir, "--vis", vis, "-o", tmp_path / "a.avi")
        assert rc == 0
        assert "IR has 7 frames, VIS 5: the last 2 IR frames are unpaired" in err
        rc, _, err = run_cli(capsys, "--ir", ir, "--vis", vis, "-o", tmp_path / "b.avi", "--max-frames", "3")
        assert rc == 0 and video_info(tmp_path / "b.avi")[0] == 3
        assert "unpaired" not in err

    def test_frame_rates_differ_pairs_by_time(self, tmp_path, capsys):
        ir = write_video(tmp_path / "ir.avi", 15, fps=15.0)
        vis = write_video(tmp_path / "vis.avi", 10, fps=10.0)
        rc, _, err = run_cli(capsys, "--ir", ir, "--vis", vis, "-o", tmp_path / "o.avi")
        assert rc == 0
        assert "frame rates differ: IR 15 fps, VIS 10 fps; pairing by timestamp" in err
        assert video_info(tmp_path / "o.avi")[:2] == (10, pytest.approx(10.0))

    def test_sizes_differ_without_rig_resizes_with_warning(self, tmp_path, capsys):
        ir_dir, _ = write_pair_images(tmp_path / "a", 1, size=(24, 16))
        _, vis_dir = write_pair_images(tmp_path / "b", 1, size=(48, 32))
        out = tmp_path / "o.png"
        rc, _, err = run_cli(capsys, "--ir", ir_dir, "--vis", vis_dir, "-o", out)
        assert rc == 0 and cv2.imread(str(out)).shape[:2] == (32, 48)
        assert "IR 24x16 and VIS 48x32 differ in size and no rig was given" in err

    def test_rig_is_applied(self, tmp_path):
        ir_dir, vis_dir = write_pair_images(tmp_path, 1, vis_color=False)
        rig_path = tmp_path / "rig.yaml"
        Rig(np.array([[1, 0, 5.0], [0, 1, 3.0], [0, 0, 1]]), (48, 32), (48, 32)).save(rig_path)
        out = tmp_path / "o"
        res = fuse_files(ir_dir, vis_dir, out, rig=rig_path, method="max", side_by_side=tmp_path / "s.png")
        assert res.frames == 1
        sbs = cv2.imread(str(tmp_path / "s.png"), cv2.IMREAD_GRAYSCALE)
        ir_reg = sbs[:, :48]
        ir = cv2.imread(str(ir_dir / "000.png"), cv2.IMREAD_GRAYSCALE)
        np.testing.assert_array_equal(ir_reg[3:, 5:], ir[:-3, :-5])  # shifted by (5, 3)

    def test_side_by_side_composite(self):
        ir = np.zeros((10, 12), np.uint8)
        vis = np.zeros((10, 12, 3), np.uint8)
        assert compose_side_by_side(ir, vis, vis).shape == (10, 36, 3)
        assert compose_side_by_side(ir, ir, ir).shape == (10, 36)

    def test_sample_clip(self, tmp_path, capsys):
        ir, vis = SAMPLES / "ir_0111_1716.mp4", SAMPLES / "vis_0111_1716.mp4"
        if not ir.is_file():
            pytest.skip("sample clips not in assets/samples")
        out = tmp_path / "f.mp4"
        rc, _, err = run_cli(capsys, "--ir", ir, "--vis", vis, "-o", out, "--max-frames", "4")
        assert rc == 0, err
        assert video_info(out) == (4, pytest.approx(30.0), (640, 480))

    def test_real_clip_from_data(self, tmp_path, capsys, data_dir):
        ir, vis = data_dir / "video" / "ir" / "1230_1202.mp4", data_dir / "video" / "vis" / "1230_1202.mp4"
        out = tmp_path / "f.avi"
        rc, _, err = run_cli(
            capsys, "--ir", ir, "--vis", vis, "-o", out, "--max-frames", "3", "--method", "gff"
        )
        assert rc == 0, err
        assert video_info(out) == (3, pytest.approx(22.0), (640, 480))
        assert "gff is a still-image baseline" in err and "flickers" in err  # said, not refused


class TestBadInput:
    """Exit code 2, exactly one line on stderr, and nothing (new or old) damaged."""

    @pytest.fixture
    def inputs(self, tmp_path):
        ir = write_video(tmp_path / "ir.avi", 4)
        vis = write_video(tmp_path / "vis.avi", 4)
        bad = tmp_path / "bad.mp4"
        bad.write_bytes(b"not a video at all" * 100)
        rig = tmp_path / "rig.yaml"
        rig.write_text("vis_H_ir: [[1, 0], [0, 1]]\nir_size: [48, 32]\nvis_size: [48, 32]\n")
        existing = tmp_path / "existing.mp4"
        existing.write_bytes(b"an earlier result")
        return {"ir": ir, "vis": vis, "bad": bad, "rig": rig, "existing": existing, "dir": tmp_path}

    def check_fails(self, capsys, inputs, args, match):
        before = snapshot(inputs["dir"])
        rc, out, err = run_cli(capsys, *args)
        assert rc == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith("fusioncam fuse: error:") and match in lines[0], lines[0]
        assert snapshot(inputs["dir"]) == before  # no partial output, nothing clobbered
        return lines[0]

    @pytest.mark.parametrize(
        "case, match",
        [
            ("missing_input", "input not found"),
            ("undecodable", "bad.mp4"),
            ("unknown_method", "unknown fusion method 'lapalcian' (did you mean 'laplacian'?)"),
            ("malformed_rig", "3x3"),
            ("missing_rig", "rig file not found"),
            ("missing_out_folder", "does not exist"),
            ("output_is_input", "is also an input"),
            ("same_outputs", "give each output its own path"),
            ("unknown_out_ext", "cannot tell what to write"),
            ("image_out_for_video", "is one image"),
            ("image_sbs_for_video", "side-by-side output"),
            ("camera_input", "camera"),
            ("weights_for_classical", "--weights is for network fusers"),
            ("missing_weights", "weights file not found"),
            ("missing_clip_weights", "CLIP weights file not found"),
            ("clip_weights_for_classical", "--clip-weights is for network fusers"),
            ("empty_output_name", "give a file or folder name"),
            ("weights_folder", "is a folder; give a checkpoint file"),
        ],
    )
    def test_bad_inputs(self, capsys, inputs, case, match):
        i = inputs
        d = i["dir"]
        base = ["--ir", i["ir"], "--vis", i["vis"]]
        args = {
            "missing_input": ["--ir", d / "nope.mp4", "--vis", i["vis"], "-o", i["existing"]],
            "undecodable": ["--ir", i["ir"], "--vis", i["bad"], "-o", i["existing"]],
            "unknown_method": [*base, "-o", i["existing"], "--method", "lapalcian"],
            "malformed_rig": [*base, "-o", i["existing"], "--rig", i["rig"]],
            "missing_rig": [*base, "-o", i["existing"], "--rig", d / "none.yaml"],
            "missing_out_folder": [*base, "-o", d / "no" / "such" / "out.mp4"],
            "output_is_input": [*base, "-o", i["vis"]],
            "same_outputs": [*base, "-o", i["existing"], "--side-by-side", i["existing"]],
            "unknown_out_ext": [*base, "-o", d / "out.xyz"],
            "image_out_for_video": [*base, "-o", d / "out.png"],
            "image_sbs_for_video": [*base, "-o", d / "o.mp4", "--side-by-side", d / "s.png"],
            "weights_for_classical": [*base, "-o", d / "o.mp4", "--weights", i["rig"]],
            "missing_weights": [*base, "-o", d / "o.mp4", "--method", "mgfusion", "--weights", d / "w.pt"],
            "missing_clip_weights": [
                *base,
                "-o",
                d / "o.mp4",
                "--method",
                "mgfusion",
                "--clip-weights",
                d / "c.pt",
            ],
            "clip_weights_for_classical": [*base, "-o", d / "o.mp4", "--clip-weights", i["rig"]],
            "empty_output_name": [*base, "-o", ""],
            "weights_folder": [*base, "-o", d / "o.mp4", "--method", "mgfusion", "--weights", d],
            "camera_input": ["--ir", "/dev/video42", "--vis", i["vis"], "-o", d / "o.mp4"],
        }[case]
        self.check_fails(capsys, inputs, args, match)

    def test_failure_mid_run_leaves_no_partial_output(self, tmp_path, capsys):
        ir_dir, vis_dir = write_pair_images(tmp_path, 5)
        (vis_dir / "003.png").write_bytes(b"corrupt")
        out = tmp_path / "out.avi"
        out.write_bytes(b"older video")
        before = snapshot(tmp_path)
        rc, _, err = run_cli(
            capsys, "--ir", ir_dir, "--vis", vis_dir, "-o", out, "--frames-dir", tmp_path / "fr"
        )
        assert rc == 2 and "003.png" in err and len(err.strip().splitlines()) == 1
        assert snapshot(tmp_path) == before
        assert sorted(os.listdir(tmp_path)) == ["ir", "out.avi", "vis"]

    def test_vis_names_that_share_a_stem_give_numbered_frames(self, tmp_path, capsys):
        ir_dir, vis_dir = write_pair_images(tmp_path, 2)
        first = sorted(vis_dir.iterdir())[0]
        cv2.imwrite(str(vis_dir / f"{first.stem}.jpg"), cv2.imread(str(first)))  # one stem twice
        (ir_dir / "999.png").write_bytes(sorted(ir_dir.iterdir())[0].read_bytes())
        rc, _, err = run_cli(capsys, "--ir", ir_dir, "--vis", vis_dir, "-o", tmp_path / "out")
        assert rc == 0 and "output frames are numbered" in err
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
            "000000.png",
            "000001.png",
            "000002.png",
        ]

    def test_frames_dir_inside_input_folder_refused(self, tmp_path, capsys):
        ir_dir, vis_dir = write_pair_images(tmp_path, 2)
        rc, _, err = run_cli(capsys, "--ir", ir_dir, "--vis", vis_dir, "-o", vis_dir)
        assert rc == 2 and "input" in err

    @pytest.mark.parametrize(
        "flag, value, needle",
        [
            ("--max-frames", "0", "--max-frames"),
            ("--fps", "inf", "--fps: must be a finite number > 0"),  # a video writer would hang on it
            ("--fps", "1e9", "--fps: must be at most 1000"),
        ],
    )
    def test_bad_numbers_are_rejected_by_the_parser(self, inputs, capsys, flag, value, needle):
        argv = ["fuse", "--ir", str(inputs["ir"]), "--vis", str(inputs["vis"]), "-o", "x.mp4", flag, value]
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        assert needle in capsys.readouterr().err


class _FailingFuser:
    """Fuses like "max" but misbehaves at frame ``at``: raises, or returns a wrong size."""

    name = "failing"

    def __init__(self, at: int, exc: BaseException | None = None):
        self.at, self.exc, self.n = at, exc, 0

    def fuse(self, ir, vis):
        self.n += 1
        if self.n == self.at:
            if self.exc is not None:
                raise self.exc
            return np.zeros((vis.shape[0] // 2, vis.shape[1]), np.uint8)  # a size the video refuses
        return np.maximum(ir, vis)


class TestInterruptedRuns:
    @pytest.fixture
    def videos(self, tmp_path):
        return write_video(tmp_path / "ir.avi", 8), write_video(tmp_path / "vis.avi", 8)

    def test_write_failure_in_writer_thread_surfaces(self, tmp_path):
        """Pairs of varying size cannot go into one video: the writer's error reaches the caller."""
        ir_a, vis_a = write_pair_images(tmp_path / "a", 3, size=(48, 32))
        ir_b, vis_b = write_pair_images(tmp_path / "b", 3, size=(40, 30))
        for k in range(3):  # the third pair of "a" gets the size of "b"
            (ir_b / f"{k:03d}.png").replace(ir_a / f"{k + 2:03d}.png")
            (vis_b / f"{k:03d}.png").replace(vis_a / f"{k + 2:03d}.png")
        out = tmp_path / "o.mp4"
        out.write_bytes(b"old")
        before = snapshot(tmp_path)
        with pytest.raises(FusioncamError, match="frame 2 is 40x30 but the video o.mp4 is 48x32"):
            fuse_files(ir_a, vis_a, out, frames_dir=tmp_path / "fr")
        assert snapshot(tmp_path) == before

    def test_fuser_returning_a_wrong_size_is_named(self, tmp_path, videos):
        with pytest.raises(FusioncamError, match="fuser 'failing' returned uint8 \\(16, 48\\)"):
            fuse_files(*videos, tmp_path / "o.mp4", fuser=_FailingFuser(at=4))
        assert sorted(os.listdir(tmp_path)) == ["ir.avi", "vis.avi"]

    def test_bug_in_fuser_leaves_nothing(self, tmp_path, videos):
        with pytest.raises(RuntimeError, match="bug"):
            fuse_files(*videos, tmp_path / "o.mp4", fuser=_FailingFuser(at=3, exc=RuntimeError("bug")))
        assert sorted(os.listdir(tmp_path)) == ["ir.avi", "vis.avi"]

    def test_ctrl_c_exits_130_and_leaves_nothing(self, tmp_path, videos, capsys, monkeypatch):
        import fusioncam.offline.fuse as offline

        real = offline._make_fuser
        monkeypatch.setattr(offline, "_make_fuser", lambda *a: _FailingFuser(at=5, exc=KeyboardInterrupt()))
        rc, _, err = run_cli(capsys, "--ir", videos[0], "--vis", videos[1], "-o", tmp_path / "o.mp4")
        monkeypatch.setattr(offline, "_make_fuser", real)
        assert rc == 130 and "interrupted" in err
        assert sorted(os.listdir(tmp_path)) == ["ir.avi", "vis.avi"]

    def test_threaded_and_plain_loops_give_the_same_frames(self, tmp_path, videos):
        fuse_files(*videos, tmp_path / "a", method="laplacian", threads=True)
        fuse_files(*videos, tmp_path / "b", method="laplacian", threads=False)
        assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b") and len(os.listdir(tmp_path / "a")) == 8

    def test_result_counts(self, tmp_path, videos):
        res = fuse_files(*videos, tmp_path / "o.avi", method="average", max_frames=5)
        assert res.frames == 5 and res.method == "average" and res.report.pairs == 5
        assert res.report.stopped_early and res.warnings == []


class TestProgressBar:
    def test_silent_when_not_a_tty_except_summary(self):
        buf = io.StringIO()
        bar = ProgressBar(total=10, label="fuse", stream=buf)
        for _ in range(10):
            bar.update()
        assert buf.getvalue() == ""
        bar.close("done")
        line = buf.getvalue()
        assert line.startswith("fuse: 10 frames in ") and "frames/s) done" in line and line.count("\n") == 1

    def test_draws_on_a_tty(self):
        class Tty(io.StringIO):
            def isatty(self):
                return True

        buf = Tty()
        bar = ProgressBar(total=4, label="x", stream=buf, min_interval=0)
        bar.update(2)
        assert "\r" in buf.getvalue() and "2/4 frames" in buf.getvalue() and "ETA" in buf.getvalue()
        bar.abort()
        assert buf.getvalue().endswith("\r\033[K")

    def test_unknown_total(self):
        bar = ProgressBar(total=None, stream=io.StringIO())
        bar.update(3)
        assert bar.line().startswith("3 frames") and "ETA" not in bar.line()
        assert format_seconds(3725) == "1:02:05" and format_seconds(65) == "1:05"


def test_real_process_prints_exactly_one_line_for_an_undecodable_video(tmp_path):
    """FFmpeg's own messages ("moov atom not found") must not reach the user next to ours."""
    import subprocess
    import sys

    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 64)
    good = write_video(tmp_path / "ok.avi", 2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCV_")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fusioncam",
            "fuse",
            "--ir",
            str(good),
            "--vis",
            str(bad),
            "-o",
            str(tmp_path / "o.mp4"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"fusioncam fuse: error: cannot open video {bad} (not a video OpenCV can decode)"
    ]
    assert sorted(os.listdir(tmp_path)) == ["bad.mp4", "ok.avi"]


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_real_process_interrupted_leaves_nothing(tmp_path, sig):
    """Ctrl-C or kill in the middle of a run: exit 130, no output file, no partial file left."""
    import signal
    import subprocess
    import sys
    import time

    ir, vis = SAMPLES / "ir_0111_1716.mp4", SAMPLES / "vis_0111_1716.mp4"
    if not ir.is_file():
        pytest.skip("sample clips not in assets/samples")
    out = tmp_path / "out"
    out.mkdir()
    args = ["--ir", ir, "--vis", vis, "-o", out / "f.mp4", "--frames-dir", out / "frames", "--method", "gff"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "fusioncam", "fuse", *map(str, args)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (out / ".f.partial.mp4").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "fusioncam fuse: interrupted"
    assert os.listdir(out) == []


class TestClipWeights:
    """--clip-weights reaches a CLIP-guided network; misuse is one clear line."""

    def test_clip_guided_network_fuses_with_given_clip_weights(self, tmp_path, capsys, tiny_clip_checkpoint):
        ckpt, clip_path = tiny_clip_checkpoint
        ir, vis = write_pair_images(tmp_path, 2)
        out = tmp_path / "out"
        code, _, err = run_cli(
            capsys,
            "--ir",
            str(ir),
            "--vis",
            str(vis),
            "-o",
            str(out),
            "--method",
            "mgfusion",
            "--weights",
            str(ckpt),
            "--clip-weights",
            str(clip_path),
            "--device",
            "cpu",
        )
        assert code == 0, err
        assert len(list(out.glob("*.png"))) == 2

    def test_clip_weights_with_a_classical_method_is_refused(self, tmp_path, capsys):
        ir, vis = write_pair_images(tmp_path, 1)
        code, _, err = run_cli(
            capsys,
            "--ir",
            str(ir),
            "--vis",
            str(vis),
            "-o",
            str(tmp_path / "o.png"),
            "--method",
            "average",
            "--clip-weights",
            str(ir),
        )
        assert code == 2 and "uses no CLIP" in err and len(err.strip().splitlines()) == 1

    def test_missing_clip_weights_file_is_named(self, tmp_path, capsys):
        ir, vis = write_pair_images(tmp_path, 1)
        code, _, err = run_cli(
            capsys,
            "--ir",
            str(ir),
            "--vis",
            str(vis),
            "-o",
            str(tmp_path / "o.png"),
            "--method",
            "mgfusion",
            "--clip-weights",
            str(tmp_path / "nope.bin"),
        )
        assert code == 2 and "nope.bin" in err and not (tmp_path / "o.png").exists()
