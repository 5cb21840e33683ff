"""Point pairs: H from at least four IR/VIS correspondences picked by hand (file or GUI).

The fit is ``cv2.findHomography`` with a robust estimator (USAC_MAGSAC by default, RANSAC as an
alternative) so that one mis-clicked point is reported as an outlier instead of bending H, followed by a
least-squares refit on the inliers (OpenCV does that refinement itself). Every point gets its residual.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from fusioncam.errors import FusioncamError
from fusioncam.processing.registration import Rig

from .report import error_stats, point_coverage, residuals

__all__ = ["load_points", "estimate_from_points", "fit_homography", "ROBUST_METHODS"]

ROBUST_METHODS = {"magsac": cv2.USAC_MAGSAC, "ransac": cv2.RANSAC, "lsq": 0}


def load_points(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read point pairs from YAML or CSV; returns (ir_pts, vis_pts), each (N, 2) float64.

    YAML: either ``{ir: [[x, y], ...], vis: [[x, y], ...]}`` or ``{pairs: [{ir: [x, y], vis: [x, y]}, ...]}``.
    CSV: columns ``ir_x, ir_y, vis_x, vis_y`` (a header row with those names is optional).
    """
    p = Path(path)
    if p.is_dir():
        raise FusioncamError(f"points file {p} is a folder; give a YAML or CSV file")
    if not p.is_file():
        raise FusioncamError(f"points file not found: {p}")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise FusioncamError(f"cannot read points file {p}: {e}") from None
    if p.suffix.lower() == ".csv":
        return _parse_csv(text, p)
    try:
        d = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise FusioncamError(f"points file {p} is not valid YAML: {str(e).splitlines()[0]}") from None
    return _parse_yaml(d, p)


def _as_pts(v: Any, what: str, src: Path) -> np.ndarray:
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise FusioncamError(f"{src}: {what} must be a list of [x, y] numbers") from None
    if a.ndim != 2 or a.shape[1] != 2 or not np.all(np.isfinite(a)):
        raise FusioncamError(f"{src}: {what} must be a list of [x, y] numbers")
    return a


def _parse_yaml(d: Any, src: Path) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(d, dict) and "pairs" in d:
        pairs = d["pairs"]
        if not isinstance(pairs, list) or not all(
            isinstance(q, dict) and "ir" in q and "vis" in q for q in pairs
        ):
            raise FusioncamError(f"{src}: 'pairs' must be a list of {{ir: [x, y], vis: [x, y]}}")
        return _as_pts([q["ir"] for q in pairs], "ir", src), _as_pts([q["vis"] for q in pairs], "vis", src)
    if isinstance(d, dict) and "ir" in d and "vis" in d:
        ir, vis = _as_pts(d["ir"], "ir", src), _as_pts(d["vis"], "vis", src)
        if len(ir) != len(vis):
            raise FusioncamError(f"{src}: {len(ir)} IR points but {len(vis)} VIS points")
        return ir, vis
    raise FusioncamError(f"{src}: expected keys 'ir' and 'vis' (lists of [x, y]) or 'pairs'")


def _parse_csv(text: str, src: Path) -> tuple[np.ndarray, np.ndarray]:
    rows = [r for r in csv.reader(text.splitlines()) if r and any(c.strip() for c in r)]
    if rows and not _is_number(rows[0][0]):
        header = [c.strip().lower() for c in rows[0]]
        want = ["ir_x", "ir_y", "vis_x", "vis_y"]
        if not all(w in header for w in want):
            raise FusioncamError(f"{src}: CSV header must name columns {', '.join(want)}")
        idx = [header.index(w) for w in want]
        for n, r in enumerate(rows[1:], start=1):
            if len(r) < len(header):
                raise FusioncamError(f"{src}: row {n} has {len(r)} values, the header names {len(header)}")
        rows = [[r[i] for i in idx] for r in rows[1:]]
    out = []
    for n, r in enumerate(rows, start=1):
        if len(r) < 4:
            raise FusioncamError(f"{src}: row {n} has {len(r)} values, expected ir_x, ir_y, vis_x, vis_y")
        try:
            out.append([float(c) for c in r[:4]])
        except ValueError:
            raise FusioncamError(f"{src}: row {n} is not four numbers: {r[:4]}") from None
    a = np.asarray(out, dtype=np.float64).reshape(-1, 4)
    if not np.all(np.isfinite(a)):
        raise FusioncamError(f"{src}: non-finite coordinates")
    return a[:, :2].copy(), a[:, 2:].copy()


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _check_degenerate(pts: np.ndarray, name: str) -> None:
    """Refuse point sets that cannot define a homography: fewer than 4 distinct points, or all on a line."""
    uniq = np.unique(np.round(pts, 6), axis=0)
    if len(uniq) < 4:
        raise FusioncamError(f"need at least 4 distinct {name} points, got {len(uniq)}")
    c = uniq - uniq.mean(axis=0)
    sv = np.linalg.svd(c, compute_uv=False)
    spread = sv[0] / np.sqrt(len(uniq))
    if sv[1] / np.sqrt(len(uniq)) < max(0.02 * spread, 1e-6):  # within ~2 % of a line: ill-posed
        raise FusioncamError(
            f"the {name} points are (nearly) collinear: a homography needs points spread in 2D"
        )


