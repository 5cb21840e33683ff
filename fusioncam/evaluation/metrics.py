"""The six fusion-quality metrics of the MGFusion paper, computed as the reference MATLAB code does.

Every metric compares a fused image F with the two sources (IR and VIS) on gray images in the 0-255
range, as float64. Q_AB/F, Q_CV, SSIM and AG follow the MATLAB reference code of the VIFB benchmark
(Zhang, Ye and Xiao, "VIFB: a visible and infrared image fusion benchmark", CVPR Workshops 2020; github
xingchenzhang/VIFB, folder ``metrics/``: ``metricsQabf.m``, ``metricsQcv.m``, ``metricsSsim.m``,
``metricsAvg_gradient.m``). VIFB's 13 metrics include neither VIF nor SCD: VIF here is the multiscale
pixel-domain VIF release of Sheikh and Bovik (``vifp_mscale.m``, LIVE) summed over both sources, and SCD
the definition of Aslantas and Bendes, the convention of the evaluators of recent fusion papers (e.g.
CDDFuse's). Where the reference code has a quirk it is reproduced and said so in the docstring, because
published numbers were produced with it; where the reference would return NaN for a degenerate input
this module documents what it returns instead.

=========  =========================  =========
key        metric                     better
=========  =========================  =========
``Qabf``   Q_AB/F (Xydeas-Petrovic)   higher
``Qcv``    Q_CV (Chen-Varshney)       lower
``SSIM``   SSIM(VIS,F) + SSIM(IR,F)   higher
``AG``     average gradient of F      higher
``VIF``    VIF(IR,F) + VIF(VIS,F)     higher
``SCD``    sum of the correlations    higher
           of differences
=========  =========================  =========

MATLAB's ``filter2`` is a correlation and ``conv2`` a convolution; both pad with zeros in 'same' mode
and here they are reproduced with :mod:`scipy.ndimage` (zero padding, ``mode="constant"``). Separable
Gaussian windows are applied as two 1-D passes (the 2-D ``fspecial`` kernel is exactly their outer
product). Everything is vectorised; the six metrics of a 640x480 triple take a fraction of a second.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from fusioncam.errors import FusioncamError

__all__ = [
    "METRIC_NAMES",
    "HIGHER_IS_BETTER",
    "to_gray",
    "compute_metrics",
    "qabf",
    "qcv",
    "ssim",
    "ssim_single",
    "average_gradient",
    "vif",
    "vifp_mscale",
    "scd",
    "corr2",
]

METRIC_NAMES: tuple[str, ...] = ("Qabf", "Qcv", "SSIM", "AG", "VIF", "SCD")
HIGHER_IS_BETTER: dict[str, bool] = {
    "Qabf": True,
    "Qcv": False,
    "SSIM": True,
    "AG": True,
    "VIF": True,
    "SCD": True,
}

# MATLAB rgb2gray weights (R, G, B). They sum to 0.9999, not 1, exactly as in MATLAB.
_RGB2GRAY = (0.2989, 0.5870, 0.1140)


# --------------------------------------------------------------------------------------------- inputs


def to_gray(image: np.ndarray, name: str = "image") -> np.ndarray:
    """A gray float64 image in 0-255 from a gray or an OpenCV BGR image.

    Colour is reduced with MATLAB's ``rgb2gray`` weights Y = 0.2989 R + 0.5870 G + 0.1140 B (note the
    BGR channel order of OpenCV). For uint8 input the result is rounded to whole gray levels, as
    ``rgb2gray`` on a uint8 image is; float input (taken to be in 0..255) is not rounded. A (H, W, 1)
    image is taken as gray. Other integer types (16-bit thermal) are refused: the metrics' constants
    assume the 0..255 range.
    """
    a = np.asarray(image)
    if a.dtype != np.uint8 and not np.issubdtype(a.dtype, np.floating):
        raise FusioncamError(
            f"{name}: metrics take uint8 or float images in 0..255, got {a.dtype} "
            "(map 16-bit thermal to 8 bits first)"
        )
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        return a.astype(np.float64, copy=False)
    if a.ndim != 3 or a.shape[2] != 3:
        raise FusioncamError(f"{name}: expected a gray (H, W) or BGR (H, W, 3) image, got shape {a.shape}")
    b, g, r = (a[:, :, i].astype(np.float64) for i in range(3))
    y = _RGB2GRAY[0] * r + _RGB2GRAY[1] * g + _RGB2GRAY[2] * b
    if a.dtype == np.uint8:
        y = np.floor(y + 0.5)  # MATLAB rounds half away from zero; y >= 0 here
    return y


def _prepare(min_size: int, **images: np.ndarray) -> list[np.ndarray]:
    """Gray float64 copies of the named images, checked to share one shape of at least ``min_size``."""
    out = [to_gray(img, name) for name, img in images.items()]
    shapes = {name: g.shape for name, g in zip(images, out, strict=True)}
    if len(set(shapes.values())) > 1:
        detail = ", ".join(f"{n} {s[1]}x{s[0]}" for n, s in shapes.items())
        raise FusioncamError(f"metrics need images of the same size, got {detail}")
    h, w = out[0].shape
    if min(h, w) < min_size:
        raise FusioncamError(f"metrics need images of at least {min_size}x{min_size} pixels, got {w}x{h}")
    for name, g in zip(images, out, strict=True):
        if not np.all(np.isfinite(g)):
            raise FusioncamError(f"{name}: image contains NaN or infinite values")
    return out


# -------------------------------------------------------------------------------------------- helpers


def _gaussian_1d(n: int, sigma: float) -> np.ndarray:
    """1-D factor of MATLAB ``fspecial('gaussian', n, sigma)``: the 2-D kernel is its outer product."""
    x = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(img: np.ndarray, k: np.ndarray) -> np.ndarray:
    """MATLAB ``filter2(outer(k, k), img, 'valid')`` for a symmetric odd-length 1-D kernel ``k``.

    Keeps only the outputs whose window lies inside the image; an image smaller than the window gives an
    empty result, as ``filter2`` does. OpenCV's separable filter (a correlation, in float64) is used
    rather than ``scipy.ndimage.correlate1d`` because it is 2-3x faster on the large windows of VIF and
    SSIM; the border mode does not matter since the border outputs are cropped.
    """
    n = k.size
    r = n // 2
    h, w = img.shape
    if h < n or w < n:
        return np.zeros((max(0, h - n + 1), max(0, w - n + 1)))
    out = cv2.sepFilter2D(img, cv2.CV_64F, k, k, borderType=cv2.BORDER_CONSTANT)
    return out[r : h - r, r : w - r]


def _correlate3(img: np.ndarray, k: np.ndarray) -> np.ndarray:
    """MATLAB ``filter2(k, img, 'same')`` for a small kernel: correlation with zero padding.

    ``cv2.filter2D`` with a zero constant border computes exactly this, 3-4x faster than
    ``scipy.ndimage.correlate``.
    """
    return cv2.filter2D(img, cv2.CV_64F, k, borderType=cv2.BORDER_CONSTANT)


def _convolve3(img: np.ndarray, k: np.ndarray) -> np.ndarray:
    """MATLAB ``conv2(img, k, 'same')``: a convolution, i.e. a correlation with the kernel turned 180 deg."""
    return _correlate3(img, np.ascontiguousarray(k[::-1, ::-1]))


def corr2(a: np.ndarray, b: np.ndarray) -> float:
    """MATLAB ``corr2``: the Pearson correlation of all pixels of two images.

    Choice: where either image has zero variance MATLAB returns NaN (0/0); here the result is 0.0, so
    that a fused image that adds nothing to a source (F - VIS == 0) scores "no correlation" and dataset
    means stay finite.
    """
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float(np.sum(a * a)) * float(np.sum(b * b)))
    if den == 0.0:
        return 0.0
    return float(np.sum(a * b) / den)


def _block_sums(x: np.ndarray, size: int) -> np.ndarray:
    """Sum over each ``size`` x ``size`` block, the image zero-padded on the right and bottom.

    This is MATLAB ``blkproc(x, [size size], @(b) sum(b(:)))``: blkproc pads partial blocks with zeros.
    """
    h, w = x.shape
    hb, wb = -(-h // size), -(-w // size)
    padded = np.zeros((hb * size, wb * size))
    padded[:h, :w] = x
    return padded.reshape(hb, size, wb, size).sum(axis=(1, 3))


# ------------------------------------------------------------------------------------------- Q_AB/F

_SOBEL_Y = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])
_SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def _qabf_edges(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sobel edge strength and orientation of one image, as VIFB's Qabf computes them.

    ``conv2(p, h, 'same')``: a true convolution with zero padding. The orientation is ``atan(Sy/Sx)``
    (not atan2), set to pi/2 where Sx is exactly 0.
    """
    sx = _convolve3(p, _SOBEL_X)
    sy = _convolve3(p, _SOBEL_Y)
    g = np.sqrt(sx * sx + sy * sy)
    zero = sx == 0
    a = np.where(zero, np.pi / 2, np.arctan(sy / np.where(zero, 1.0, sx)))
    return g, a


