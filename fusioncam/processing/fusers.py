"""Fusers: one interface, a name -> factory registry, and the classical baselines.

Every fuser works on luminance: ``fuse(ir, vis)`` takes two uint8 gray images of the same size (IR
already registered onto VIS) and returns a uint8 gray image of that size. Colour is handled around it by
:func:`fusioncam.processing.color.fuse_color`. "mgfusion" is registered here too but imports the network
lazily, so the classical fusers work without loading torch.

Fusers are deterministic per frame with fixed parameters (no per-frame min/max rescaling), so a fused
video does not flicker.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from fusioncam.errors import FusioncamError

__all__ = [
    "Fuser",
    "FuserInfo",
    "register_fuser",
    "create_fuser",
    "list_fusers",
    "fuser_info",
    "check_clip_weights",
    "check_weights",
    "AverageFuser",
    "MaxIntensityFuser",
    "MaxDetailFuser",
    "LaplacianPyramidFuser",
    "GuidedFilterFuser",
    "guided_filter",
]


@runtime_checkable
class Fuser(Protocol):
    """Fuses a registered IR/VIS luminance pair: uint8 (H, W) x2 -> uint8 (H, W)."""

    name: str

    def fuse(self, ir: np.ndarray, vis: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class FuserInfo:
    name: str
    factory: Callable[..., Fuser]
    description: str
    classical: bool = True
    #: None for fusers whose output follows the inputs smoothly over time; else why a fused video of
    #: this fuser flickers (the live app does not offer it; docs/fusers_video.md has the measurements)
    flickers: str | None = None


_REGISTRY: dict[str, FuserInfo] = {}


def register_fuser(name: str, description: str, classical: bool = True, flickers: str | None = None):
    """Class/function decorator adding a fuser factory to the registry under ``name``."""

    def deco(factory):
        _REGISTRY[name] = FuserInfo(name, factory, description, classical, flickers)
        return factory

    return deco


def list_fusers(classical_only: bool = False, video_only: bool = False) -> list[str]:
    """Registered names; ``video_only`` leaves out the still-image baselines that flicker on video."""
    return [
        n
        for n, i in _REGISTRY.items()
        if (i.classical or not classical_only) and (i.flickers is None or not video_only)
    ]


def fuser_info(name: str) -> FuserInfo:
    try:
        return _REGISTRY[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, _REGISTRY, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise FusioncamError(
            f"unknown fusion method '{name}'{hint}; choose one of: {', '.join(_REGISTRY)}"
        ) from None


def create_fuser(name: str, **kwargs: Any) -> Fuser:
    """Build the fuser registered as ``name``; keyword arguments go to its factory."""
    return fuser_info(name).factory(**kwargs)


def check_weights(spec: str | os.PathLike) -> None:
    """Fail early, before any input is opened or a network loaded, on network weights that are neither
    a file nor the name of a shipped checkpoint (``--weights mgfusion_noclip``)."""
    from fusioncam.assets import shipped_weight_names  # data only: no torch

    shipped = shipped_weight_names()
    if os.fspath(spec) in shipped or Path(spec).expanduser().is_file():
        return
    if Path(spec).expanduser().is_dir():
        raise FusioncamError(
            f"weights {os.fspath(spec)} is a folder; give a checkpoint file or a shipped name"
        )
    raise FusioncamError(
        f"weights file not found: {os.fspath(spec)} (nor is it a shipped checkpoint: {', '.join(shipped)})"
    )


def check_clip_weights(path: str | os.PathLike) -> None:
    """Fail early on a CLIP weights file that is not there. Unlike network weights there are no shipped
    CLIP weights to name (they are resolved from the local cache when no file is given)."""
    if not Path(path).expanduser().is_file():
        raise FusioncamError(f"CLIP weights file not found: {os.fspath(path)}")


def _check_pair(ir: np.ndarray, vis: np.ndarray) -> None:
    if ir.shape != vis.shape or ir.ndim != 2:
        raise FusioncamError(
            f"fusers take two gray images of the same size, got IR {ir.shape} and VIS {vis.shape}"
        )


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


@register_fuser("average", "Weighted average w*IR + (1-w)*VIS: the simplest pixel-level baseline.")
class AverageFuser:
    name = "average"

    def __init__(self, weight_ir: float = 0.5):
        if not 0.0 <= weight_ir <= 1.0:
            raise FusioncamError(f"average: weight_ir must be in [0, 1], got {weight_ir}")
        self.weight_ir = float(weight_ir)

    def fuse(self, ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
        _check_pair(ir, vis)
        # cv2.addWeighted rounds and saturates in one pass, much faster than float numpy.
        return cv2.addWeighted(ir, self.weight_ir, vis, 1.0 - self.weight_ir, 0.0)


@register_fuser("max", "Pixel-wise maximum intensity: keeps hot targets and bright visible detail.")
class MaxIntensityFuser:
    name = "max"

    def fuse(self, ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
        _check_pair(ir, vis)
        return np.maximum(ir, vis)


@register_fuser(
    "max_detail",
    "Choose-max-detail rule: per pixel, a smoothed weight picks the source with more local Laplacian "
    "energy (activity-level selection, after Li, Manjunath & Mitra 1995).",
    flickers="its per-pixel choice of source follows sensor noise from frame to frame",
)
class MaxDetailFuser:
    name = "max_detail"

    def __init__(self, window: int = 7, smooth_sigma: float = 2.0):
        self.window = int(window)
        self.smooth_sigma = float(smooth_sigma)

    def fuse(self, ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
        _check_pair(ir, vis)
        a = ir.astype(np.float32)
        b = vis.astype(np.float32)
        ea = cv2.blur(np.abs(cv2.Laplacian(a, cv2.CV_32F, ksize=3)), (self.window, self.window))
        eb = cv2.blur(np.abs(cv2.Laplacian(b, cv2.CV_32F, ksize=3)), (self.window, self.window))
        w = (ea > eb).astype(np.float32)
        # A soft decision map avoids blocky seams where the selection flips.
        w = cv2.GaussianBlur(w, (0, 0), self.smooth_sigma)
        return _to_u8(w * a + (1.0 - w) * b)


@register_fuser(
    "laplacian",
    "Laplacian pyramid fusion (Burt & Adelson 1983/1985): detail bands by max absolute coefficient, "
    "base band averaged.",
)
class LaplacianPyramidFuser:
    name = "laplacian"

    def __init__(self, levels: int = 4):
        if levels < 1:
            raise FusioncamError(f"laplacian: levels must be >= 1, got {levels}")
        self.levels = int(levels)

    @staticmethod
    def _pyramid(img: np.ndarray, levels: int) -> list[np.ndarray]:
        gauss = [img]
        for _ in range(levels):
            gauss.append(cv2.pyrDown(gauss[-1]))
        lap = []
        for i in range(levels):
            up = cv2.pyrUp(gauss[i + 1], dstsize=(gauss[i].shape[1], gauss[i].shape[0]))
            lap.append(gauss[i] - up)
        lap.append(gauss[-1])
        return lap

    def fuse(self, ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
        _check_pair(ir, vis)
        levels = max(1, min(self.levels, int(np.log2(max(2, min(ir.shape)))) - 2))
        pa = self._pyramid(ir.astype(np.float32), levels)
        pb = self._pyramid(vis.astype(np.float32), levels)
        fused = [np.where(np.abs(a) >= np.abs(b), a, b) for a, b in zip(pa[:-1], pb[:-1], strict=True)]
        fused.append(0.5 * (pa[-1] + pb[-1]))
        out = fused[-1]
        for band in reversed(fused[:-1]):
            out = cv2.pyrUp(out, dstsize=(band.shape[1], band.shape[0])) + band
        return _to_u8(out)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Edge-preserving guided filter (He, Sun & Tang, ECCV 2010), float32 gray, with box means.

    Written with ``cv2.boxFilter`` because ``cv2.ximgproc.guidedFilter`` lives in opencv-contrib, which
    the headless wheel we depend on does not include.
    """
    k = (2 * radius + 1, 2 * radius + 1)

    def mean(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, k, borderType=cv2.BORDER_REFLECT)

    m_i, m_p = mean(guide), mean(src)
    var_i = mean(guide * guide) - m_i * m_i
    cov_ip = mean(guide * src) - m_i * m_p
    a = cov_ip / (var_i + eps)
    b = m_p - a * m_i
    return mean(a) * guide + mean(b)


