"""The six fusion metrics: hand-checkable cases, directions, input checks, and real pairs against an
independent MATLAB-literal implementation written differently (2-D kernels with scipy.signal, FFT
convolution, fftshift + freqspace, block loops, per-pixel loops on a crop)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from scipy import signal

from fusioncam.errors import FusioncamError
from fusioncam.evaluation import metrics as M
from fusioncam.processing.fusers import create_fuser

TG, TA = 0.9994, 0.9879
# Q_AB/F of F == IR == VIS on whole gray levels: strength term Tg (reference quirk), orientation term
# Ta / (1 + exp(-22 (1 - 0.8))).
QABF_IDENTICAL = TG * TA / (1.0 + math.exp(-4.4))


def _textured(h: int = 64, w: int = 80, seed: int = 0) -> np.ndarray:
    """A smooth random texture in whole gray levels (float64)."""
    rng = np.random.default_rng(seed)
    x = cv2.GaussianBlur(rng.uniform(0, 255, (h, w)), (0, 0), 2.0)
    x = (x - x.min()) / (x.max() - x.min()) * 230 + 10
    return np.round(x)


# ------------------------------------------------------------------------ independent implementation


def _im(a):
    return np.asarray(a, dtype=np.float64)


def ref_conv2_same(x, h):
    return signal.convolve2d(x, h, mode="same", boundary="fill", fillvalue=0)


def ref_filter2(h, x, shape):
    """MATLAB filter2 = correlation = convolution with the kernel rotated by 180 degrees."""
    if shape == "valid":
        if x.shape[0] < h.shape[0] or x.shape[1] < h.shape[1]:
            return np.zeros((max(0, x.shape[0] - h.shape[0] + 1), max(0, x.shape[1] - h.shape[1] + 1)))
        return signal.fftconvolve(x, np.rot90(h, 2), mode="valid")
    return signal.convolve2d(x, np.rot90(h, 2), mode=shape, boundary="fill", fillvalue=0)


def ref_fspecial_gaussian(n, sigma):
    half = (n - 1) / 2
    y, x = np.meshgrid(np.arange(-half, half + 1), np.arange(-half, half + 1), indexing="ij")
    h = np.exp(-(x**2 + y**2) / (2 * sigma**2))
    h[h < np.finfo(float).eps * h.max()] = 0
    return h / h.sum()


def ref_qabf(a, b, f):
    pa, pb, pf = 255 * _im(a), 255 * _im(b), 255 * _im(f)  # 255*im2double(double)
    h1 = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], float)
    h3 = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float)

    def edges(p):
        sx, sy = ref_conv2_same(p, h3), ref_conv2_same(p, h1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ang = np.arctan(sy / sx)
        ang[sx == 0] = np.pi / 2
        return np.hypot(sx, sy), ang

    (ga, aa), (gb, ab), (gf, af) = edges(pa), edges(pb), edges(pf)

    def q(gs, as_):
        rel = np.empty_like(gs)
        gt = gs > gf
        eq = gs == gf
        lt = ~gt & ~eq
        rel[gt] = gf[gt] / gs[gt]
        rel[eq] = gf[eq]
        rel[lt] = gs[lt] / gf[lt]
        orient = 1 - np.abs(as_ - af) / (np.pi / 2)
        return (TG / (1 + np.exp(-15 * (rel - 0.5)))) * (TA / (1 + np.exp(-22 * (orient - 0.8))))

    return np.sum(q(ga, aa) * ga + q(gb, ab) * gb) / np.sum(ga + gb)


def ref_qabf_loops(a, b, f):
    """Per-pixel port of the reference loops (slow: use on small crops only)."""
    pa, pb, pf = 255 * _im(a), 255 * _im(b), 255 * _im(f)
    h1 = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], float)
    h3 = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float)
    S = {k: (ref_conv2_same(p, h3), ref_conv2_same(p, h1)) for k, p in (("a", pa), ("b", pb), ("f", pf))}
    m, n = pa.shape
    nume = deno = 0.0
    for i in range(m):
        for j in range(n):
            vals = {}
            for k, (sx, sy) in S.items():
                g = math.sqrt(sx[i, j] ** 2 + sy[i, j] ** 2)
                ang = math.pi / 2 if sx[i, j] == 0 else math.atan(sy[i, j] / sx[i, j])
                vals[k] = (g, ang)
            gf, af = vals["f"]
            for k in ("a", "b"):
                gs, as_ = vals[k]
                if gs > gf:
                    rel = gf / gs
                elif gs == gf:
                    rel = gf
                else:
                    rel = gs / gf
                orient = 1 - abs(as_ - af) / (math.pi / 2)
                qq = TG / (1 + math.exp(-15 * (rel - 0.5))) * TA / (1 + math.exp(-22 * (orient - 0.8)))
                nume += qq * gs
                deno += gs
    return nume / deno


def ref_qcv(a, b, f):
    def matlab_round(x):
        return np.trunc(x + np.copysign(0.5, x))

    def normalize1(d):
        hi, lo = d.max(), d.min()
        if hi == 0 and lo == 0:
            return d
        return matlab_round((d - lo) / (hi - lo) * 255)

    im1, im2, fu = normalize1(_im(b)), normalize1(_im(a)), normalize1(_im(f))  # VIFB: im1 = VIS
    flt1 = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float)
    flt2 = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], float)
    g1 = np.sqrt(ref_filter2(flt1, im1, "same") ** 2 + ref_filter2(flt2, im1, "same") ** 2)
    g2 = np.sqrt(ref_filter2(flt1, im2, "same") ** 2 + ref_filter2(flt2, im2, "same") ** 2)
    hang, lie = im1.shape

    def blkproc(x, fun, ws=16):
        hb, wb = -(-hang // ws), -(-lie // ws)
        pad = np.zeros((hb * ws, wb * ws), dtype=x.dtype)
        pad[:hang, :lie] = x
        return np.array(
            [[fun(pad[i * ws : (i + 1) * ws, j * ws : (j + 1) * ws]) for j in range(wb)] for i in range(hb)]
        )

    r1 = blkproc(g1, lambda x: np.sum(x**5))
    r2 = blkproc(g2, lambda x: np.sum(x**5))

    def freqspace(n):
        return (np.arange(n) - (n // 2 if n % 2 == 0 else (n - 1) / 2)) * 2 / n

    u, v = np.meshgrid(freqspace(lie), freqspace(hang))
    u, v = lie / 8 * u, hang / 8 * v
    r = np.sqrt(u**2 + v**2)
    theta = 2.6 * (0.0192 + 0.144 * r) * np.exp(-((0.144 * r) ** 1.1))
    df1 = np.fft.ifft2(np.fft.ifftshift(np.fft.fftshift(np.fft.fft2(im1 - fu)) * theta))
    df2 = np.fft.ifft2(np.fft.ifftshift(np.fft.fftshift(np.fft.fft2(im2 - fu)) * theta))
    assert np.abs(df1.imag).max() < 1e-6 * max(1.0, np.abs(df1.real).max())
    d1 = blkproc(df1.real, lambda x: np.mean(x**2))
    d2 = blkproc(df2.real, lambda x: np.mean(x**2))
    return np.sum(r1 * d1 + r2 * d2) / np.sum(r1 + r2)


def ref_ssim1(x, y):
    w = ref_fspecial_gaussian(11, 1.5)
    x, y = _im(x), _im(y)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ua, ub = ref_filter2(w, x, "valid"), ref_filter2(w, y, "valid")
    sa = ref_filter2(w, x * x, "valid") - ua * ua
    sb = ref_filter2(w, y * y, "valid") - ub * ub
    sab = ref_filter2(w, x * y, "valid") - ua * ub
    return np.mean(((2 * ua * ub + c1) * (2 * sab + c2)) / ((ua**2 + ub**2 + c1) * (sa + sb + c2)))


def ref_ag(f):
    f = _im(f)
    dx = np.empty_like(f)
    dy = np.empty_like(f)
    dx[:, 1:-1] = (f[:, 2:] - f[:, :-2]) / 2
    dx[:, 0], dx[:, -1] = f[:, 1] - f[:, 0], f[:, -1] - f[:, -2]
    dy[1:-1] = (f[2:] - f[:-2]) / 2
    dy[0], dy[-1] = f[1] - f[0], f[-1] - f[-2]
    r, c = f.shape
    return np.sum(np.sqrt((dx**2 + dy**2) / 2)) / ((r - 1) * (c - 1))


def ref_vifp(ref, dist):
    ref, dist = _im(ref), _im(dist)
    num = den = 0.0
    for scale in (1, 2, 3, 4):
        n = 2 ** (5 - scale) + 1
        win = ref_fspecial_gaussian(n, n / 5)
        if scale > 1:
            ref = ref_filter2(win, ref, "valid")[0::2, 0::2]
            dist = ref_filter2(win, dist, "valid")[0::2, 0::2]
        mu1, mu2 = ref_filter2(win, ref, "valid"), ref_filter2(win, dist, "valid")
        s1 = ref_filter2(win, ref * ref, "valid") - mu1 * mu1
        s2 = ref_filter2(win, dist * dist, "valid") - mu2 * mu2
        s12 = ref_filter2(win, ref * dist, "valid") - mu1 * mu2
        s1[s1 < 0] = 0
        s2[s2 < 0] = 0
        g = s12 / (s1 + 1e-10)
        sv = s2 - g * s12
        g[s1 < 1e-10] = 0
        sv[s1 < 1e-10] = s2[s1 < 1e-10]
        s1[s1 < 1e-10] = 0
        g[s2 < 1e-10] = 0
        sv[s2 < 1e-10] = 0
        sv[g < 0] = s2[g < 0]
        g[g < 0] = 0
        sv[sv <= 1e-10] = 1e-10
        num += np.sum(np.log10(1 + g**2 * s1 / (sv + 2)))
        den += np.sum(np.log10(1 + s1 / 2))
    return num / den


def ref_scd(a, b, f):
    a, b, f = _im(a), _im(b), _im(f)
    return np.corrcoef((f - b).ravel(), a.ravel())[0, 1] + np.corrcoef((f - a).ravel(), b.ravel())[0, 1]


def ref_all(ir, vis, fused):
    return {
        "Qabf": ref_qabf(ir, vis, fused),
        "Qcv": ref_qcv(ir, vis, fused),
        "SSIM": ref_ssim1(vis, fused) + ref_ssim1(ir, fused),
        "AG": ref_ag(fused),
        "VIF": ref_vifp(ir, fused) + ref_vifp(vis, fused),
        "SCD": ref_scd(ir, vis, fused),
    }


# ------------------------------------------------------------------------------------ hand-checkable


class TestIdentical:
    """F == IR == VIS: each metric's value follows from its definition."""

    def setup_method(self):
        self.a = _textured()

    def test_ssim_is_two(self):
        assert M.ssim(self.a, self.a, self.a) == pytest.approx(2.0, abs=1e-12)

    def test_qabf_is_tg_ta_sigmoid(self):
        # Not 1: the sigmoids top out below 1 (strength Tg, orientation Ta/(1+e^-4.4)).
        assert M.qabf(self.a, self.a, self.a) == pytest.approx(QABF_IDENTICAL, rel=1e-12)
        assert QABF_IDENTICAL == pytest.approx(0.975333, abs=1e-6)

    def test_vif_is_two(self):
        assert M.vif(self.a, self.a, self.a) == pytest.approx(2.0, rel=1e-8)

    def test_qcv_is_zero(self):
        assert M.qcv(self.a, self.a, self.a) == 0.0

    def test_scd_is_zero_by_convention(self):
        # F - VIS == 0 has no variance: corr2 is 0 here (MATLAB: NaN).
        assert M.scd(self.a, self.a, self.a) == 0.0

    def test_compute_metrics_keys_and_values(self):
        m = M.compute_metrics(self.a, self.a, self.a)
        assert tuple(m) == M.METRIC_NAMES
        assert m["SSIM"] == pytest.approx(2.0) and m["Qcv"] == 0.0 and m["SCD"] == 0.0


