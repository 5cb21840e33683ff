"""MGFusion: the CLIP-guided infrared/visible fusion network.

Paper: Yang, Li, Tang & Xie, "MGFusion: a multimodal large language model-guided information perception
for infrared and visible image fusion", Front. Neurorobot. 18:1521603 (2024).

Data flow (N x 1 x H x W luminance in [0, 1] in, the same out)::

    ir  -> Encoder_ir  -> CII_ir  --\\
                                     CFF -> Decoder -> (tanh + 1) / 2 -> fused
    vis -> Encoder_vis -> CII_vis --/
    CLIP(ir), CLIP(vis) (frozen) ----> CII_ir, CII_vis, CFF

Our reading of the paper where it leaves a choice (each is a documented default, not a claim about
the authors' code):

* **CLIP features** are passed as one tensor ``N x 2 x D``: index 0 = CLIP(ir), 1 = CLIP(vis),
  L2-normalised image embeddings (see :class:`ClipImageEncoder`). A plain tensor caches, moves between
  devices and batches without any helper type.
* **CII mixing**: each modality mixes the two embeddings with its own learnable weight
  ``w = sigmoid(theta)`` (``theta`` starts at 0, i.e. an equal mix): ``e = w * own + (1 - w) * other``.
  The sigmoid keeps it a convex combination whatever the optimiser does.
* **CII injection**: ``Adapter(e)`` (Linear D->hidden, GELU, Linear hidden->C) is a per-channel
  vector broadcast over H x W; the spatial weight is conv3x3-ReLU-conv3x3 of the features ending in
  ONE channel and a sigmoid (a "where to inject" map); ``out = f + adapter(e) * spatial(f)``.
* **CFF**: the IR adapter on CLIP(ir) and the VIS adapter on CLIP(vis) give sigmoid channel weights;
  the weighted features are concatenated (2C); the Sobel gradient magnitude of that (kornia) goes
  through conv3x3-ReLU-conv3x3 + sigmoid into a per-pixel, per-channel weight; ``x + weight * grad``
  re-injects detail; a conv3x3 reduces 2C -> C.
* **Decoder output**: Tanh mapped to [0, 1] by ``(t + 1) / 2``; no per-image min/max rescaling (video
  must not flicker).

The paper's two ablations: ``use_cii=False`` sends encoder features straight to CFF; ``use_cff=False``
concatenates the (CII) features and reduces them with a conv3x3; ``use_clip=False`` is both, with no
CLIP at all: "the paper's network without its CLIP blocks". A switched-off block has no parameters and
no computation.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fusioncam.errors import FusioncamError

from .blocks import RestormerBlock, to_channels_last

__all__ = ["MGFusionConfig", "MGFusion", "Adapter", "CII", "CFF", "Encoder", "Decoder", "sobel_magnitude"]


@dataclass
class MGFusionConfig:
    """Architecture of one MGFusion variant (the JSON files in models/configs hold these fields)."""

    width: int = 64  # C: feature channels
    depth: int = 4  # N: Restormer blocks in each encoder and in the decoder
    heads: int = 8
    ffn_expansion: float = 2.0
    bias: bool = False  # bias of the Restormer convolutions (Restormer's default: none)
    adapter_hidden: int = 128  # hidden units of every CLIP adapter
    clip_model: str = "ViT-B-32"
    clip_pretrained: str = "openai"
    clip_embed_dim: int | None = None  # D; filled in from the CLIP model config when None
    use_cii: bool = True
    use_cff: bool = True
    use_clip: bool = True
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        # use_clip=False means both CLIP blocks off; both off means no CLIP at all.
        if not self.use_clip:
            self.use_cii = self.use_cff = False
        elif not (self.use_cii or self.use_cff):
            self.use_clip = False
        if self.width < 1 or self.depth < 0 or self.heads < 1:
            raise FusioncamError(
                f"bad MGFusion config: width={self.width} depth={self.depth} heads={self.heads}"
            )
        if self.width % self.heads:
            raise FusioncamError(f"MGFusion width ({self.width}) must be divisible by heads ({self.heads})")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MGFusionConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            import difflib

            hints = [f"{k} (did you mean {difflib.get_close_matches(k, known, 1)})" for k in unknown]
            raise FusioncamError(f"unknown MGFusion config keys: {', '.join(hints)}")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> MGFusionConfig:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise FusioncamError(f"MGFusion config is not valid JSON ({e})") from None
        if not isinstance(d, dict):
            raise FusioncamError(f"MGFusion config must be a JSON object, got {type(d).__name__}")
        return cls.from_dict(d)


def _conv_bn_act(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.1, inplace=True)
    )


class Encoder(nn.Module):
    """Two conv3x3+BN+LeakyReLU layers to C channels, then N Restormer blocks (one per modality)."""

    def __init__(self, cfg: MGFusionConfig):
        super().__init__()
        self.stem = nn.Sequential(_conv_bn_act(1, cfg.width), _conv_bn_act(cfg.width, cfg.width))
        self.blocks = nn.Sequential(
            *[RestormerBlock(cfg.width, cfg.heads, cfg.ffn_expansion, cfg.bias) for _ in range(cfg.depth)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.forward_stem(x))

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """The conv+BN+LeakyReLU layers; in eval mode each BN is folded into its conv (one pass fewer).

        The fold is computed from the current parameters on every call (a few hundred numbers, so it
        costs nothing next to a frame) rather than stored: the state dict and the modules stay as
        trained, and a checkpoint loaded later is folded correctly with no extra step.
        """
        for layer in self.stem:
            conv, bn, act = layer
            if bn.training or bn.running_mean is None:
                x = layer(x)
                continue
            w, b = _fold_bn(conv, bn)
            x = act(F.conv2d(x, w, b, conv.stride, conv.padding, conv.dilation, conv.groups))
        return x


def _fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of ``conv`` followed by ``bn`` in eval mode, as one convolution.

    ``torch.nn.utils.fusion.fuse_conv_bn_weights`` does the same but wraps its results in new
    ``nn.Parameter`` objects, which is wrong inside ``torch.inference_mode`` and in a forward pass.
    """
    # In float32 at least: an fp16 model's variances and eps would lose digits here.
    dtype = torch.promote_types(conv.weight.dtype, torch.float32)
    scale = torch.rsqrt(bn.running_var.to(dtype) + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.to(dtype)
    mean = bn.running_mean.to(dtype)
    bias = -mean if conv.bias is None else conv.bias.to(dtype) - mean
    bias = bias * scale
    if bn.bias is not None:
        bias = bias + bn.bias.to(dtype)
    w = (conv.weight.to(dtype) * scale.reshape(-1, 1, 1, 1)).to(conv.weight.dtype)
    return w, bias.to(conv.weight.dtype)


class Adapter(nn.Module):
    """CLIP adapter: Linear D->hidden, GELU, Linear hidden->C (a per-channel vector)."""

    def __init__(self, dim_in: int, hidden: int, dim_out: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim_in, hidden), nn.GELU(), nn.Linear(hidden, dim_out))

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return self.net(e)


