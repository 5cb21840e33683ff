"""Target calibration on synthetic board views rendered with a known H and thermal-like contrast."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fusioncam.calibration import BoardSpec, detect_board, estimate_from_target, render_board
from fusioncam.calibration.report import transfer_error
from fusioncam.calibration.target import board_points
from fusioncam.errors import FusioncamError

IR_SIZE, VIS_SIZE = (320, 256), (480, 360)
VIS_H_IR = np.array([[1.32, 0.03, 40.0], [-0.02, 1.30, 18.0], [2e-5, 1e-5, 1.0]])


def _poses(n: int, seed: int, scale=(0.3, 0.42)) -> list[np.ndarray]:
    """Board-to-IR homographies spread over the IR frame (small tilts and rotations)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        a = np.radians(rng.uniform(-12, 12))
        s = rng.uniform(*scale)
        tx = [15, 140, 15, 140][k % 4] + rng.uniform(0, 10)
        ty = [10, 10, 100, 100][k % 4] + rng.uniform(0, 10)
        out.append(
            np.array(
                [
                    [s * np.cos(a), -s * np.sin(a), tx],
                    [s * np.sin(a), s * np.cos(a), ty],
                    [rng.uniform(-2e-4, 2e-4), rng.uniform(-2e-4, 2e-4), 1.0],
                ]
            )
        )
    return out


def _thermal(img: np.ndarray, rng: np.random.Generator, invert: bool) -> np.ndarray:
    """Low contrast (about 25 grey levels), blur, noise and optionally inverted polarity."""
    f = 110 + (img.astype(np.float32) - img.min()) * (25.0 / max(1, int(img.max()) - int(img.min())))
    if invert:
        f = 245 - f
    f = cv2.GaussianBlur(f, (0, 0), 1.0)
    f += rng.normal(0, 1.5, f.shape)
    return np.clip(f, 0, 255).astype(np.uint8)


def _views(spec: BoardSpec, n: int = 4, seed: int = 0, scale=(0.3, 0.42)):
    rng = np.random.default_rng(seed)
    irs, viss = [], []
    for k, B in enumerate(_poses(n, seed, scale)):
        ir = _thermal(render_board(spec, IR_SIZE, B), rng, invert=k % 2 == 1)
        vis = cv2.cvtColor(render_board(spec, VIS_SIZE, VIS_H_IR @ B), cv2.COLOR_GRAY2BGR)
        irs.append(ir)
        viss.append(vis)
    return irs, viss


class TestBoardSpec:
    @pytest.mark.parametrize(
        "text, expect",
        [
            ("chessboard:9x6", BoardSpec("chessboard", 9, 6)),
            ("chessboard:9x6:25", BoardSpec("chessboard", 9, 6, False, 25.0)),
            ("circles:4x11:asym", BoardSpec("circles", 4, 11, True)),
            ("circles:4x11:asym:20", BoardSpec("circles", 4, 11, True, 20.0)),
        ],
    )
    def test_parse(self, text, expect):
        assert BoardSpec.parse(text) == expect
        assert BoardSpec.parse(str(expect)) == expect

    @pytest.mark.parametrize(
        "text", ["checker:9x6", "chessboard:9", "chessboard:9x6:asym", "chessboard:1x1", "circles:4x4:-3", ""]
    )
    def test_bad_specs(self, text):
        with pytest.raises(FusioncamError):
            BoardSpec.parse(text)


class TestDetectBoard:
    def test_inverted_low_contrast_thermal_chessboard(self):
        spec = BoardSpec.parse("chessboard:7x5")
        B = _poses(1, 3)[0]
        ir = _thermal(render_board(spec, IR_SIZE, B), np.random.default_rng(0), invert=True)
        pts, variant = detect_board(ir, spec)
        assert pts is not None and variant is not None
        true = cv2.perspectiveTransform(board_points(spec)[None], B)[0]
        # Same points up to the order (inversion may relabel the corners).
        d = np.linalg.norm(pts[:, None] - true[None], axis=2).min(axis=1)
        assert d.max() < 2.0 and d.mean() < 0.6

    @pytest.mark.parametrize("text", ["circles:4x11:asym", "circles:6x5"])
    def test_hot_circles(self, text):
        spec = BoardSpec.parse(text)
        B = np.array([[0.4, 0.0, 40.0], [0.0, 0.4, 20.0], [0.0, 0.0, 1.0]])
        ir = _thermal(render_board(spec, IR_SIZE, B), np.random.default_rng(1), invert=True)
        pts, variant = detect_board(ir, spec)
        assert pts is not None and len(pts) == spec.cols * spec.rows

    def test_nothing_to_find(self):
        spec = BoardSpec.parse("chessboard:9x6")
        noise = np.random.default_rng(0).integers(0, 255, (200, 200), dtype=np.uint8)
        assert detect_board(noise, spec, variants=("plain", "inverted")) == (None, None)


class TestEstimateFromTarget:
    @pytest.mark.parametrize("board", ["chessboard:9x6:25", "circles:4x11:asym"])
    def test_recovers_known_h(self, board):
        spec = BoardSpec.parse(board)
        irs, viss = _views(spec, n=6, seed=2, scale=(0.3, 0.4) if spec.kind == "chessboard" else (0.25, 0.3))
        rig, report = estimate_from_target(irs, viss, board)
        assert rig.method == "target"
        assert transfer_error(rig.vis_H_ir, VIS_H_IR, VIS_SIZE) < 0.5
        assert report["views_used"] >= 5 and report["board"]["spec"] == str(spec)
        assert report["rms_px"] < 1.0 and report["point_coverage"] > 0.2
        assert rig.ir_size == IR_SIZE and rig.vis_size == VIS_SIZE

    def test_no_board_found_says_where(self):
        spec = BoardSpec.parse("chessboard:9x6")
        irs, viss = _views(spec, n=2, seed=4)
        blank = [np.full((IR_SIZE[1], IR_SIZE[0]), 128, np.uint8)] * 2
        with pytest.raises(FusioncamError, match=r"not found .* 0 of 2 IR and 2 of 2 VIS"):
            estimate_from_target(blank, viss, spec, variants=("plain", "inverted"))

    def test_mismatched_inputs(self):
        spec = BoardSpec.parse("chessboard:9x6")
        irs, viss = _views(spec, n=2, seed=5)
        with pytest.raises(FusioncamError, match="must pair up"):
            estimate_from_target(irs, viss[:1], spec)
        with pytest.raises(FusioncamError, match="differ in size"):
            estimate_from_target([irs[0], irs[1][:-8]], viss, spec)
