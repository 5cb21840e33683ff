"""The frozen CLIP image encoder that guides MGFusion, and the one place CLIP weights are resolved.

MGFusion uses CLIP (Radford et al. 2021; the paper uses the CLIP authors' own weights, i.e. open_clip's
``ViT-B-32`` / ``openai``) only as a frozen feature extractor: one embedding per image. This module
wraps open_clip so that

* weights are found in one function, :func:`resolve_clip_weights`: an explicit file, then the local
  open_clip / Hugging Face caches, then a download when online, else a :class:`FusioncamError` that says
  how to get them (no traceback, no long network wait);
* preprocessing follows the model's own pretrained config (input size, mean, std, interpolation,
  resize mode: never literals here) but runs with torch ops on the batch, on the model's device, so the
  live engine never round-trips frames through PIL;
* the encoder is frozen (``requires_grad`` cleared) and stays in eval mode whatever ``train()`` says.

open_clip is imported lazily: the no-CLIP network never pays for it.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fusioncam.errors import FusioncamError

__all__ = [
    "ClipImageEncoder",
    "resolve_clip_weights",
    "clip_weight_candidates",
    "clip_embed_dim",
    "clip_preprocess_cfg",
    "tiny_clip_config",
    "register_tiny_clip",
    "save_tiny_clip",
    "TINY_CLIP_NAME",
    "DEFAULT_CLIP_MODEL",
    "DEFAULT_CLIP_PRETRAINED",
]

DEFAULT_CLIP_MODEL = "ViT-B-32"
DEFAULT_CLIP_PRETRAINED = "openai"
TINY_CLIP_NAME = "fusioncam-tiny-clip"

# The preprocessing keys of an open_clip pretrained config (open_clip.pretrained._pcfg and friends).
_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")


def _open_clip():
    try:
        import open_clip
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise FusioncamError("open_clip is not installed: pip install open_clip_torch") from e
    return open_clip


def _pretrained_cfg(model_name: str, pretrained: str | None) -> dict[str, Any]:
    """open_clip's registry entry for ``model_name``/``pretrained`` ({} for a file path or an unknown tag)."""
    if not pretrained:
        return {}
    from open_clip.pretrained import get_pretrained_cfg

    return dict(get_pretrained_cfg(model_name, pretrained))


def _default_url_cache() -> Path:
    # open_clip.pretrained.download_pretrained_from_url uses ~/.cache/clip when no cache_dir is given.
    return Path(os.path.expanduser("~/.cache/clip"))


def clip_weight_candidates(
    model_name: str, pretrained: str, cache_dir: str | os.PathLike | None = None
) -> list[str]:
    """Every place :func:`resolve_clip_weights` looks, in order, as human-readable lines."""
    cfg = _pretrained_cfg(model_name, pretrained)
    lines = []
    if cfg.get("hf_hub"):
        from huggingface_hub.constants import HF_HUB_CACHE

        repo, filename = _split_hf(cfg["hf_hub"])
        where = cache_dir or HF_HUB_CACHE
        lines.append(f"Hugging Face cache {where}: {repo} / {' or '.join(_hf_filenames(filename))}")
    if cfg.get("url"):
        base = Path(cache_dir) if cache_dir else _default_url_cache()
        lines.append(f"open_clip URL cache: {base / os.path.basename(cfg['url'])}")
    return lines


def _split_hf(hf_hub: str) -> tuple[str, str]:
    # open_clip convention: 'org/repo/filename' or 'org/repo/' (default filename).
    repo, filename = os.path.split(hf_hub)
    return repo, filename


def _hf_filenames(filename: str) -> list[str]:
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    if not filename:
        return [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME]
    if filename.endswith((".bin", ".pth")):
        return [filename[:-4] + ".safetensors", filename]
    return [filename]


def _find_in_cache(cfg: dict[str, Any], cache_dir: str | os.PathLike | None) -> str | None:
    if cfg.get("file") and Path(cfg["file"]).is_file():
        return str(cfg["file"])
    if cfg.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache

        repo, filename = _split_hf(cfg["hf_hub"])
        for name in _hf_filenames(filename):
            try:
                hit = try_to_load_from_cache(repo, name, cache_dir=cache_dir)
            except Exception:  # a malformed cache folder is just "not found"
                hit = None
            if isinstance(hit, str) and Path(hit).is_file():
                return hit
    if cfg.get("url"):
        base = Path(cache_dir) if cache_dir else _default_url_cache()
        target = base / os.path.basename(cfg["url"])
        if target.is_file():
            return str(target)
    return None


