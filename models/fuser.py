"""``mgfusion`` as a :class:`fusioncam.processing.fusers.Fuser`: the network behind the uint8 fuser interface.

``fuse(ir_u8, vis_u8) -> u8`` for ``fusioncam fuse``/``eval``; ``fuse_tensor``/``encode_clip`` for the
live engine, which keeps frames as tensors on the device and caches CLIP features over frames.

Device: ``"auto"`` = CUDA when present (fp16 there) else the CPU in fp32. The output is the network's
[0, 1] output times 255, rounded: never rescaled by each frame's own min/max (video must not flicker).
This is the one module of fusioncam.models that touches numpy (the uint8 edge); it never imports cv2.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fusioncam.assets import DEFAULT_WEIGHTS
from fusioncam.errors import FusioncamError

from .factory import list_models, load_model, shipped_weights, shipped_weights_dir
from .mgfusion import MGFusion

__all__ = [
    "MGFusionFuser",
    "DEFAULT_WEIGHTS",
    "resolve_device",
    "resolve_fuser_weights",
]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else must be a usable torch device."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise FusioncamError(f"unknown device '{device}' (use auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise FusioncamError(f"device '{device}' asked for but CUDA is not available here; use --device cpu")
    return dev


def resolve_fuser_weights(weights: str | os.PathLike | None) -> Path:
    """A checkpoint file from a path, a shipped checkpoint name, or None (the default shipped preset)."""
    key = DEFAULT_WEIGHTS if weights is None else os.fspath(weights)
    p = Path(key).expanduser()
    if p.is_file():
        return p
    shipped = shipped_weights()
    if key in shipped:
        return shipped[key]
    if p.suffix or os.sep in key:
        raise FusioncamError(f"MGFusion weights file not found: {key}")
    where = shipped_weights_dir()
    if key in list_models():
        raise FusioncamError(
            f"no trained weights for '{key}' in {where}; train them with `fusioncam train` "
            f"(model: {key}) or pass a checkpoint file with --weights"
        )
    raise FusioncamError(
        f"unknown MGFusion weights '{key}': not a file and not shipped in {where} "
        f"(shipped: {', '.join(shipped) or 'none'})"
    )


class MGFusionFuser:
    """The MGFusion network as a fuser.

    ``weights``: checkpoint file or shipped name (default: the fast no-CLIP preset
    ``assets/weights/mgfusion_fast_noclip.safetensors``); ``device``: ``auto``/``cpu``/``cuda[:N]``;
    ``half``: fp16 (default: True on CUDA, never on CPU); ``clip_weights``/``clip_cache_dir``: where the
    CLIP variants find CLIP (see ``fusioncam weights where``).

    ``scale`` (0 < scale <= 1, default 1): run the network on frames resized by this factor
    (antialiased) and resize the result back (bilinear). A speed/detail trade for the live app on a
    CPU, where the network's cost grows with the pixel count (0.5 is about 4x fewer operations); the
    result is softer than at full resolution. CLIP always sees the full frames.

    Speed on a CPU (docs/mgfusion_speed.md): the network runs channels-last with BN folded into the
    convolutions in eval mode; an application should also call
    :func:`fusioncam.memory.tune_cpu_allocator` once at start (it changes process state, so this class
    never does).
    """

    name = "mgfusion"

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        device: str | torch.device = "auto",
        half: bool | None = None,
        clip_weights: str | os.PathLike | None = None,
        clip_cache_dir: str | os.PathLike | None = None,
        allow_download: bool = True,
        model: MGFusion | None = None,
        scale: float = 1.0,
    ):
        if not 0.0 < float(scale) <= 1.0:
            raise FusioncamError(f"mgfusion: scale must be in (0, 1], got {scale}")
        self.scale = float(scale)
        self.device = resolve_device(device)
        if half is None:
            half = self.device.type == "cuda"
        if half and self.device.type != "cuda":
            raise FusioncamError("fp16 inference is for CUDA only; use fp32 on the CPU")
        self.dtype = torch.float16 if half else torch.float32
        if model is None:
            self.weights_path: Path | None = resolve_fuser_weights(weights)
            model = load_model(
                self.weights_path,
                clip_pretrained=clip_weights,
                clip_cache_dir=clip_cache_dir,
                allow_download=allow_download,
            )
        else:
            self.weights_path = None
        self.model = model.to(self.device, self.dtype).eval()

    @property
    def uses_clip(self) -> bool:
        return self.model.uses_clip

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 2:
            x = x[None, None]
        elif x.ndim == 3:
            x = x[None]
        return x.to(self.device, self.dtype, non_blocking=True)

    @torch.inference_mode()
    def encode_clip(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        """CLIP features ``N x 2 x D`` of float [0, 1] frames (N x 1 x H x W, or H x W), for caching."""
        return self.model.encode_clip(self._prep(ir), self._prep(vis))

    @torch.inference_mode()
    def fuse_tensor(
        self, ir: torch.Tensor, vis: torch.Tensor, clip_features: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Fuse float [0, 1] frames (N x 1 x H x W, or H x W) on the fuser's device.

        Returns N x 1 x H x W in [0, 1] on the device, in the fuser's dtype.
        """
        ir, vis = self._prep(ir), self._prep(vis)
        if clip_features is None and self.uses_clip:
            clip_features = self.model.encode_clip(ir, vis)  # from the full-resolution frames
        if clip_features is not None:
            clip_features = clip_features.to(self.device, self.dtype)
        size = tuple(ir.shape[-2:])
        small = tuple(max(1, round(n * self.scale)) for n in size)
        if small != size:
            ir = F.interpolate(ir, size=small, mode="bilinear", antialias=True, align_corners=False)
            vis = F.interpolate(vis, size=small, mode="bilinear", antialias=True, align_corners=False)
        out = self.model(ir, vis, clip_features=clip_features)
        if small != size:
            out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
        return out.clamp_(0.0, 1.0)

    @torch.inference_mode()
    def fuse(self, ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
        """uint8 gray IR and VIS of one size (IR registered onto VIS) -> uint8 gray fused image."""
        if ir.shape != vis.shape or ir.ndim != 2:
            raise FusioncamError(
                f"fusers take two gray images of the same size, got IR {ir.shape} and VIS {vis.shape}"
            )
        if ir.dtype != np.uint8 or vis.dtype != np.uint8:
            raise FusioncamError(f"mgfusion takes uint8 images, got {ir.dtype} and {vis.dtype}")
        t_ir = torch.from_numpy(np.ascontiguousarray(ir)).to(self.device).to(self.dtype).div_(255.0)
        t_vis = torch.from_numpy(np.ascontiguousarray(vis)).to(self.device).to(self.dtype).div_(255.0)
        out = self.fuse_tensor(t_ir, t_vis)
        return out[0, 0].float().mul_(255.0).round_().to(torch.uint8).cpu().numpy()
