"""Colour split/merge around the fusers, and the smoothed 16-bit thermal mapping."""

from __future__ import annotations

import numpy as np
import pytest

from fusioncam.errors import FusioncamError
from fusioncam.processing.color import (
    Thermal16Mapper,
    fuse_color,
    is_color,
    merge_luma,
    split_luma,
    to_bgr,
    to_gray,
)
from fusioncam.processing.fusers import create_fuser


@pytest.fixture
def bgr() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8)


class TestGray:
    def test_gray_passes_through_uncopied(self):
        g = np.arange(12, dtype=np.uint8).reshape(3, 4)
        assert to_gray(g) is g

    def test_bgr_uses_bt601_weights(self):
        img = np.zeros((2, 2, 3), np.uint8)
        img[..., 2] = 200  # pure red in BGR
        assert to_gray(img)[0, 0] == round(0.299 * 200)

    def test_equal_channels_become_that_gray(self):
        g = np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)
        three = np.dstack([g, g, g])
        np.testing.assert_array_equal(to_gray(three), g)

    def test_single_channel_and_bgra(self):
        g = np.full((4, 5, 1), 7, np.uint8)
        assert to_gray(g).shape == (4, 5)
        bgra = np.full((4, 5, 4), 9, np.uint8)
        assert to_gray(bgra).shape == (4, 5) and to_gray(bgra)[0, 0] == 9

    def test_rejects_16_bit(self):
        with pytest.raises(FusioncamError, match="8-bit"):
            to_gray(np.zeros((4, 4), np.uint16))

    def test_to_bgr(self):
        g = np.full((3, 3), 5, np.uint8)
        assert to_bgr(g).shape == (3, 3, 3)
        assert is_color(to_bgr(g)) and not is_color(g)


class TestSplitMerge:
    def test_gray_has_no_chroma(self):
        g = np.full((4, 4), 100, np.uint8)
        y, c = split_luma(g)
        assert c is None and y is g
        assert merge_luma(y, c) is y

    def test_colour_round_trip_within_rounding(self, bgr):
        y, c = split_luma(bgr)
        assert y.shape == bgr.shape[:2] and c.shape == (*bgr.shape[:2], 3)
        back = merge_luma(y, c)
        assert np.abs(back.astype(int) - bgr).max() <= 3

    def test_luma_replaced_changes_brightness_keeps_hue(self, bgr):
        y, c = split_luma(bgr)
        brighter = merge_luma(np.clip(y.astype(int) + 40, 0, 255).astype(np.uint8), c)
        assert to_gray(brighter).mean() > to_gray(bgr).mean() + 30

    def test_merge_leaves_the_split_buffer_unless_reused(self, bgr):
        y, c = split_luma(bgr)
        before = c.copy()
        merge_luma(np.zeros_like(y), c)
        assert np.array_equal(c, before)
        merge_luma(np.zeros_like(y), c, reuse=True)
        assert (c[..., 0] == 0).all() and np.array_equal(c[..., 1:], before[..., 1:])

    def test_mismatched_chroma_is_a_clear_error(self, bgr):
        y, c = split_luma(bgr)
        with pytest.raises(FusioncamError, match="do not match"):
            merge_luma(y[:-1], c)


class _Const:
    """A fake fuser returning a constant, to see where the fused Y ends up."""

    name = "const"

    def __init__(self, v):
        self.v = v

    def fuse(self, ir, vis):
        assert ir.ndim == 2 and vis.ndim == 2 and ir.shape == vis.shape
        return np.full_like(vis, self.v)