def _download_hosts(cfg: dict[str, Any]) -> list[str]:
    from urllib.parse import urlparse

    hosts = ["huggingface.co"] if cfg.get("hf_hub") else []
    if cfg.get("url"):
        hosts.append(urlparse(cfg["url"]).hostname or "")
    return [h for h in hosts if h]


def _online(hosts: list[str], timeout: float) -> bool:
    """A quick reachability probe of the hosts the weights would come from (no long hang offline)."""
    for host in hosts:
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                return True
        except OSError:
            continue
    return False


def _how_to_get(model_name: str, pretrained: str, cache_dir, note: str = "") -> str:
    looked = "; ".join(clip_weight_candidates(model_name, pretrained, cache_dir)) or "nowhere known"
    cache_flag = f" --cache-dir {cache_dir}" if cache_dir else ""
    note = f" and {note}" if note else ""
    return (
        f"CLIP weights for {model_name}/{pretrained} not found (looked in: {looked}){note}. Get them with "
        f"`fusioncam weights fetch --model {model_name} --pretrained {pretrained}{cache_flag}` on a "
        f"machine with network access, or pass --clip-weights FILE, or copy the file into the cache "
        f"folder above; or use a no-CLIP model (e.g. mgfusion_noclip)"
    )


def resolve_clip_weights(
    model_name: str = DEFAULT_CLIP_MODEL,
    pretrained: str | os.PathLike = DEFAULT_CLIP_PRETRAINED,
    cache_dir: str | os.PathLike | None = None,
    *,
    allow_download: bool = True,
    timeout: float = 3.0,
) -> str:
    """Path of the CLIP weight file for ``model_name`` / ``pretrained``.

    Order: ``pretrained`` as an existing file path; the local caches (Hugging Face hub cache via
    ``huggingface_hub.try_to_load_from_cache``, open_clip's URL cache, both under ``cache_dir`` when it
    is given); a download through ``open_clip.download_pretrained`` when ``allow_download`` and the host
    answers within ``timeout`` seconds. Anything else raises :class:`FusioncamError` with instructions.
    Offline behaviour is an argument here, never an environment variable set by the library.
    """
    p = Path(os.fspath(pretrained)).expanduser()
    if p.is_file():
        return str(p)
    pretrained = os.fspath(pretrained)
    if os.sep in pretrained or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors")):
        raise FusioncamError(f"CLIP weight file not found: {pretrained}")
    open_clip = _open_clip()
    if model_name not in open_clip.list_models():
        raise FusioncamError(
            f"unknown CLIP model '{model_name}' "
            f"(open_clip knows e.g. {DEFAULT_CLIP_MODEL}, ViT-B-16, ViT-L-14)"
        )
    cfg = _pretrained_cfg(model_name, pretrained)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        raise FusioncamError(
            f"unknown CLIP weights '{pretrained}' for {model_name}: give a file path or one of "
            f"{', '.join(tags) or '(no published tags)'}"
        )
    hit = _find_in_cache(cfg, cache_dir)
    if hit:
        return hit
    hosts = _download_hosts(cfg)
    if allow_download and not _online(hosts, timeout):
        note = f"no network ({' or '.join(hosts)} did not answer within {timeout:g} s)"
        raise FusioncamError(_how_to_get(model_name, pretrained, cache_dir, note))
    if allow_download:
        try:
            path = open_clip.download_pretrained(cfg, cache_dir=os.fspath(cache_dir) if cache_dir else None)
        except Exception as e:  # network errors of every library in the chain
            note = f"the download failed ({type(e).__name__}: {e})"
            raise FusioncamError(_how_to_get(model_name, pretrained, cache_dir, note)) from None
        if path and Path(path).is_file():
            return str(path)
    raise FusioncamError(_how_to_get(model_name, pretrained, cache_dir))


