"""Automatic IR->VIS homography from ordinary scene content (no target).

Thermal and visible images share edges (object outlines, road markings, windows) but not intensities or
even edge polarity, so both stages work on gradients:

1. **Coarse search** over scale, aspect, rotation and shift: the VIS image, warped by each candidate
   scale/aspect/rotation, is slid over the IR image with ``cv2.matchTemplate`` (normalised
   cross-correlation) at a low resolution. The images are represented by their *doubled-angle gradient
   orientation field* ``w * (cos 2t, sin 2t)`` with a saturating magnitude weight ``w``: doubling the
   angle makes it blind to edge polarity (a hot object is bright in IR, may be dark in VIS), and the
   saturation stops the strong textures of one modality from dominating.
2. **Refinement** with ``cv2.findTransformECC``, coarse to fine, on 3-channel orientation features:
   affine up to full resolution, then a full homography; candidates that converge to the same place
   are refined once.
3. **Local check**: textured VIS patches are matched, one by one, against the IR warped by the result
   (:func:`patch_agreement`). The share that lands where H says is the confidence, damped where few
   patches could be tested or the ECC correlation is low. It also picks between the affine and the
   homography result, and between candidates.

Below ``min_confidence`` the result is flagged not confident and :func:`estimate_auto` refuses
(``FusioncamError``) rather than return a wrong H silently.

Convention: the returned ``vis_H_ir`` maps IR pixels to VIS pixels
(see ``fusioncam.processing.registration``).
Internally ECC aligns VIS (the template) to IR (the input), i.e. it estimates ``ir_H_vis``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from fusioncam.errors import FusioncamError
from fusioncam.processing.registration import MAX_PERSPECTIVE_RATIO, Rig, perspective_ratio

from .images import content_mask, to_gray8
from .report import error_stats, transfer_error

__all__ = [
    "AutoParams",
    "AutoResult",
    "register_auto",
    "estimate_auto",
    "select_by_consensus",
    "patch_agreement",
    "orientation_field",
]


@dataclass
class AutoParams:
    """Search ranges and thresholds of the automatic method.

    ``scale`` is IR pixels per VIS pixel (horizontal); ``aspect`` the vertical over horizontal scale
    ratio; ``angles`` rotations in degrees tried around the best scales.
    """

    scale_range: tuple[float, float] = (0.5, 2.0)
    scale_step: float = 1.04
    aspects: tuple[float, ...] = (0.9, 1.0, 1.1, 1.2)
    angles: tuple[float, ...] = (-6.0, -3.0, 3.0, 6.0)
    coarse_size: int = 192
    candidates: int = 4
    refine_candidates: int = 2
    min_confidence: float = 0.25
    ecc_iterations: int = 60

    def validate(self) -> None:
        """Raise :class:`FusioncamError` on ranges that cannot be searched."""
        lo, hi = self.scale_range
        if not 0 < lo < hi:
            raise FusioncamError(f"scale range must satisfy 0 < min < max, got {self.scale_range}")
        if self.scale_step <= 1.0:
            raise FusioncamError(f"scale step must be > 1, got {self.scale_step}")
        if not self.aspects or min(self.aspects) <= 0:
            raise FusioncamError(f"aspects must be positive, got {self.aspects}")
        if not 0 <= self.min_confidence <= 1:
            raise FusioncamError(f"min_confidence must lie in [0, 1], got {self.min_confidence}")


@dataclass
class AutoResult:
    """What :func:`register_auto` found; ``confident`` says whether ``vis_H_ir`` may be used."""

    vis_H_ir: np.ndarray | None
    confident: bool
    confidence: float
    message: str
    details: dict[str, Any] = field(default_factory=dict)


# --- features -----------------------------------------------------------------------------------------
def _gradients(gray: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    f = gray.astype(np.float32)
    if sigma > 0:
        f = cv2.GaussianBlur(f, (0, 0), sigma)
    gx = cv2.Sobel(f, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(f, cv2.CV_32F, 0, 1, ksize=3)
    return gx, gy


def _saturate(mag: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Magnitude -> [0, 1) with the knee at this image's median valid magnitude (modality-neutral)."""
    vals = mag[valid > 0]
    k = float(np.median(vals)) if vals.size else 1.0
    k = max(k, 1e-3)
    return mag / (mag + 2.0 * k)