class TestFuseColor:
    def test_gray_in_gray_out(self):
        ir = np.full((8, 8), 200, np.uint8)
        vis = np.full((8, 8), 50, np.uint8)
        out = fuse_color(create_fuser("average"), ir, vis)
        assert out.shape == (8, 8) and out[0, 0] == 125

    def test_colour_vis_gives_colour_with_vis_chroma(self):
        # moderately saturated colours, so Y = 120 stays in gamut
        bgr = np.random.default_rng(2).integers(90, 170, size=(24, 32, 3), dtype=np.uint8)
        ir = np.full(bgr.shape[:2], 128, np.uint8)
        out = fuse_color(_Const(120), ir, bgr)
        assert out.shape == bgr.shape
        y, c = split_luma(out)
        _, c_vis = split_luma(bgr)
        assert np.abs(y.astype(int) - 120).max() <= 2
        assert np.abs(c[..., 1:].astype(int) - c_vis[..., 1:]).max() <= 2

    def test_three_channel_ir_is_gray(self, bgr):
        g = np.full(bgr.shape[:2], 77, np.uint8)
        seen = {}

        class Spy:
            name = "spy"

            def fuse(self, ir, vis):
                seen["ir"] = ir
                return vis

        fuse_color(Spy(), np.dstack([g, g, g]), bgr)
        assert seen["ir"].ndim == 2 and (seen["ir"] == 77).all()

    def test_size_mismatch_is_a_clear_error(self):
        with pytest.raises(FusioncamError, match="differ in size"):
            fuse_color(create_fuser("average"), np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))


class TestThermal16Mapper:
    def test_percentile_stretch_first_frame(self):
        raw = np.linspace(30000, 31000, 10000).astype(np.uint16).reshape(100, 100)
        m = Thermal16Mapper(low=1, high=99)
        out = m(raw)
        assert out.dtype == np.uint8 and out.shape == raw.shape
        lo, hi = m.bounds
        assert 30005 <= lo <= 30015 and 30985 <= hi <= 30995
        assert out.min() == 0 and out.max() == 255
        assert abs(int(out[50, 50]) - 128) <= 3  # the middle count maps to mid-gray

    def test_hot_object_does_not_flicker(self):
        """A hot object appearing moves the bounds slowly (EMA), not in one frame."""
        base = np.random.default_rng(0).integers(30000, 30400, (64, 64)).astype(np.uint16)
        hot = base.copy()
        hot[:16, :16] = 31000
        m = Thermal16Mapper(alpha=0.1)
        first = m(base)
        b0 = m.bounds
        second = m(hot)
        measured = m.measure(hot)
        expected = tuple(a + 0.1 * (b - a) for a, b in zip(b0, measured, strict=True))
        assert m.bounds == pytest.approx(expected)
        follow = Thermal16Mapper(alpha=1.0)
        follow(base)
        jumped = follow(hot)
        # background rendering changes 10x less than with per-frame bounds the frame the object appears
        smooth_change = np.abs(second[32:, 32:].astype(int) - first[32:, 32:]).mean()
        jump_change = np.abs(jumped[32:, 32:].astype(int) - first[32:, 32:]).mean()
        assert jump_change > 40
        assert smooth_change < 0.3 * jump_change

    def test_bounds_converge_to_new_scene(self):
        m = Thermal16Mapper(alpha=0.3)
        a = np.full((10, 10), 1000, np.uint16)
        a[0] = 2000
        m(a)
        b = a + 5000
        for _ in range(40):
            m(b)
        lo, hi = m.bounds
        assert abs(lo - 6000) < 5 and abs(hi - 7000) < 5
        m.reset()
        m(a)
        assert m.bounds == (1000.0, 2000.0)

    def test_fixed_range(self):
        m = Thermal16Mapper(fixed_range=(1000, 2020))
        raw = np.array([[0, 1000, 1510, 2020, 65535]], np.uint16)
        np.testing.assert_array_equal(m(raw), [[0, 0, 128, 255, 255]])

    def test_uniform_scene_not_stretched_into_noise(self):
        raw = np.full((20, 20), 30000, np.uint16)
        raw[::2] += 2  # 2 counts of noise
        out = Thermal16Mapper(min_span=64)(raw)
        assert int(out.max()) - int(out.min()) <= 10

    def test_u8_passes_and_bad_args(self):
        g = np.zeros((2, 2), np.uint8)
        assert Thermal16Mapper()(g) is g
        with pytest.raises(FusioncamError):
            Thermal16Mapper(low=50, high=10)
        with pytest.raises(FusioncamError):
            Thermal16Mapper(alpha=0)
        with pytest.raises(FusioncamError):
            Thermal16Mapper(fixed_range=(5, 5))
        with pytest.raises(FusioncamError):
            Thermal16Mapper()(np.zeros((2, 2), np.float32))