def _is_torchscript_archive(path: str) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _torchscript_state_dict(path: str) -> dict[str, torch.Tensor]:
    """Weights of OpenAI's original CLIP release (``~/.cache/clip/ViT-B-32.pt``, the file OpenAI's own
    ``clip`` package and open_clip's URL download keep): a TorchScript archive, which
    ``torch.load(weights_only=True)`` refuses. ``torch.jit.load`` reads TorchScript (not arbitrary
    pickled Python); only its tensors are kept."""
    state = torch.jit.load(path, map_location="cpu").state_dict()
    for key in ("input_resolution", "context_length", "vocab_size"):  # metadata, not weights
        state.pop(key, None)
    return {k: v.float() for k, v in state.items()}


def clip_embed_dim(model_name: str) -> int:
    """Embedding size of an open_clip architecture, read from its config (no weights needed)."""
    cfg = _open_clip().get_model_config(model_name)
    if cfg is None:
        raise FusioncamError(f"unknown CLIP model '{model_name}'")
    return int(cfg["embed_dim"])


def clip_preprocess_cfg(model: nn.Module) -> dict[str, Any]:
    """The image preprocessing an open_clip model was built with (size, mean, std, ...)."""
    from open_clip.model import get_model_preprocess_cfg

    return dict(get_model_preprocess_cfg(model))