class TestShiftedCopy:
    """F is the common source plus a constant, or moved by one pixel."""

    def setup_method(self):
        self.a = _textured(seed=1)

    def test_brightness_offset(self):
        f = self.a + 10.0
        # Same gradients inside; only the zero-padded border (an edge, as in the reference) differs.
        assert 0.95 < M.qabf(self.a, self.a, f) < QABF_IDENTICAL
        assert M.average_gradient(f) == pytest.approx(M.average_gradient(self.a), rel=1e-12)
        assert M.qcv(self.a, self.a, f) == 0.0  # min-max normalisation removes the offset
        assert M.vif(self.a, self.a, f) == pytest.approx(2.0, rel=1e-8)  # VIF ignores the mean
        assert M.scd(self.a, self.a, f) == 0.0  # F - VIS is constant
        s = M.ssim(self.a, self.a, f)
        assert 1.9 < s < 2.0  # only the luminance term drops

    def test_spatial_shift_scores_lower(self):
        f = np.roll(self.a, 2, axis=1)
        assert M.ssim(self.a, self.a, f) < 1.9
        assert M.qabf(self.a, self.a, f) < QABF_IDENTICAL - 0.05
        assert M.qcv(self.a, self.a, f) > 1.0
        assert M.vif(self.a, self.a, f) < 1.8


