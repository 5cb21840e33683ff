"""The MGFusion training loss: intensity + gradient (Sobel) terms, lambda = 0.2.

    L_int  = || F - max(I_ir, I_vis) ||_1                         (mean over pixels)
    L_grad = || |grad F| - max(|grad I_ir|, |grad I_vis|) ||_1     (Sobel magnitude, kornia)

The paper writes L = L_int + lambda * L_grad-like sums with lambda = 0.2 but does not say which term
lambda weights. The first author's later public training code uses ``0.2 * L_int + 1 * L_grad``; that is
the default here (``lambda_on="intensity"``); ``lambda_on="gradient"`` gives ``L_int + 0.2 * L_grad``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

__all__ = ["FusionLoss", "fusion_loss", "intensity_loss", "gradient_loss", "sobel_magnitude"]

LambdaOn = Literal["intensity", "gradient"]


def sobel_magnitude(x: torch.Tensor) -> torch.Tensor:
    """Per-channel Sobel gradient magnitude (kornia.filters.sobel: normalised kernel, replicate border)."""
    from kornia.filters import sobel

    return sobel(x)


def intensity_loss(fused: torch.Tensor, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance of the fused image to the pixel-wise maximum of the sources."""
    return (fused - torch.maximum(ir, vis)).abs().mean()


def gradient_loss(fused: torch.Tensor, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance of |grad F| to the larger of the two source gradient magnitudes."""
    target = torch.maximum(sobel_magnitude(ir), sobel_magnitude(vis))
    return (sobel_magnitude(fused) - target).abs().mean()


def fusion_loss(
    fused: torch.Tensor,
    ir: torch.Tensor,
    vis: torch.Tensor,
    lam: float = 0.2,
    lambda_on: LambdaOn = "intensity",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss and its parts ``{"intensity", "gradient", "total"}`` (parts detached, for logging)."""
    if lambda_on not in ("intensity", "gradient"):
        raise ValueError(f"lambda_on must be 'intensity' or 'gradient', got {lambda_on!r}")
    l_int = intensity_loss(fused, ir, vis)
    l_grad = gradient_loss(fused, ir, vis)
    if lambda_on == "intensity":
        total = lam * l_int + l_grad
    else:
        total = l_int + lam * l_grad
    parts = {"intensity": l_int.detach(), "gradient": l_grad.detach(), "total": total.detach()}
    return total, parts


class FusionLoss(nn.Module):
    """:func:`fusion_loss` as a module: ``loss(fused, ir, vis) -> (total, parts)``."""

    def __init__(self, lam: float = 0.2, lambda_on: LambdaOn = "intensity"):
        super().__init__()
        if lambda_on not in ("intensity", "gradient"):
            raise ValueError(f"lambda_on must be 'intensity' or 'gradient', got {lambda_on!r}")
        self.lam = float(lam)
        self.lambda_on = lambda_on

    def forward(
        self, fused: torch.Tensor, ir: torch.Tensor, vis: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return fusion_loss(fused, ir, vis, self.lam, self.lambda_on)

    def extra_repr(self) -> str:
        return f"lam={self.lam}, lambda_on={self.lambda_on!r}"
