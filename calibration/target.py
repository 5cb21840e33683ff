"""Calibration target: a heated/cooled chessboard or circle grid seen by both cameras in several views.

A board that is warm against a cold background may show up inverted, washed out, or blurred in the
thermal image, so detection tries a short list of preprocessing variants (as is, inverted, CLAHE, blur,
2x upscale for small thermal sensors, and their inversions) until ``cv2.findChessboardCornersSB`` or
``cv2.findCirclesGrid`` succeeds. All corners of all views where the board was found in *both* images
go into one robust fit, so the board can be moved around to cover the whole frame.

Corner order: a symmetric board read with inverted polarity comes back rotated by 180 degrees. The two
cameras of a rig are mounted the same way up, so the IR order is reversed where the board's first-to-last
corner direction disagrees between the two images.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from fusioncam.errors import FusioncamError
from fusioncam.processing.registration import Rig

from .images import to_gray8
from .points import fit_homography
from .report import error_stats, residuals

__all__ = ["BoardSpec", "detect_board", "estimate_from_target", "render_board", "board_points", "VARIANTS"]

VARIANTS = (
    "plain",
    "inverted",
    "clahe",
    "clahe_inverted",
    "blur",
    "blur_inverted",
    "upscale",
    "upscale_inverted",
)


@dataclass(frozen=True)
class BoardSpec:
    """A calibration board.

    Attributes:
        kind: "chessboard" or "circles".
        cols, rows: inner corners (chessboard) or circles (grid) per row and per column.
        asymmetric: circle grid with every other row shifted by half a pitch.
        square_mm: square side or circle pitch in millimetres (recorded in the report only: a homography
            between two images needs no metric scale).
    """

    kind: str
    cols: int
    rows: int
    asymmetric: bool = False
    square_mm: float | None = None

    @classmethod
    def parse(cls, text: str) -> BoardSpec:
        """``chessboard:9x6[:square_mm]`` or ``circles:4x11[:asym][:pitch_mm]``."""
        m = re.fullmatch(r"\s*(chessboard|circles):(\d+)x(\d+)((?::[A-Za-z0-9.]+)*)\s*", text or "")
        if not m:
            raise FusioncamError(
                f"bad board spec {text!r}; use chessboard:COLSxROWS[:square_mm] "
                "or circles:COLSxROWS[:asym][:pitch_mm]"
            )
        kind, cols, rows = m.group(1), int(m.group(2)), int(m.group(3))
        asym, size = False, None
        for opt in [o for o in m.group(4).split(":") if o]:
            if opt.lower() in ("asym", "asymmetric"):
                if kind != "circles":
                    raise FusioncamError("':asym' applies to circle grids only")
                asym = True
            else:
                try:
                    size = float(opt)
                except ValueError:
                    raise FusioncamError(f"bad board option {opt!r} in {text!r}") from None
                if size <= 0:
                    raise FusioncamError(f"board square size must be positive, got {opt}")
        if cols < 2 or rows < 2 or cols * rows < 4:
            raise FusioncamError(f"board {cols}x{rows} is too small: it needs at least 2x2 points")
        return cls(kind, cols, rows, asym, size)

    @property
    def pattern_size(self) -> tuple[int, int]:
        return (self.cols, self.rows)

    def __str__(self) -> str:
        s = f"{self.kind}:{self.cols}x{self.rows}"
        if self.asymmetric:
            s += ":asym"
        if self.square_mm:
            s += f":{self.square_mm:g}"
        return s

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": str(self),
            "kind": self.kind,
            "cols": self.cols,
            "rows": self.rows,
            "asymmetric": self.asymmetric,
            "square_mm": self.square_mm,
        }


def _variant(gray: np.ndarray, name: str) -> tuple[np.ndarray, float]:
    """The preprocessed image and the factor its coordinates are scaled by."""
    img, scale = gray, 1.0
    base = name.removesuffix("_inverted")
    if name != "plain":  # a warm board may span only a few grey levels: stretch them first
        lo, hi = np.percentile(gray, [1, 99])
        if hi > lo:
            img = np.clip((gray.astype(np.float32) - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    if base == "clahe":
        img = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8)).apply(gray)
    elif base == "blur":
        img = cv2.GaussianBlur(img, (5, 5), 0)
    elif base == "upscale":
        scale = 2.0
        img = cv2.resize(img, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    if name.endswith("_inverted") or name == "inverted":
        img = 255 - img
    return img, scale


def _find(img: np.ndarray, board: BoardSpec) -> np.ndarray | None:
    if board.kind == "chessboard":
        flags = cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_ACCURACY
        ok, corners = cv2.findChessboardCornersSB(img, board.pattern_size, flags=flags)
    else:
        flags = cv2.CALIB_CB_ASYMMETRIC_GRID if board.asymmetric else cv2.CALIB_CB_SYMMETRIC_GRID
        ok, corners = cv2.findCirclesGrid(img, board.pattern_size, flags=flags)
    return corners.reshape(-1, 2).astype(np.float64) if ok and corners is not None else None


def detect_board(
    image: np.ndarray, board: BoardSpec, variants: Sequence[str] = VARIANTS
) -> tuple[np.ndarray | None, str | None]:
    """Board points (N, 2) in pixel coordinates and the variant that found them, or (None, None)."""
    gray = to_gray8(image)
    for name in variants:
        if name not in VARIANTS:
            raise FusioncamError(f"unknown preprocessing variant {name!r}; choose from {', '.join(VARIANTS)}")
        img, scale = _variant(gray, name)
        pts = _find(img, board)
        if pts is not None:
            if scale != 1.0:  # pixel centres: x_small = (x_big + 0.5) / s - 0.5
                pts = (pts + 0.5) / scale - 0.5
            return pts, name
    return None, None


def _orient_like(ir_pts: np.ndarray, vis_pts: np.ndarray) -> np.ndarray:
    """Reverse the IR corner order where it runs opposite to the VIS order (a 180-degree relabelling)."""
    d_ir, d_vis = ir_pts[-1] - ir_pts[0], vis_pts[-1] - vis_pts[0]
    return ir_pts[::-1].copy() if float(np.dot(d_ir, d_vis)) < 0 else ir_pts


def estimate_from_target(
    ir_images: Sequence[np.ndarray],
    vis_images: Sequence[np.ndarray],
    board: BoardSpec | str,
    threshold_px: float = 2.0,
    cameras: dict[str, str] | None = None,
    variants: Sequence[str] = VARIANTS,
) -> tuple[Rig, dict[str, Any]]:
    """One homography fitted to the board points of every view pair; (Rig, report).

    Args:
        ir_images, vis_images: frames of the same moments (view i of each shows the same board pose).
        board: a :class:`BoardSpec` or its text form ("chessboard:9x6:25").
        threshold_px: inlier threshold of the robust fit, in VIS pixels.
    """
    spec = board if isinstance(board, BoardSpec) else BoardSpec.parse(board)
    if len(ir_images) != len(vis_images):
        raise FusioncamError(f"{len(ir_images)} IR views but {len(vis_images)} VIS views: they must pair up")
    if not ir_images:
        raise FusioncamError("no views given")
    ir_size = _common_size(ir_images, "IR")
    vis_size = _common_size(vis_images, "VIS")
    all_ir, all_vis, per_view = [], [], []
    n_ir = n_vis = 0
    for i, (a, b) in enumerate(zip(ir_images, vis_images, strict=True)):
        p_ir, v_ir = detect_board(a, spec, variants)
        p_vis, v_vis = detect_board(b, spec, variants)
        n_ir += p_ir is not None
        n_vis += p_vis is not None
        entry: dict[str, Any] = {"view": i, "ir": v_ir or "not found", "vis": v_vis or "not found"}
        if p_ir is not None and p_vis is not None:
            p_ir = _orient_like(p_ir, p_vis)
            all_ir.append(p_ir)
            all_vis.append(p_vis)
            entry["used"] = True
        per_view.append(entry)
    n = len(ir_images)
    if not all_ir:
        raise FusioncamError(
            f"board {spec} not found in both images of any view: found in {n_ir} of {n} IR and "
            f"{n_vis} of {n} VIS images (check the board size, its contrast in the thermal image, and focus)"
        )
    ir_pts, vis_pts = np.vstack(all_ir), np.vstack(all_vis)
    H, inl = fit_homography(ir_pts, vis_pts, "magsac", threshold_px)
    res = residuals(H, ir_pts, vis_pts)
    k = 0
    for entry in per_view:
        if entry.get("used"):
            m = len(all_ir[0])
            entry.update(error_stats(res[k : k + m]))
            k += m
    report: dict[str, Any] = {
        "board": spec.to_dict(),
        "views": n,
        "views_used": len(all_ir),
        "points": len(ir_pts),
        "inliers": int(inl.sum()),
        **error_stats(res[inl]),
        "point_coverage": _union_coverage(all_ir, ir_size),
        "confidence": round(float(inl.mean()), 4),
        "per_view": per_view,
    }
    rig = Rig(H, ir_size, vis_size, method="target", report=report, cameras=dict(cameras or {}))
    return rig, report


def _common_size(images: Sequence[np.ndarray], name: str) -> tuple[int, int]:
    sizes = {(im.shape[1], im.shape[0]) for im in images}
    if len(sizes) != 1:
        raise FusioncamError(
            f"the {name} views differ in size ({', '.join(f'{w}x{h}' for w, h in sorted(sizes))})"
        )
    return sizes.pop()


def _union_coverage(views: list[np.ndarray], size: tuple[int, int]) -> float:
    """Share of the IR frame covered by the union of the boards' outlines over all views."""
    mask = np.zeros((size[1], size[0]), np.uint8)
    for pts in views:
        hull = cv2.convexHull(pts.astype(np.float32)).astype(np.int32)
        cv2.fillConvexPoly(mask, hull, 1)
    return round(float(mask.mean()), 4)


