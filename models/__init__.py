"""fusioncam.models: the MGFusion network, CLIP encoder, losses and training (PyTorch only; no OpenCV,
Qt or pipeline).

Public API::

    from fusioncam.models import create_model, load_model, save_checkpoint, list_models
    model = create_model("mgfusion_fast_noclip")            # random weights
    model = load_model("assets/weights/mgfusion_fast_noclip.safetensors")
    fused = model(ir, vis)                                   # N x 1 x H x W in [0, 1]
    feats = model.encode_clip(ir, vis)                       # N x 2 x D (CLIP variants): cache these
    fused = model(ir, vis, clip_features=feats)
"""

from .blocks import GDFN, MDTA, LayerNorm2d, RestormerBlock
from .factory import (
    create_model,
    get_model_config,
    list_models,
    load_checkpoint,
    load_model,
    read_checkpoint_metadata,
    resolve_pretrained,
    save_checkpoint,
    shipped_weights,
    shipped_weights_dir,
)
from .losses import FusionLoss, fusion_loss, gradient_loss, intensity_loss
from .mgfusion import CFF, CII, Adapter, MGFusion, MGFusionConfig

__all__ = [
    "LayerNorm2d",
    "MDTA",
    "GDFN",
    "RestormerBlock",
    "MGFusion",
    "MGFusionConfig",
    "Adapter",
    "CII",
    "CFF",
    "create_model",
    "get_model_config",
    "list_models",
    "load_checkpoint",
    "load_model",
    "read_checkpoint_metadata",
    "resolve_pretrained",
    "save_checkpoint",
    "shipped_weights",
    "shipped_weights_dir",
    "FusionLoss",
    "fusion_loss",
    "gradient_loss",
    "intensity_loss",
]
