"""Training data for MGFusion: registered IR/VIS pairs as luminance tensors, with augmentation.

The network sees single-channel luminance in [0, 1] (N x 1 x H x W). This module turns image files into
that form without OpenCV or the pipeline (``fusioncam.models`` stays PyTorch-only): images are decoded
with Pillow (torchvision's own decoders are deprecated since 0.29); a three-channel image becomes its
ITU-R BT.601 luma ``Y = 0.299 R + 0.587 G + 0.114 B`` rounded to 8 bits, the value OpenCV's YCrCb
conversion (the luminance path used at inference) gives. An IR image stored as three equal channels
gives back that channel, so IR and VIS share one conversion.

The train split is small (a few hundred pairs), so every pair is decoded once and kept in memory as
uint8; augmentation then costs a crop, a flip and a rotation per sample.

Augmentation choices (documented because they shape what the network learns):

- **Crop**: a random ``crop x crop`` window, the same for IR and VIS. An image whose shorter side is
  below ``crop`` is first *upscaled* (bilinear, aspect kept) until it fits, rather than padded: reflect
  padding would create mirrored edges the gradient loss would learn to reproduce.
- **Flip and rotation**: a horizontal flip with probability 1/2 and a rotation by a random multiple of
  90 degrees. Only exact, lossless transforms are used; small-angle rotations would resample and blur
  the very gradients the loss compares.
- **Determinism**: sample ``i`` of epoch ``e`` is drawn from a generator seeded by ``(seed, e, i)``,
  so a run is reproducible whatever the number of loader workers, and a resumed run sees exactly the
  crops the uninterrupted run would have seen.

CLIP features (:class:`ClipFeatureCache`): the frozen CLIP embeddings are computed once per pair on the
whole, un-augmented image and cached (in memory, optionally on disk keyed by the CLIP model name and the
file paths, sizes and modification times). The paper feeds CLIP the training crop; we accept the
approximation that a crop shares its scene's semantic embedding, which removes the costliest part of a
CLIP-guided training step and matches how the live engine reuses one embedding over several frames.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from fusioncam.errors import FusioncamError

__all__ = [
    "BT601",
    "PairPaths",
    "as_path_pairs",
    "load_luminance",
    "to_luminance_u8",
    "FusionPairDataset",
    "ClipFeatureCache",
    "collate_clip_features",
]

BT601 = (0.299, 0.587, 0.114)

PairPaths = tuple[str | os.PathLike, str | os.PathLike]


def as_path_pairs(pairs: Sequence[Any]) -> list[tuple[Path, Path]]:
    """Accept ``(ir, vis)`` tuples or objects with ``.ir``/``.vis``
    (``fusioncam.evaluation.dataset.PairPath``)."""
    out = []
    for p in pairs:
        if hasattr(p, "ir") and hasattr(p, "vis"):
            out.append((Path(p.ir), Path(p.vis)))
        else:
            ir, vis = p
            out.append((Path(ir), Path(vis)))
    return out


def to_luminance_u8(img: torch.Tensor) -> torch.Tensor:
    """C x H x W image (uint8 or uint16) -> 1 x H x W uint8 luma (BT.601, rounded like OpenCV)."""
    if img.dtype == torch.uint8:
        x = img.float()
    elif img.dtype == torch.uint16:
        # 16-bit PNG: scale to the 8-bit range the network and the metrics use.
        x = img.to(torch.float32) * (255.0 / 65535.0)
    else:
        raise FusioncamError(f"unsupported image sample type {img.dtype}")
    c = x.shape[0]
    if c in (1, 2):  # gray, gray + alpha
        y = x[:1]
    elif c in (3, 4):  # RGB, RGBA
        r, g, b = x[0], x[1], x[2]
        y = (BT601[0] * r + BT601[1] * g + BT601[2] * b).unsqueeze(0)
    else:
        raise FusioncamError(f"unsupported number of image channels: {c}")
    return y.round().clamp(0, 255).to(torch.uint8)


def load_luminance(path: str | os.PathLike) -> torch.Tensor:
    """Decode an image file to 1 x H x W uint8 luminance; a clear error for missing/corrupt files."""
    p = Path(path)
    if not p.is_file():
        raise FusioncamError(f"image not found: {p}")
    try:
        with Image.open(p) as im:
            if im.mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif im.mode in ("CMYK", "YCbCr", "LAB", "HSV", "1"):
                im = im.convert("RGB")
            arr = np.array(im)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise FusioncamError(f"cannot decode image {p}: {e}") from None
    if arr.dtype in (np.int32, np.uint16, np.int16) or (arr.dtype.kind in "iu" and arr.dtype.itemsize > 1):
        arr = arr.astype(np.int32).clip(0, 65535).astype(np.uint16)  # 16-bit PNG (mode I;16 / I)
    elif arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype.kind == "f":
        raise FusioncamError(f"cannot use floating-point image {p}; save it as 8 or 16 bit")
    t = torch.from_numpy(np.ascontiguousarray(arr))
    t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)
    return to_luminance_u8(t)


def _upscale_to_fit(ir: torch.Tensor, vis: torch.Tensor, crop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Upscale a uint8 1 x H x W pair (aspect kept) so that its shorter side is at least ``crop``."""
    h, w = ir.shape[-2:]
    if min(h, w) >= crop:
        return ir, vis
    scale = crop / min(h, w)
    size = (max(crop, round(h * scale)), max(crop, round(w * scale)))
    both = torch.stack([ir, vis]).float()  # 2 x 1 x H x W
    both = F.interpolate(both, size=size, mode="bilinear", align_corners=False)
    both = both.round().clamp(0, 255).to(torch.uint8)
    return both[0], both[1]