def _qabf_preservation(g_s: np.ndarray, a_s: np.ndarray, g_f: np.ndarray, a_f: np.ndarray) -> np.ndarray:
    """Edge preservation Q^{SF} per pixel: strength term times orientation term (sigmoids)."""
    tg, kg, dg = 0.9994, -15.0, 0.5
    ta, ka, da = 0.9879, -22.0, 0.8
    with np.errstate(divide="ignore", invalid="ignore"):
        # Reference quirk kept: where the two strengths are equal the "ratio" is set to the strength
        # itself (not 1). Irrelevant where both are 0 (the pixel has weight 0).
        ratio = np.where(g_s > g_f, g_f / g_s, np.where(g_s == g_f, g_f, g_s / g_f))
    orient = 1.0 - np.abs(a_s - a_f) / (np.pi / 2)
    q_g = tg / (1.0 + np.exp(kg * (ratio - dg)))
    q_a = ta / (1.0 + np.exp(ka * (orient - da)))
    return q_g * q_a


def qabf(ir: np.ndarray, vis: np.ndarray, fused: np.ndarray) -> float:
    """Q_AB/F, the gradient-based fusion metric of Xydeas and Petrovic (higher is better, at most ~0.975).

    Definition: 3x3 Sobel strength g and orientation alpha of each image; per pixel the preserved
    strength G = min(g_S, g_F)/max(g_S, g_F) and orientation A = 1 - |alpha_S - alpha_F|/(pi/2) map
    through sigmoids Q_g = Tg/(1+exp(kg(G-Dg))), Q_a = Ta/(1+exp(ka(A-Da))) with Tg=0.9994, kg=-15,
    Dg=0.5, Ta=0.9879, ka=-22, Da=0.8; Q_AB/F = sum(Q_AF g_A + Q_BF g_B) / sum(g_A + g_B) (L = 1).

    Reference: Xydeas and Petrovic, "Objective image fusion performance measure", Electronics Letters
    36(4), 2000; VIFB ``metricsQabf.m``.

    Choices, all copying the reference:
      * ``conv2`` with the kernels as written. Convolution or correlation makes no difference (both
        responses flip sign together), but the relative sign of the x and y kernels does: orientation
        is atan(Sy/Sx), with pi/2 (never -pi/2) where Sx == 0.
      * The reference multiplies the 0-255 images by 255 (``255*im2double`` of a double image), which
        only matters through the quirk G = g_F where g_S == g_F: with whole gray levels this makes
        Q_g = Tg there. The images are scaled the same way here.
      * Zero padding (``conv2 'same'``) makes the image frame an edge wherever the border is not black:
        even a constant image has edges there, and a brightness offset changes them.
      * Hence F == IR == VIS (with whole gray levels) gives Tg*Ta/(1+exp(-4.4)) = 0.97535..., not 1.
    Returns NaN when neither source has any edge (all-black sources: the denominator is 0).
    """
    return _qabf(*_prepare(3, ir=ir, vis=vis, fused=fused))