class TestSCD:
    def setup_method(self):
        # Zero-mean, uncorrelated patterns of equal variance: IR varies along rows, VIS along columns.
        rows = np.tile([1.0, -1.0], 20)[:, None] * np.ones((1, 30))
        cols = np.ones((40, 1)) * np.tile([1.0, -1.0, 1.0, -1.0, 0.0, 0.0], 5)[None, :]
        self.ir = 100 + 30 * rows
        self.vis = 100 + 30 * cols * math.sqrt(1.5)  # same variance: the column pattern has 2/3 non-zero

    def test_sum_of_sources_gives_two(self):
        assert M.scd(self.ir, self.vis, self.ir + self.vis) == pytest.approx(2.0, abs=1e-12)

    def test_fused_equal_to_vis(self):
        # corr2(0, IR) = 0 (convention) and corr2(VIS - IR, VIS) = sqrt(var V / (var V + var I)).
        assert np.var(self.ir) == pytest.approx(np.var(self.vis))
        assert M.scd(self.ir, self.vis, self.vis) == pytest.approx(1 / math.sqrt(2), abs=1e-12)

    def test_corr2_zero_variance_is_zero(self):
        assert M.corr2(np.full((5, 5), 3.0), self.ir[:5, :5]) == 0.0
        assert M.corr2(self.ir, 2 * self.ir + 1) == pytest.approx(1.0)


