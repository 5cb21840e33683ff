"""The MGFusion network: blocks, shapes, gradients, ablations, registry, checkpoints."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from fusioncam.errors import FusioncamError
from fusioncam.models import (
    MGFusion,
    MGFusionConfig,
    RestormerBlock,
    create_model,
    get_model_config,
    list_models,
    load_checkpoint,
    load_model,
    read_checkpoint_metadata,
    save_checkpoint,
)
from fusioncam.models.blocks import MDTA, LayerNorm2d
from fusioncam.models.clip_encoder import ClipImageEncoder, save_tiny_clip

TINY = dict(width=8, depth=1, heads=2, ffn_expansion=1.5, adapter_hidden=8)
H, W = 37, 53  # odd on purpose


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> tuple[str, str]:
    return save_tiny_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def clip_encoder(tiny_clip) -> ClipImageEncoder:
    name, path = tiny_clip
    return ClipImageEncoder(name, weights=path, allow_download=False)


def _pair(n: int = 2, h: int = H, w: int = W, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, h, w, generator=g), torch.rand(n, 1, h, w, generator=g)


def _model(clip_encoder=None, seed: int = 0, **kw) -> MGFusion:
    torch.manual_seed(seed)
    cfg = MGFusionConfig(**{**TINY, "clip_model": "fusioncam-tiny-clip", **kw})
    return MGFusion(cfg, clip_encoder if cfg.use_clip else None).eval()


class TestBlocks:
    def test_restormer_keeps_shape_any_size(self):
        blk = RestormerBlock(8, heads=2)
        x = torch.randn(2, 8, 13, 7)
        assert blk(x).shape == x.shape

    def test_layernorm_normalises_channels_per_pixel(self):
        ln = LayerNorm2d(6)
        y = ln(torch.randn(2, 6, 5, 5) * 7 + 3)
        assert torch.allclose(y.mean(1), torch.zeros(2, 5, 5), atol=1e-5)
        assert torch.allclose(y.var(1, unbiased=False), torch.ones(2, 5, 5), atol=1e-3)
        assert {n for n, _ in ln.named_parameters()} == {"weight", "bias"}

    def test_mdta_attends_across_channels(self):
        m = MDTA(8, heads=2)
        assert m.temperature.shape == (2, 1, 1)
        x = torch.randn(1, 8, 6, 6, requires_grad=True)
        m(x).sum().backward()
        assert m.temperature.grad is not None and m.temperature.grad.abs().sum() > 0

    def test_heads_must_divide_channels(self):
        with pytest.raises(ValueError, match="divisible"):
            MDTA(10, heads=4)


class TestForward:
    @pytest.mark.parametrize("use_clip", [False, True])
    def test_shape_and_range_odd_size(self, clip_encoder, use_clip):
        m = _model(clip_encoder, use_clip=use_clip)
        ir, vis = _pair()
        out = m(ir, vis)
        assert out.shape == (2, 1, H, W)
        assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1

    def test_extreme_inputs_stay_in_range(self):
        m = _model(use_clip=False)
        for v in (0.0, 1.0):
            out = m(torch.full((1, 1, 9, 11), v), torch.full((1, 1, 9, 11), 1 - v))
            assert out.min() >= 0 and out.max() <= 1

    @pytest.mark.parametrize("hw", [(1, 1), (2, 3), (1, 40), (33, 2)])
    def test_degenerate_sizes(self, clip_encoder, hw):
        out = _model(clip_encoder)(*_pair(n=1, h=hw[0], w=hw[1]))
        assert out.shape == (1, 1, *hw) and torch.isfinite(out).all()

    def test_black_frame_in_fp16_is_finite(self):
        # fp16 F.normalize of an all-zero row is 0/0 = NaN; MDTA normalises in float32 for this reason
        m = _model(use_clip=False).half()
        z = torch.zeros(1, 1, 12, 15, dtype=torch.float16)
        out = m(z, z)
        assert out.dtype == torch.float16 and torch.isfinite(out).all()

    def test_rejects_mismatched_inputs(self):
        m = _model(use_clip=False)
        with pytest.raises(ValueError, match="N x 1 x H x W"):
            m(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 9))
        with pytest.raises(ValueError):
            m(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))

    def test_precomputed_clip_features_match_inside(self, clip_encoder):
        m = _model(clip_encoder)
        ir, vis = _pair()
        feats = m.encode_clip(ir, vis)
        assert feats.shape == (2, 2, clip_encoder.embed_dim)
        assert torch.equal(m(ir, vis), m(ir, vis, clip_features=feats))
        # and the features matter: swapping IR/VIS embeddings changes the output
        assert not torch.allclose(m(ir, vis, clip_features=feats.flip(1)), m(ir, vis))

    def test_bad_clip_features_shape(self, clip_encoder):
        m = _model(clip_encoder)
        ir, vis = _pair()
        with pytest.raises(ValueError, match="N x 2 x D"):
            m(ir, vis, clip_features=torch.zeros(2, clip_encoder.embed_dim))

    def test_without_attached_clip_needs_features(self, clip_encoder):
        cfg = MGFusionConfig(**TINY, clip_model="fusioncam-tiny-clip")
        m = MGFusion(cfg, attach_clip=False).eval()
        assert m.uses_clip and m.clip_encoder is None
        assert m.config.clip_embed_dim == clip_encoder.embed_dim  # read from the open_clip config
        ir, vis = _pair()
        with pytest.raises(FusioncamError, match="no CLIP encoder"):
            m(ir, vis)
        feats = clip_encoder.encode(torch.cat([ir, vis])).view(2, 2, -1).transpose(0, 1)
        assert m(ir, vis, clip_features=feats.contiguous()).shape == (2, 1, H, W)
        m.attach_clip_encoder(clip_encoder)
        assert torch.allclose(m(ir, vis), m(ir, vis, clip_features=feats.contiguous()), atol=1e-6)


class TestGradients:
    @pytest.mark.parametrize("kw", [{}, {"use_cii": False}, {"use_cff": False}, {"use_clip": False}])
    def test_every_trainable_parameter_gets_gradient_never_clip(self, clip_encoder, kw):
        m = _model(clip_encoder, **kw).train()
        ir, vis = _pair(n=2, h=16, w=19)
        m(ir, vis).square().mean().backward()
        names = [n for n, p in m.named_parameters() if not n.startswith("clip_encoder.")]
        no_grad = [n for n, p in m.named_parameters() if n in names and (p.grad is None or not p.grad.any())]
        assert not no_grad, f"parameters without gradient: {no_grad}"
        assert len(m.trainable_parameters()) == len(names)
        for n, p in m.named_parameters():
            if n.startswith("clip_encoder."):
                assert not p.requires_grad and p.grad is None

    def test_train_mode_keeps_clip_in_eval(self, clip_encoder):
        m = _model(clip_encoder)
        m.train()
        assert m.training and m.encoder_ir.training
        assert not m.clip_encoder.training
        assert not any(mod.training for mod in m.clip_encoder.modules())

    def test_trainable_state_dict_excludes_clip(self, clip_encoder):
        m = _model(clip_encoder)
        assert any(k.startswith("clip_encoder.") for k in m.state_dict())
        sd = m.trainable_state_dict()
        assert sd and not any(k.startswith("clip_encoder.") for k in sd)
        assert "encoder_ir.stem.0.1.running_mean" in sd  # BN statistics travel with the weights


class TestAblations:
    def _names(self, m: MGFusion) -> set[str]:
        return {n for n, _ in m.named_parameters()}

    def test_full_has_both_blocks(self, clip_encoder):
        names = self._names(_model(clip_encoder))
        assert any(n.startswith("cii_ir.") for n in names) and any(n.startswith("cff.") for n in names)
        assert not any(n.startswith("merge.") for n in names)

    def test_without_cii(self, clip_encoder):
        full = _model(clip_encoder)
        m = _model(clip_encoder, use_cii=False)
        names = self._names(m)
        assert m.cii_ir is None and m.cii_vis is None
        assert not any(n.startswith(("cii_ir.", "cii_vis.")) for n in names)
        assert any(n.startswith("cff.") for n in names) and m.uses_clip
        self._differs(full, m)

    def test_without_cff(self, clip_encoder):
        full = _model(clip_encoder)
        m = _model(clip_encoder, use_cff=False)
        names = self._names(m)
        assert m.cff is None and not any(n.startswith("cff.") for n in names)
        assert any(n.startswith("merge.") for n in names) and any(n.startswith("cii_ir.") for n in names)
        self._differs(full, m)

    def test_without_clip_has_no_clip_at_all(self, clip_encoder):
        full = _model(clip_encoder)
        m = _model(clip_encoder, use_clip=False)
        assert not m.uses_clip and m.clip_encoder is None
        assert m.config.use_cii is False and m.config.use_cff is False and m.config.clip_embed_dim is None
        assert not any(("adapter" in n) or n.startswith(("cii", "cff", "clip")) for n in self._names(m))
        assert not any(isinstance(mod, ClipImageEncoder) for mod in m.modules())
        ir, vis = _pair()
        # features passed anyway are ignored: no CLIP computation in this variant
        assert torch.equal(m(ir, vis), m(ir, vis, clip_features=torch.randn(2, 2, 16)))
        self._differs(full, m)
        with pytest.raises(FusioncamError, match="no CLIP"):
            m.encode_clip(ir, vis)

    def test_both_blocks_off_means_no_clip(self):
        cfg = MGFusionConfig(**TINY, use_cii=False, use_cff=False)
        assert cfg.use_clip is False

    @staticmethod
    def _differs(full: MGFusion, ablated: MGFusion) -> None:
        # Give the ablated network every weight it shares with the full one: any remaining difference
        # is the switched-off block's contribution.
        ablated.load_state_dict(full.trainable_state_dict(), strict=False)
        ir, vis = _pair()
        assert not torch.allclose(full(ir, vis), ablated(ir, vis), atol=1e-5)


class TestRegistry:
    def test_lists_the_presets(self):
        names = list_models()
        for n in ("mgfusion", "mgfusion_noclip", "mgfusion_fast", "mgfusion_fast_noclip"):
            assert n in names

    def test_noclip_presets_need_no_clip(self):
        for n in list_models():
            cfg = get_model_config(n)
            assert cfg.use_clip == ("noclip" not in n)
            assert cfg.description

    @pytest.mark.parametrize("name", list_models())
    def test_forward_every_config(self, name, tiny_clip):
        clip_name, clip_path = tiny_clip
        overrides = {**TINY, "clip_model": clip_name}
        m = create_model(name, clip_pretrained=clip_path, allow_download=False, **overrides).eval()
        out = m(*_pair(n=1, h=21, w=18))
        assert out.shape == (1, 1, 21, 18) and torch.isfinite(out).all()
        assert m.uses_clip == (m.clip_encoder is not None)

    def test_full_size_preset_builds_without_clip_weights(self):
        m = create_model("mgfusion", attach_clip=False)
        assert m.config.width == 64 and m.config.clip_embed_dim == 512  # ViT-B-32's embedding size

    def test_unknown_name_suggests(self):
        with pytest.raises(FusioncamError, match="did you mean 'mgfusion_fast'"):
            create_model("mgfusion_fats")

    def test_unknown_config_key(self):
        with pytest.raises(FusioncamError, match="unknown MGFusion config keys: widht"):
            get_model_config("mgfusion_noclip", widht=3)


class TestCheckpoints:
    @pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
    def test_save_load_identical_outputs(self, tmp_path, clip_encoder, tiny_clip, suffix):
        m = _model(clip_encoder, seed=3).train()
        m(*_pair(n=2, h=12, w=12))  # move BN statistics away from their defaults
        m.eval()
        path = save_checkpoint(m, tmp_path / f"ck{suffix}", metadata={"epoch": 7, "note": "x"})
        assert path.is_file() and not list(tmp_path.glob("*.partial"))
        umask = os.umask(0)
        os.umask(umask)
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # readable like any other output
        meta = read_checkpoint_metadata(path)
        assert meta["config"] == m.config and meta["epoch"] == "7" and meta["note"] == "x"
        other = _model(clip_encoder, seed=4)
        load_checkpoint(other, path)
        ir, vis = _pair()
        assert torch.equal(m(ir, vis), other(ir, vis))
        rebuilt = load_model(path, clip_pretrained=tiny_clip[1], allow_download=False)
        assert rebuilt.config == m.config and not rebuilt.training
        assert torch.equal(m(ir, vis), rebuilt(ir, vis))

    def test_checkpoint_holds_no_clip(self, tmp_path, clip_encoder):
        from safetensors import safe_open

        path = save_checkpoint(_model(clip_encoder), tmp_path / "c.safetensors")
        with safe_open(str(path), "pt") as f:
            assert not any(k.startswith("clip_encoder.") for k in f.keys())

    def test_strips_module_prefix(self, tmp_path):
        m = _model(use_clip=False, seed=1)
        torch.save({"module." + k: v for k, v in m.trainable_state_dict().items()}, tmp_path / "dp.pth")
        other = _model(use_clip=False, seed=2)
        load_checkpoint(other, tmp_path / "dp.pth")
        ir, vis = _pair()
        assert torch.equal(m(ir, vis), other(ir, vis))

    def test_mismatched_architecture_is_a_clear_error(self, tmp_path):
        path = save_checkpoint(_model(use_clip=False), tmp_path / "c.safetensors")
        wider = MGFusion(MGFusionConfig(**{**TINY, "width": 12}, use_clip=False))
        with pytest.raises(FusioncamError, match="does not match"):
            load_checkpoint(wider, path)

    def test_missing_and_corrupt_files(self, tmp_path):
        m = _model(use_clip=False)
        with pytest.raises(FusioncamError, match="not found"):
            load_checkpoint(m, tmp_path / "nope.safetensors")
        bad = tmp_path / "bad.safetensors"
        bad.write_bytes(b"not a checkpoint")
        with pytest.raises(FusioncamError, match="cannot read"):
            load_checkpoint(m, bad)

    def test_pretrained_by_path_in_create_model(self, tmp_path):
        m = create_model("mgfusion_fast_noclip", **TINY)
        path = save_checkpoint(m, tmp_path / "c.safetensors")
        m2 = create_model("mgfusion_fast_noclip", pretrained=path, **TINY)
        ir, vis = _pair()
        assert torch.equal(m.eval()(ir, vis), m2.eval()(ir, vis))
        with pytest.raises(FusioncamError, match="not found"):
            create_model("mgfusion_fast_noclip", pretrained=tmp_path / "missing.safetensors")
