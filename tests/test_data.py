"""fusioncam.models.data: luminance decoding, augmentation, determinism and the CLIP feature cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fusioncam.errors import FusioncamError
from fusioncam.models.data import ClipFeatureCache, FusionPairDataset, load_luminance, to_luminance_u8


def _write(path, array):
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def synthetic_pair(tmp_path):
    """An asymmetric test pattern saved as the same RGB image for IR and VIS (so crops must match)."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(70, 90, 3), dtype=np.uint8)
    return _write(tmp_path / "ir.png", img), _write(tmp_path / "vis.png", img), img


class TestLuminance:
    def test_bt601_known_answer(self):
        rgb = torch.tensor([[[255]], [[0]], [[0]]], dtype=torch.uint8)  # pure red
        assert int(to_luminance_u8(rgb)) == round(0.299 * 255)
        rgb = torch.tensor([[[10]], [[200]], [[40]]], dtype=torch.uint8)
        assert int(to_luminance_u8(rgb)) == round(0.299 * 10 + 0.587 * 200 + 0.114 * 40)

    def test_equal_channels_give_the_channel(self):
        g = torch.randint(0, 256, (1, 5, 7), dtype=torch.uint8)
        assert torch.equal(to_luminance_u8(g.repeat(3, 1, 1)), g)
        assert torch.equal(to_luminance_u8(g), g)

    def test_matches_opencv_ycrcb(self, synthetic_pair):
        import cv2

        _, vis_path, img = synthetic_pair
        ours = load_luminance(vis_path)[0].numpy()
        ref = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb)[..., 0]
        assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1

    def test_16bit_png_scales_to_8bit(self, tmp_path):
        a = np.array([[0, 65535, 257 * 100]], np.uint16)
        y = load_luminance(_write(tmp_path / "t16.png", a))
        assert y.dtype == torch.uint8 and y.flatten().tolist() == [0, 255, 100]

    def test_missing_and_corrupt_files(self, tmp_path):
        with pytest.raises(FusioncamError, match="not found"):
            load_luminance(tmp_path / "nope.png")
        bad = tmp_path / "bad.png"
        bad.write_bytes(b"not an image")
        with pytest.raises(FusioncamError, match="cannot decode"):
            load_luminance(bad)

    def test_real_pairs(self, data_dir):
        from fusioncam.evaluation.dataset import load_split

        for ds, pairs in load_split("train", data_dir, ["roadscene", "llvip"]).items():
            ir, vis = load_luminance(pairs[0].ir), load_luminance(pairs[0].vis)
            assert ir.dtype == torch.uint8 and ir.shape[0] == 1, ds
            assert ir.shape == vis.shape, ds


class TestDataset:
    def test_shapes_and_range(self, synthetic_pair):
        ir, vis, _ = synthetic_pair
        ds = FusionPairDataset([(ir, vis)], crop=32, seed=1)
        s = ds[0]
        assert s["ir"].shape == (1, 32, 32) and s["vis"].shape == (1, 32, 32)
        assert s["ir"].dtype == torch.float32 and 0 <= s["ir"].min() and s["ir"].max() <= 1

    def test_ir_and_vis_get_the_same_transform(self, synthetic_pair):
        ir, vis, _ = synthetic_pair
        ds = FusionPairDataset([(ir, vis)], crop=32, seed=3)
        for epoch in range(6):
            ds.set_epoch(epoch)
            s = ds[0]
            assert torch.equal(s["ir"], s["vis"])

    def test_deterministic_with_seed_and_varies_by_epoch(self, synthetic_pair):
        ir, vis, _ = synthetic_pair
        a = FusionPairDataset([(ir, vis)], crop=32, seed=5)
        b = FusionPairDataset([(ir, vis)], crop=32, seed=5)
        c = FusionPairDataset([(ir, vis)], crop=32, seed=6)
        assert torch.equal(a[0]["ir"], b[0]["ir"])
        draws = []
        for epoch in range(4):
            a.set_epoch(epoch)
            draws.append(a[0]["ir"])
        assert any(not torch.equal(draws[0], d) for d in draws[1:])
        assert not torch.equal(b[0]["ir"], c[0]["ir"])

    def test_crop_is_a_window_of_the_source(self, synthetic_pair):
        """Flip/rotation are lossless: the crop's pixels are a transformed window of the image."""
        ir, vis, img = synthetic_pair
        y = load_luminance(ir)[0].float() / 255
        ds = FusionPairDataset([(ir, vis)], crop=16, seed=0)
        crop = ds[0]["ir"][0]
        found = False
        for k in range(4):
            for flip in (False, True):
                # undo the rotation, then the flip
                c = torch.rot90(crop, -k, dims=(0, 1))
                c = c.flip(-1) if flip else c
                win = y.unfold(0, 16, 1).unfold(1, 16, 1)  # (H-15) x (W-15) x 16 x 16
                found |= bool((win == c).all(-1).all(-1).any())
        assert found

    def test_small_images_are_upscaled_to_the_crop(self, tmp_path):
        img = np.full((20, 30), 128, np.uint8)
        ir, vis = _write(tmp_path / "a.png", img), _write(tmp_path / "b.png", img)
        ds = FusionPairDataset([(ir, vis)], crop=48)
        assert ds.images[0][0].shape == (1, 48, 72)
        assert ds[0]["ir"].shape == (1, 48, 48)

    def test_no_augment_gives_whole_image(self, synthetic_pair):
        ir, vis, _ = synthetic_pair
        ds = FusionPairDataset([(ir, vis)], crop=None, augment=False)
        assert ds[0]["ir"].shape == (1, 70, 90)

    def test_errors(self, tmp_path, synthetic_pair):
        ir, _, _ = synthetic_pair
        small = _write(tmp_path / "small.png", np.zeros((10, 10), np.uint8))
        with pytest.raises(FusioncamError, match="sizes differ"):
            FusionPairDataset([(ir, small)], crop=8)
        with pytest.raises(FusioncamError, match="no image pairs"):
            FusionPairDataset([], crop=8)


class TestClipFeatureCache:
    def test_computed_once_per_pair_and_reused_from_disk(self, synthetic_pair, tmp_path):
        ir, vis, img = synthetic_pair
        ir2, vis2 = _write(tmp_path / "ir2.png", img[::-1]), _write(tmp_path / "vis2.png", img[::-1])
        ds = FusionPairDataset([(ir, vis), (ir2, vis2)], crop=32)
        calls = []

        def encode(a, b):
            calls.append(a.shape)
            return (a.mean().reshape(1, 1), b.mean().reshape(1, 1) + 1)

        cache = ClipFeatureCache(ds, encode, key="tiny", cache_dir=tmp_path / "clip")
        f = cache.batch([0, 1, 0], "cpu")
        assert len(calls) == 2  # once per pair, and on the whole image
        assert calls[0] == (1, 1, 70, 90)
        assert f[0].shape == (3, 1) and torch.allclose(f[1], f[0] + 1)
        assert torch.equal(f[0][0], f[0][2])
        again = ClipFeatureCache(ds, encode, key="tiny", cache_dir=tmp_path / "clip")
        assert torch.equal(again.batch([1], "cpu")[0], f[0][1:2])
        assert len(calls) == 2  # read back from disk
        other = ClipFeatureCache(ds, encode, key="other-model", cache_dir=tmp_path / "clip")
        other.get(0)
        assert len(calls) == 3  # keyed by model