class TestAverageGradient:
    def test_constant_is_zero(self):
        assert M.average_gradient(np.full((20, 30), 77.0)) == 0.0

    @pytest.mark.parametrize("slope", [1.0, 2.5])
    def test_ramp(self, slope):
        m, n = 12, 17
        f = slope * np.tile(np.arange(n, dtype=float), (m, 1))  # gx = slope everywhere, gy = 0
        expected = slope / math.sqrt(2) * m * n / ((m - 1) * (n - 1))
        assert M.average_gradient(f) == pytest.approx(expected, rel=1e-14)
        assert M.average_gradient(f.T) == pytest.approx(expected, rel=1e-14)

    def test_ignores_sources(self):
        a = _textured()
        assert M.compute_metrics(a, np.zeros_like(a), a)["AG"] == M.average_gradient(a)


class TestDegenerate:
    def test_constant_sources(self):
        c = np.full((32, 32), 50.0)
        # Zero padding makes the frame of a constant image an edge, as in the reference's conv2 'same'.
        assert M.qabf(c, c, c) == pytest.approx(QABF_IDENTICAL, rel=1e-12)
        z = np.zeros((32, 32))
        assert math.isnan(M.qabf(z, z, z))  # no source edge at all: 0/0
        assert math.isnan(M.vifp_mscale(c, c))  # no source variance: 0/0
        assert math.isnan(M.qcv(c, c, c))  # normalised to zeros: no saliency anywhere
        assert M.ssim(c, c, c) == pytest.approx(2.0)

    def test_constant_fused_image(self):
        a = _textured(seed=3)
        f = np.full_like(a, 128.0)
        assert M.average_gradient(f) == 0.0
        assert M.qcv(a, a, f) > 0 and math.isfinite(M.qcv(a, a, f))  # constant -> normalised to zeros
        assert M.qabf(a, a, f) < 0.2  # only the padded border still matches


class TestDirection:
    def test_blur_lowers_qabf_and_ag(self):
        rng = np.random.default_rng(5)
        ir = np.round(cv2.GaussianBlur(rng.uniform(0, 255, (96, 96)), (0, 0), 1.0))
        vis = np.round(cv2.GaussianBlur(rng.uniform(0, 255, (96, 96)), (0, 0), 1.0))
        sharp = np.round((ir + vis) / 2)
        blurred = np.round(cv2.GaussianBlur(sharp, (0, 0), 2.0))
        assert M.qabf(ir, vis, blurred) < M.qabf(ir, vis, sharp)
        assert M.average_gradient(blurred) < M.average_gradient(sharp)
        assert M.ssim(ir, vis, blurred) < M.ssim(ir, vis, sharp)
        assert M.HIGHER_IS_BETTER["Qcv"] is False
        assert all(M.HIGHER_IS_BETTER[k] for k in M.METRIC_NAMES if k != "Qcv")


