"""Automatic calibration: a synthetic cross-modal pair with a known H, refusal, and a few real pairs."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from fusioncam.calibration import AutoParams, estimate_auto, register_auto
from fusioncam.calibration.auto import AutoResult, select_by_consensus
from fusioncam.calibration.report import transfer_error
from fusioncam.errors import FusioncamError


def _scene(size=(720, 560), seed=0) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic street-like scene as (visible, thermal) renderings of the same geometry.

    The thermal one has other intensities per object (some hot on cold, some inverted), no fine
    texture, blur and noise: only the outlines are shared, as with real cameras.
    """
    rng = np.random.default_rng(seed)
    w, h = size
    vis = np.zeros((h, w), np.float32) + 90
    ir = np.zeros((h, w), np.float32) + 60
    vis += rng.normal(0, 12, (h, w)).astype(np.float32)  # visible texture that IR lacks
    for _ in range(40):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        a, b = rng.uniform(15, 90), rng.uniform(15, 90)
        v_val, i_val = rng.uniform(0, 255), rng.uniform(0, 255)
        if rng.random() < 0.5:
            pts = cv2.ellipse2Poly((int(x), int(y)), (int(a), int(b)), int(rng.uniform(0, 180)), 0, 360, 5)
        else:
            pts = np.array(
                [[x - a, y - b], [x + a, y - b * rng.uniform(0.5, 1)], [x + a, y + b], [x - a, y + b]]
            )
            pts = pts.astype(np.int32)
        cv2.fillPoly(vis, [pts], float(v_val))
        cv2.fillPoly(ir, [pts], float(i_val))
    vis = cv2.GaussianBlur(vis, (0, 0), 0.8)
    ir = cv2.GaussianBlur(ir, (0, 0), 2.0) + rng.normal(0, 3, (h, w)).astype(np.float32)
    return np.clip(vis, 0, 255).astype(np.uint8), np.clip(ir, 0, 255).astype(np.uint8)


def _synthetic_pair(vis_H_ir: np.ndarray, ir_size=(320, 256), vis_size=(400, 300)):
    """IR and VIS images whose true relation is ``vis_H_ir``: both are views of one scene plane."""
    scene_vis, scene_ir = _scene()
    # scene -> VIS: a plain scale/shift; scene -> IR follows from vis_H_ir.
    vis_H_scene = np.array([[0.5, 0, 20], [0, 0.5, 15], [0, 0, 1.0]])
    ir_H_scene = np.linalg.inv(vis_H_ir) @ vis_H_scene
    vis = cv2.warpPerspective(scene_vis, vis_H_scene, vis_size, flags=cv2.INTER_AREA)
    ir = cv2.warpPerspective(scene_ir, ir_H_scene, ir_size, flags=cv2.INTER_LINEAR)
    return ir, cv2.cvtColor(vis, cv2.COLOR_GRAY2BGR)


class TestSynthetic:
    def test_recovers_scaled_shifted_rotated_h(self):
        a = np.radians(3.0)
        vis_H_ir = np.array(
            [
                [1.15 * np.cos(a), -1.15 * np.sin(a), 22.0],
                [1.2 * np.sin(a), 1.2 * np.cos(a), 10.0],
                [0, 0, 1.0],
            ]
        )
        ir, vis = _synthetic_pair(vis_H_ir)
        res = register_auto(ir, vis)
        assert res.confident, res.message
        assert transfer_error(res.vis_H_ir, vis_H_ir, (400, 300)) < 1.0

    def test_single_channel_ecc_of_opencv4(self, monkeypatch):
        """OpenCV 4's ECC takes one channel: the fallback (gradient-magnitude weight channel) still aligns."""
        from fusioncam.calibration import auto

        monkeypatch.setattr(auto, "_MULTICHANNEL_ECC", False)
        seen = []
        real = cv2.findTransformECC

        def spy(t, i, *args):
            seen.append(t.ndim)
            return real(t, i, *args)

        monkeypatch.setattr(cv2, "findTransformECC", spy)
        vis_H_ir = np.array([[1.2, 0.0, 12.0], [0.0, 1.2, -6.0], [0, 0, 1.0]])
        ir, vis = _synthetic_pair(vis_H_ir)
        res = register_auto(ir, vis)
        assert seen and set(seen) == {2}
        assert res.confident, res.message
        assert transfer_error(res.vis_H_ir, vis_H_ir, (400, 300)) < 1.5

    def test_small_thermal_sensor(self):
        """A 160x128 IR image: the coarse search already runs at full resolution."""
        vis_H_ir = np.array([[2.4, 0.0, 10.0], [0.0, 2.4, 4.0], [0, 0, 1.0]])
        ir, vis = _synthetic_pair(vis_H_ir, ir_size=(160, 128))
        res = register_auto(ir, vis, AutoParams(scale_range=(0.3, 1.0)))
        assert res.confident, res.message
        assert transfer_error(res.vis_H_ir, vis_H_ir, (400, 300)) < 1.5

    def test_16bit_thermal_input(self):
        vis_H_ir = np.array([[1.25, 0.0, 5.0], [0.0, 1.25, -8.0], [0, 0, 1.0]])
        ir, vis = _synthetic_pair(vis_H_ir)
        ir16 = (ir.astype(np.uint16) * 40 + 20000).astype(np.uint16)
        rig, report = estimate_auto(ir16, vis)
        assert rig.method == "auto" and rig.ir_size == (320, 256) and rig.vis_size == (400, 300)
        assert transfer_error(rig.vis_H_ir, vis_H_ir, (400, 300)) < 1.0
        assert 0 < report["confidence"] <= 1 and rig.report["confidence"] == report["confidence"]
        assert report["inliers"] <= report["points"] and report["median_px"] < 1.0
        assert 0 < report["point_coverage"] <= 1

    def test_unrelated_images_are_refused(self):
        _, vis = _synthetic_pair(np.eye(3))
        other = _scene(seed=7)[1][:256, :320]
        with pytest.raises(FusioncamError, match="refused: alignment not confident"):
            estimate_auto(other, vis, AutoParams(scale_range=(0.8, 1.6)))

    def test_flat_image_is_refused(self):
        _, vis = _synthetic_pair(np.eye(3))
        flat = np.full((256, 320), 80, np.uint8)
        with pytest.raises(FusioncamError, match="refused"):
            estimate_auto(flat, vis)

    def test_bad_params(self):
        with pytest.raises(FusioncamError):
            AutoParams(scale_range=(2.0, 1.0)).validate()