class FusionPairDataset(Dataset):
    """Registered IR/VIS pairs, preloaded as uint8 luminance; yields float tensors in [0, 1].

    ``__getitem__`` returns ``{"ir": 1 x h x w, "vis": 1 x h x w, "index": i}``. With ``augment`` the
    size is ``crop x crop`` (random window, flip, 90-degree rotation); without, the whole image (or a
    centre ``crop`` when ``crop`` is given), so batches of different-size images need ``batch_size=1``.
    Call :meth:`set_epoch` before each epoch so the random draws change per epoch.
    """

    def __init__(
        self,
        pairs: Sequence[Any],
        crop: int | None = 256,
        augment: bool = True,
        seed: int = 0,
        progress: Callable[[int, int], None] | None = None,
    ):
        self.paths = as_path_pairs(pairs)
        if not self.paths:
            raise FusioncamError("no image pairs to train on (is the data split empty?)")
        if augment and not crop:
            raise FusioncamError("augmentation needs a crop size")
        if crop is not None and crop < 8:
            raise FusioncamError(f"crop size must be at least 8 pixels, got {crop}")
        self.crop = crop
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0
        self.images: list[tuple[torch.Tensor, torch.Tensor]] = []
        for k, (ir_path, vis_path) in enumerate(self.paths):
            ir, vis = load_luminance(ir_path), load_luminance(vis_path)
            if ir.shape != vis.shape:
                raise FusioncamError(
                    f"IR and VIS sizes differ for {ir_path.name}: {tuple(ir.shape[-2:])} vs "
                    f"{tuple(vis.shape[-2:])}; training needs registered pairs of one size"
                )
            if crop:
                ir, vis = _upscale_to_fit(ir, vis, crop)
            self.images.append((ir, vis))
            if progress:
                progress(k + 1, len(self.paths))

    def __len__(self) -> int:
        return len(self.images)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def generator(self, index: int) -> torch.Generator:
        """The generator for sample ``index`` of the current epoch (stable across runs and workers)."""
        digest = hashlib.blake2b(f"{self.seed}:{self.epoch}:{index}".encode(), digest_size=8).digest()
        g = torch.Generator()
        g.manual_seed(int.from_bytes(digest, "little") & ((1 << 63) - 1))
        return g

    def __getitem__(self, index: int) -> dict[str, Any]:
        ir, vis = self.images[index]
        h, w = ir.shape[-2:]
        if self.augment:
            g = self.generator(index)
            c = self.crop
            top = int(torch.randint(0, h - c + 1, (1,), generator=g))
            left = int(torch.randint(0, w - c + 1, (1,), generator=g))
            flip = bool(torch.randint(0, 2, (1,), generator=g))
            rot = int(torch.randint(0, 4, (1,), generator=g))
            both = torch.stack([ir, vis])[..., top : top + c, left : left + c]
            if flip:
                both = both.flip(-1)
            if rot:
                both = torch.rot90(both, rot, dims=(-2, -1))
            ir, vis = both[0], both[1]
        elif self.crop:
            c = self.crop
            top, left = (h - c) // 2, (w - c) // 2
            ir, vis = ir[..., top : top + c, left : left + c], vis[..., top : top + c, left : left + c]
        return {
            "ir": ir.float().div_(255.0),
            "vis": vis.float().div_(255.0),
            "index": index,
        }