class ClipImageEncoder(nn.Module):
    """Frozen open_clip image tower: ``encode(x) -> N x D`` for images in [0, 1].

    Only the vision tower is kept (the text tower is dropped after loading: MGFusion never uses it).
    ``normalize=True`` (default) returns L2-normalised embeddings, the form CLIP compares images in;
    MGFusion's adapters then see inputs of a fixed scale whatever the CLIP variant.
    """

    def __init__(
        self,
        model_name: str = DEFAULT_CLIP_MODEL,
        pretrained: str = DEFAULT_CLIP_PRETRAINED,
        *,
        weights: str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
        allow_download: bool = True,
        normalize: bool = True,
        device: str | torch.device = "cpu",
    ):
        super().__init__()
        open_clip = _open_clip()
        path = resolve_clip_weights(
            model_name, weights or pretrained, cache_dir, allow_download=allow_download
        )
        tag_cfg = _pretrained_cfg(model_name, pretrained) if pretrained else {}
        kwargs: dict[str, Any] = {}
        if tag_cfg.get("quick_gelu") and not model_name.endswith("quickgelu"):
            kwargs["force_quick_gelu"] = True  # e.g. OpenAI's ViT-B-32 was trained with QuickGELU
        preprocess = {k: tag_cfg[k] for k in _PREPROCESS_KEYS if k in tag_cfg}
        try:
            if _is_torchscript_archive(path):
                model = open_clip.create_model(
                    model_name, device="cpu", force_preprocess_cfg=preprocess or None, **kwargs
                )
                # Only the image tower is used (and kept): load it strictly, ignore the text side.
                state = _torchscript_state_dict(path)
                visual = {k[len("visual.") :]: v for k, v in state.items() if k.startswith("visual.")}
                model.visual.load_state_dict(visual)
            else:
                model = open_clip.create_model(
                    model_name,
                    pretrained=path,
                    device="cpu",
                    force_preprocess_cfg=preprocess or None,
                    **kwargs,
                )
        except Exception as e:  # a corrupt or mismatched weight file
            raise FusioncamError(
                f"could not load CLIP weights {path} into {model_name}: {type(e).__name__}: {e}"
            ) from None
        self._attach(model, model_name, str(pretrained), path, normalize, device)

    @classmethod
    def with_random_weights(
        cls, model_name: str = DEFAULT_CLIP_MODEL, *, normalize: bool = True, device: str = "cpu"
    ) -> ClipImageEncoder:
        """The ``model_name`` architecture with random weights: for benchmarks, where a forward pass
        costs the same whatever the weights, on machines that cannot get the real ones."""
        self = cls.__new__(cls)
        nn.Module.__init__(self)
        try:
            model = _open_clip().create_model(model_name, pretrained=None, device="cpu")
        except Exception as e:  # an unknown architecture name
            raise FusioncamError(f"unknown open_clip architecture '{model_name}': {e}") from None
        self._attach(model, model_name, "random", None, normalize, device)
        return self

    def _attach(
        self,
        model: nn.Module,
        model_name: str,
        pretrained: str,
        path: Path | None,
        normalize: bool,
        device: str | torch.device,
    ) -> None:
        """Keep the image tower of an open_clip ``model`` with its preprocessing, frozen."""
        self.model_name = model_name
        self.pretrained = pretrained
        self.weights_path = path
        self.normalize = normalize
        self.preprocess_cfg = clip_preprocess_cfg(model)
        self.embed_dim = int(getattr(model.visual, "output_dim", 0) or clip_embed_dim(model_name))
        self.visual = model.visual
        del model  # drop the text tower
        size = self.preprocess_cfg["size"]
        self.image_size = (size, size) if isinstance(size, int) else tuple(size)
        mean = torch.tensor(self.preprocess_cfg["mean"], dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.preprocess_cfg["std"], dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self.lock()
        self.to(device)

    def lock(self) -> None:
        """Freeze: no parameter ever takes a gradient, and the tower stays in eval mode."""
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> ClipImageEncoder:
        """Frozen CLIP stays in eval mode whatever the enclosing model does (no dropout, fixed stats)."""
        return super().train(False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """N x 1|3 x H x W in [0, 1] -> N x 3 x S x S normalised, as open_clip's transform would do.

        Resize (mode and interpolation from the pretrained config, antialiased) and centre crop are
        torch ops on the whole batch on the model's device, so frames never go through PIL.
        """
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"CLIP input must be N x 1|3 x H x W, got {tuple(x.shape)}")
        x = x.to(self.mean.device, torch.float32)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        th, tw = self.image_size
        h, w = x.shape[-2:]
        mode = self.preprocess_cfg.get("resize_mode", "shortest")
        interp = self.preprocess_cfg.get("interpolation", "bicubic")
        interp = interp if interp in ("bicubic", "bilinear") else "bilinear"
        if mode == "squash":
            size = (th, tw)
        else:
            scale = max(th / h, tw / w) if mode == "shortest" else min(th / h, tw / w)
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
        if size != (h, w):
            x = F.interpolate(x, size=size, mode=interp, antialias=True, align_corners=False)
        x = x.clamp(0.0, 1.0)
        h, w = x.shape[-2:]
        if mode == "longest":  # pad to the target (open_clip's ResizeKeepRatio + CenterCrop with fill 0)
            top, left = (th - h) // 2, (tw - w) // 2
            x = F.pad(x, (left, tw - w - left, top, th - h - top))
        else:
            top, left = (h - th) // 2, (w - tw) // 2
            x = x[..., top : top + th, left : left + tw]
        return (x - self.mean) / self.std

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """N x 1|3 x H x W in [0, 1] -> N x D embeddings (L2-normalised when ``normalize``)."""
        dtype = next(self.visual.parameters()).dtype
        feats = self.visual(self.preprocess(x).to(dtype))
        if self.normalize:
            feats = F.normalize(feats, dim=-1)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)


def tiny_clip_config() -> dict[str, Any]:
    """A tiny open_clip architecture for tests: random weights, loads in milliseconds."""
    return {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
        "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 1, "layers": 1},
    }


def register_tiny_clip(directory: str | os.PathLike) -> str:
    """Write :func:`tiny_clip_config` as ``<directory>/fusioncam-tiny-clip.json`` and register it with
    open_clip (``open_clip.add_model_config``); returns the model name to pass around."""
    path = Path(directory) / f"{TINY_CLIP_NAME}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(tiny_clip_config()))
    _open_clip().add_model_config(path)
    return TINY_CLIP_NAME


def save_tiny_clip(directory: str | os.PathLike, seed: int = 0) -> tuple[str, str]:
    """Register the tiny architecture and save randomly initialised weights for it (safetensors).

    Returns ``(model_name, weights_path)``: tests load this through the same path as real weights
    (:func:`resolve_clip_weights` with an explicit file, then :class:`ClipImageEncoder`).
    """
    from safetensors.torch import save_file

    name = register_tiny_clip(directory)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = _open_clip().create_model(name, device="cpu")
    path = Path(directory) / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return name, str(path)
