"""Rig description (the IR->VIS homography of a camera pair) and the warps that apply it.

Convention: ``vis_H_ir`` maps a pixel (x, y, 1) of the IR image (at ``ir_size``) to the VIS image (at
``vis_size``), in pixel coordinates with (0, 0) the centre of the top-left pixel, OpenCV's convention.
Warping IR onto VIS therefore samples IR at ``inverse(vis_H_ir) @ p_vis`` for each VIS pixel, which is
what ``cv2.warpPerspective(ir, vis_H_ir, vis_size)`` does.

The YAML file uses plain lists (no OpenCV FileStorage tags) so any tool can read it.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from fusioncam.config import read_yaml
from fusioncam.errors import FusioncamError

__all__ = [
    "Rig",
    "perspective_ratio",
    "MAX_PERSPECTIVE_RATIO",
    "warp_ir_to_vis",
    "warp_ir_to_vis_torch",
    "scale_homography",
]

RIG_FORMAT_VERSION = 1


#: the most the projective denominator may vary over the IR frame (max / min over its corners). A camera
#: pair gives nearly 1 (a 20 degree rotation between the cameras about 1.6; the 241 ground-truth
#: homographies of ../shared/data/registration at most 2.15, median 1.03); a fit to bad points that
#: squeezes one side of the frame to a sliver gives tens.
MAX_PERSPECTIVE_RATIO = 4.0


def perspective_ratio(H: np.ndarray, size: tuple[int, int]) -> float:
    """Max over min of the projective denominator ``H[2] @ (x, y, 1)`` at the frame's corners (1 for an
    affine map; the local scale varies by about its cube across the frame). Infinite when the horizon
    crosses the frame: a real camera pair never puts it inside the other view, but a fit to swapped or
    mis-clicked points can."""
    w, h = size
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [w - 1, h - 1, 1], [0, h - 1, 1]], dtype=np.float64)
    den = corners @ np.asarray(H, dtype=np.float64)[2]
    if not (np.all(den > 1e-9) or np.all(den < -1e-9)):
        return float("inf")
    den = np.abs(den)
    return float(den.max() / den.min())


@dataclass
class Rig:
    """A calibrated IR/VIS camera pair.

    Attributes:
        vis_H_ir: 3x3 homography, IR pixels -> VIS pixels.
        ir_size: (width, height) of the IR images used at calibration.
        vis_size: (width, height) of the VIS images used at calibration.
        method: how H was estimated ("identity", "points", "target", "auto", ...).
        report: error statistics and other facts of the estimation (inliers, RMS, ...).
        cameras: identities of the two cameras, e.g. {"ir": "/dev/video1", "vis": "/dev/video0"}.
        created: ISO date-time of the calibration.
    """

    vis_H_ir: np.ndarray
    ir_size: tuple[int, int]
    vis_size: tuple[int, int]
    method: str = "identity"
    report: dict[str, Any] = field(default_factory=dict)
    cameras: dict[str, str] = field(default_factory=dict)
    created: str = field(default_factory=lambda: _dt.datetime.now().isoformat(timespec="seconds"))

    def __post_init__(self) -> None:
        H = np.asarray(self.vis_H_ir, dtype=np.float64)
        if H.shape != (3, 3):
            raise FusioncamError(f"rig homography must be a 3x3 matrix, got shape {H.shape}")
        if not np.all(np.isfinite(H)):
            raise FusioncamError("rig homography holds NaN or infinite values")
        if abs(np.linalg.det(H)) < 1e-12:
            raise FusioncamError("rig homography is singular (its determinant is 0)")
        self.vis_H_ir = H / H[2, 2] if abs(H[2, 2]) > 1e-12 else H
        self.ir_size = _size(self.ir_size, "ir_size")
        self.vis_size = _size(self.vis_size, "vis_size")
        # The denominator H[2] @ (x, y, 1) is affine in (x, y): its sign and spread at the four corners
        # hold for the whole frame.
        ratio = perspective_ratio(self.vis_H_ir, self.ir_size)
        if ratio == float("inf"):
            raise FusioncamError(
                "rig homography sends part of the IR frame to infinity (the warped image would fold "
                "over): no camera pair gives such a mapping, but swapped or mis-clicked point pairs can"
            )
        if ratio > MAX_PERSPECTIVE_RATIO:
            raise FusioncamError(
                f"rig homography has a perspective no camera pair gives (its scale changes "
                f"{ratio**3:.0f}-fold across the IR frame): check the point pairs for swapped or "
                "mis-clicked ones"
            )

    @classmethod
    def identity(cls, size: tuple[int, int]) -> Rig:
        """A rig whose cameras already see the same pixels (no warp)."""
        return cls(np.eye(3), size, size, method="identity")

    @property
    def is_identity(self) -> bool:
        return self.ir_size == self.vis_size and np.allclose(self.vis_H_ir, np.eye(3), atol=1e-9)

    @property
    def ir_H_vis(self) -> np.ndarray:
        return np.linalg.inv(self.vis_H_ir)

    def homography_for(self, ir_size: tuple[int, int], vis_size: tuple[int, int]) -> np.ndarray:
        """H for frames of other sizes than at calibration (cameras switched to another resolution)."""
        return scale_homography(self.vis_H_ir, self.ir_size, self.vis_size, ir_size, vis_size)

    # --- YAML ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["vis_H_ir"] = [[float(v) for v in row] for row in self.vis_H_ir]
        d["ir_size"] = list(self.ir_size)
        d["vis_size"] = list(self.vis_size)
        d["direction"] = "ir_to_vis: p_vis ~ vis_H_ir @ p_ir, pixel coordinates"
        d["format_version"] = RIG_FORMAT_VERSION
        d["report"] = _plain(self.report)
        return d

    def save(self, path: str | Path) -> None:
        """Write the rig as YAML, atomically (a temporary file renamed when complete)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        try:
            with open(tmp, "w") as f:
                yaml.safe_dump(self.to_dict(), f, sort_keys=False)
            tmp.replace(path)
        except OSError as e:
            raise FusioncamError(f"cannot write rig file {path}: {e.strerror}") from e

    @classmethod
    def from_dict(cls, d: Any, source: str = "rig") -> Rig:
        if not isinstance(d, dict):
            raise FusioncamError(f"{source}: expected a mapping with vis_H_ir, ir_size and vis_size")
        missing = [k for k in ("vis_H_ir", "ir_size", "vis_size") if k not in d]
        if missing:
            raise FusioncamError(f"{source}: missing key(s) {', '.join(missing)}")
        version = d.get("format_version", RIG_FORMAT_VERSION)  # files from before the key: version 1
        if not isinstance(version, int) or isinstance(version, bool) or version > RIG_FORMAT_VERSION:
            raise FusioncamError(
                f"{source}: format_version {version!r} is not one this fusioncam reads "
                f"(up to {RIG_FORMAT_VERSION}); update fusioncam"
            )
        try:
            H = np.array(d["vis_H_ir"], dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise FusioncamError(f"{source}: vis_H_ir is not a 3x3 list of numbers") from e
        for key in ("report", "cameras"):
            if d.get(key) is not None and not isinstance(d[key], dict):
                raise FusioncamError(f"{source}: {key} must be a mapping, got {type(d[key]).__name__}")
        try:
            return cls(
                vis_H_ir=H,
                ir_size=d["ir_size"],
                vis_size=d["vis_size"],
                method=str(d.get("method", "unknown")),
                report=dict(d.get("report") or {}),
                cameras=dict(d.get("cameras") or {}),
                created=str(d.get("created", "")),
            )
        except FusioncamError as e:
            raise FusioncamError(f"{source}: {e}") from None

    @classmethod
    def load(cls, path: str | Path) -> Rig:
        """Read a rig YAML file; every problem (missing, unreadable, not YAML, bad values) is one line."""
        path = Path(path).expanduser()
        # Not read_yaml_mapping: from_dict's "expected a mapping with vis_H_ir, ..." says more.
        return cls.from_dict(read_yaml(path, "rig file"), source=f"rig file {path}")


def _size(v: Any, name: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in v)
    except (TypeError, ValueError):
        raise FusioncamError(f"{name} must be [width, height], got {v!r}") from None
    if w <= 0 or h <= 0:
        raise FusioncamError(f"{name} must be positive, got {v!r}")
    return w, h


def _plain(x: Any) -> Any:
    """Convert numpy scalars/arrays inside a report to plain Python for safe_dump."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return _plain(x.tolist())
    if isinstance(x, np.generic):
        return x.item()
    return x


def scale_homography(
    H: np.ndarray,
    ir_size: tuple[int, int],
    vis_size: tuple[int, int],
    new_ir_size: tuple[int, int],
    new_vis_size: tuple[int, int],
) -> np.ndarray:
    """Adapt ``vis_H_ir`` calibrated at (ir_size, vis_size) to frames of other sizes (a resize).

    With (0, 0) the centre of the top-left pixel, resizing by ``s`` maps x to ``(x + 0.5) * s - 0.5``
    (what ``cv2.resize`` does), not to ``x * s``: the half-pixel terms matter at a 2x change.
    """
    ir_from_new = _resize_map(ir_size[0] / new_ir_size[0], ir_size[1] / new_ir_size[1])
    new_from_vis = _resize_map(new_vis_size[0] / vis_size[0], new_vis_size[1] / vis_size[1])
    return new_from_vis @ np.asarray(H, dtype=np.float64) @ ir_from_new


def _resize_map(sx: float, sy: float) -> np.ndarray:
    """Pixel-centre map of a resize by (sx, sy): x -> (x + 0.5) * sx - 0.5."""
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


def warp_ir_to_vis(ir: np.ndarray, rig: Rig | None, vis_size: tuple[int, int] | None = None) -> np.ndarray:
    """Warp a numpy IR frame into the VIS image plane; identity (a copy-free pass) when ``rig`` is None.

    Args:
        ir: uint8/uint16 (H, W) or (H, W, C) IR frame.
        rig: the rig, or None for cameras that already see the same pixels.
        vis_size: (width, height) of the VIS frame; defaults to the rig's ``vis_size``.
    """
    if rig is None:
        return ir
    ir_size = (ir.shape[1], ir.shape[0])
    vis_size = vis_size or rig.vis_size
    if rig.is_identity and ir_size == vis_size:
        return ir
    H = rig.homography_for(ir_size, vis_size)
    return cv2.warpPerspective(ir, H, vis_size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def warp_ir_to_vis_torch(ir, rig: Rig | None, vis_size: tuple[int, int] | None = None):
    """Warp a torch IR batch (B, C, H, W) into the VIS plane with kornia, on the tensor's device.

    kornia's ``warp_perspective`` takes the same pixel-coordinate ``dst_H_src`` as OpenCV, so the same H
    serves both paths.
    """
    if rig is None:
        return ir
    import torch
    from kornia.geometry.transform import warp_perspective

    ir_size = (int(ir.shape[-1]), int(ir.shape[-2]))
    vis_size = vis_size or rig.vis_size
    if rig.is_identity and ir_size == vis_size:
        return ir
    H = torch.as_tensor(rig.homography_for(ir_size, vis_size), dtype=ir.dtype, device=ir.device)
    H = H.unsqueeze(0).expand(ir.shape[0], 3, 3)
    return warp_perspective(
        ir, H, (vis_size[1], vis_size[0]), mode="bilinear", padding_mode="zeros", align_corners=True
    )