def _qabf(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    g_a, a_a = _qabf_edges(255.0 * a)
    g_b, a_b = _qabf_edges(255.0 * b)
    g_f, a_f = _qabf_edges(255.0 * f)
    q_af = _qabf_preservation(g_a, a_a, g_f, a_f)
    q_bf = _qabf_preservation(g_b, a_b, g_f, a_f)
    den = float(np.sum(g_a + g_b))
    if den == 0.0:
        return float("nan")
    return float(np.sum(q_af * g_a + q_bf * g_b) / den)


# --------------------------------------------------------------------------------------------- Q_CV

_QCV_WINDOW = 16
_QCV_ALPHA = 5


def _normalize255(x: np.ndarray) -> np.ndarray:
    """Liu's ``normalize1``: min-max stretch to 0-255 rounded to whole levels.

    Choice: a constant image other than all-zero divides 0 by 0 in the reference (NaN); here it becomes
    all zeros (it has no structure to compare).
    """
    hi, lo = float(x.max()), float(x.min())
    if hi == 0.0 and lo == 0.0:
        return x
    if hi == lo:
        return np.zeros_like(x)
    return np.floor((x - lo) / (hi - lo) * 255.0 + 0.5)  # MATLAB round, values >= 0


def _mannos_sakrison(shape: tuple[int, int]) -> np.ndarray:
    """The Mannos-Sakrison CSF on the ``rfft2`` grid of an image of ``shape``.

    The reference builds ``freqspace`` (normalised frequencies in [-1, 1)) and scales it by W/8
    horizontally and H/8 vertically, then multiplies the fftshift-ed spectrum. The same frequencies in
    unshifted order are ``fftfreq * 2 * size/8``; the filter depends on |u| and |v| only, so the half
    spectrum of ``rfft2`` carries it exactly.
    """
    h, w = shape
    v = np.fft.fftfreq(h) * 2.0 * (h / 8.0)
    u = np.fft.rfftfreq(w) * 2.0 * (w / 8.0)
    r = np.sqrt(u[None, :] ** 2 + v[:, None] ** 2)
    return 2.6 * (0.0192 + 0.144 * r) * np.exp(-((0.144 * r) ** 1.1))


def qcv(ir: np.ndarray, vis: np.ndarray, fused: np.ndarray) -> float:
    """Q_CV, the human-perception metric of Chen and Varshney (lower is better; hundreds are typical).

    Definition: each image is min-max normalised to 0-255 and rounded. Local saliency of a source is
    the sum over each 16x16 block of its Sobel gradient magnitude to the power alpha = 5. The
    differences VIS - F and IR - F are filtered in the frequency domain by the Mannos-Sakrison contrast
    sensitivity function 2.6 (0.0192 + 0.144 r) exp(-(0.144 r)^1.1), r the radial frequency on a grid
    scaled by W/8 and H/8 (the reference's "length 3" choice); D is the mean of the squared filtered
    difference per block. Q_CV = sum(lambda_VIS D_VIS + lambda_IR D_IR) / sum(lambda_VIS + lambda_IR).

    Reference: Chen and Varshney, "A human perception inspired quality metric for image fusion based on
    regional information", Information Fusion 8(2), 2007; Z. Liu's ``metricChen.m`` as used by VIFB
    ``metricsQcv.m``.

    Choices, copying the reference: Sobel by ``filter2(.., 'same')`` (correlation, zero padding, so the
    image border counts as an edge); blocks by ``blkproc``, which zero-pads partial blocks at the right
    and bottom, so a partial block's mean divides by 256; the filtered difference is real (the filter
    is symmetric) and its real part is taken. Returns NaN when neither source has any edge.
    """
    return _qcv(*_prepare(2, ir=ir, vis=vis, fused=fused))


def _qcv(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    a, b, f = _normalize255(a), _normalize255(b), _normalize255(f)
    flt_x = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    csf = _mannos_sakrison(f.shape)
    num = 0.0
    den = 0.0
    for s in (a, b):
        gx = _correlate3(s, flt_x)
        gy = _correlate3(s, np.ascontiguousarray(flt_x.T))
        saliency = _block_sums(np.sqrt(gx * gx + gy * gy) ** _QCV_ALPHA, _QCV_WINDOW)
        diff = np.fft.irfft2(np.fft.rfft2(s - f) * csf, s=f.shape)
        dist = _block_sums(diff * diff, _QCV_WINDOW) / float(_QCV_WINDOW * _QCV_WINDOW)
        num += float(np.sum(saliency * dist))
        den += float(np.sum(saliency))
    if den == 0.0:
        return float("nan")
    return num / den


# --------------------------------------------------------------------------------------------- SSIM


_SSIM_WINDOW = _gaussian_1d(11, 1.5)
_SSIM_C1 = (0.01 * 255.0) ** 2
_SSIM_C2 = (0.03 * 255.0) ** 2


def _ssim_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, local mean, local mean^2, local variance) pieces of SSIM that depend on one image only."""
    mu = _filter_valid(x, _SSIM_WINDOW)
    mu_sq = mu * mu
    return mu, mu_sq, _filter_valid(x * x, _SSIM_WINDOW) - mu_sq


def _ssim_map_mean(x: np.ndarray, sx: tuple, y: np.ndarray, sy: tuple) -> float:
    mx, mxx, vx = sx
    my, myy, vy = sy
    mxy = mx * my
    cov = _filter_valid(x * y, _SSIM_WINDOW) - mxy
    smap = ((2.0 * mxy + _SSIM_C1) * (2.0 * cov + _SSIM_C2)) / ((mxx + myy + _SSIM_C1) * (vx + vy + _SSIM_C2))
    return float(smap.mean())


def ssim_single(ref: np.ndarray, fused: np.ndarray) -> float:
    """SSIM of Wang et al. 2004 between two gray images: 11x11 Gaussian window (sigma 1.5), L = 255,
    K1 = 0.01, K2 = 0.03, mean of the SSIM map over the 'valid' region (windows fully inside).

    Identical images give exactly 1 (up to rounding); two constant images too (the constants C1, C2).
    """
    x, y = _prepare(11, ref=ref, fused=fused)
    return _ssim_map_mean(x, _ssim_stats(x), y, _ssim_stats(y))


def ssim(ir: np.ndarray, vis: np.ndarray, fused: np.ndarray) -> float:
    """SSIM(VIS, F) + SSIM(IR, F) (higher is better; at most 2, around 1.2-1.5 for real fusions).

    Reference: Wang, Bovik, Sheikh and Simoncelli, "Image quality assessment: from error visibility to
    structural similarity", IEEE TIP 13(4), 2004; VIFB ``metricsSsim.m`` (the sum of the two SSIMs, with
    MATLAB ``filter2(w, x, 'valid')``, no downsampling).
    """
    return _ssim(*_prepare(11, ir=ir, vis=vis, fused=fused))


def _ssim(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    sf = _ssim_stats(f)  # the fused image's statistics serve both sources
    return _ssim_map_mean(b, _ssim_stats(b), f, sf) + _ssim_map_mean(a, _ssim_stats(a), f, sf)


# ----------------------------------------------------------------------------------------------- AG


def average_gradient(fused: np.ndarray) -> float:
    """Average gradient of the fused image (higher is better: more detail and contrast).

    Definition: with MATLAB ``gradient`` (central differences inside, one-sided differences on the
    first and last row/column; :func:`numpy.gradient` with ``edge_order=1`` is the same),
    AG = sum(sqrt((gx^2 + gy^2) / 2)) / ((rows - 1)(cols - 1)). The sum runs over all rows x cols
    pixels while the divisor is (rows-1)(cols-1), as in the reference; a constant image gives 0 and a
    horizontal ramp of slope s gives s/sqrt(2) * rows*cols / ((rows-1)(cols-1)).

    Reference: Cui et al., "Detail preserved fusion of visible and infrared images using regional
    saliency extraction and multi-scale image decomposition", Optics Communications 341, 2015; VIFB
    ``metricsAvg_gradient.m``.
    """
    return _average_gradient(*_prepare(2, fused=fused))


def _average_gradient(f: np.ndarray) -> float:
    gy, gx = np.gradient(f)
    rows, cols = f.shape
    return float(np.sum(np.sqrt((gx * gx + gy * gy) / 2.0)) / ((rows - 1) * (cols - 1)))


# ---------------------------------------------------------------------------------------------- VIF


_VIF_SIGMA_NSQ = 2.0
_VIF_EPS = 1e-10
_VIF_WINDOWS = [_gaussian_1d(2 ** (5 - s) + 1, (2 ** (5 - s) + 1) / 5.0) for s in range(1, 5)]


def _vif_pyramid(x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per scale: (image at that scale, local mean, local variance clamped at 0); stops when empty."""
    out = []
    for scale, k in enumerate(_VIF_WINDOWS, 1):
        if scale > 1:
            x = _filter_valid(x, k)[::2, ::2]
        mu = _filter_valid(x, k)
        if mu.size == 0:
            break  # the image is too small for this scale: 'valid' filtering leaves nothing
        out.append((x, mu, np.maximum(_filter_valid(x * x, k) - mu * mu, 0.0)))
    return out


