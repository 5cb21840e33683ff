"""The optimised MGFusion forward pass computes what the paper-literal one does, and folds nothing
into the module's state.

The oracle is ``reference_forwards()`` from benchmarks/mgfusion_speed.py: the blocks' original forward
passes (F.normalize + softmax + attn @ v + proj; conv -> BN -> act; NCHW), patched onto the same modules
with the same weights. Random weights, BN statistics and attention temperatures away from their
initial values, so that every folded or rearranged term matters.
"""

from __future__ import annotations

import importlib.util
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fusioncam.models import create_model
from fusioncam.models.blocks import GDFN, MDTA, pointwise_conv_add, to_channels_last
from fusioncam.models.fuser import MGFusionFuser
from fusioncam.models.mgfusion import sobel_magnitude

_BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "mgfusion_speed.py"
_spec = importlib.util.spec_from_file_location("mgfusion_speed_bench", _BENCH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

H, W = 37, 53
TOL = dict(atol=1e-5, rtol=1e-5)


def _randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights everywhere, BN running statistics and MDTA temperatures included."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("clip_encoder."):
                continue
            if "temperature" in name:
                p.copy_(torch.rand(p.shape, generator=g) * 3 + 0.3)
            elif p.ndim == 1:  # biases, norm scales and shifts
                p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (1.0 if name.endswith("weight") else 0.0))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 2 + 0.2)
    return model


def _pair(n: int = 1, h: int = H, w: int = W, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, h, w, generator=g), torch.rand(n, 1, h, w, generator=g)