def render_board(
    board: BoardSpec | str,
    size: tuple[int, int],
    dst_H_board: np.ndarray,
    px_per_square: int = 40,
    background: int = 200,
    foreground: int = 40,
) -> np.ndarray:
    """A synthetic uint8 view of the board, warped into an image of ``size`` by ``dst_H_board``.

    Board pixels: the pattern is drawn first at ``px_per_square`` pixels per square (or circle pitch), with
    one square of margin. Tests and the benchmark use it with thermal-like contrast applied afterwards.
    Returns the image; the true point positions are ``board_points(...)`` mapped by ``dst_H_board``.
    """
    spec = board if isinstance(board, BoardSpec) else BoardSpec.parse(board)
    q = px_per_square
    if spec.kind == "chessboard":
        nx, ny = spec.cols + 1, spec.rows + 1
        img = np.full(((ny + 2) * q, (nx + 2) * q), background, np.uint8)
        for j in range(ny):
            for i in range(nx):
                if (i + j) % 2 == 0:
                    img[(j + 1) * q : (j + 2) * q, (i + 1) * q : (i + 2) * q] = foreground
    else:
        extra = spec.cols if spec.asymmetric else 0
        img = np.full(((spec.rows + 1) * q, (spec.cols + extra + 1) * q), background, np.uint8)
        for x, y in board_points(spec, q):
            cv2.circle(
                img,
                (round(x * 16), round(y * 16)),
                round(q * 0.3 * 16),
                int(foreground),
                -1,
                cv2.LINE_AA,
                shift=4,
            )
    # Supersample 4x for anti-aliased edges; pixel centres: x_big = 4 x + 1.5.
    up = np.array([[4.0, 0, 1.5], [0, 4.0, 1.5], [0, 0, 1]])
    big = cv2.warpPerspective(
        img,
        up @ np.asarray(dst_H_board, np.float64),
        (size[0] * 4, size[1] * 4),
        flags=cv2.INTER_LINEAR,
        borderValue=int(background),
    )
    return cv2.resize(big, size, interpolation=cv2.INTER_AREA)


def board_points(board: BoardSpec | str, px_per_square: int = 40) -> np.ndarray:
    """The board's points in :func:`render_board`'s pattern pixels, in OpenCV's detection order."""
    spec = board if isinstance(board, BoardSpec) else BoardSpec.parse(board)
    q = px_per_square
    pts = []
    if spec.kind == "chessboard":
        for j in range(spec.rows):
            for i in range(spec.cols):
                pts.append(((i + 2) * q - 0.5, (j + 2) * q - 0.5))
    else:
        for j in range(spec.rows):
            for i in range(spec.cols):
                x = (2 * i + j % 2) * q if spec.asymmetric else i * q
                pts.append((x + q, (j + 1) * q))
    return np.asarray(pts, np.float64)
