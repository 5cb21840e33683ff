"""Every classical fuser of the registry: contract, identity, hot targets; the registry's errors."""

from __future__ import annotations

import numpy as np
import pytest

from fusioncam.errors import FusioncamError
from fusioncam.processing.fusers import Fuser, create_fuser, fuser_info, guided_filter, list_fusers

CLASSICAL = list_fusers(classical_only=True)


def scene(seed: int = 0, size=(96, 72)) -> tuple[np.ndarray, np.ndarray]:
    """IR: dark background with a hot 16x16 target; VIS: textured mid-gray scene without it."""
    w, h = size
    rng = np.random.default_rng(seed)
    ir = np.full((h, w), 30, np.uint8) + rng.integers(0, 8, (h, w), dtype=np.uint8)
    ir[28:44, 40:56] = 240
    yy, xx = np.mgrid[0:h, 0:w]
    vis = (110 + 40 * np.sin(xx / 3.0) * np.cos(yy / 5.0) + rng.normal(0, 5, (h, w))).clip(0, 255)
    return ir, vis.astype(np.uint8)


def test_registry_has_the_required_families():
    assert {"average", "max_detail", "laplacian"} <= set(CLASSICAL)
    assert "mgfusion" in list_fusers() and "mgfusion" not in CLASSICAL
    for name in list_fusers():
        assert fuser_info(name).description.strip()


@pytest.mark.parametrize("name", CLASSICAL)
class TestClassical:
    def test_shape_and_dtype(self, name):
        ir, vis = scene()
        f = create_fuser(name)
        assert isinstance(f, Fuser) and f.name == name
        out = f.fuse(ir, vis)
        assert out.shape == vis.shape and out.dtype == np.uint8

    def test_odd_small_sizes(self, name):
        ir, vis = scene(size=(33, 17))
        assert create_fuser(name).fuse(ir, vis).shape == (17, 33)

    def test_identical_inputs_give_that_input(self, name):
        _, vis = scene(seed=3)
        out = create_fuser(name).fuse(vis, vis.copy())
        assert np.abs(out.astype(int) - vis).max() <= 1

    def test_hot_ir_target_survives(self, name):
        ir, vis = scene()
        out = create_fuser(name).fuse(ir, vis).astype(float)
        inside = out[30:42, 42:54].mean()
        around = np.concatenate([out[10:20, :].ravel(), out[55:65, :].ravel()]).mean()
        # the target keeps at least a third of its IR contrast (210) over the VIS-dominated background
        assert inside - around > 70

    def test_vis_texture_survives(self, name):
        ir, vis = scene()
        out = create_fuser(name).fuse(ir, vis).astype(float)
        region = (slice(5, 20), slice(5, 30))  # no target here
        assert np.corrcoef(out[region].ravel(), vis[region].astype(float).ravel())[0, 1] > 0.8

    def test_deterministic(self, name):
        ir, vis = scene()
        f = create_fuser(name)
        np.testing.assert_array_equal(f.fuse(ir, vis), f.fuse(ir, vis))

    def test_refuses_mismatched_or_colour_inputs(self, name):
        ir, vis = scene()
        with pytest.raises(FusioncamError, match="same size"):
            create_fuser(name).fuse(ir[:-1], vis)
        with pytest.raises(FusioncamError):
            create_fuser(name).fuse(np.dstack([ir] * 3), np.dstack([vis] * 3))


def test_unknown_name_suggests():
    with pytest.raises(FusioncamError, match="did you mean 'laplacian'"):
        create_fuser("laplacain")
    with pytest.raises(FusioncamError, match="unknown fusion method 'zzz'"):
        create_fuser("zzz")


def test_bad_parameters():
    with pytest.raises(FusioncamError):
        create_fuser("average", weight_ir=2)
    with pytest.raises(FusioncamError):
        create_fuser("laplacian", levels=0)


def test_average_weight():
    ir = np.full((4, 4), 200, np.uint8)
    vis = np.full((4, 4), 100, np.uint8)
    assert create_fuser("average", weight_ir=0.25).fuse(ir, vis)[0, 0] == 125


def test_guided_filter_smooths_flat_regions_and_keeps_edges():
    guide = np.zeros((40, 40), np.float32)
    guide[:, 20:] = 1.0
    noisy = guide + np.random.default_rng(0).normal(0, 0.1, guide.shape).astype(np.float32)
    out = guided_filter(guide, noisy, radius=4, eps=1e-2)
    assert out[:, 3:17].std() < 0.5 * noisy[:, 3:17].std()  # noise reduced
    assert out[:, 22:].mean() - out[:, :18].mean() > 0.9  # the step is kept


def test_the_live_app_is_offered_only_fusers_that_do_not_flicker():
    """docs/fusers_video.md: gff and max_detail pick a source per pixel and frame and flicker."""
    from fusioncam.processing.fusers import fuser_info, list_fusers

    live = list_fusers(video_only=True)
    assert "gff" not in live and "max_detail" not in live
    assert {"average", "max", "laplacian", "mgfusion"} <= set(live)
    assert set(list_fusers()) - set(live) == {"gff", "max_detail"}
    assert all(fuser_info(n).flickers for n in ("gff", "max_detail"))
