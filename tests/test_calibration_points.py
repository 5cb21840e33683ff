"""Point-pair calibration: exact recovery, robustness to a bad click, file formats, clear refusals."""

from __future__ import annotations

import numpy as np
import pytest

from fusioncam.calibration import check_image, estimate_from_points, load_points
from fusioncam.calibration.report import apply_h, point_coverage, transfer_error
from fusioncam.errors import FusioncamError
from fusioncam.processing.registration import Rig

IR_SIZE, VIS_SIZE = (640, 512), (800, 600)
H_TRUE = np.array([[1.12, 0.03, 25.0], [-0.02, 1.09, 14.0], [3e-5, -2e-5, 1.0]])


def _points(n: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ir = rng.uniform([20, 20], [600, 480], size=(n, 2))
    return ir, apply_h(H_TRUE, ir)


class TestEstimateFromPoints:
    def test_exact_correspondences_recover_h(self):
        ir, vis = _points()
        rig, report = estimate_from_points(ir, vis, IR_SIZE, VIS_SIZE)
        assert isinstance(rig, Rig) and rig.method == "points"
        assert transfer_error(rig.vis_H_ir, H_TRUE, VIS_SIZE) < 0.01
        assert report["inliers"] == 12 and report["rms_px"] < 0.01
        assert len(report["residuals_px"]) == 12
        assert rig.report is report or rig.report == report

    def test_exactly_four_points(self):
        ir, vis = _points(4, seed=3)
        rig, report = estimate_from_points(ir, vis, IR_SIZE, VIS_SIZE)
        assert transfer_error(rig.vis_H_ir, H_TRUE, VIS_SIZE) < 0.01
        assert report["fit"].startswith("exact")

    def test_one_bad_click_is_an_outlier(self):
        ir, vis = _points(12, seed=1)
        vis[5] += [40.0, -25.0]
        rig, report = estimate_from_points(ir, vis, IR_SIZE, VIS_SIZE, method="ransac")
        assert report["outliers"] == [5]
        assert report["residuals_px"][5] > 20
        assert transfer_error(rig.vis_H_ir, H_TRUE, VIS_SIZE) < 0.01

    def test_noisy_clicks_give_subpixel_error(self):
        ir, vis = _points(20, seed=2)
        vis = vis + np.random.default_rng(5).normal(0, 0.5, vis.shape)
        rig, report = estimate_from_points(ir, vis, IR_SIZE, VIS_SIZE)
        assert transfer_error(rig.vis_H_ir, H_TRUE, VIS_SIZE) < 1.0
        assert 0.2 < report["rms_px"] < 1.5

    def test_coverage(self):
        assert point_coverage(np.array([[0, 0], [10, 0], [10, 10], [0, 10]]), (100, 100)) == pytest.approx(
            0.01
        )

    @pytest.mark.parametrize(
        "ir, vis, msg",
        [
            ([[0, 0], [10, 0], [0, 10]], [[0, 0], [10, 0], [0, 10]], "at least 4"),
            ([[0, 0], [10, 10], [20, 20], [30, 30]], [[0, 0], [10, 0], [0, 10], [10, 10]], "collinear"),
            ([[0, 0], [10, 0], [0, 10], [10, 10]], [[0, 0], [10, 0], [0, 10]], "must pair up"),
            (
                [[0, 0], [10, 0], [0, 10], [10, 10], [10, 10]],
                [[0, 0], [10, 0], [0, 10], [10, 10], [10, 10]],
                None,
            ),
            ([[0, 0], [10, 0], [0, 10], [10, 10]], [[0, 0], [10, 0], [0, 10], [900, 10]], "outside the VIS"),
        ],
    )
    def test_bad_points_are_refused(self, ir, vis, msg):
        if msg is None:  # duplicates of valid points are fine
            estimate_from_points(np.array(ir, float), np.array(vis, float), IR_SIZE, VIS_SIZE)
            return
        with pytest.raises(FusioncamError, match=msg):
            estimate_from_points(np.array(ir, float), np.array(vis, float), IR_SIZE, VIS_SIZE)

    def test_duplicated_points_are_not_enough(self):
        pts = np.array([[0, 0], [10, 0], [0, 10], [0, 10], [10, 0]], float)
        with pytest.raises(FusioncamError, match="4 distinct"):
            estimate_from_points(pts, pts, IR_SIZE, VIS_SIZE)


class TestLoadPoints:
    def test_yaml_lists(self, tmp_path):
        ir, vis = _points(6)
        p = tmp_path / "pts.yaml"
        p.write_text(f"ir: {ir.tolist()}\nvis: {vis.tolist()}\n")
        a, b = load_points(p)
        np.testing.assert_allclose(a, ir)
        np.testing.assert_allclose(b, vis)

    def test_yaml_pairs(self, tmp_path):
        p = tmp_path / "pts.yml"
        p.write_text(
            "pairs:\n" + "".join(f"  - {{ir: [{i}, {i * 2}], vis: [{i + 1}, {i}]}}\n" for i in range(5))
        )
        a, b = load_points(p)
        assert a.shape == (5, 2) and b[4].tolist() == [5.0, 4.0]

    def test_csv_with_and_without_header(self, tmp_path):
        ir, vis = _points(5)
        rows = "\n".join(",".join(f"{v:.6f}" for v in (*a, *b)) for a, b in zip(ir, vis, strict=True))
        p1, p2 = tmp_path / "a.csv", tmp_path / "b.csv"
        p1.write_text("ir_x,ir_y,vis_x,vis_y\n" + rows + "\n")
        p2.write_text(rows + "\n")
        for p in (p1, p2):
            a, b = load_points(p)
            np.testing.assert_allclose(a, ir, atol=1e-5)
            np.testing.assert_allclose(b, vis, atol=1e-5)

    @pytest.mark.parametrize(
        "name, text, msg",
        [
            ("x.yaml", "ir: [[1, 2]]\nvis: [[1, 2], [3, 4]]\n", "1 IR points but 2 VIS"),
            ("x.yaml", "foo: 1\n", "expected keys"),
            ("x.yaml", "ir: [[1, 2, 3]]\nvis: [[1, 2, 3]]\n", "list of \\[x, y\\]"),
            ("x.yaml", "ir: [1, 2\n", "not valid YAML"),
            ("x.csv", "1,2,3\n", "row 1 has 3 values"),
            ("x.csv", "1,2,3,a\n", "not four numbers"),
            ("x.csv", "a,b,c,d\n1,2,3,4\n", "header"),
        ],
    )
    def test_malformed_files(self, tmp_path, name, text, msg):
        p = tmp_path / name
        p.write_text(text)
        with pytest.raises(FusioncamError, match=msg):
            load_points(p)

    def test_missing_file(self, tmp_path):
        with pytest.raises(FusioncamError, match="not found"):
            load_points(tmp_path / "nope.yaml")


class TestRigRoundTrip:
    def test_calibrated_rig_yaml_round_trip(self, tmp_path):
        ir, vis = _points()
        rig, report = estimate_from_points(ir, vis, IR_SIZE, VIS_SIZE, cameras={"ir": "cam1", "vis": "cam0"})
        path = tmp_path / "rig.yaml"
        rig.save(path)
        back = Rig.load(path)
        np.testing.assert_allclose(back.vis_H_ir, rig.vis_H_ir, rtol=1e-12, atol=1e-12)
        assert back.ir_size == IR_SIZE and back.vis_size == VIS_SIZE
        assert back.method == "points" and back.cameras == {"ir": "cam1", "vis": "cam0"}
        assert back.report["inliers"] == report["inliers"]
        assert back.report["rms_px"] == pytest.approx(report["rms_px"])
        assert back.report["point_coverage"] == pytest.approx(report["point_coverage"])


class TestCheckImage:
    @pytest.mark.parametrize("mode", ["checkerboard", "blend", "edges"])
    def test_modes(self, mode):
        ir = np.full((IR_SIZE[1], IR_SIZE[0]), 20, np.uint8)
        ir[100:300, 100:300] = 255
        vis = np.full((VIS_SIZE[1], VIS_SIZE[0], 3), 90, np.uint8)
        rig = Rig(H_TRUE, IR_SIZE, VIS_SIZE)
        out = check_image(ir, vis, rig, mode=mode)
        assert out.shape == (VIS_SIZE[1], VIS_SIZE[0], 3) and out.dtype == np.uint8
        # The warped IR square shows up somewhere in the picture, away from the plain VIS grey.
        assert (np.abs(out.astype(int) - 90).max(axis=2) > 100).any()

    def test_unknown_mode(self):
        rig = Rig(np.eye(3), (8, 8), (8, 8))
        with pytest.raises(FusioncamError, match="unknown check image mode"):
            check_image(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8), rig, mode="x")
