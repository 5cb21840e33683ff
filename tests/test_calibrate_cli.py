"""``fusioncam calibrate`` in-process: exit codes, the files it writes, one-line errors."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from fusioncam.calibration.report import apply_h, transfer_error
from fusioncam.cli import main
from fusioncam.processing.registration import Rig

sys.path.insert(0, str(Path(__file__).parent))
from test_calibration_auto import _synthetic_pair  # noqa: E402
from test_calibration_target import IR_SIZE, VIS_H_IR, VIS_SIZE, _views  # noqa: E402

H_TRUE = np.array([[1.1, 0.02, 30.0], [-0.01, 1.05, 12.0], [1e-5, 2e-5, 1.0]])


def _write_points(path: Path, n: int = 10) -> None:
    ir = np.random.default_rng(0).uniform([10, 10], [300, 240], size=(n, 2))
    vis = apply_h(H_TRUE, ir)
    path.write_text(f"ir: {ir.tolist()}\nvis: {vis.tolist()}\n")


def _last_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one clear line, no traceback
    return err[0]


class TestPoints:
    def test_writes_rig_and_check_image(self, tmp_path, capsys):
        pts = tmp_path / "pts.yaml"
        _write_points(pts)
        cv2.imwrite(str(tmp_path / "ir.png"), np.random.default_rng(1).integers(0, 255, (256, 320), np.uint8))
        cv2.imwrite(str(tmp_path / "vis.png"), np.full((360, 480, 3), 100, np.uint8))
        out = tmp_path / "rig.yaml"
        rc = main(
            [
                "calibrate",
                "points",
                "--points",
                str(pts),
                "--ir",
                str(tmp_path / "ir.png"),
                "--vis",
                str(tmp_path / "vis.png"),
                "-o",
                str(out),
            ]
        )
        assert rc == 0
        rig = Rig.load(out)
        assert rig.method == "points" and rig.ir_size == (320, 256) and rig.vis_size == (480, 360)
        assert transfer_error(rig.vis_H_ir, H_TRUE, (480, 360)) < 0.01
        check = cv2.imread(str(tmp_path / "rig_check.png"))
        assert check is not None and check.shape == (360, 480, 3)
        printed = capsys.readouterr().out
        assert "reprojection error" in printed and "inlier points: 10 of 10" in printed

    def test_sizes_without_images(self, tmp_path):
        pts = tmp_path / "pts.yaml"
        _write_points(pts)
        out = tmp_path / "rig.yaml"
        assert (
            main(
                [
                    "calibrate",
                    "points",
                    "--points",
                    str(pts),
                    "--ir-size",
                    "320x256",
                    "--vis-size",
                    "480x360",
                    "-o",
                    str(out),
                ]
            )
            == 0
        )
        assert Rig.load(out).vis_size == (480, 360)
        assert not (tmp_path / "rig_check.png").exists()

    @pytest.mark.parametrize(
        "extra, msg",
        [
            (["--ir-size", "320x256"], "give --vis-size"),
            (["--ir-size", "320by256", "--vis-size", "480x360"], "must look like"),
            (["--ir-size", "32x25", "--vis-size", "480x360"], "outside the IR image"),
        ],
    )
    def test_bad_sizes(self, tmp_path, capsys, extra, msg):
        pts = tmp_path / "pts.yaml"
        _write_points(pts)
        out = tmp_path / "rig.yaml"
        assert main(["calibrate", "points", "--points", str(pts), *extra, "-o", str(out)]) == 2
        assert msg in _last_error(capsys)
        assert not out.exists()

    def test_size_disagrees_with_image(self, tmp_path, capsys):
        pts = tmp_path / "pts.yaml"
        _write_points(pts)
        cv2.imwrite(str(tmp_path / "ir.png"), np.zeros((256, 320), np.uint8))
        rc = main(
            [
                "calibrate",
                "points",
                "--points",
                str(pts),
                "--ir",
                str(tmp_path / "ir.png"),
                "--ir-size",
                "640x512",
                "--vis-size",
                "480x360",
                "-o",
                str(tmp_path / "r.yaml"),
            ]
        )
        assert rc == 2 and "does not match" in _last_error(capsys)

    def test_unreadable_files(self, tmp_path, capsys):
        bad = tmp_path / "ir.png"
        bad.write_bytes(b"not an image")
        pts = tmp_path / "pts.yaml"
        _write_points(pts)
        rc = main(
            [
                "calibrate",
                "points",
                "--points",
                str(pts),
                "--ir",
                str(bad),
                "--vis-size",
                "480x360",
                "-o",
                str(tmp_path / "r.yaml"),
            ]
        )
        assert rc == 2 and "cannot read image" in _last_error(capsys)
        rc = main(
            [
                "calibrate",
                "points",
                "--points",
                str(tmp_path / "missing.csv"),
                "--ir-size",
                "320x256",
                "--vis-size",
                "480x360",
                "-o",
                str(tmp_path / "r.yaml"),
            ]
        )
        assert rc == 2 and "points file not found" in _last_error(capsys)

    def test_too_few_points(self, tmp_path, capsys):
        pts = tmp_path / "pts.csv"
        pts.write_text("ir_x,ir_y,vis_x,vis_y\n1,1,2,2\n10,1,12,2\n1,10,2,12\n")
        rc = main(
            [
                "calibrate",
                "points",
                "--points",
                str(pts),
                "--ir-size",
                "320x256",
                "--vis-size",
                "480x360",
                "-o",
                str(tmp_path / "r.yaml"),
            ]
        )
        assert rc == 2 and "at least 4" in _last_error(capsys)

    def test_existing_rig_survives_a_failed_run(self, tmp_path, capsys):
        out = tmp_path / "rig.yaml"
        Rig.identity((320, 256)).save(out)
        before = out.read_text()
        pts = tmp_path / "pts.csv"
        pts.write_text("1,1,2,2\n2,2,3,3\n3,3,4,4\n4,4,5,5\n")  # collinear
        rc = main(
            [
                "calibrate",
                "points",
                "--points",
                str(pts),
                "--ir-size",
                "320x256",
                "--vis-size",
                "480x360",
                "-o",
                str(out),
            ]
        )
        assert rc == 2 and "collinear" in _last_error(capsys)
        assert out.read_text() == before


class TestTarget:
    def test_folders_of_views(self, tmp_path, capsys):
        irs, viss = _views(
            __import__("fusioncam.calibration", fromlist=["BoardSpec"]).BoardSpec.parse("chessboard:9x6"),
            n=4,
            seed=2,
            scale=(0.3, 0.4),
        )
        (tmp_path / "ir").mkdir()
        (tmp_path / "vis").mkdir()
        for i, (a, b) in enumerate(zip(irs, viss, strict=True)):
            cv2.imwrite(str(tmp_path / "ir" / f"{i:02d}.png"), a)
            cv2.imwrite(str(tmp_path / "vis" / f"{i:02d}.png"), b)
        out = tmp_path / "rig.yaml"
        check = tmp_path / "check.jpg"
        rc = main(
            [
                "calibrate",
                "target",
                "--ir",
                str(tmp_path / "ir"),
                "--vis",
                str(tmp_path / "vis"),
                "--board",
                "chessboard:9x6:30",
                "-o",
                str(out),
                "--check",
                str(check),
                "--check-mode",
                "edges",
            ]
        )
        assert rc == 0
        rig = Rig.load(out)
        assert rig.ir_size == IR_SIZE and rig.vis_size == VIS_SIZE
        assert transfer_error(rig.vis_H_ir, VIS_H_IR, VIS_SIZE) < 0.5
        assert rig.report["board"]["square_mm"] == 30 and rig.report["views_used"] >= 3
        assert cv2.imread(str(check)) is not None
        assert "views:" in capsys.readouterr().out

    def test_videos_with_every(self, tmp_path):
        from fusioncam.calibration import BoardSpec

        irs, viss = _views(BoardSpec.parse("chessboard:9x6"), n=4, seed=2, scale=(0.3, 0.4))
        paths = {"ir": tmp_path / "ir.avi", "vis": tmp_path / "vis.avi"}
        for key, frames in (("ir", irs), ("vis", viss)):
            size = (frames[0].shape[1], frames[0].shape[0])
            w = cv2.VideoWriter(str(paths[key]), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
            if not w.isOpened():
                pytest.skip("this OpenCV build cannot write MJPG video")
            for f in frames:
                f3 = f if f.ndim == 3 else cv2.cvtColor(f, cv2.COLOR_GRAY2BGR)
                for _ in range(2):  # each view twice: --every 2 takes one of each
                    w.write(f3)
            w.release()
        out = tmp_path / "rig.yaml"
        rc = main(
            [
                "calibrate",
                "target",
                "--ir",
                str(paths["ir"]),
                "--vis",
                str(paths["vis"]),
                "--every",
                "2",
                "--board",
                "chessboard:9x6",
                "-o",
                str(out),
            ]
        )
        assert rc == 0
        rig = Rig.load(out)
        assert rig.report["views"] == 4
        assert transfer_error(rig.vis_H_ir, VIS_H_IR, VIS_SIZE) < 1.0

    def test_no_board_found(self, tmp_path, capsys):
        (tmp_path / "ir").mkdir()
        (tmp_path / "vis").mkdir()
        for i in range(3):
            cv2.imwrite(str(tmp_path / "ir" / f"{i}.png"), np.full((120, 160), 128, np.uint8))
            cv2.imwrite(str(tmp_path / "vis" / f"{i}.png"), np.full((120, 160), 128, np.uint8))
        rc = main(
            [
                "calibrate",
                "target",
                "--ir",
                str(tmp_path / "ir"),
                "--vis",
                str(tmp_path / "vis"),
                "--board",
                "chessboard:9x6",
                "-o",
                str(tmp_path / "r.yaml"),
            ]
        )
        assert rc == 2
        assert "not found in both images of any view: found in 0 of 3 IR and 0 of 3 VIS" in _last_error(
            capsys
        )

    def test_bad_board_spec_and_empty_folder(self, tmp_path, capsys):
        (tmp_path / "e").mkdir()
        rc = main(
            [
                "calibrate",
                "target",
                "--ir",
                str(tmp_path / "e"),
                "--vis",
                str(tmp_path / "e"),
                "--board",
                "chess:9x6",
                "-o",
                str(tmp_path / "r.yaml"),
            ]
        )
        assert rc == 2 and "bad board spec" in _last_error(capsys)
        rc = main(
            [
                "calibrate",
                "target",
                "--ir",
                str(tmp_path / "e"),
                "--vis",
                str(tmp_path / "e"),
                "--board",
                "chessboard:9x6",
                "-o",
                str(tmp_path / "r.yaml"),
            ]
        )
        assert rc == 2 and "no images found" in _last_error(capsys)


class TestAuto:
    def test_synthetic_pair(self, tmp_path, capsys):
        vis_H_ir = np.array([[1.2, 0.0, 12.0], [0.0, 1.2, 6.0], [0, 0, 1.0]])
        ir, vis = _synthetic_pair(vis_H_ir)
        cv2.imwrite(str(tmp_path / "ir.png"), ir)
        cv2.imwrite(str(tmp_path / "vis.png"), vis)
        out = tmp_path / "rig.yaml"
        rc = main(
            [
                "calibrate",
                "auto",
                "--ir",
                str(tmp_path / "ir.png"),
                "--vis",
                str(tmp_path / "vis.png"),
                "-o",
                str(out),
                "--check-mode",
                "blend",
            ]
        )
        assert rc == 0
        rig = Rig.load(out)
        assert transfer_error(rig.vis_H_ir, vis_H_ir, (400, 300)) < 1.0
        assert rig.cameras["ir"].endswith("ir.png")
        assert (tmp_path / "rig_check.png").is_file()
        assert "confidence" in capsys.readouterr().out

    def test_folders_best_frame_pair_wins(self, tmp_path, capsys):
        vis_H_ir = np.array([[1.2, 0.0, 12.0], [0.0, 1.2, 6.0], [0, 0, 1.0]])
        ir, vis = _synthetic_pair(vis_H_ir)
        for d in ("ir", "vis"):
            (tmp_path / d).mkdir()
        cv2.imwrite(str(tmp_path / "ir" / "0.png"), np.full(ir.shape, 60, np.uint8))  # a blank IR frame
        cv2.imwrite(str(tmp_path / "vis" / "0.png"), vis)
        cv2.imwrite(str(tmp_path / "ir" / "1.png"), ir)
        cv2.imwrite(str(tmp_path / "vis" / "1.png"), vis)
        out = tmp_path / "rig.yaml"
        rc = main(
            [
                "calibrate",
                "auto",
                "--ir",
                str(tmp_path / "ir"),
                "--vis",
                str(tmp_path / "vis"),
                "--pairs",
                "2",
                "--every",
                "1",
                "-o",
                str(out),
            ]
        )
        assert rc == 0
        rig = Rig.load(out)
        assert rig.report["best_frame_pair"] == 1 and rig.report["frame_pairs_confident"] == 1
        assert transfer_error(rig.vis_H_ir, vis_H_ir, (400, 300)) < 1.0
        assert "frame pairs: 1 of 2 confident" in capsys.readouterr().out

    def test_sample_videos_frame_pairs_agree(self, tmp_path, capsys):
        """The built-in M3SVD clips (real thermal and visible video, registered by their authors): every
        frame pair tried is confident, they agree with each other, and H is close to the identity."""
        samples = Path(__file__).resolve().parents[1] / "assets" / "samples"
        out = tmp_path / "rig.yaml"
        rc = main(
            [
                "calibrate",
                "auto",
                "--ir",
                str(samples / "ir_0111_1716.mp4"),
                "--vis",
                str(samples / "vis_0111_1716.mp4"),
                "--pairs",
                "3",
                "--every",
                "60",
                "-o",
                str(out),
            ]
        )
        assert rc == 0, capsys.readouterr().err
        rig = Rig.load(out)
        assert rig.report["frame_pairs"] == 3 and rig.report["frame_pairs_agreeing"] == 3
        assert transfer_error(rig.vis_H_ir, np.eye(3), rig.vis_size) < 3.0
        assert "3 agree with the best" in capsys.readouterr().out

    def test_refusal_writes_nothing(self, tmp_path, capsys):
        _, vis = _synthetic_pair(np.eye(3))
        cv2.imwrite(str(tmp_path / "ir.png"), np.full((256, 320), 70, np.uint8))
        cv2.imwrite(str(tmp_path / "vis.png"), vis)
        out = tmp_path / "rig.yaml"
        rc = main(
            [
                "calibrate",
                "auto",
                "--ir",
                str(tmp_path / "ir.png"),
                "--vis",
                str(tmp_path / "vis.png"),
                "-o",
                str(out),
            ]
        )
        assert rc == 2 and "refused" in _last_error(capsys)
        assert not out.exists() and not (tmp_path / "rig_check.png").exists()

    def test_bad_scale_range(self, tmp_path, capsys):
        rc = main(
            [
                "calibrate",
                "auto",
                "--ir",
                "a.png",
                "--vis",
                "b.png",
                "-o",
                str(tmp_path / "r.yaml"),
                "--scale-range",
                "2:1",
            ]
        )
        assert rc == 2 and "scale-range" in _last_error(capsys)