def _weight_net(cin: int, hidden: int, cout: int) -> nn.Sequential:
    """conv3x3-ReLU-conv3x3 + sigmoid: a weight map in (0, 1)."""
    return nn.Sequential(
        nn.Conv2d(cin, hidden, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(hidden, cout, 3, padding=1),
        nn.Sigmoid(),
    )


class CII(nn.Module):
    """CLIP-driven Information Injection for one modality: ``f + Adapter(mix(e_own, e_other)) * S(f)``."""

    def __init__(self, channels: int, clip_dim: int, hidden: int):
        super().__init__()
        self.mix_logit = nn.Parameter(torch.zeros(1))  # w = sigmoid(mix_logit) = 0.5 at start
        self.adapter = Adapter(clip_dim, hidden, channels)
        self.spatial = _weight_net(channels, max(1, channels // 2), 1)

    @property
    def mix_weight(self) -> torch.Tensor:
        return torch.sigmoid(self.mix_logit)

    def forward(self, f: torch.Tensor, e_own: torch.Tensor, e_other: torch.Tensor) -> torch.Tensor:
        w = self.mix_weight
        e = w * e_own + (1 - w) * e_other
        inject = self.adapter(e)[:, :, None, None]  # N x C x 1 x 1, broadcast over H x W
        return torch.addcmul(f, inject, self.spatial(f))  # f + inject * S(f) in one pass


_SOBEL = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))


def sobel_magnitude(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-channel Sobel gradient magnitude: the numbers of ``kornia.filters.sobel(x)``.

    That is: the 3x3 Sobel kernels normalised to an L1 norm of 1, a replicate border, and
    ``sqrt(gx^2 + gy^2 + eps)``. Why not call kornia (the tests compare against it): it reshapes the
    input to (B*C) x 1 x H x W, which copies a channels-last tensor and runs a one-channel convolution
    that oneDNN handles slowly; as one depthwise convolution over the channels-last tensor the same
    numbers cost a fraction (230 ms -> 40 ms of CPU time on a 32-channel 640x480 map, one thread).
    """
    c = x.shape[1]
    kx = torch.tensor(_SOBEL, dtype=x.dtype, device=x.device) / 8.0
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    # Two depthwise convolutions: oneDNN is fast for one output per channel, slow for two.
    gx = F.conv2d(padded, kx.expand(c, 1, 3, 3), groups=c)
    gy = F.conv2d(padded, kx.t().expand(c, 1, 3, 3), groups=c)
    if torch.is_grad_enabled():
        return torch.sqrt(gx * gx + gy * gy + eps)
    return gx.mul_(gx).addcmul_(gy, gy).add_(eps).sqrt_()


class CFF(nn.Module):
    """CLIP-guided Feature Fusion: CLIP channel selection per modality, Sobel detail re-injection, 2C->C."""

    def __init__(self, channels: int, clip_dim: int, hidden: int):
        super().__init__()
        self.ir_adapter = Adapter(clip_dim, hidden, channels)
        self.vis_adapter = Adapter(clip_dim, hidden, channels)
        self.detail_weight = _weight_net(2 * channels, channels, 2 * channels)
        self.reduce = nn.Conv2d(2 * channels, channels, 3, padding=1)

    def forward(
        self, f_ir: torch.Tensor, f_vis: torch.Tensor, e_ir: torch.Tensor, e_vis: torch.Tensor
    ) -> torch.Tensor:
        a_ir = torch.sigmoid(self.ir_adapter(e_ir))[:, :, None, None]
        a_vis = torch.sigmoid(self.vis_adapter(e_vis))[:, :, None, None]
        x = torch.cat([f_ir * a_ir, f_vis * a_vis], dim=1)
        grad = sobel_magnitude(x)
        if torch.is_grad_enabled():
            x = torch.addcmul(x, self.detail_weight(grad), grad)
        else:  # in place where no gradient is recorded: two full-frame tensors fewer
            x = x.add_(self.detail_weight(grad).mul_(grad))
        return self.reduce(x)


class Decoder(nn.Module):
    """N Restormer blocks, a conv3x3+LeakyReLU layer, conv3x3 + Tanh, mapped to [0, 1]."""

    def __init__(self, cfg: MGFusionConfig):
        super().__init__()
        c = cfg.width
        self.blocks = nn.Sequential(
            *[RestormerBlock(c, cfg.heads, cfg.ffn_expansion, cfg.bias) for _ in range(cfg.depth)]
        )
        mid = max(1, c // 2)
        self.conv = nn.Sequential(nn.Conv2d(c, mid, 3, padding=1), nn.LeakyReLU(0.1, inplace=True))
        self.out = nn.Conv2d(mid, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.out(self.conv(self.blocks(x)))
        if torch.is_grad_enabled():
            return (torch.tanh(t) + 1) * 0.5
        return t.tanh_().add_(1).mul_(0.5)  # in place where no gradient is recorded: same numbers


class MGFusion(nn.Module):
    """The MGFusion network. Build it with :func:`fusioncam.models.create_model` (or directly).

    ``clip_encoder``: a :class:`ClipImageEncoder` to use; when None and the config uses CLIP, one is
    built from ``cfg.clip_model``/``cfg.clip_pretrained`` (or ``clip_weights``, a file) unless
    ``attach_clip=False`` (then ``forward`` needs precomputed ``clip_features``, e.g. from a cache).
    """

    def __init__(
        self,
        cfg: MGFusionConfig | None = None,
        clip_encoder: nn.Module | None = None,
        *,
        clip_weights: str | None = None,
        clip_cache_dir: str | None = None,
        attach_clip: bool = True,
        allow_download: bool = True,
    ):
        super().__init__()
        cfg = replace(cfg) if cfg is not None else MGFusionConfig()
        self.clip_encoder: nn.Module | None = None
        if cfg.use_clip:
            if clip_encoder is None and attach_clip:
                from .clip_encoder import ClipImageEncoder

                clip_encoder = ClipImageEncoder(
                    cfg.clip_model,
                    cfg.clip_pretrained,
                    weights=clip_weights,
                    cache_dir=clip_cache_dir,
                    allow_download=allow_download,
                )
            if clip_encoder is not None:
                dim = int(clip_encoder.embed_dim)
                if cfg.clip_embed_dim not in (None, dim):
                    raise FusioncamError(
                        f"CLIP encoder gives {dim}-dim features but the model expects {cfg.clip_embed_dim}"
                    )
                cfg.clip_embed_dim = dim
            elif cfg.clip_embed_dim is None:
                from .clip_encoder import clip_embed_dim

                cfg.clip_embed_dim = clip_embed_dim(cfg.clip_model)
        else:
            cfg.clip_embed_dim = None
        self.config = cfg
        self.encoder_ir = Encoder(cfg)
        self.encoder_vis = Encoder(cfg)
        d, c, hid = cfg.clip_embed_dim, cfg.width, cfg.adapter_hidden
        self.cii_ir = CII(c, d, hid) if cfg.use_cii else None
        self.cii_vis = CII(c, d, hid) if cfg.use_cii else None
        if cfg.use_cff:
            self.cff: nn.Module = CFF(c, d, hid)
        else:
            self.cff = None
            self.merge = nn.Conv2d(2 * c, c, 3, padding=1)
        self.decoder = Decoder(cfg)
        if cfg.use_clip and clip_encoder is not None:
            self.attach_clip_encoder(clip_encoder)

    # --- CLIP -----------------------------------------------------------------------------------------
    @property
    def uses_clip(self) -> bool:
        """True when the network has CLIP blocks (and so needs CLIP features)."""
        return self.config.use_clip

    def attach_clip_encoder(self, encoder: nn.Module) -> None:
        """Attach a (frozen) CLIP encoder, e.g. after building with ``attach_clip=False``."""
        if not self.uses_clip:
            raise FusioncamError("this MGFusion variant has no CLIP blocks; it takes no CLIP encoder")
        if int(encoder.embed_dim) != self.config.clip_embed_dim:
            raise FusioncamError(
                f"CLIP encoder gives {encoder.embed_dim}-dim features, "
                f"the model expects {self.config.clip_embed_dim}"
            )
        for p in encoder.parameters():
            p.requires_grad_(False)
        encoder.train(False)
        try:
            p0 = next(self.decoder.parameters())
            encoder.to(p0.device)
        except StopIteration:  # pragma: no cover
            pass
        self.clip_encoder = encoder

    @torch.no_grad()
    def encode_clip(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        """CLIP features ``N x 2 x D`` ([CLIP(ir), CLIP(vis)]) for :meth:`forward` (one batched call)."""
        if not self.uses_clip:
            raise FusioncamError("this MGFusion variant has no CLIP blocks")
        if self.clip_encoder is None:
            raise FusioncamError(
                "no CLIP encoder attached to this model: pass clip_features or build it with CLIP weights"
            )
        n = ir.shape[0]
        emb = self.clip_encoder.encode(torch.cat([ir, vis], dim=0))
        return torch.stack([emb[:n], emb[n:]], dim=1)

    # --- training helpers -----------------------------------------------------------------------------
    def train(self, mode: bool = True) -> MGFusion:
        """Set train mode everywhere except the frozen CLIP encoder, which stays in eval."""
        super().train(mode)
        if self.clip_encoder is not None:
            self.clip_encoder.train(False)
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters an optimiser should see (never CLIP's)."""
        return [p for n, p in self.named_parameters() if not n.startswith("clip_encoder.")]

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything a checkpoint holds: the whole state (incl. BN statistics) except frozen CLIP."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("clip_encoder.")}

    # --- forward --------------------------------------------------------------------------------------
    def forward_features(
        self, ir: torch.Tensor, vis: torch.Tensor, clip_features: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Encoders, CII and CFF (or the ablation merge): N x C x H x W fused features."""
        f_ir = self.encoder_ir(ir)
        f_vis = self.encoder_vis(vis)
        if self.uses_clip:
            if clip_features is None:
                clip_features = self.encode_clip(ir, vis)
            if (
                clip_features.ndim != 3
                or clip_features.shape[1] != 2
                or clip_features.shape[0] != ir.shape[0]
            ):
                raise ValueError(
                    f"clip_features must be N x 2 x D with N={ir.shape[0]}, got {tuple(clip_features.shape)}"
                )
            clip_features = clip_features.to(f_ir.dtype)
            e_ir, e_vis = clip_features[:, 0], clip_features[:, 1]
            if self.cii_ir is not None:
                f_ir = self.cii_ir(f_ir, e_ir, e_vis)
                f_vis = self.cii_vis(f_vis, e_vis, e_ir)
            if self.cff is not None:
                return self.cff(f_ir, f_vis, e_ir, e_vis)
        return self.merge(torch.cat([f_ir, f_vis], dim=1))

    def forward(
        self, ir: torch.Tensor, vis: torch.Tensor, clip_features: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Fuse ``ir`` and ``vis`` (N x 1 x H x W in [0, 1], any H, W) -> N x 1 x H x W in [0, 1].

        ``clip_features``: precomputed ``N x 2 x D`` from :meth:`encode_clip` (the live engine caches
        them over frames); computed here when None. Ignored by the no-CLIP variant.
        """
        if ir.ndim != 4 or ir.shape[1] != 1 or ir.shape != vis.shape:
            raise ValueError(
                "MGFusion takes two N x 1 x H x W tensors of one shape, "
                f"got {tuple(ir.shape)} and {tuple(vis.shape)}"
            )
        # Every layer here is size-agnostic (3x3 convs with padding, transposed attention over all
        # pixels), so no padding to a multiple is needed.
        if ir.device.type == "cpu":
            # The CPU kernels (oneDNN) are 2-3x faster on channels-last tensors; every layer keeps
            # that layout, so this is the one conversion (free for a one-channel input). On CUDA the
            # input's own layout is kept: cuDNN's choice, and not measured here.
            ir, vis = to_channels_last(ir), to_channels_last(vis)
        return self.decoder(self.forward_features(ir, vis, clip_features))

    def extra_repr(self) -> str:
        c = self.config
        return f"width={c.width}, depth={c.depth}, heads={c.heads}, cii={c.use_cii}, cff={c.use_cff}"