def _check_inside(pts: np.ndarray, size: tuple[int, int], name: str) -> None:
    w, h = size
    bad = (pts[:, 0] < -0.5) | (pts[:, 1] < -0.5) | (pts[:, 0] > w - 0.5) | (pts[:, 1] > h - 0.5)
    if bad.any():
        i = int(np.argmax(bad))
        raise FusioncamError(
            f"{name} point #{i + 1} {pts[i].tolist()} lies outside the {name} image of size {w}x{h}; "
            "are the sizes (or the columns) right?"
        )


def fit_homography(
    ir_pts: np.ndarray, vis_pts: np.ndarray, method: str = "magsac", threshold_px: float = 3.0
) -> tuple[np.ndarray, np.ndarray]:
    """Robust ``vis_H_ir`` from correspondences; returns (H, inlier mask as bool array).

    With exactly 4 points, or ``method="lsq"``, all points are used (nothing to vote with).
    """
    ir_pts = np.asarray(ir_pts, np.float64).reshape(-1, 2)
    vis_pts = np.asarray(vis_pts, np.float64).reshape(-1, 2)
    if method not in ROBUST_METHODS:
        raise FusioncamError(f"unknown fitting method {method!r}; choose {', '.join(ROBUST_METHODS)}")
    if not (np.isfinite(threshold_px) and threshold_px > 0):
        raise FusioncamError(f"the inlier threshold must be a positive number of pixels, got {threshold_px}")
    if len(ir_pts) != len(vis_pts):
        raise FusioncamError(f"{len(ir_pts)} IR points but {len(vis_pts)} VIS points")
    if len(ir_pts) < 4:
        raise FusioncamError(f"need at least 4 point pairs for a homography, got {len(ir_pts)}")
    _check_degenerate(ir_pts, "IR")
    _check_degenerate(vis_pts, "VIS")
    flag = 0 if len(ir_pts) == 4 else ROBUST_METHODS[method]
    kwargs: dict[str, Any] = {}
    if flag:
        kwargs = {"ransacReprojThreshold": threshold_px, "maxIters": 5000, "confidence": 0.999}
    H, mask = cv2.findHomography(ir_pts, vis_pts, flag, **kwargs)
    if H is None:
        raise FusioncamError("no homography fits these point pairs (are they consistent?)")
    inl = mask.ravel().astype(bool) if mask is not None else np.ones(len(ir_pts), bool)
    if flag and inl.sum() >= 4:
        # Least-squares polish on the inliers (the robust estimate is fitted on minimal samples).
        H2, _ = cv2.findHomography(ir_pts[inl], vis_pts[inl], 0)
        if H2 is not None:
            H = H2
            inl = residuals(H, ir_pts, vis_pts) <= threshold_px
    if not np.all(np.isfinite(H)) or abs(np.linalg.det(H)) < 1e-12:
        raise FusioncamError("the point pairs give a degenerate homography")
    return H / H[2, 2], inl


def estimate_from_points(
    ir_pts: np.ndarray,
    vis_pts: np.ndarray,
    ir_size: tuple[int, int],
    vis_size: tuple[int, int],
    method: str = "magsac",
    threshold_px: float = 3.0,
    cameras: dict[str, str] | None = None,
) -> tuple[Rig, dict[str, Any]]:
    """Rig from hand-picked correspondences; (Rig, report), the report also stored in ``Rig.report``.

    Args:
        ir_pts, vis_pts: (N, 2) pixel coordinates, row i of each being the same scene point.
        ir_size, vis_size: (width, height) of the images the points were picked on.
        method: "magsac" (default), "ransac" or "lsq" (plain least squares on all points).
        threshold_px: inlier threshold in VIS pixels.
    """
    ir_pts = np.asarray(ir_pts, np.float64).reshape(-1, 2)
    vis_pts = np.asarray(vis_pts, np.float64).reshape(-1, 2)
    if len(ir_pts) != len(vis_pts):
        raise FusioncamError(f"{len(ir_pts)} IR points but {len(vis_pts)} VIS points: they must pair up")
    _check_inside(ir_pts, tuple(ir_size), "IR")
    _check_inside(vis_pts, tuple(vis_size), "VIS")
    H, inl = fit_homography(ir_pts, vis_pts, method, threshold_px)
    res = residuals(H, ir_pts, vis_pts)
    report: dict[str, Any] = {
        "points": len(ir_pts),
        "inliers": int(inl.sum()),
        "fit": method if len(ir_pts) > 4 else "exact (4 points)",
        **error_stats(res[inl]),
        "residuals_px": [round(float(r), 4) for r in res],
        "outliers": [int(i) for i in np.flatnonzero(~inl)],
        "point_coverage": point_coverage(ir_pts[inl], tuple(ir_size)),
        # With fewer than 6 inliers the fit has (almost) no redundancy: a bad click cannot show up.
        "confidence": 1.0 if inl.sum() >= 6 else 0.5,
    }
    rig = Rig(H, ir_size, vis_size, method="points", report=report, cameras=dict(cameras or {}))
    return rig, report