def _both(model, *args, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    """(optimised, reference) outputs of the same model on the same inputs."""
    fast = model(*args, **kw)
    with bench.reference_forwards():
        ref = model(*args, **kw)
    return fast, ref


class TestWholeNetwork:
    @pytest.mark.parametrize(
        "name,kw",
        [
            ("mgfusion_fast_noclip", {}),  # the shipped preset, at its own size
            ("mgfusion_noclip", dict(width=24, depth=2, heads=4)),
            ("mgfusion_fast", dict(width=8, depth=1, heads=2, adapter_hidden=8)),
        ],
    )
    def test_eval_output_equals_reference_odd_size(self, name, kw):
        model = _randomise(create_model(name, attach_clip=False, allow_download=False, **kw)).eval()
        ir, vis = _pair()
        feats = None
        if model.uses_clip:
            feats = torch.nn.functional.normalize(torch.randn(1, 2, model.config.clip_embed_dim), dim=-1)
        with torch.inference_mode():
            fast, ref = _both(model, ir, vis, clip_features=feats)
        assert fast.shape == ref.shape == (1, 1, H, W)
        # A random network's output spans a narrow band; make sure it is not constant.
        assert ref.std() > 1e-4
        torch.testing.assert_close(fast, ref, **TOL)

    def test_batch_and_no_grad_and_grad_modes_agree(self):
        model = _randomise(create_model("mgfusion_fast_noclip"), seed=3).eval()
        ir, vis = _pair(n=2, h=20, w=31, seed=4)
        with torch.no_grad():
            fast, ref = _both(model, ir, vis)
        torch.testing.assert_close(fast, ref, **TOL)
        with_grad = model(ir, vis)  # the out-of-place (autograd-safe) branches
        torch.testing.assert_close(with_grad.detach(), ref, **TOL)

    def test_train_mode_matches_and_gives_the_same_gradients(self):
        torch.manual_seed(5)
        model = _randomise(create_model("mgfusion_fast_noclip", width=8, heads=2), seed=5).train()
        ir, vis = _pair(n=2, h=16, w=19, seed=6)
        ref_model = create_model("mgfusion_fast_noclip", width=8, heads=2).train()
        ref_model.load_state_dict(model.state_dict())
        fast = model(ir, vis)
        fast.square().mean().backward()
        with bench.reference_forwards():
            ref = ref_model(ir, vis)
            ref.square().mean().backward()
        torch.testing.assert_close(fast, ref, **TOL)
        grads = dict(ref_model.named_parameters())
        for name, p in model.named_parameters():
            torch.testing.assert_close(p.grad, grads[name].grad, atol=1e-5, rtol=1e-4, msg=name)

    def test_fuser_uint8_output_equals_reference(self, tmp_path):
        from fusioncam.models import save_checkpoint

        model = _randomise(create_model("mgfusion_fast_noclip"), seed=7)
        ckpt = save_checkpoint(model, tmp_path / "m.safetensors")
        fuser = MGFusionFuser(weights=ckpt, device="cpu")
        rng = torch.Generator().manual_seed(8)
        ir = torch.randint(0, 256, (H, W), generator=rng, dtype=torch.uint8).numpy()
        vis = torch.randint(0, 256, (H, W), generator=rng, dtype=torch.uint8).numpy()
        fast = fuser.fuse(ir, vis)
        with bench.reference_forwards():
            ref = fuser.fuse(ir, vis)
        # float differences of ~1e-7 may flip a rounding at .5: at most 1 grey level, on few pixels.
        diff = abs(fast.astype(int) - ref.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01


class TestBatchNormFold:
    def test_eval_forward_leaves_state_dict_and_modules_unchanged(self):
        model = _randomise(create_model("mgfusion_fast_noclip"), seed=9).eval()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        names_before = [n for n, _ in model.named_modules()]
        with torch.inference_mode():
            model(*_pair())
        after = model.state_dict()
        assert list(after) == list(before)
        for k, v in before.items():
            assert torch.equal(after[k], v), k
        assert [n for n, _ in model.named_modules()] == names_before
        assert isinstance(model.encoder_ir.stem[0][1], torch.nn.BatchNorm2d)

    def test_fold_follows_a_checkpoint_loaded_later(self):
        a = _randomise(create_model("mgfusion_fast_noclip"), seed=10).eval()
        b = _randomise(create_model("mgfusion_fast_noclip"), seed=11).eval()
        ir, vis = _pair()
        with torch.inference_mode():
            b(ir, vis)  # a forward pass before loading must not leave anything stale behind
            b.load_state_dict(a.state_dict())
            torch.testing.assert_close(b(ir, vis), a(ir, vis), **TOL)

    def test_train_mode_uses_batch_statistics_not_the_fold(self):
        import copy

        enc = _randomise(create_model("mgfusion_fast_noclip"), seed=12).encoder_ir.train()
        plain = copy.deepcopy(enc)  # BN in train mode updates its running statistics: use twins
        x = torch.rand(2, 1, 12, 13) * 5
        torch.testing.assert_close(enc.forward_stem(x), plain.stem(x), **TOL)
        torch.testing.assert_close(enc.stem[0][1].running_mean, plain.stem[0][1].running_mean)
        with torch.no_grad():
            assert not torch.allclose(enc.eval().forward_stem(x), enc.train().forward_stem(x), atol=1e-3)


class TestBlocks:
    @pytest.mark.parametrize("layout", ["nchw", "channels_last"])
    @pytest.mark.parametrize("bias", [False, True])
    def test_mdta_equals_reference(self, layout, bias):
        torch.manual_seed(13)
        m = MDTA(16, 4, bias=bias)
        with torch.no_grad():
            m.temperature.copy_(torch.rand(4, 1, 1) * 3)
        x, r = torch.randn(2, 16, H, W), torch.randn(2, 16, H, W)
        if layout == "channels_last":
            x, r = to_channels_last(x), to_channels_last(r)
        with torch.no_grad():
            torch.testing.assert_close(m(x), bench._ref_mdta(m, x), **TOL)
            torch.testing.assert_close(m(x, residual=r), bench._ref_mdta(m, x, r), **TOL)

    def test_mdta_black_frame_is_finite_with_finite_gradients(self):
        m = MDTA(8, 2)
        x = torch.zeros(1, 8, 9, 10, requires_grad=True)
        out = m(x)
        out.sum().backward()
        assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()
        assert all(torch.isfinite(p.grad).all() for p in m.parameters())
        torch.testing.assert_close(out.detach(), bench._ref_mdta(m, x).detach(), **TOL)

    @pytest.mark.parametrize("layout", ["nchw", "channels_last"])
    def test_gdfn_and_pointwise_conv_add_equal_reference(self, layout):
        torch.manual_seed(14)
        m = GDFN(8, 2.0)
        x, r = torch.randn(2, 8, H, W), torch.randn(2, 8, H, W)
        if layout == "channels_last":
            x, r = to_channels_last(x), to_channels_last(r)
        with torch.no_grad():
            torch.testing.assert_close(m(x, residual=r), bench._ref_gdfn(m, x, r), **TOL)
            h = torch.randn(2, 16, H, W)
            h = to_channels_last(h) if layout == "channels_last" else h
            torch.testing.assert_close(pointwise_conv_add(m.project_out, h, r), r + m.project_out(h), **TOL)

    def test_to_channels_last_one_channel_is_a_view(self):
        x = torch.rand(3, 1, 7, 9)
        y = to_channels_last(x)
        assert y.data_ptr() == x.data_ptr() and torch.equal(x, y)
        assert y.stride() == (63, 1, 9, 1)
        z = to_channels_last(torch.rand(2, 5, 7, 9))
        assert z.is_contiguous(memory_format=torch.channels_last)

    @pytest.mark.parametrize("layout", ["nchw", "channels_last"])
    def test_sobel_magnitude_equals_kornia(self, layout):
        from kornia.filters import sobel

        x = torch.randn(2, 6, H, W) * 3
        if layout == "channels_last":
            x = to_channels_last(x)
        with torch.no_grad():
            torch.testing.assert_close(sobel_magnitude(x), sobel(x), **TOL)
        xg = x.clone().requires_grad_(True)  # the autograd-safe branch, and a black (flat) patch
        xg.data[:, :, :5, :5] = 0
        out = sobel_magnitude(xg)
        out.sum().backward()
        torch.testing.assert_close(out.detach(), sobel(xg.detach()), **TOL)
        assert torch.isfinite(xg.grad).all()


_FAULTS = """
import resource, sys, torch
from fusioncam.memory import tune_cpu_allocator
ok = tune_cpu_allocator() if sys.argv[1] == "tune" else None
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
per_frame = []
for _ in range(10):  # like frames: 64 MB blocks, which glibc maps with mmap and unmaps by default
    f0 = faults()
    x = torch.ones(16 << 20); del x
    per_frame.append(faults() - f0)
print(ok, min(per_frame[5:]), min(per_frame))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_tune_cpu_allocator_stops_page_faults_on_reallocation():
    # Subprocesses: the setting is process-wide and must not leak into the test session.
    def run(mode: str) -> tuple[str, int, int]:
        out = subprocess.run(
            [sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        ok, late, least = out.stdout.split()
        return ok, int(late), int(least)

    ok, tuned_late, _ = run("tune")
    _, _, default_least = run("default")
    assert ok == "True"
    # 64 MB re-allocated: 16k fresh 4 KiB pages every frame by default; once tuned, the heap grows to
    # hold the block during the first frames and then reuses it.
    assert default_least > 8000 and tuned_late < 1000, (tuned_late, default_least)