def _shift(dx: float, dy: float = 0.0) -> np.ndarray:
    return np.array([[1.0, 0, dx], [0, 1.0, dy], [0, 0, 1.0]])


def _result(H: np.ndarray | None, confidence: float, confident: bool = True) -> AutoResult:
    return AutoResult(H, confident, confidence, "test")


class TestConsensus:
    """Several frame pairs of one rig: the H that most pairs agree with wins, not the most confident."""

    def test_majority_beats_a_more_confident_outlier(self):
        results = [
            _result(_shift(30), 0.9),  # e.g. locked onto people who moved between the exposures
            _result(_shift(0.5), 0.5),
            _result(_shift(1.0), 0.4),
            _result(None, 0.0, confident=False),
        ]
        best, agreeing = select_by_consensus(results, (400, 300))
        assert best == 1 and agreeing == [1, 2]

    def test_confidence_breaks_ties(self):
        results = [_result(_shift(0), 0.4), _result(_shift(1), 0.7), _result(_shift(20), 0.3)]
        best, agreeing = select_by_consensus(results, (400, 300))
        assert best == 1 and agreeing == [0, 1]

    def test_contradicting_pairs_are_refused(self):
        results = [_result(_shift(0), 0.8), _result(_shift(15), 0.7)]
        with pytest.raises(FusioncamError, match="2 frame pairs gave confident but different alignments"):
            select_by_consensus(results, (400, 300))

    def test_one_confident_pair_or_none(self):
        results = [_result(_shift(0), 0.2, confident=False), _result(_shift(5), 0.6)]
        assert select_by_consensus(results, (400, 300)) == (1, [1])
        results = [_result(None, 0.1, confident=False), _result(_shift(5), 0.2, confident=False)]
        assert select_by_consensus(results, (400, 300)) == (1, [])

    def test_estimate_auto_over_frame_pairs(self):
        """Two frame pairs of the rig and one of another geometry: the rig's H wins, and the report says
        how many pairs agreed."""
        vis_H_ir = np.array([[1.25, 0.0, 5.0], [0.0, 1.25, -8.0], [0, 0, 1.0]])
        other = np.array([[1.1, 0.0, 40.0], [0.0, 1.1, 20.0], [0, 0, 1.0]])
        pairs = [_synthetic_pair(vis_H_ir), _synthetic_pair(other), _synthetic_pair(vis_H_ir)]
        rig, report = estimate_auto([p[0] for p in pairs], [p[1] for p in pairs])
        assert transfer_error(rig.vis_H_ir, vis_H_ir, (400, 300)) < 1.0
        assert report["best_frame_pair"] in (0, 2)
        assert report["frame_pairs"] == 3 and report["frame_pairs_confident"] == 3
        assert report["frame_pairs_agreeing"] == 2

    def test_frames_of_different_sizes(self):
        ir, vis = _synthetic_pair(np.eye(3))
        with pytest.raises(FusioncamError, match="VIS frames of different sizes"):
            estimate_auto([ir, ir], [vis, vis[:200]])


def _real_pairs(data_dir):
    root = data_dir / "registration"
    if not root.is_dir():
        pytest.skip(f"registration data not found at {root}")
    sf = json.loads((root / "superfusion_roadscene" / "homography_fit.json").read_text())
    fl = json.loads((root / "roadscene_flir" / "homographies.json").read_text())
    yield (
        root / "superfusion_roadscene" / "ir_warp" / "9.png",
        root / "superfusion_roadscene" / "vi" / "9.png",
        np.array(sf["RoadScene/9.png"]["H_warp_to_ir"]),
    )
    yield (
        root / "roadscene_flir" / "ir" / "FLIR_06307.png",
        root / "roadscene_flir" / "vis" / "FLIR_06307.jpg",
        np.linalg.inv(np.array(fl["FLIR_06307"]["H_crop_to_full"])),
    )


def test_real_pairs(data_dir):
    """One pair of each ground-truth set: confident and within 5 VIS pixels of the truth."""
    for ir_path, vis_path, vis_H_ir in _real_pairs(data_dir):
        ir = cv2.imread(str(ir_path), cv2.IMREAD_UNCHANGED)
        vis = cv2.imread(str(vis_path), cv2.IMREAD_UNCHANGED)
        res = register_auto(ir, vis)
        assert res.confident, f"{ir_path.name}: {res.message}"
        err = transfer_error(res.vis_H_ir, vis_H_ir, (vis.shape[1], vis.shape[0]))
        assert err < 5.0, f"{ir_path.name}: {err:.2f} px"
