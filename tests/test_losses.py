"""The intensity + gradient fusion loss (lambda = 0.2 and which term it weights)."""

from __future__ import annotations

import pytest
import torch

from fusioncam.models.losses import FusionLoss, fusion_loss, gradient_loss, intensity_loss


def _img(seed: int, h: int = 24, w: int = 31) -> torch.Tensor:
    return torch.rand(2, 1, h, w, generator=torch.Generator().manual_seed(seed))


def test_zero_when_fused_equals_identical_sources():
    x = _img(0)
    total, parts = fusion_loss(x.clone(), x, x)
    assert total.item() == pytest.approx(0.0, abs=1e-6)
    assert parts["intensity"].item() == pytest.approx(0.0, abs=1e-6)
    assert parts["gradient"].item() == pytest.approx(0.0, abs=1e-6)


def test_intensity_target_is_pixelwise_max():
    ir, vis = _img(1), _img(2)
    assert intensity_loss(torch.maximum(ir, vis), ir, vis).item() == pytest.approx(0.0, abs=1e-7)
    assert intensity_loss(torch.minimum(ir, vis), ir, vis).item() > 0.1


def test_gradient_target_is_larger_source_gradient():
    ir = _img(3)
    flat = torch.full_like(ir, 0.3)  # no gradient at all: the target is IR's gradient
    assert gradient_loss(ir.clone(), ir, flat).item() == pytest.approx(0.0, abs=1e-6)
    assert gradient_loss(flat.clone(), ir, flat).item() > 0.05  # a flat result loses all detail


def test_positive_for_a_poor_fusion():
    ir, vis = _img(4), _img(5)
    total, parts = fusion_loss(torch.full_like(ir, 0.5), ir, vis)
    assert total.item() > 0 and parts["intensity"].item() > 0 and parts["gradient"].item() > 0


@pytest.mark.parametrize(("lambda_on", "w_int", "w_grad"), [("intensity", 0.2, 1.0), ("gradient", 1.0, 0.2)])
def test_lambda_weights_the_chosen_term(lambda_on, w_int, w_grad):
    ir, vis, f = _img(6), _img(7), _img(8)
    total, parts = fusion_loss(f, ir, vis, lam=0.2, lambda_on=lambda_on)
    expect = w_int * parts["intensity"] + w_grad * parts["gradient"]
    assert total.item() == pytest.approx(expect.item(), rel=1e-6)
    assert parts["total"].item() == pytest.approx(total.item())


def test_default_is_lambda_on_intensity():
    ir, vis, f = _img(9), _img(10), _img(11)
    t_default, _ = FusionLoss()(f, ir, vis)
    t_int, _ = fusion_loss(f, ir, vis, 0.2, "intensity")
    t_grad, _ = fusion_loss(f, ir, vis, 0.2, "gradient")
    assert t_default.item() == pytest.approx(t_int.item())
    assert t_default.item() != pytest.approx(t_grad.item())


def test_bad_lambda_on():
    with pytest.raises(ValueError, match="lambda_on"):
        FusionLoss(lambda_on="both")


def test_gradient_flows_to_fused_only():
    ir, vis = _img(12), _img(13)
    f = _img(14).requires_grad_(True)
    total, parts = FusionLoss()(f, ir, vis)
    total.backward()
    assert f.grad is not None and f.grad.abs().sum() > 0
    assert not parts["intensity"].requires_grad
