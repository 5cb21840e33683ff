"""Restormer building blocks (Zamir et al., "Restormer: Efficient Transformer for High-Resolution Image
Restoration", CVPR 2022), used by the MGFusion encoders and decoder.

Why Restormer: its attention is *transposed* (across channels, not pixels), so the cost grows linearly
with the number of pixels and the block accepts any H x W without padding or windowing. That is what
lets the fusion network run on full video frames of any size.

All tensors are N x C x H x W in either memory format; the forward passes are written for
channels-last (see :func:`to_channels_last`, which MGFusion applies on the CPU), where the attention and
the 1x1 convolutions become plain matrix products over the pixels. Every rearrangement here computes the
paper's formulas (benchmarks/mgfusion_speed.py keeps the literal versions; the tests compare the two).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "LayerNorm2d",
    "MDTA",
    "GDFN",
    "RestormerBlock",
    "to_channels_last",
    "pointwise_conv",
    "pointwise_conv_add",
]

_NORM_EPS = 1e-12  # F.normalize's default eps, which the paper-literal MDTA used


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` (N x C x H x W) in channels-last memory format, the layout every block here is fast in.

    On the CPU, oneDNN's convolutions run 2-3x faster on channels-last tensors, LayerNorm over channels
    reads them without a transposing copy, and a 1x1 convolution is a plain matrix product.
    ``Tensor.contiguous(memory_format=...)`` leaves a one-channel tensor (the network's input) with
    ambiguous strides that the first convolution reads as NCHW; here it gets the channels-last strides
    (no copy: with C = 1 both layouts hold the same bytes).
    """
    if x.ndim != 4:
        return x
    n, c, h, w = x.shape
    if c == 1 and x.numel():
        return x.contiguous().as_strided((n, c, h, w), (h * w, 1, w, 1))
    return x.contiguous(memory_format=torch.channels_last)


def _pixel_major(x: torch.Tensor) -> bool:
    """True when ``x`` (N x C x H x W) is stored as N*H*W rows of C numbers (channels-last, dense)."""
    return x.permute(0, 2, 3, 1).is_contiguous()


def _is_pointwise(conv: nn.Conv2d) -> bool:
    return (
        conv.kernel_size == (1, 1)
        and conv.groups == 1
        and conv.stride == (1, 1)
        and conv.padding in ((0, 0), "valid")
    )


