"""``mgfusion`` as a fuser: weights resolution, uint8 edge, tensor path with cached CLIP features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fusioncam.models.factory as factory
from fusioncam.errors import FusioncamError
from fusioncam.models import create_model, save_checkpoint
from fusioncam.models.fuser import MGFusionFuser, resolve_device
from fusioncam.processing.fusers import Fuser, create_fuser

TINY = dict(width=8, depth=1, heads=2, adapter_hidden=8)


@pytest.fixture(scope="module")
def noclip_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    m = create_model("mgfusion_fast_noclip", **TINY)
    return save_checkpoint(m, tmp_path_factory.mktemp("w") / "noclip.safetensors")


def _u8(seed: int, shape=(37, 53)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def test_fuse_uint8_any_size(noclip_ckpt):
    f = MGFusionFuser(weights=noclip_ckpt, device="cpu")
    assert isinstance(f, Fuser) and f.name == "mgfusion" and not f.uses_clip
    assert f.device == torch.device("cpu") and f.dtype == torch.float32
    ir, vis = _u8(0), _u8(1)
    out = f.fuse(ir, vis)
    assert out.dtype == np.uint8 and out.shape == ir.shape


def test_output_is_network_output_not_rescaled(noclip_ckpt):
    f = MGFusionFuser(weights=noclip_ckpt, device="cpu")
    ir, vis = _u8(2), _u8(3)
    with torch.no_grad():
        t = f.model(torch.from_numpy(ir)[None, None] / 255.0, torch.from_numpy(vis)[None, None] / 255.0)
    expect = (t[0, 0] * 255).round().to(torch.uint8).numpy()
    out = f.fuse(ir, vis)
    assert np.array_equal(out, expect)
    # A random network's output spans a narrow band: a min/max stretch would reach 0 and 255.
    assert out.min() > 0 or out.max() < 255


def test_registry_builds_it(noclip_ckpt):
    f = create_fuser("mgfusion", weights=str(noclip_ckpt), device="cpu")
    assert isinstance(f, MGFusionFuser)
    assert f.fuse(_u8(4, (9, 12)), _u8(5, (9, 12))).shape == (9, 12)


def test_fuse_tensor_shapes(noclip_ckpt):
    f = MGFusionFuser(weights=noclip_ckpt, device="cpu")
    out = f.fuse_tensor(torch.rand(20, 17), torch.rand(20, 17))
    assert out.shape == (1, 1, 20, 17) and 0 <= out.min() and out.max() <= 1
    assert f.fuse_tensor(torch.rand(3, 1, 8, 9), torch.rand(3, 1, 8, 9)).shape == (3, 1, 8, 9)


def test_scale_runs_the_network_smaller_and_returns_full_size(noclip_ckpt, monkeypatch):
    full = MGFusionFuser(weights=noclip_ckpt, device="cpu")
    half = MGFusionFuser(weights=noclip_ckpt, device="cpu", scale=0.5)
    seen = []
    monkeypatch.setattr(
        half.model, "forward", lambda ir, vis, clip_features=None: seen.append(ir.shape) or ir
    )
    out = half.fuse_tensor(torch.rand(1, 1, 40, 61), torch.rand(1, 1, 40, 61))
    assert seen == [(1, 1, 20, 30)] and out.shape == (1, 1, 40, 61)
    assert full.scale == 1.0 and full.fuse(_u8(0, (40, 61)), _u8(1, (40, 61))).shape == (40, 61)
    with pytest.raises(FusioncamError, match="scale"):
        MGFusionFuser(weights=noclip_ckpt, device="cpu", scale=0)


def test_cached_clip_features_give_same_output(tiny_clip_checkpoint):
    ckpt, clip_path = tiny_clip_checkpoint
    f = MGFusionFuser(weights=ckpt, device="cpu", clip_weights=clip_path, allow_download=False)
    assert f.uses_clip
    ir, vis = torch.rand(1, 1, 30, 41), torch.rand(1, 1, 30, 41)
    feats = f.encode_clip(ir, vis)
    assert feats.shape == (1, 2, 16)
    assert torch.equal(f.fuse_tensor(ir, vis, clip_features=feats), f.fuse_tensor(ir, vis))
    ir8, vis8 = _u8(6, (30, 41)), _u8(7, (30, 41))
    assert f.fuse(ir8, vis8).shape == (30, 41)


def test_clip_checkpoint_without_clip_weights_is_clear(tiny_clip_checkpoint, tmp_path):
    ckpt, _ = tiny_clip_checkpoint
    with pytest.raises(FusioncamError, match="CLIP weight file not found"):
        MGFusionFuser(weights=ckpt, device="cpu", clip_weights=str(tmp_path / "nope.safetensors"))


def test_default_weights_are_the_shipped_fast_preset(noclip_ckpt, tmp_path, monkeypatch):
    monkeypatch.setattr(factory, "shipped_weights_dir", lambda: tmp_path)
    with pytest.raises(
        FusioncamError, match="no trained weights for 'mgfusion_fast_noclip'.*fusioncam train"
    ):
        MGFusionFuser(device="cpu")
    (tmp_path / "mgfusion_fast_noclip.safetensors").write_bytes(noclip_ckpt.read_bytes())
    f = MGFusionFuser(device="cpu")
    assert f.weights_path == tmp_path / "mgfusion_fast_noclip.safetensors"
    assert MGFusionFuser(weights="mgfusion_fast_noclip", device="cpu").weights_path == f.weights_path


def test_bad_inputs_are_clear(noclip_ckpt, tmp_path):
    with pytest.raises(FusioncamError, match="not found"):
        MGFusionFuser(weights=tmp_path / "missing.safetensors", device="cpu")
    with pytest.raises(FusioncamError, match="unknown MGFusion weights"):
        MGFusionFuser(weights="no_such_thing", device="cpu")
    with pytest.raises(FusioncamError, match="unknown device"):
        resolve_device("tpu9")
    with pytest.raises(FusioncamError, match="fp16"):
        MGFusionFuser(weights=noclip_ckpt, device="cpu", half=True)
    f = MGFusionFuser(weights=noclip_ckpt, device="cpu")
    with pytest.raises(FusioncamError, match="same size"):
        f.fuse(_u8(0, (8, 8)), _u8(1, (8, 9)))
    with pytest.raises(FusioncamError, match="uint8"):
        f.fuse(np.zeros((8, 8), np.float32), np.zeros((8, 8), np.float32))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (fp16 path)")
def test_cuda_fp16_matches_cpu_fp32(noclip_ckpt):
    cpu = MGFusionFuser(weights=noclip_ckpt, device="cpu")
    gpu = MGFusionFuser(weights=noclip_ckpt, device="auto")
    assert gpu.device.type == "cuda" and gpu.dtype == torch.float16
    ir, vis = _u8(8, (48, 64)), _u8(9, (48, 64))
    diff = np.abs(cpu.fuse(ir, vis).astype(int) - gpu.fuse(ir, vis).astype(int))
    assert diff.max() <= 2
