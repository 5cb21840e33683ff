"""One factory for every MGFusion variant, and checkpoint save/load.

Architectures are data: each ``models/configs/<name>.json`` holds the fields of
:class:`MGFusionConfig` (open_clip's ``model_configs`` habit). Train, eval, bench, the GUI and tests all
build models through :func:`create_model` or :func:`load_model`.

Checkpoints are safetensors files holding everything but the frozen CLIP tower, with the architecture
(config JSON) in the file's metadata, so :func:`load_model` rebuilds a network from the file alone.
Shipped checkpoints live in ``assets/weights/<name>.safetensors`` (with a model card beside them).
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from fusioncam.errors import FusioncamError

from .mgfusion import MGFusion, MGFusionConfig

__all__ = [
    "list_models",
    "get_model_config",
    "create_model",
    "load_checkpoint",
    "save_checkpoint",
    "read_checkpoint_metadata",
    "load_model",
    "shipped_weights_dir",
    "shipped_weights",
    "resolve_pretrained",
    "CONFIG_DIR",
]

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
_META_CONFIG = "fusioncam.mgfusion.config"
_META_FORMAT = "fusioncam.format"
_FORMAT = "mgfusion-checkpoint-1"


def shipped_weights_dir() -> Path:
    """Where the shipped checkpoints are: ``assets/weights``, installed as ``fusioncam.assets``."""
    from fusioncam.assets import WEIGHTS_DIR  # data only: no pipeline code is imported

    return WEIGHTS_DIR


def _configs() -> dict[str, Path]:
    return {p.stem: p for p in sorted(CONFIG_DIR.glob("*.json"))}


def list_models() -> list[str]:
    """Names of the registered architectures (one JSON file each in models/configs)."""
    return list(_configs())


def shipped_weights() -> dict[str, Path]:
    """Checkpoints shipped in assets/weights, by name (file stem)."""
    from fusioncam.assets import shipped_weight_names

    d = shipped_weights_dir()
    return {name: d / f"{name}.safetensors" for name in shipped_weight_names(d)}


def get_model_config(name: str, **overrides: Any) -> MGFusionConfig:
    """The :class:`MGFusionConfig` registered as ``name``, with ``overrides`` applied."""
    cfgs = _configs()
    if name not in cfgs:
        import difflib

        close = difflib.get_close_matches(name, cfgs, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise FusioncamError(f"unknown MGFusion model '{name}'{hint}; choose one of: {', '.join(cfgs)}")
    data = json.loads(cfgs[name].read_text())
    data.update(overrides)
    return MGFusionConfig.from_dict(data)


def resolve_pretrained(name: str, pretrained: str | os.PathLike) -> Path:
    """A checkpoint path from ``pretrained``: an existing file, ``"shipped"`` (= assets/weights/<name>),
    or the stem of a file in assets/weights."""
    p = Path(os.fspath(pretrained)).expanduser()
    if p.is_file():
        return p
    shipped = shipped_weights()
    key = name if str(pretrained) in ("shipped", "default") else str(pretrained)
    if key in shipped:
        return shipped[key]
    have = ", ".join(shipped) or "none"
    raise FusioncamError(
        f"MGFusion weights '{pretrained}' not found: not a file, and not a shipped checkpoint in "
        f"{shipped_weights_dir()} (shipped: {have}); train one with `fusioncam train` or pass a file"
    )


def create_model(
    name: str = "mgfusion",
    pretrained: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    clip_pretrained: str | os.PathLike | None = None,
    *,
    clip_encoder: torch.nn.Module | None = None,
    clip_cache_dir: str | os.PathLike | None = None,
    attach_clip: bool = True,
    allow_download: bool = True,
    **overrides: Any,
) -> MGFusion:
    """Build the registered architecture ``name`` (config fields overridable by keyword).

    ``pretrained``: a checkpoint file or a shipped tag (see :func:`resolve_pretrained`); its stored
    config must match. ``clip_pretrained``: a CLIP weight file (taken to hold the weights the config's
    ``clip_pretrained`` tag names: preprocessing and QuickGELU follow the tag), or an open_clip tag
    replacing the config's ``clip_pretrained``. ``attach_clip=False`` builds a CLIP variant without
    loading CLIP (forward then needs precomputed ``clip_features``).
    """
    clip_weights = None
    if clip_pretrained is not None:
        if Path(os.fspath(clip_pretrained)).expanduser().is_file():
            clip_weights = os.fspath(clip_pretrained)
        else:
            overrides.setdefault("clip_pretrained", os.fspath(clip_pretrained))
    cfg = get_model_config(name, **overrides)
    model = MGFusion(
        cfg,
        clip_encoder,
        clip_weights=clip_weights,
        clip_cache_dir=os.fspath(clip_cache_dir) if clip_cache_dir else None,
        attach_clip=attach_clip,
        allow_download=allow_download,
    )
    if pretrained is not None:
        load_checkpoint(model, resolve_pretrained(name, pretrained))
    return model.to(device)


def _read_state(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise FusioncamError(f"checkpoint not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt", device="cpu") as f:
                meta = dict(f.metadata() or {})
                state = {k: f.get_tensor(k) for k in f.keys()}
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
            meta = {}
            if isinstance(obj, dict) and "state_dict" in obj:
                meta = {str(k): str(v) for k, v in (obj.get("metadata") or {}).items()}
                if obj.get("config") is not None:
                    meta[_META_CONFIG] = json.dumps(obj["config"])
                state = obj["state_dict"]
            else:
                state = obj
    except FusioncamError:
        raise
    except Exception as e:
        kind = "safetensors" if path.suffix == ".safetensors" else "PyTorch"
        raise FusioncamError(
            f"cannot read checkpoint {path}: not a valid {kind} file ({type(e).__name__}: {e})"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FusioncamError(f"{path} does not hold a state dict of tensors")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise FusioncamError(
            f"checkpoint {path} holds NaN or infinite weights ({', '.join(bad[:3])}): "
            "a training run that diverged? use an earlier checkpoint"
        )
    for prefix in ("module.", "_orig_mod."):  # DataParallel/DDP and torch.compile wrappers
        state = {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state.items()}
    return state, meta


def read_checkpoint_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata stored with a checkpoint; ``"config"`` holds the :class:`MGFusionConfig` when known."""
    return _parse_meta(_read_state(path)[1])