class TestInputs:
    def test_shape_mismatch(self):
        with pytest.raises(FusioncamError, match="same size"):
            M.compute_metrics(np.zeros((32, 32)), np.zeros((32, 32)), np.zeros((32, 33)))

    def test_too_small(self):
        with pytest.raises(FusioncamError, match="at least"):
            M.ssim(np.zeros((8, 8)), np.zeros((8, 8)), np.zeros((8, 8)))

    def test_nan(self):
        a = _textured()
        b = a.copy()
        b[3, 3] = np.nan
        with pytest.raises(FusioncamError, match="NaN"):
            M.scd(a, a, b)

    def test_bad_channels(self):
        with pytest.raises(FusioncamError, match="gray"):
            M.to_gray(np.zeros((4, 4, 2)))

    def test_sixteen_bit_refused(self):
        a = np.zeros((32, 32), np.uint16)
        with pytest.raises(FusioncamError, match="uint16"):
            M.compute_metrics(a, a, a)

    def test_bgr_to_gray_matlab_weights(self):
        px = np.zeros((1, 3, 3), np.uint8)
        px[0, 0] = (0, 0, 255)  # red in BGR
        px[0, 1] = (255, 0, 0)  # blue
        px[0, 2] = (255, 255, 255)
        y = M.to_gray(px)
        assert y.dtype == np.float64
        assert y[0].tolist() == [76.0, 29.0, 255.0]  # round(0.2989*255), round(0.114*255), round(0.9999*255)
        assert M.to_gray(px.astype(np.float64))[0, 0] == pytest.approx(0.2989 * 255)

    def test_color_input_same_as_gray(self):
        a = _textured().astype(np.uint8)
        bgr = np.dstack([a, a, a])
        assert M.compute_metrics(a, bgr, a) == M.compute_metrics(a, M.to_gray(bgr), a)


# ------------------------------------------------------------------------- against the independent port


def test_qabf_matches_loop_port_on_crop():
    a, b = _textured(24, 30, seed=7), _textured(24, 30, seed=8)
    f = np.round((a + b) / 2)
    f[5:9, 5:9] = a[5:9, 5:9]  # equal strengths somewhere: exercises the reference quirk
    assert M.qabf(a, b, f) == pytest.approx(ref_qabf_loops(a, b, f), rel=1e-12)
    assert ref_qabf(a, b, f) == pytest.approx(ref_qabf_loops(a, b, f), rel=1e-12)


@pytest.mark.parametrize("size", [(64, 80), (61, 75), (50, 33)])
def test_synthetic_against_reference(size):
    a, b = _textured(*size, seed=11), _textured(*size, seed=12)
    f = np.round(0.6 * a + 0.4 * b)
    got, want = M.compute_metrics(a, b, f), ref_all(a, b, f)
    for k in M.METRIC_NAMES:
        assert got[k] == pytest.approx(want[k], rel=1e-6), k


def _real_triple(data_dir, dataset, stem):
    """Gray IR, gray VIS (rgb2gray weights) and the average fusion of IR and VIS luminance."""
    import glob

    ir = cv2.imread(
        glob.glob(str(data_dir / "pairs" / dataset / "ir" / f"{stem}.*"))[0], cv2.IMREAD_GRAYSCALE
    )
    vis = cv2.imread(glob.glob(str(data_dir / "pairs" / dataset / "vis" / f"{stem}.*"))[0], cv2.IMREAD_COLOR)
    fused = create_fuser("average").fuse(ir, cv2.cvtColor(vis, cv2.COLOR_BGR2YCrCb)[:, :, 0])
    return ir, M.to_gray(vis), fused


@pytest.mark.parametrize("dataset,stem", [("roadscene", "FLIR_00006"), ("msrs", "00537D")])
def test_real_pairs_against_reference(data_dir, dataset, stem):
    ir, vis, fused = _real_triple(data_dir, dataset, stem)
    got, want = M.compute_metrics(ir, vis, fused), ref_all(ir, vis, fused)
    for k in M.METRIC_NAMES:
        assert got[k] == pytest.approx(want[k], rel=1e-6), k
    # Plausible ranges for an average fusion (published tables report similar magnitudes).
    assert 0.2 < got["Qabf"] < 0.6
    assert 100 < got["Qcv"] < 5000
    assert 1.2 < got["SSIM"] < 1.5
    assert 1.0 < got["AG"] < 10.0
    assert 0.3 < got["VIF"] < 1.2
    assert 1.0 < got["SCD"] < 2.0