def pointwise_conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` for a 1x1 convolution, as one matrix product when ``x`` is channels-last.

    Pixel-major data makes a 1x1 convolution the product (N*H*W x Cin) @ (Cin x Cout). Why not leave it
    to ``conv``: with one CPU thread PyTorch sends 1x1 convolutions to its slow im2col path (NCHW
    output, 3-4x slower here, and the next depthwise convolution then runs on NCHW too).
    """
    if not (_is_pointwise(conv) and _pixel_major(x) and x.dtype == conv.weight.dtype):
        return conv(x)
    n, cin, h, w = x.shape
    cout = conv.weight.shape[0]
    x2d, w2d = x.permute(0, 2, 3, 1).reshape(-1, cin), conv.weight.reshape(cout, cin).t()
    out = x2d @ w2d if conv.bias is None else torch.addmm(conv.bias, x2d, w2d)
    return out.reshape(n, h, w, cout).permute(0, 3, 1, 2)


def pointwise_conv_add(conv: nn.Conv2d, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """``residual + conv(x)`` for a 1x1 convolution, as one matrix product when both are channels-last.

    As :func:`pointwise_conv`, with ``torch.addmm`` adding the residual in the same product instead of
    writing the convolution's output and re-reading it. Any other layout, dtype mix or a biased conv
    takes the plain path (same numbers).
    """
    n, _, h, w = x.shape
    cout, cin = conv.weight.shape[:2]
    fast = (
        conv.bias is None
        and _is_pointwise(conv)
        and x.dtype == residual.dtype == conv.weight.dtype
        and residual.shape == (n, cout, h, w)
        and _pixel_major(x)
        and _pixel_major(residual)
    )
    if not fast:
        return residual + conv(x)
    out = torch.addmm(
        residual.permute(0, 2, 3, 1).reshape(-1, cout),
        x.permute(0, 2, 3, 1).reshape(-1, cin),
        conv.weight.reshape(cout, cin).t(),
    )
    return out.reshape(n, h, w, cout).permute(0, 3, 1, 2)


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

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """MDTA(x), plus ``residual`` when given (added inside the last matrix product, saving a pass)."""
        n, c, h, w = x.shape
        heads, ch = self.heads, c // self.heads
        # N x 3C x HW: a view (no copy) whether x is channels-last or not; q and k are its first 2C rows.
        qkv = self.qkv_dw(pointwise_conv(self.qkv, x)).flatten(2)
        qk, v = qkv[:, : 2 * c], qkv[:, 2 * c :]
        # Why not F.normalize + q @ k^T + softmax + attn @ v + proj, as written in the paper: every step
        # of that reads or writes a full-frame tensor, which on a CPU costs far more than the arithmetic.
        # The same numbers come from ONE pass over q and k: their Gram matrix G = [q; k] [q; k]^T holds
        # the dot products q_i . k_j and, on its diagonal, the squared norms. F.normalize divides by
        # max(|x|, eps), so the normalised dot product is G_ij / (max(|q_i|, eps) max(|k_j|, eps)).
        # Then proj(attn @ v) = (W_proj A) v with A the block-diagonal C x C attention matrix: one more
        # pass, over v, with the residual added in the same product.
        # The Gram matrix and the softmax run in float32 even under fp16 (autocast off): the sums run
        # over every pixel (they would overflow fp16), and a black frame (q = 0) must give 0, not 0/0.
        with torch.autocast(device_type=x.device.type, enabled=False):
            qk32 = qk.float()
            gram = torch.bmm(qk32, qk32.transpose(1, 2))  # N x 2C x 2C
            # sqrt(max(s, eps^2)) = max(sqrt(s), eps), with a finite gradient at s = 0.
            norm = gram.diagonal(dim1=1, dim2=2).clamp_min(_NORM_EPS**2).sqrt()
            cross = gram[:, :c, c:] / (norm[:, :c, None] * norm[:, None, c:])  # q_i . k_j normalised
            # Per-head blocks of the C x C matrix -> N x heads x ch x ch.
            logits = cross.reshape(n, heads, ch, heads, ch).diagonal(dim1=1, dim2=3).permute(0, 3, 1, 2)
            attn = (logits * self.temperature.float()).softmax(dim=-1)
            # W_proj blockdiag(A), head by head: (heads x C x ch) @ (N x heads x ch x ch) -> N x C x C.
            w_proj = self.proj.weight.reshape(c, heads, ch).transpose(0, 1).float()
            mix = torch.matmul(w_proj, attn).permute(0, 2, 1, 3).reshape(n, c, c)
        mix = mix.to(v.dtype)
        bias = self.proj.bias
        if residual is not None and residual.dtype != v.dtype:  # e.g. an fp32 residual under autocast
            residual, extra = None, residual
        else:
            extra = None
        if qkv.stride(1) == 1 and h * w > 1:
            # Pixel-major: out^T = v^T mix^T, an N x HW x C array, i.e. a channels-last N x C x H x W.
            if residual is None:
                out = torch.bmm(v.transpose(1, 2), mix.transpose(1, 2))
            else:
                res = residual.contiguous(memory_format=torch.channels_last).flatten(2).transpose(1, 2)
                out = torch.baddbmm(res, v.transpose(1, 2), mix.transpose(1, 2))
            out = out.transpose(1, 2).reshape(n, c, h, w)
        else:
            if residual is None:
                out = torch.bmm(mix, v)
            else:
                out = torch.baddbmm(residual.contiguous().flatten(2), mix, v)
            out = out.reshape(n, c, h, w)
        if bias is not None:
            out = out + bias.to(out.dtype)[:, None, None]
        return out if extra is None else extra + out


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

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """GDFN(x), plus ``residual`` when given (added inside the last 1x1 convolution's product)."""
        x1, x2 = self.dw(pointwise_conv(self.project_in, x)).chunk(2, dim=1)
        gated = self.act(x1)
        # In place where no gradient is recorded: one full-frame tensor fewer to allocate and write.
        gated = gated.mul_(x2) if not torch.is_grad_enabled() else gated * x2
        if residual is None:
            return self.project_out(gated)
        return pointwise_conv_add(self.project_out, gated, residual)


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
        x = self.attn(self.norm1(x), residual=x)
        return self.ffn(self.norm2(x), residual=x)
