"""Rig YAML, the numpy and torch warps (which must agree), and homography rescaling."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import yaml

from fusioncam.errors import FusioncamError
from fusioncam.processing.registration import Rig, scale_homography, warp_ir_to_vis, warp_ir_to_vis_torch

H = np.array([[1.05, 0.03, 4.0], [-0.02, 0.98, -3.0], [1e-4, -5e-5, 1.0]])


@pytest.fixture
def rig() -> Rig:
    return Rig(H, (160, 120), (150, 110), method="points", report={"rms": np.float64(0.4), "n": 12})


def smooth_image(seed: int = 0, size=(160, 120)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 256, (size[1], size[0])).astype(np.uint8), (0, 0), 2)
    return cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX)


def ramp(size=(160, 120)) -> np.ndarray:
    """A linear image: bilinear interpolation is exact on it, so warps can be compared exactly."""
    w, h = size
    return (1.5 * np.arange(w, dtype=np.float32)[None, :] + np.arange(h, dtype=np.float32)[:, None]).astype(
        np.float32
    )


class TestRigYaml:
    def test_round_trip(self, tmp_path, rig):
        path = tmp_path / "rig.yaml"
        rig.save(path)
        text = path.read_text()
        assert "!!" not in text and "opencv" not in text.lower()  # plain lists, no tags
        d = yaml.safe_load(text)
        assert d["direction"].startswith("ir_to_vis") and d["ir_size"] == [160, 120]
        back = Rig.load(path)
        np.testing.assert_allclose(back.vis_H_ir, rig.vis_H_ir)
        assert back.ir_size == (160, 120) and back.vis_size == (150, 110)
        assert back.method == "points" and back.report == {"rms": 0.4, "n": 12}
        assert list(tmp_path.iterdir()) == [path]  # no temporary file left

    def test_normalises_h(self):
        r = Rig(2 * H, (10, 10), (10, 10))
        assert r.vis_H_ir[2, 2] == 1.0
        np.testing.assert_allclose(r.vis_H_ir, H)

    @pytest.mark.parametrize(
        "text, match",
        [
            ("", "expected a mapping"),
            ("- 1\n- 2\n", "expected a mapping"),
            ("vis_H_ir: [[1,0,0],[0,1,0],[0,0,1]]\nir_size: [4, 4]\n", "missing key"),
            ("vis_H_ir: [[1,0],[0,1]]\nir_size: [4, 4]\nvis_size: [4, 4]\n", "3x3"),
            ("vis_H_ir: [[1,0,0],[0,1,0],[0,0]]\nir_size: [4, 4]\nvis_size: [4, 4]\n", "vis_H_ir"),
            ("vis_H_ir: [[a,0,0],[0,1,0],[0,0,1]]\nir_size: [4, 4]\nvis_size: [4, 4]\n", "vis_H_ir"),
            ("vis_H_ir: [[0,0,0],[0,0,0],[0,0,1]]\nir_size: [4, 4]\nvis_size: [4, 4]\n", "singular"),
            (
                "vis_H_ir: [[.nan,0,0],[0,1,0],[0,0,1]]\nir_size: [4, 4]\nvis_size: [4, 4]\n",
                "NaN or infinite",
            ),
            # the horizon x = 2 crosses the 4x4 IR frame: the warp would fold the image over
            ("vis_H_ir: [[1,0,0],[0,1,0],[-0.5,0,1]]\nir_size: [4, 4]\nvis_size: [4, 4]\n", "to infinity"),
            # no horizon inside, but one side of a 640 px frame squeezed ~65x: a sliver
            (
                "vis_H_ir: [[1,0,0],[0,1,0],[0.1,0,1]]\nir_size: [640, 480]\nvis_size: [640, 480]\n",
                "perspective",
            ),
            ("vis_H_ir: [[1,0,0],[0,1,0],[0,0,1]]\nir_size: big\nvis_size: [4, 4]\n", "ir_size"),
            ("vis_H_ir: [[1,0,0],[0,1,0],[0,0,1]]\nir_size: [4, 4]\nvis_size: [0, 4]\n", "vis_size"),
            (
                "vis_H_ir: [[1,0,0],[0,1,0],[0,0,1]]\nir_size: [4, 4]\nvis_size: [4, 4]\nreport: [1, 2]\n",
                "report",
            ),
            (
                "vis_H_ir: [[1,0,0],[0,1,0],[0,0,1]]\nir_size: [4, 4]\nvis_size: [4, 4]\ncameras: 5\n",
                "cameras",
            ),
            ("vis_H_ir: [[1,0,0]\n  bad: : yaml", "not valid YAML"),
            (
                "vis_H_ir: [[1,0,0],[0,1,0],[0,0,1]]\nir_size: [4,4]\nvis_size: [4,4]\nformat_version: 99\n",
                "format_version 99 is not one this fusioncam reads",
            ),
        ],
    )
    def test_malformed_files_give_one_clear_error(self, tmp_path, text, match):
        path = tmp_path / "rig.yaml"
        path.write_text(text)
        with pytest.raises(FusioncamError, match=match) as e:
            Rig.load(path)
        assert "\n" not in str(e.value) and str(path) in str(e.value)

    def test_missing_and_binary_files(self, tmp_path):
        with pytest.raises(FusioncamError, match="not found"):
            Rig.load(tmp_path / "none.yaml")
        bad = tmp_path / "b.yaml"
        bad.write_bytes(b"\xff\xfe\x00\x81")
        with pytest.raises(FusioncamError, match="b.yaml"):
            Rig.load(bad)
        with pytest.raises(FusioncamError):
            Rig.load(tmp_path)  # a directory

    def test_load_expands_home(self, tmp_path, rig, monkeypatch):
        monkeypatch.setenv("HOME", str(tmp_path))
        rig.save(tmp_path / "rig.yaml")
        np.testing.assert_allclose(Rig.load("~/rig.yaml").vis_H_ir, rig.vis_H_ir)

    def test_save_into_missing_folder(self, tmp_path, rig):
        with pytest.raises(FusioncamError, match="cannot write"):
            rig.save(tmp_path / "no" / "rig.yaml")


class TestIdentity:
    def test_none_and_identity_rig_pass_through(self):
        img = smooth_image()
        assert warp_ir_to_vis(img, None) is img
        assert warp_ir_to_vis(img, Rig.identity((160, 120))) is img
        assert Rig.identity((160, 120)).is_identity

    def test_identity_rig_resizes_to_other_vis_size(self):
        img = ramp((160, 120))
        out = warp_ir_to_vis(img, Rig.identity((160, 120)), vis_size=(80, 60))
        assert out.shape == (60, 80)


class TestWarp:
    def test_known_point_lands_where_h_says(self, rig):
        img = np.zeros((120, 160), np.uint8)
        cv2.circle(img, (60, 50), 3, 255, -1)
        out = warp_ir_to_vis(img, rig)
        assert out.shape == (110, 150)
        m = cv2.moments(out.astype(np.float32))
        c = np.array([m["m10"] / m["m00"], m["m01"] / m["m00"]])
        p = rig.vis_H_ir @ np.array([60, 50, 1.0])
        np.testing.assert_allclose(c, p[:2] / p[2], atol=0.15)

    def test_cv2_and_kornia_agree_within_one_gray_level(self, rig):
        torch = pytest.importorskip("torch")
        img = smooth_image()
        a = warp_ir_to_vis(img, rig)
        t = torch.from_numpy(img).float()[None, None]
        b = warp_ir_to_vis_torch(t, rig)
        assert tuple(b.shape) == (1, 1, 110, 150)
        assert np.abs(a.astype(np.float64) - b[0, 0].numpy()).max() <= 1.0

    def test_torch_batch_and_identity(self, rig):
        torch = pytest.importorskip("torch")
        t = torch.rand(2, 1, 120, 160)
        assert warp_ir_to_vis_torch(t, None) is t
        out = warp_ir_to_vis_torch(t, rig)
        assert tuple(out.shape) == (2, 1, 110, 150)
        torch.testing.assert_close(out[1:], warp_ir_to_vis_torch(t[1:], rig))


class TestScaleHomography:
    def test_unchanged_sizes_is_identity_map(self):
        np.testing.assert_allclose(scale_homography(H, (160, 120), (150, 110), (160, 120), (150, 110)), H)

    def test_warp_at_half_resolution_matches_downscaled_warp(self, rig):
        """Warping half-size frames with the rescaled H equals warping full size and then resizing."""
        img = ramp()
        full = cv2.resize(
            cv2.warpPerspective(img, rig.vis_H_ir, (150, 110)), (75, 55), interpolation=cv2.INTER_AREA
        )
        small = cv2.resize(img, (80, 60), interpolation=cv2.INTER_AREA)
        out = warp_ir_to_vis(small, rig, vis_size=(75, 55))
        assert np.abs(out - full)[4:-4, 4:-4].max() < 0.01

    def test_round_trip(self):
        h2 = scale_homography(H, (160, 120), (150, 110), (320, 240), (75, 55))
        back = scale_homography(h2, (320, 240), (75, 55), (160, 120), (150, 110))
        np.testing.assert_allclose(back / back[2, 2], H, atol=1e-9)
