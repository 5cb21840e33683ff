"""MGFusion inference speed: ms per frame for every registered preset, against the classical
``laplacian`` fuser and against the unoptimised (paper-literal) forward pass, all in the same run.

Why ratios: the machine this runs on is shared and its load changes from minute to minute, so an
absolute time means little on its own; a ratio against a baseline measured in the same run, on the same
frames, does. Each number is the median of ``--runs`` timed frames after one warm-up frame; the load
average is printed with the results.

The reference path is :func:`reference_forwards`: the forward passes of the blocks as first written
(F.normalize + softmax + attn @ v + proj in MDTA, conv -> BN -> act, kornia's Sobel, NCHW
throughout), patched onto the
same modules, with the same weights. ``tests/test_mgfusion_speedups.py`` uses it as the numerical oracle.

Usage::

    python benchmarks/mgfusion_speed.py [--presets a,b] [--sizes 640x480,320x240] [--runs 5]
        [--threads 2] [--devices cpu,cuda] [--no-reference] [--tune-allocator]

``--tune-allocator`` calls :func:`fusioncam.memory.tune_cpu_allocator` first (glibc keeps freed
memory instead of returning it to the OS; see that function for why it matters so much here).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

# --- the reference (unoptimised) forward passes -------------------------------------------------------


def _ref_mdta(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
    n, c, h, w = x.shape
    q, k, v = self.qkv_dw(self.qkv(x)).chunk(3, dim=1)
    shape = (n, self.heads, c // self.heads, h * w)
    with torch.autocast(device_type=x.device.type, enabled=False):
        q = F.normalize(q.reshape(shape).float(), dim=-1)
        k = F.normalize(k.reshape(shape).float(), dim=-1)
        attn = (q @ k.transpose(-2, -1)) * self.temperature.float()
        attn = attn.softmax(dim=-1)
    out = self.proj((attn.to(v.dtype) @ v.reshape(shape)).reshape(n, c, h, w))
    return out if residual is None else residual + out


def _ref_gdfn(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
    x1, x2 = self.dw(self.project_in(x)).chunk(2, dim=1)
    out = self.project_out(self.act(x1) * x2)
    return out if residual is None else residual + out


def _ref_block(self, x: torch.Tensor) -> torch.Tensor:
    x = x + self.attn(self.norm1(x))
    return x + self.ffn(self.norm2(x))


def _ref_encoder(self, x: torch.Tensor) -> torch.Tensor:
    return self.blocks(self.stem(x))


def _ref_decoder(self, x: torch.Tensor) -> torch.Tensor:
    t = torch.tanh(self.out(self.conv(self.blocks(x))))
    return (t + 1) * 0.5


def _ref_cii(self, f: torch.Tensor, e_own: torch.Tensor, e_other: torch.Tensor) -> torch.Tensor:
    w = self.mix_weight
    e = w * e_own + (1 - w) * e_other
    return f + self.adapter(e)[:, :, None, None] * self.spatial(f)


def _ref_cff(self, f_ir, f_vis, e_ir, e_vis) -> torch.Tensor:
    from kornia.filters import sobel

    a_ir = torch.sigmoid(self.ir_adapter(e_ir))[:, :, None, None]
    a_vis = torch.sigmoid(self.vis_adapter(e_vis))[:, :, None, None]
    x = torch.cat([f_ir * a_ir, f_vis * a_vis], dim=1)
    grad = sobel(x)
    x = x + self.detail_weight(grad) * grad
    return self.reduce(x)


def _ref_mgfusion(self, ir: torch.Tensor, vis: torch.Tensor, clip_features: torch.Tensor | None = None):
    return self.decoder(self.forward_features(ir, vis, clip_features))


@contextmanager
def reference_forwards() -> Iterator[None]:
    """Within this block every MGFusion module runs its original, unoptimised forward pass.

    It patches the classes (process-wide, not thread-safe): for benchmarks and tests only.
    """
    from fusioncam.models import blocks, mgfusion

    patches = [
        (blocks.MDTA, _ref_mdta),
        (blocks.GDFN, _ref_gdfn),
        (blocks.RestormerBlock, _ref_block),
        (mgfusion.Encoder, _ref_encoder),
        (mgfusion.Decoder, _ref_decoder),
        (mgfusion.CII, _ref_cii),
        (mgfusion.CFF, _ref_cff),
        (mgfusion.MGFusion, _ref_mgfusion),
    ]
    saved = [(cls, cls.forward) for cls, _ in patches]
    try:
        for cls, fn in patches:
            cls.forward = fn
        yield
    finally:
        for cls, fn in saved:
            cls.forward = fn


# --- timing -------------------------------------------------------------------------------------------


def _median_ms(
    fn: Callable[[], object], runs: int, sync: Callable[[], None], budget_s: float
) -> tuple[float, float]:
    """Median wall-clock and median process CPU time (all threads) per call, in ms.

    The CPU time is the steadier number on a loaded machine: it leaves out the time spent waiting for
    a core (but includes threads spinning at OpenMP barriers)."""
    fn()  # warm-up: first-call allocations, oneDNN primitive creation, CUDA kernels
    sync()
    walls: list[float] = []
    cpus: list[float] = []
    start = time.perf_counter()
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        sync()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        if time.perf_counter() - start > budget_s and len(walls) >= 3:
            break  # a slow configuration: three frames are enough for its median
    return 1000.0 * statistics.median(walls), 1000.0 * statistics.median(cpus)


def _frames(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth IR-like frame and a textured VIS-like frame (content does not change the cost)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    ir = (128 + 100 * np.sin(xx / 37.0) * np.cos(yy / 23.0)).astype(np.uint8)
    vis = rng.integers(0, 256, size=(h, w), dtype=np.uint8)
    return ir, vis


def _time_preset(
    name: str, dev: str, ir: np.ndarray, vis: np.ndarray, args: argparse.Namespace
) -> tuple[float, float, float, float]:
    """(fast wall, fast cpu, reference wall, reference cpu) ms per frame of one preset on one device."""
    from fusioncam.models import create_model
    from fusioncam.models.fuser import MGFusionFuser

    torch.manual_seed(0)
    model = create_model(name, attach_clip=False, allow_download=False)
    fuser = MGFusionFuser(model=model, device=dev)
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    if model.uses_clip:
        # CLIP runs once per several frames in the live engine (cached features): not timed here.
        feats = F.normalize(torch.randn(1, 2, model.config.clip_embed_dim), dim=-1)
        t_ir, t_vis = torch.from_numpy(ir).float() / 255, torch.from_numpy(vis).float() / 255

        def frame() -> object:
            return fuser.fuse_tensor(t_ir, t_vis, clip_features=feats)
    else:

        def frame() -> object:
            return fuser.fuse(ir, vis)

    fast = _median_ms(frame, args.runs, sync, args.budget)
    ref = (float("nan"), float("nan"))
    if not args.no_reference:
        with reference_forwards():
            ref = _median_ms(frame, args.runs, sync, args.budget)
    return (*fast, *ref)


def run(args: argparse.Namespace) -> int:
    from fusioncam.memory import tune_cpu_allocator
    from fusioncam.models import list_models
    from fusioncam.processing.fusers import create_fuser

    if args.tune_allocator:
        tune_cpu_allocator()
    torch.set_num_threads(args.threads)
    presets = args.presets.split(",") if args.presets else list_models()
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]
    devices = [d for d in args.devices.split(",") if d != "cuda" or torch.cuda.is_available()]
    lap = create_fuser("laplacian")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads,"
        f" tuned allocator: {args.tune_allocator}"
    )
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(
        "preset                 size     device fast_ms  ref_ms speedup fast/lap | cpu: fast_ms  ref_ms"
        " speedup fast/lap | laplacian_ms"
    )
    for w, h in sizes:
        ir, vis = _frames(h, w)
        lap_ms, lap_cpu = _median_ms(partial(lap.fuse, ir, vis), max(args.runs, 5), lambda: None, args.budget)
        for name in presets:
            for dev in devices:
                fast_ms, fast_cpu, ref_ms, ref_cpu = _time_preset(name, dev, ir, vis, args)
                print(
                    f"{name:22s} {w}x{h:<4d} {dev:6s} {fast_ms:7.0f} {ref_ms:7.0f} {ref_ms / fast_ms:6.2f}x"
                    f" {fast_ms / lap_ms:7.0f}x |      {fast_cpu:7.0f} {ref_cpu:7.0f}"
                    f" {ref_cpu / fast_cpu:6.2f}x {fast_cpu / lap_cpu:7.0f}x | {lap_ms:6.2f}",
                    flush=True,
                )
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", default="", help="comma-separated model names (default: all registered)")
    p.add_argument("--sizes", default="640x480,320x240", help="comma-separated WxH frame sizes")
    p.add_argument("--runs", type=int, default=5, help="timed frames per configuration (median reported)")
    p.add_argument("--budget", type=float, default=30.0, help="seconds per configuration before stopping")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--devices", default="cpu,cuda", help="cpu and/or cuda (cuda skipped when absent)")
    p.add_argument("--no-reference", action="store_true", help="skip the unoptimised reference path")
    p.add_argument("--tune-allocator", action="store_true", help="call tune_cpu_allocator() first")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(run(parse_args()))