def _vifp_from(ref_pyr: list, dist_pyr: list) -> float:
    num = 0.0
    den = 0.0
    eps = _VIF_EPS
    for k, (x, mu1, s1_), (y, mu2, s2) in zip(_VIF_WINDOWS, ref_pyr, dist_pyr, strict=False):
        s1 = s1_.copy()
        s12 = _filter_valid(x * y, k) - mu1 * mu2
        g = s12 / (s1 + eps)
        sv = s2 - g * s12
        low1 = s1 < eps
        g[low1] = 0.0
        sv[low1] = s2[low1]
        s1[low1] = 0.0
        low2 = s2 < eps
        g[low2] = 0.0
        sv[low2] = 0.0
        neg = g < 0
        sv[neg] = s2[neg]
        g[neg] = 0.0
        sv[sv <= eps] = eps
        num += float(np.sum(np.log10(1.0 + g * g * s1 / (sv + _VIF_SIGMA_NSQ))))
        den += float(np.sum(np.log10(1.0 + s1 / _VIF_SIGMA_NSQ)))
    if den == 0.0:
        return float("nan")
    return num / den


def vifp_mscale(ref: np.ndarray, dist: np.ndarray) -> float:
    """Multiscale pixel-domain VIF (VIFP) of ``dist`` with respect to ``ref`` (Sheikh and Bovik).

    Four scales; at scale s the window is a Gaussian of N = 2^(5-s)+1 = 17, 9, 5, 3 taps with sigma
    N/5; from scale 2 on both images are first filtered 'valid' with that window and decimated by 2
    (odd rows and columns in MATLAB's 1-based indexing, i.e. ``[::2, ::2]``). Local means, variances
    and covariance come from 'valid' filtering; with noise variance sigma_n^2 = 2 (tied to the 0-255
    range) and the reference's 1e-10 guards,
    VIF = sum log10(1 + g^2 sigma_ref^2 / (sigma_v^2 + sigma_n^2)) / sum log10(1 + sigma_ref^2 / sigma_n^2)
    summed over all scales and pixels.

    Reference: Sheikh and Bovik, "Image information and visual quality", IEEE TIP 15(2), 2006;
    ``vifp_mscale.m`` (LIVE). Computed in float64: the known bug of computing ``ref.*ref`` on uint8
    images, which saturates at 255, is avoided. Returns NaN when ``ref`` has no variance anywhere (0/0).
    """
    x, y = _prepare(17, ref=ref, dist=dist)
    return _vifp_from(_vif_pyramid(x), _vif_pyramid(y))