def _stack_features(items: list[Any]) -> Any:
    """Stack per-sample CLIP features (tensor, tuple/list or dict of tensors) along the batch axis."""
    first = items[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(items, dim=0)
    if isinstance(first, (tuple, list)):
        return type(first)(_stack_features([it[k] for it in items]) for k in range(len(first)))
    if isinstance(first, dict):
        return {k: _stack_features([it[k] for it in items]) for k in first}
    raise TypeError(f"cannot batch CLIP features of type {type(first).__name__}")


def collate_clip_features(items: list[Any]) -> Any:
    return _stack_features(items)


def _to_device(x: Any, device: torch.device | str) -> Any:
    if isinstance(x, torch.Tensor):
        return x.to(device)
    if isinstance(x, (tuple, list)):
        return type(x)(_to_device(v, device) for v in x)
    if isinstance(x, dict):
        return {k: _to_device(v, device) for k, v in x.items()}
    return x


class ClipFeatureCache:
    """CLIP embeddings of each pair's whole, un-augmented image, computed once and reused.

    ``encode`` is the model's ``encode_clip(ir, vis)`` (1 x 1 x H x W tensors in [0, 1]); its result
    (a tensor or a tuple/dict of tensors with a leading batch axis of 1) is stored on the CPU. With a
    ``cache_dir`` the features also go to disk, keyed by ``key`` (the CLIP model and weights) and the
    two files' paths, sizes and modification times, so a second run skips CLIP entirely.
    """

    def __init__(
        self,
        dataset: FusionPairDataset,
        encode: Callable[[torch.Tensor, torch.Tensor], Any],
        key: str,
        device: torch.device | str = "cpu",
        cache_dir: str | os.PathLike | None = None,
    ):
        self.dataset = dataset
        self.encode = encode
        self.key = key
        self.device = device
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._mem: dict[int, Any] = {}

    def _file(self, index: int) -> Path | None:
        if self.cache_dir is None:
            return None
        parts = [self.key]
        for p in self.dataset.paths[index]:
            st = p.stat()
            parts.append(f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}")
        name = hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]
        return self.cache_dir / f"{name}.pt"

    def get(self, index: int) -> Any:
        if index in self._mem:
            return self._mem[index]
        path = self._file(index)
        feats = None
        if path is not None and path.is_file():
            try:
                feats = torch.load(path, map_location="cpu", weights_only=True)
            except Exception:  # a truncated cache file is recomputed, never fatal
                feats = None
        if feats is None:
            ir_u8, vis_u8 = self.dataset.images[index]
            ir = ir_u8.float().div(255.0).unsqueeze(0).to(self.device)
            vis = vis_u8.float().div(255.0).unsqueeze(0).to(self.device)
            with torch.no_grad():
                feats = _to_device(self.encode(ir, vis), "cpu")
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                torch.save(feats, tmp)
                os.replace(tmp, path)
        self._mem[index] = feats
        return feats

    def batch(self, indices: Sequence[int], device: torch.device | str) -> Any:
        """Features of a batch of dataset indices, stacked and moved to ``device``."""
        return _to_device(collate_clip_features([self.get(int(i)) for i in indices]), device)
