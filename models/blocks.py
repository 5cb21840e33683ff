"""Restormer building blocks (Zamir et al., "Restormer: Efficient Transformer for High-Resolution Image
Restoration", CVPR 2022), used by the MGFusion encoders and decoder.

Why Restormer: its attention is *transposed* (across channels, not pixels), so the cost grows linearly
with the number of pixels and the block accepts any H x W without padding or windowing. That is what
lets the fusion network run on full video frames of any size.

All tensors are N x C x H x W.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LayerNorm2d", "MDTA", "GDFN", "RestormerBlock"]


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel, with a learned scale and bias.

    Restormer offers a bias-free variant; the paper's blocks (and MGFusion's) use the one with bias.
    Implemented with ``F.layer_norm`` on a channels-last view rather than hand-written mean/var; its
    output keeps channels-last strides, which PyTorch's CPU convolutions (oneDNN) take without a copy.
    """

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class MDTA(nn.Module):
    """Multi-Dconv head Transposed Attention.

    q, k, v come from a 1x1 conv followed by a 3x3 depthwise conv (local context at little cost).
    q and k are L2-normalised along the pixel axis and attention is a C/heads x C/heads matrix per head
    (channels attend to channels), scaled by a learned per-head temperature, softmax over channels.
    """

    def __init__(self, channels: int, heads: int, bias: bool = False):
        super().__init__()
        if channels % heads:
            raise ValueError(f"MDTA: channels ({channels}) must be divisible by heads ({heads})")
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(channels, channels * 3, 1, bias=bias)
        self.qkv_dw = nn.Conv2d(channels * 3, channels * 3, 3, padding=1, groups=channels * 3, bias=bias)
        self.proj = nn.Conv2d(channels, channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv_dw(self.qkv(x)).chunk(3, dim=1)
        shape = (n, self.heads, c // self.heads, h * w)
        # The normalisation and the C x C attention matrix are computed in float32 even under fp16
        # (autocast off): the dot products run over every pixel, and F.normalize's eps underflows to 0
        # in fp16, so a black frame (q = 0) would give 0/0 = NaN. The matrix is tiny, so this is cheap.
        with torch.autocast(device_type=x.device.type, enabled=False):
            q = F.normalize(q.reshape(shape).float(), dim=-1)
            k = F.normalize(k.reshape(shape).float(), dim=-1)
            attn = (q @ k.transpose(-2, -1)) * self.temperature.float()
            attn = attn.softmax(dim=-1)
        out = attn.to(v.dtype) @ v.reshape(shape)
        return self.proj(out.reshape(n, c, h, w))


class GDFN(nn.Module):
    """Gated-Dconv Feed-forward Network: 1x1 expand, 3x3 depthwise, act(x1) * x2 gate, 1x1 project."""

    def __init__(
        self,
        channels: int,
        expansion: float = 2.0,
        bias: bool = False,
        act_layer: type[nn.Module] = nn.GELU,
    ):
        super().__init__()
        hidden = max(1, int(channels * expansion))
        self.project_in = nn.Conv2d(channels, hidden * 2, 1, bias=bias)
        self.dw = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=bias)
        self.act = act_layer()
        self.project_out = nn.Conv2d(hidden, channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.dw(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(self.act(x1) * x2)


class RestormerBlock(nn.Module):
    """Pre-norm residual block: x + MDTA(norm(x)), then x + GDFN(norm(x))."""

    def __init__(
        self,
        channels: int,
        heads: int,
        ffn_expansion: float = 2.0,
        bias: bool = False,
        norm_layer: type[nn.Module] = LayerNorm2d,
        act_layer: type[nn.Module] = nn.GELU,
    ):
        super().__init__()
        self.norm1 = norm_layer(channels)
        self.attn = MDTA(channels, heads, bias=bias)
        self.norm2 = norm_layer(channels)
        self.ffn = GDFN(channels, ffn_expansion, bias=bias, act_layer=act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))