def vif(ir: np.ndarray, vis: np.ndarray, fused: np.ndarray) -> float:
    """VIF(IR, F) + VIF(VIS, F), each by :func:`vifp_mscale` with the source as reference (higher is
    better; F == IR == VIS gives 2; typical fusions 0.5-1.5).

    This is the "VIF" of recent fusion papers' evaluators (e.g. CDDFuse's): ``vifp_mscale(IR, F) +
    vifp_mscale(VIS, F)``. It is not Han et al.'s VIFF (Information Fusion 14(2), 2013), which weights
    the scales and uses a larger visual noise; the two are not interchangeable.
    """
    return _vif(*_prepare(17, ir=ir, vis=vis, fused=fused))


def _vif(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    pf = _vif_pyramid(f)  # the fused image's pyramid and statistics serve both sources
    return _vifp_from(_vif_pyramid(a), pf) + _vifp_from(_vif_pyramid(b), pf)


# ---------------------------------------------------------------------------------------------- SCD


def scd(ir: np.ndarray, vis: np.ndarray, fused: np.ndarray) -> float:
    """Sum of the correlations of differences, SCD = corr2(F - VIS, IR) + corr2(F - IR, VIS).

    F - VIS estimates what the fusion took from IR; its correlation with IR says how much of IR's
    complementary information arrived (higher is better, at most 2). F == IR == VIS gives 0 under this
    module's :func:`corr2` convention (zero variance -> 0, MATLAB would give NaN).

    Reference: Aslantas and Bendes, "A new image quality metric for image fusion: the sum of the
    correlations of differences", AEU 69(12), 2015 (corr2 of the differences, as their MATLAB code).
    """
    return _scd(*_prepare(2, ir=ir, vis=vis, fused=fused))


def _scd(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    return corr2(f - b, a) + corr2(f - a, b)


# ---------------------------------------------------------------------------------------------- all


def compute_metrics(ir: np.ndarray, vis: np.ndarray, fused: np.ndarray) -> dict[str, float]:
    """All six metrics, keyed as in :data:`METRIC_NAMES`.

    Inputs are gray or BGR images of one size (BGR is reduced with MATLAB's ``rgb2gray`` weights, see
    :func:`to_gray`); they are converted to float64 once here.
    """
    a, b, f = _prepare(17, ir=ir, vis=vis, fused=fused)
    return {
        "Qabf": _qabf(a, b, f),
        "Qcv": _qcv(a, b, f),
        "SSIM": _ssim(a, b, f),
        "AG": _average_gradient(f),
        "VIF": _vif(a, b, f),
        "SCD": _scd(a, b, f),
    }