def orientation_field(gray: np.ndarray, valid: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """(H, W, 2) float32: saturated magnitude times (cos 2t, sin 2t) of the gradient angle t."""
    gx, gy = _gradients(gray, sigma)
    mag2 = gx * gx + gy * gy + 1e-12
    w = _saturate(np.sqrt(mag2), valid) * (valid > 0)
    c = (gx * gx - gy * gy) / mag2 * w
    s = 2.0 * gx * gy / mag2 * w
    return np.dstack([c, s]).astype(np.float32)


def ecc_features(gray: np.ndarray, valid: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """(H, W, 3) float32 for ECC: the orientation field plus half its weight as a third channel.

    OpenCV >= 5 correlates the three channels jointly, so ECC aligns edge *orientations* (polarity-blind)
    rather than raw intensities; with an older OpenCV, which takes one channel only, the caller falls
    back to the weight channel (compressed gradient magnitude).
    """
    fld = orientation_field(gray, valid, sigma)
    w = np.sqrt((fld**2).sum(axis=2)) * 0.5
    return np.dstack([fld, w]).astype(np.float32)


# --- geometry helpers ---------------------------------------------------------------------------------
def _scaling(f: float) -> np.ndarray:
    """Pixel-centre-correct map from full-resolution to ``f``-scaled pixel coordinates."""
    return np.array([[f, 0, 0.5 * f - 0.5], [0, f, 0.5 * f - 0.5], [0, 0, 1]], dtype=np.float64)


def _at_scale(H: np.ndarray, f: float) -> np.ndarray:
    S = _scaling(f)
    return S @ H @ np.linalg.inv(S)


def _resize(img: np.ndarray, f: float) -> np.ndarray:
    if f == 1.0:
        return img
    size = (max(1, round(img.shape[1] * f)), max(1, round(img.shape[0] * f)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def _plausible(ir_H_vis: np.ndarray, vis_size: tuple[int, int], ir_size: tuple[int, int]) -> bool:
    """H keeps the VIS frame convex, not folded, and overlapping the IR frame, and the IR frame finite
    in VIS (what :class:`Rig` requires)."""
    w, h = vis_size
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64).reshape(-1, 1, 2)
    den = ir_H_vis[2, 0] * corners[:, 0, 0] + ir_H_vis[2, 1] * corners[:, 0, 1] + ir_H_vis[2, 2]
    if np.any(den <= 1e-6) or perspective_ratio(np.linalg.inv(ir_H_vis), ir_size) > MAX_PERSPECTIVE_RATIO:
        return False
    q = cv2.perspectiveTransform(corners, ir_H_vis).reshape(-1, 2)
    if not cv2.isContourConvex(q.astype(np.float32)):
        return False
    area = cv2.contourArea(q.astype(np.float32))
    ir_area = ir_size[0] * ir_size[1]
    if area < 0.02 * ir_area or area > 50 * ir_area:
        return False
    x0, y0 = q.min(axis=0)
    x1, y1 = q.max(axis=0)
    return x1 > 0 and y1 > 0 and x0 < ir_size[0] and y0 < ir_size[1]


# --- stage 1: coarse search -----------------------------------------------------------------------------
def _rotate_field(field_: np.ndarray, angle_deg: float) -> np.ndarray:
    """Rotate the doubled-angle orientation values by ``2 * angle`` (the image itself is warped apart)."""
    a = np.radians(2 * angle_deg)
    c, s = field_[..., 0], field_[..., 1]
    return np.dstack([c * np.cos(a) - s * np.sin(a), c * np.sin(a) + s * np.cos(a)]).astype(np.float32)


def _coarse_search(
    vis_field: np.ndarray, ir_field: np.ndarray, f: float, p: AutoParams
) -> list[tuple[float, np.ndarray, tuple[float, float, float]]]:
    """Best (score, ir_H_vis at full resolution, (scale, aspect, angle)) candidates, best first.

    ``vis_field`` and ``ir_field`` are orientation fields at one common resolution (the returned H is
    in its pixels); the IR field is reduced by a further ``f`` for the search, the VIS field is warped
    straight to each candidate's scale.
    """
    ir_small = _resize(ir_field, f)
    ih, iw = ir_small.shape[:2]
    pad = max(4, round(0.15 * max(iw, ih)))
    ir_pad = cv2.copyMakeBorder(ir_small, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    vh, vw = vis_field.shape[:2]
    cx, cy = (vw - 1) / 2.0, (vh - 1) / 2.0

    def try_one(sx: float, aspect: float, angle: float) -> tuple[float, np.ndarray] | None:
        sy = sx * aspect
        # A: VIS full-res pixels -> template pixels (scaled by s*f, rotated about the centre).
        a = np.radians(angle)
        R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        L = R @ np.diag([sx * f, sy * f])
        corners = np.array([[0, 0], [vw - 1, 0], [vw - 1, vh - 1], [0, vh - 1]], float) - [cx, cy]
        q = corners @ L.T
        tw = int(np.ceil(q[:, 0].max() - q[:, 0].min())) + 1
        th = int(np.ceil(q[:, 1].max() - q[:, 1].min())) + 1
        # Keep the template smaller than the padded IR: crop it around its centre if needed.
        tw_c, th_c = min(tw, ir_pad.shape[1] - 4), min(th, ir_pad.shape[0] - 4)
        if tw_c < 12 or th_c < 12:
            return None
        A = np.zeros((2, 3))
        A[:, :2] = L
        A[:, 2] = np.array([(tw_c - 1) / 2.0, (th_c - 1) / 2.0]) - L @ [cx, cy]
        tmpl = cv2.warpAffine(
            vis_field, A, (tw_c, th_c), flags=cv2.INTER_AREA if sx * f < 1 else cv2.INTER_LINEAR
        )
        if angle:
            tmpl = _rotate_field(tmpl, angle)
        if float(np.abs(tmpl).sum()) < 1e-3:
            return None
        res = cv2.matchTemplate(ir_pad, tmpl, cv2.TM_CCORR_NORMED)
        _, score, _, loc = cv2.minMaxLoc(res)
        # template pixel (u, v) sits at IR-small pixel (u + loc_x - pad, v + loc_y - pad)
        T = np.eye(3)
        T[:2, :] = A
        shift = np.array([[1, 0, loc[0] - pad], [0, 1, loc[1] - pad], [0, 0, 1]], float)
        ir_small_H_vis = shift @ T
        return float(score), np.linalg.inv(_scaling(f)) @ ir_small_H_vis

    smin, smax = p.scale_range
    n = max(1, int(np.floor(np.log(smax / smin) / np.log(p.scale_step))) + 1)
    scales = smin * p.scale_step ** np.arange(n)
    found: list[tuple[float, np.ndarray, tuple[float, float, float]]] = []
    grid = [(float(s), asp, 0.0) for s in scales for asp in p.aspects]
    # Rotated cameras: every scale at the unit aspect, so that a rotation cannot hide the right scale.
    grid += [(float(s), 1.0, ang) for s in scales for ang in p.angles]
    for prm in grid:
        r = try_one(*prm)
        if r:
            found.append((r[0], r[1], prm))
    found.sort(key=lambda t: -t[0])
    best = _distinct(found, p.candidates)
    # Around the best candidates: half scale steps, every aspect, rotation in half steps.
    more = []
    half_step = np.sqrt(p.scale_step)
    half_angle = min((abs(a) for a in p.angles if a), default=3.0) / 2.0
    for _, _, (s, _, ang) in best:
        for sc in (s / half_step, s, s * half_step):
            for asp in p.aspects:
                for a in (ang - half_angle, ang, ang + half_angle):
                    r = try_one(float(sc), asp, a)
                    if r:
                        more.append((r[0], r[1], (float(sc), asp, a)))
    allc = sorted(found + more, key=lambda t: -t[0])
    return _distinct(allc, p.candidates)


def _distinct(cands, k: int, min_px: float = 12.0):
    """Up to ``k`` candidates that differ in where they put the VIS origin (by ``min_px``) or in scale."""
    out = []
    for c in cands:
        pc = c[1] @ np.array([0.0, 0.0, 1.0])
        pc = pc[:2] / pc[2]
        sc = c[2][0]
        if all(np.hypot(*(pc - o[3])) > min_px or abs(np.log(sc / o[2][0])) > 0.08 for o in out):
            out.append((*c, pc))
        if len(out) >= k:
            break
    return [o[:3] for o in out]


# --- stage 2: ECC refinement -----------------------------------------------------------------------------
def _level_edges(
    gray: np.ndarray, valid: np.ndarray, f: float, sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """ECC features and valid mask at scale ``f``; the mask is eroded past the blur so that the step
    from content to the black fill of a pre-warped image never counts as an edge."""
    g, m = _resize(gray, f), _resize(valid, f)
    m = (m > 127).astype(np.uint8)
    if not m.all():
        k = 2 * int(np.ceil(2 * sigma + 2)) + 1
        m = cv2.erode(m, np.ones((k, k), np.uint8))
    return ecc_features(g, m, sigma), m


# OpenCV 5 correlates multi-channel images in ECC; OpenCV 4 takes one channel.
_MULTICHANNEL_ECC = int(cv2.__version__.split(".")[0]) >= 5


def _ecc(t: np.ndarray, i: np.ndarray, W: np.ndarray, motion: int, crit, mask: np.ndarray):
    """``cv2.findTransformECC`` on the 3-channel features, or on their weight channel (OpenCV 4)."""
    if not _MULTICHANNEL_ECC:
        t, i = np.ascontiguousarray(t[..., 2]), np.ascontiguousarray(i[..., 2])
    return cv2.findTransformECC(t, i, W, motion, crit, mask, 5)


def _ecc_refine(
    vis: np.ndarray,
    vis_valid: np.ndarray,
    ir: np.ndarray,
    ir_valid: np.ndarray,
    ir_H_vis: np.ndarray,
    levels: tuple[tuple[float, int], ...],
    iterations: int,
    sigma: float = 1.0,
) -> tuple[np.ndarray, float]:
    """Coarse-to-fine ECC on edge images; ``levels`` are (scale, motion type) pairs, coarse first.

    Returns (ir_H_vis, correlation at the last level), correlation -1 where ECC failed to converge.
    """
    H = ir_H_vis.copy()
    rho = -1.0
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, 1e-5)
    for f, motion in levels:
        t, _ = _level_edges(vis, vis_valid, f, sigma)
        i, im = _level_edges(ir, ir_valid, f, sigma)
        W = _at_scale(H, f)
        W = (W / W[2, 2]).astype(np.float32)
        if motion != cv2.MOTION_HOMOGRAPHY:
            W = W[:2].copy()
        try:
            rho, W = _ecc(t, i, W, motion, crit, im)
        except cv2.error:
            return H, -1.0
        if W.shape[0] == 2:
            W = np.vstack([W, [0, 0, 1]])
        H = np.linalg.inv(_scaling(f)) @ W.astype(np.float64) @ _scaling(f)
        H /= H[2, 2]
    return H, float(rho)


# --- stage 3: a local check of the result ---------------------------------------------------------------
def patch_agreement(
    vis: np.ndarray,
    vis_valid: np.ndarray,
    ir: np.ndarray,
    ir_valid: np.ndarray,
    ir_H_vis: np.ndarray,
    radius: int = 8,
    tol_px: float = 2.0,
    sigma: float = 1.0,
) -> tuple[int, int, float, np.ndarray]:
    """How many textured VIS patches find their IR counterpart where ``ir_H_vis`` puts it.

    Each patch (about a fifth of the image side, half-overlapping) is matched by normalised correlation
    of orientation fields against the IR warped into the VIS frame, within +-``radius`` pixels. Returns
    (patches whose best match lies within ``tol_px`` of zero shift, textured patches tested, share of
    the VIS frame inside the convex hull of the agreeing patches, sub-pixel residual shifts of the
    agreeing patches in VIS pixels). Unlike one global correlation number,
    this says whether the alignment holds *everywhere*: a wrong H can reach a fair global ECC score on
    one dominant structure, but leaves most patches pointing elsewhere; and an H supported by content
    in one band of the picture only may extrapolate badly outside it (the coverage says so).
    """
    centres, shifts, P = _patch_shifts(vis, vis_valid, ir, ir_valid, ir_H_vis, radius, sigma)
    d = np.hypot(shifts[:, 0], shifts[:, 1]) if len(shifts) else np.zeros(0)
    ok = d <= tol_px
    agree, tested = int(ok.sum()), len(d)
    coverage = 0.0
    if agree >= 2:
        c = centres[ok]
        half = P / 2.0
        pts = np.concatenate([c + [sx * half, sy * half] for sx in (-1, 1) for sy in (-1, 1)]).astype(
            np.float32
        )
        coverage = float(cv2.contourArea(cv2.convexHull(pts))) / float(vis.shape[0] * vis.shape[1])
    return agree, tested, coverage, d[ok]


def _patch_shifts(
    vis: np.ndarray,
    vis_valid: np.ndarray,
    ir: np.ndarray,
    ir_valid: np.ndarray,
    ir_H_vis: np.ndarray,
    radius: int,
    sigma: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, int]:
    """(patch centres in VIS, their sub-pixel shifts to the warped IR, patch side) for textured patches.

    A shift (dx, dy) means the content of the VIS patch centred at c sits at c + (dx, dy) in the IR
    warped into the VIS frame by ``ir_H_vis``.
    """
    vh, vw = vis.shape[:2]
    warped = cv2.warpPerspective(ir, ir_H_vis, (vw, vh), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    wmask = cv2.warpPerspective(ir_valid, ir_H_vis, (vw, vh), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
    wmask = cv2.erode((wmask > 127).astype(np.uint8), np.ones((7, 7), np.uint8))
    fv = orientation_field(vis, vis_valid, sigma)
    fi = orientation_field(warped, wmask * 255, sigma)
    P = int(np.clip(min(vw, vh) // 5, 32, 128))
    step = P // 2
    centres, shifts = [], []
    for y0 in range(radius, vh - P - radius + 1, step):
        for x0 in range(radius, vw - P - radius + 1, step):
            if wmask[y0 - radius : y0 + P + radius, x0 - radius : x0 + P + radius].mean() < 0.98:
                continue
            t = fv[y0 : y0 + P, x0 : x0 + P]
            if float(np.sqrt((t**2).sum(axis=2)).mean()) < 0.08:  # too little structure to match
                continue
            s = fi[y0 - radius : y0 + P + radius, x0 - radius : x0 + P + radius]
            res = cv2.matchTemplate(s, t, cv2.TM_CCORR_NORMED)
            _, _, _, loc = cv2.minMaxLoc(res)
            dx, dy = _subpixel(res, loc)
            centres.append((x0 + (P - 1) / 2.0, y0 + (P - 1) / 2.0))
            shifts.append((dx - radius, dy - radius))
    return np.asarray(centres, float).reshape(-1, 2), np.asarray(shifts, float).reshape(-1, 2), P


def _subpixel(res: np.ndarray, loc: tuple[int, int]) -> tuple[float, float]:
    """Peak position refined by a parabola through the peak and its two neighbours, per axis."""
    x, y = loc
    out = [float(x), float(y)]
    for axis, (i, n) in enumerate(((x, res.shape[1]), (y, res.shape[0]))):
        if 0 < i < n - 1:
            if axis == 0:
                a, c, b = res[y, x - 1], res[y, x], res[y, x + 1]
            else:
                a, c, b = res[y - 1, x], res[y, x], res[y + 1, x]
            den = a - 2 * c + b
            if den < 0:
                out[axis] += float(np.clip(0.5 * (a - b) / den, -0.5, 0.5))
    return out[0], out[1]


def _centre(ir_H_vis: np.ndarray, vis_size: tuple[int, int]) -> np.ndarray:
    c = ir_H_vis @ np.array([(vis_size[0] - 1) / 2.0, (vis_size[1] - 1) / 2.0, 1.0])
    return c[:2] / c[2]


def register_auto(ir: np.ndarray, vis: np.ndarray, params: AutoParams | None = None) -> AutoResult:
    """Estimate ``vis_H_ir`` from one IR/VIS pair of ordinary scene content; never raises on failure.

    Args:
        ir, vis: images as OpenCV gives them (any depth, gray or BGR).
        params: search ranges and thresholds.

    Returns:
        An :class:`AutoResult`; ``vis_H_ir`` is None when nothing converged, and ``confident`` is False
        when the result must not be used.
    """
    p = params or AutoParams()
    p.validate()
    t0 = time.perf_counter()
    ir_g, vis_g = to_gray8(ir), to_gray8(vis)
    ir_size = (ir_g.shape[1], ir_g.shape[0])
    vis_size = (vis_g.shape[1], vis_g.shape[0])
    ir_valid, vis_valid = content_mask(ir_g), content_mask(vis_g)

    # 1. coarse search, on orientation fields at twice the search resolution (less aliasing)
    f = min(1.0, p.coarse_size / max(ir_size))
    fv = min(1.0, 2 * f)
    vis_field = orientation_field(_resize(vis_g, fv), _resize(vis_valid, fv), sigma=1.0)
    ir_field = orientation_field(_resize(ir_g, fv), _resize(ir_valid, fv), sigma=1.0)
    cands = _coarse_search(vis_field, ir_field, f / fv, p)
    back = np.linalg.inv(_scaling(fv))
    cands = [(s, back @ H @ _scaling(fv), prm) for s, H, prm in cands]
    t1 = time.perf_counter()

    # 2. ECC: affine from coarse to fine; candidates that converge together are refined once
    scales = sorted({min(1.0, f), min(1.0, 2 * f), 1.0})
    first: list[tuple[float, np.ndarray]] = []
    for _, H0, _ in cands:
        H, rho = _ecc_refine(
            vis_g, vis_valid, ir_g, ir_valid, H0, ((scales[0], cv2.MOTION_AFFINE),), p.ecc_iterations
        )
        if rho > 0 and _plausible(H, vis_size, ir_size):
            if all(np.hypot(*(_centre(H, vis_size) - _centre(G, vis_size))) > 4.0 for _, G in first):
                first.append((rho, H))
    first.sort(key=lambda r: -r[0])
    results = []
    for rho0, H0 in first[: p.refine_candidates]:
        levels = tuple((s, cv2.MOTION_AFFINE) for s in scales[1:])
        H_af, rho_af = (
            _ecc_refine(vis_g, vis_valid, ir_g, ir_valid, H0, levels, p.ecc_iterations)
            if levels
            else (H0, rho0)
        )
        if rho_af <= 0 or not _plausible(H_af, vis_size, ir_size):
            continue
        # Then a homography at full resolution, kept only where the local check prefers it: ECC always
        # gains a little from more freedom, but a perspective term can also fit the elastic part of
        # one region at the expense of the rest of the frame.
        H_ho, rho_ho = _ecc_refine(
            vis_g, vis_valid, ir_g, ir_valid, H_af, ((1.0, cv2.MOTION_HOMOGRAPHY),), p.ecc_iterations
        )
        agree_af = patch_agreement(vis_g, vis_valid, ir_g, ir_valid, H_af)
        best = (H_af, rho_af, agree_af, "affine")
        if rho_ho > 0 and _plausible(H_ho, vis_size, ir_size):
            agree_ho = patch_agreement(vis_g, vis_valid, ir_g, ir_valid, H_ho)
            if agree_ho[0] > agree_af[0]:
                best = (H_ho, rho_ho, agree_ho, "homography")
        results.append(best)
    t2 = time.perf_counter()

    details: dict[str, Any] = {
        "coarse_candidates": [
            {"score": round(s, 4), "scale": round(prm[0], 4), "aspect": prm[1], "angle": prm[2]}
            for s, _, prm in cands
        ],
        "time_search_s": round(t1 - t0, 3),
        "time_refine_s": round(t2 - t1, 3),
    }
    if not results:
        return AutoResult(None, False, 0.0, "no candidate alignment converged", details)

    def share(r) -> float:
        return r[2][0] / max(r[2][1], 1)

    results.sort(key=lambda r: -(share(r) + r[1]))
    H, rho, (agree, tested, coverage, residual), model = results[0]
    a = share(results[0])
    # confidence: the patch agreement, damped where few patches could be tested or ECC correlation is low
    confidence = float(a * min(1.0, tested / 20.0) * min(1.0, rho / 0.35))
    details.update(
        {
            "ecc_correlation": round(rho, 4),
            "patches_agreeing": agree,
            "patches_tested": tested,
            "patch_coverage": round(coverage, 4),
            "patch_error": error_stats(residual),
            "model": model,
        }
    )
    if len(results) > 1:
        # A runner-up that converged elsewhere and is nearly as well supported means an ambiguous scene.
        H2 = results[1][0]
        details["runner_up_agreement"] = round(share(results[1]), 4)
        details["runner_up_distance_px"] = round(
            transfer_error(np.linalg.inv(H2), np.linalg.inv(H), vis_size), 2
        )
    vis_H_ir = np.linalg.inv(H)
    vis_H_ir /= vis_H_ir[2, 2]
    confident = confidence >= p.min_confidence
    facts = f"{agree} of {tested} image patches agree, ECC correlation {rho:.3f}"
    msg = (
        f"aligned ({model}): {facts}"
        if confident
        else f"alignment not confident ({facts}; confidence {confidence:.3f} < {p.min_confidence})"
    )
    return AutoResult(vis_H_ir, confident, round(confidence, 4), msg, details)


def select_by_consensus(
    results: Sequence[AutoResult], vis_size: tuple[int, int], agree_px: float = 3.0
) -> tuple[int, list[int]]:
    """Pick the result of several frame pairs of one rig: (its index, indices of the confident results
    that agree with it within ``agree_px`` VIS pixels, itself included).

    A rig's geometry is the same in every frame pair, but a single pair can be fooled: by objects that
    moved between the visible and the thermal exposure, or by one dominant structure at another depth.
    Those do not repeat across frames, so among the confident results the one that most others agree
    with wins, and confidence only breaks ties. With no confident result the most confident one is
    returned (for its message) and the agreeing list is empty.

    Raises:
        FusioncamError: when two or more pairs are confident but the chosen one has no other pair's
            support: they contradict each other and nothing says which is right.
    """
    confident = [i for i, r in enumerate(results) if r.confident and r.vis_H_ir is not None]
    if not confident:
        return max(range(len(results)), key=lambda i: results[i].confidence), []

    def support(i: int) -> list[int]:
        H = results[i].vis_H_ir
        return [j for j in confident if transfer_error(results[j].vis_H_ir, H, vis_size) < agree_px]

    best = max(confident, key=lambda i: (len(support(i)), results[i].confidence))
    agreeing = support(best)
    if len(confident) >= 2 and len(agreeing) < 2:
        raise FusioncamError(
            f"automatic calibration refused: {len(confident)} frame pairs gave confident but different "
            f"alignments (none within {agree_px:g} px of another); moving objects or parallax can fool a "
            "single frame, so try frames of a static scene, more pairs, a target or point pairs"
        )
    return best, agreeing


def estimate_auto(
    ir: np.ndarray | Sequence[np.ndarray],
    vis: np.ndarray | Sequence[np.ndarray],
    params: AutoParams | None = None,
    cameras: dict[str, str] | None = None,
) -> tuple[Rig, dict[str, Any]]:
    """The automatic method behind the common interface: (Rig, report); refuses when not confident.

    ``ir`` and ``vis`` are one frame each, or equally long lists of frames of the same moments (from a
    video pair): each pair is tried and the confident result that most other pairs agree with (within 3
    VIS pixels) wins (:func:`select_by_consensus`), a check a single frame cannot give.

    Report: ``inliers`` / ``points`` are the image patches that agree with H / were tested;
    ``rms_px`` etc. their residual local shifts in VIS pixels; ``point_coverage`` the share of the VIS
    frame spanned by the agreeing patches.

    Raises:
        FusioncamError: "automatic calibration refused: ..." when no result is confident, or when
            several frame pairs are confident but contradict each other.
    """
    irs = [ir] if isinstance(ir, np.ndarray) else list(ir)
    viss = [vis] if isinstance(vis, np.ndarray) else list(vis)
    if len(irs) != len(viss) or not irs:
        raise FusioncamError(f"{len(irs)} IR frames but {len(viss)} VIS frames: give pairs of frames")
    sizes = {(v.shape[1], v.shape[0]) for v in viss}
    if len(sizes) != 1:
        raise FusioncamError(f"VIS frames of different sizes {sorted(sizes)}: give frames of one camera")
    vis_size = sizes.pop()
    results = [register_auto(a, b, params) for a, b in zip(irs, viss, strict=True)]
    best_i, agreeing = select_by_consensus(results, vis_size)
    res = results[best_i]
    if not res.confident or res.vis_H_ir is None:
        which = "" if len(results) == 1 else f" (best of {len(results)} frame pairs)"
        raise FusioncamError(
            f"automatic calibration refused{which}: {res.message}; use a target or point pairs"
        )
    ir_size = (irs[best_i].shape[1], irs[best_i].shape[0])
    d = res.details
    report: dict[str, Any] = {
        "confidence": res.confidence,
        "message": res.message,
        "model": d["model"],
        "ecc_correlation": d["ecc_correlation"],
        "points": d["patches_tested"],
        "inliers": d["patches_agreeing"],
        **d["patch_error"],
        "point_coverage": round(d["patch_coverage"], 4),
        "search": {k: d[k] for k in ("coarse_candidates", "time_search_s", "time_refine_s")},
    }
    if len(results) > 1:
        report.update(
            {
                "frame_pairs": len(results),
                "best_frame_pair": best_i,
                "frame_pairs_confident": sum(r.confident for r in results),
                "frame_pairs_agreeing": len(agreeing),
            }
        )
    rig = Rig(res.vis_H_ir, ir_size, vis_size, method="auto", report=report, cameras=dict(cameras or {}))
    return rig, report