def _parse_meta(meta: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = dict(meta)
    if _META_CONFIG in meta:
        out["config"] = MGFusionConfig.from_json(meta[_META_CONFIG])
    return out


def load_checkpoint(model: MGFusion, path: str | os.PathLike, strict: bool = True) -> dict[str, Any]:
    """Load a checkpoint into ``model`` (CLIP excluded); returns its metadata.

    safetensors preferred; ``.pt``/``.pth`` are read with ``torch.load(weights_only=True)``. A
    ``module.`` prefix is stripped. With ``strict``, any missing/unexpected non-CLIP key is an error.
    """
    state, meta = _read_state(path)
    state = {k: v for k, v in state.items() if not k.startswith("clip_encoder.")}
    own = model.trainable_state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shape_bad = [k for k in state if k in own and state[k].shape != own[k].shape]
    if strict and (missing or unexpected or shape_bad):
        stored = meta.get(_META_CONFIG)
        hint = f"; the checkpoint was saved from {stored}" if stored else ""
        raise FusioncamError(
            f"checkpoint {path} does not match this MGFusion architecture "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {shape_bad[:3]}){hint}"
        )
    ref = next(iter(own.values()))
    state = {k: v.to(ref.device) for k, v in state.items() if k not in shape_bad}
    model.load_state_dict(state, strict=False)
    return _parse_meta(meta)


def save_checkpoint(model: MGFusion, path: str | os.PathLike, metadata: dict[str, Any] | None = None) -> Path:
    """Write the model (without CLIP) to ``path`` atomically (temp name, then rename).

    ``.safetensors`` (preferred): tensors + string metadata incl. the config JSON; any other suffix:
    a ``torch.save`` dict {state_dict, config, metadata} readable with ``weights_only=True``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.trainable_state_dict().items()}
    meta = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    meta[_META_CONFIG] = model.config.to_json()
    meta[_META_FORMAT] = _FORMAT
    tmp = path.with_name(path.name + ".tmp.partial")
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(tmp), metadata=meta)
        _usual_permissions(tmp)  # safetensors creates its files private (0600), unlike every other output
    else:
        from dataclasses import asdict

        torch.save({"state_dict": state, "config": asdict(model.config), "metadata": meta}, tmp)
    os.replace(tmp, path)
    return path


def _usual_permissions(path: Path) -> None:
    """Give ``path`` the mode a plain ``open()`` would: 0666 less the process umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def load_model(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    *,
    clip_pretrained: str | os.PathLike | None = None,
    clip_encoder: torch.nn.Module | None = None,
    clip_cache_dir: str | os.PathLike | None = None,
    attach_clip: bool = True,
    allow_download: bool = True,
) -> MGFusion:
    """Rebuild a network from a checkpoint's stored config and load its weights (eval mode)."""
    meta = read_checkpoint_metadata(path)
    cfg = meta.get("config")
    if cfg is None:
        raise FusioncamError(
            f"{path} stores no network architecture, so it was not written by fusioncam (`fusioncam train` "
            f"writes checkpoints that do; in Python, a bare state dict loads with "
            f"create_model(name, pretrained='{path}'))"
        )
    clip_weights = None
    if clip_pretrained is not None:
        if Path(os.fspath(clip_pretrained)).expanduser().is_file():
            clip_weights = os.fspath(clip_pretrained)
        else:
            cfg = replace(cfg, clip_pretrained=os.fspath(clip_pretrained))
    model = MGFusion(
        cfg,
        clip_encoder,
        clip_weights=clip_weights,
        clip_cache_dir=os.fspath(clip_cache_dir) if clip_cache_dir else None,
        attach_clip=attach_clip,
        allow_download=allow_download,
    )
    load_checkpoint(model, path)
    return model.to(device).eval()