@register_fuser(
    "gff",
    "Guided filtering based fusion (Li, Kang & Hu, IEEE TIP 2013): base/detail split by a mean filter, "
    "Laplacian-saliency weight maps refined by guided filters per layer.",
    flickers="its saliency map picks the base layer, and so the brightness of whole regions, per frame",
)
class GuidedFilterFuser:
    """GFF with the paper's parameters: mean filter 31x31, saliency |Laplacian| smoothed by a Gaussian
    (radius 5, sigma 5), base weights guided-filtered with r=45, eps=0.3, detail weights with r=7,
    eps=1e-6, on images scaled to [0, 1]."""

    name = "gff"

    def __init__(
        self,
        base_size: int = 31,
        r_base: int = 45,
        eps_base: float = 0.3,
        r_detail: int = 7,
        eps_detail: float = 1e-6,
    ):
        self.base_size = int(base_size)
        self.r_base, self.eps_base = int(r_base), float(eps_base)
        self.r_detail, self.eps_detail = int(r_detail), float(eps_detail)

    def fuse(self, ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
        _check_pair(ir, vis)
        imgs = [ir.astype(np.float32) / 255.0, vis.astype(np.float32) / 255.0]
        k = (self.base_size, self.base_size)
        bases = [cv2.blur(x, k, borderType=cv2.BORDER_REFLECT) for x in imgs]
        details = [x - b for x, b in zip(imgs, bases, strict=True)]
        sal = [cv2.GaussianBlur(np.abs(cv2.Laplacian(x, cv2.CV_32F, ksize=1)), (11, 11), 5.0) for x in imgs]
        p_ir = (sal[0] > sal[1]).astype(np.float32)  # ties go to VIS, so equal inputs give VIS back
        masks = [p_ir, 1.0 - p_ir]
        out = np.zeros_like(imgs[0])
        for layers, r, eps in (
            (bases, self.r_base, self.eps_base),
            (details, self.r_detail, self.eps_detail),
        ):
            w = [np.clip(guided_filter(x, m, r, eps), 0.0, 1.0) for x, m in zip(imgs, masks, strict=True)]
            total = w[0] + w[1]
            w0 = np.where(total > 1e-6, w[0] / np.maximum(total, 1e-6), 0.5)
            out += w0 * layers[0] + (1.0 - w0) * layers[1]
        return _to_u8(out * 255.0)


@register_fuser(
    "mgfusion",
    "MGFusion (Front. Neurorobot. 2024): CLIP-guided encoder/decoder network; see fusioncam.models.",
    classical=False,
)
def _mgfusion(**kwargs: Any) -> Fuser:
    from fusioncam.models.fuser import MGFusionFuser  # lazy: torch and CLIP load only when asked

    return MGFusionFuser(**kwargs)
