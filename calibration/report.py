"""Quality numbers of a calibration, and the check image that lets a person see them.

Every estimator fills a plain ``dict`` report (it goes into ``Rig.report`` and the rig YAML):
``inliers``/``points``, ``rms_px``/``median_px``/``max_px`` (reprojection error in VIS pixels),
``point_coverage`` (share of the IR frame the points span), ``confidence`` and method-specific facts.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from fusioncam.errors import FusioncamError
from fusioncam.processing.registration import Rig

from .images import content_mask, to_gray8

__all__ = [
    "apply_h",
    "residuals",
    "error_stats",
    "point_coverage",
    "grid_points",
    "transfer_error",
    "check_image",
    "format_report",
]


def apply_h(H: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Map (N, 2) points through the 3x3 homography ``H`` (pixel coordinates)."""
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    q = np.hstack([pts, np.ones((len(pts), 1))]) @ np.asarray(H, dtype=np.float64).T
    return q[:, :2] / q[:, 2:3]


def residuals(vis_H_ir: np.ndarray, ir_pts: np.ndarray, vis_pts: np.ndarray) -> np.ndarray:
    """Per-point reprojection error |H p_ir - p_vis| in VIS pixels."""
    return np.linalg.norm(apply_h(vis_H_ir, ir_pts) - np.asarray(vis_pts, np.float64).reshape(-1, 2), axis=1)


def error_stats(err: np.ndarray) -> dict[str, float]:
    """RMS, median and max of an error vector (pixels), rounded for the report."""
    err = np.asarray(err, dtype=np.float64)
    if err.size == 0:
        return {"rms_px": float("nan"), "median_px": float("nan"), "max_px": float("nan")}
    return {
        "rms_px": round(float(np.sqrt(np.mean(err**2))), 4),
        "median_px": round(float(np.median(err)), 4),
        "max_px": round(float(np.max(err)), 4),
    }


def point_coverage(pts: np.ndarray | None, size: tuple[int, int]) -> float:
    """Share of the image area inside the convex hull of ``pts`` (1.0 for a dense, whole-image method).

    A homography fitted on points bunched in one corner extrapolates badly elsewhere; this number says so.
    """
    if pts is None:
        return 1.0
    pts = np.asarray(pts, np.float32).reshape(-1, 2)
    if len(pts) < 3:
        return 0.0
    hull = cv2.convexHull(pts)
    return round(float(cv2.contourArea(hull)) / float(size[0] * size[1]), 4)


def grid_points(size: tuple[int, int], n: int = 10) -> np.ndarray:
    """An n x n grid of pixel positions spanning an image of ``size`` (width, height), corners included."""
    xs = np.linspace(0, size[0] - 1, n)
    ys = np.linspace(0, size[1] - 1, n)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def transfer_error(
    vis_H_ir: np.ndarray, vis_H_ir_true: np.ndarray, vis_size: tuple[int, int], n: int = 10
) -> float:
    """Mean distance, in VIS pixels, between the estimated and true IR->VIS mappings.

    Measured on the IR points that the true H sends onto an n x n grid over the VIS image, i.e. where
    the cameras overlap as seen in the picture the warped IR is shown on.
    """
    grid = grid_points(vis_size, n)
    ir_pts = apply_h(np.linalg.inv(vis_H_ir_true), grid)
    return float(np.mean(np.linalg.norm(apply_h(vis_H_ir, ir_pts) - grid, axis=1)))


def check_image(
    ir: np.ndarray, vis: np.ndarray, rig: Rig, mode: str = "checkerboard", tile: int | None = None
) -> np.ndarray:
    """A BGR picture of IR warped onto VIS, for a person to judge the alignment.

    Modes: ``checkerboard`` (tiles alternate IR and VIS: edges must continue across tile borders),
    ``blend`` (IR in red/magenta over VIS in green/cyan: misalignment shows as coloured fringes),
    ``edges`` (IR edges in red drawn over the VIS image).
    """
    vis_g = to_gray8(vis)
    ir_g = to_gray8(ir)
    vis_size = (vis_g.shape[1], vis_g.shape[0])
    ir_size = (ir_g.shape[1], ir_g.shape[0])
    H = rig.homography_for(ir_size, vis_size)
    warped = cv2.warpPerspective(ir_g, H, vis_size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    inside = cv2.warpPerspective(content_mask(ir_g), H, vis_size, flags=cv2.INTER_NEAREST) > 0
    if mode == "checkerboard":
        t = tile or max(16, min(vis_size) // 8)
        yy, xx = np.mgrid[0 : vis_size[1], 0 : vis_size[0]]
        use_ir = (((xx // t) + (yy // t)) % 2 == 0) & inside
        out = np.where(use_ir, warped, vis_g)
        return cv2.cvtColor(out.astype(np.uint8), cv2.COLOR_GRAY2BGR)
    if mode == "blend":
        return np.dstack([vis_g, vis_g, warped]).astype(np.uint8)  # B, G from VIS; R from IR
    if mode == "edges":
        out = cv2.cvtColor(vis_g, cv2.COLOR_GRAY2BGR)
        edges = cv2.Canny(cv2.GaussianBlur(warped, (5, 5), 0), 40, 120) > 0
        edges &= cv2.erode(inside.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        out[edges] = (0, 0, 255)
        return out
    raise FusioncamError(f"unknown check image mode {mode!r}; choose checkerboard, blend or edges")


def format_report(rig: Rig) -> str:
    """The report as a few human-readable lines (what the CLI prints)."""
    r: dict[str, Any] = rig.report
    (iw, ih), (vw, vh) = rig.ir_size, rig.vis_size
    lines = [f"method: {rig.method}   IR {iw}x{ih} -> VIS {vw}x{vh}"]
    auto = rig.method == "auto"
    if "points" in r:
        what = "image patches agreeing with H" if auto else "inlier points"
        lines.append(f"{what}: {r.get('inliers', '?')} of {r['points']}")
    if "views_used" in r:
        lines.append(f"views: {r['views_used']} of {r.get('views', '?')} with the board found in both images")
    if "rms_px" in r:
        lines.append(
            f"{'local patch shift' if auto else 'reprojection error'} (VIS px): RMS {r['rms_px']:.3f}  "
            f"median {r['median_px']:.3f}  max {r['max_px']:.3f}"
        )
    if "point_coverage" in r:
        frame = "VIS" if auto else "IR"
        lines.append(f"point coverage: {100 * r['point_coverage']:.0f}% of the {frame} frame")
    if "frame_pairs" in r:
        lines.append(
            f"frame pairs: {r['frame_pairs_confident']} of {r['frame_pairs']} confident, "
            f"{r['frame_pairs_agreeing']} agree with the best (pair #{r['best_frame_pair']})"
        )
    if "confidence" in r:
        lines.append(f"confidence: {r['confidence']:.3f}")
    H = rig.vis_H_ir
    lines.append("vis_H_ir (IR px -> VIS px):")
    lines += ["  [" + ", ".join(f"{v: .6g}" for v in row) + "]" for row in H]
    return "\n".join(lines)
