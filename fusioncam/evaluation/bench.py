"""Benchmarks of the live pipeline: throughput, latency and per-stage timings, per method and device.

Every figure that compares is a ratio against a baseline measured in the same process, on the same
machine, minutes apart (throughput against the ``average`` fuser; the CLIP cache against CLIP on every
frame), because absolute numbers on a shared 2-core machine say little.

Runs:

* **unpaced**: the files are read as fast as possible and every pair is fused (nothing skipped): the
  pipeline's maximum throughput.
* **paced**: the files play at their own fps, standing in for two cameras (drop-oldest buffers, the
  newest pair fused): does the pipeline keep up, and with what end-to-end latency (capture host time
  of the newer frame to the end of fusion)?
* **CLIP cache**: a CLIP-using MGFusion network driven by the engine directly on decoded frames, with
  ``clip_refresh=K`` and with ``clip_refresh=1``; CLIP's cost per fused frame is compared. The CLIP
  tower can be a real architecture with random weights (the cost of a forward pass does not depend on
  the values of the weights); the report says which.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fusioncam.assets import SAMPLES_DIR
from fusioncam.errors import FusioncamError
from fusioncam.evaluation.dataset import default_data_dir
from fusioncam.io.frames import Frame, FramePair
from fusioncam.live.engine import FusedResult, FusionEngine, LivePipeline, resolve_device
from fusioncam.processing.fusers import list_fusers
from fusioncam.processing.registration import Rig

__all__ = [
    "BenchConfig",
    "default_inputs",
    "run_bench",
    "run_pipeline",
    "run_clip_cache",
    "format_report",
    "STAGES",
]

SAMPLE = (SAMPLES_DIR / "ir_0111_1716.mp4", SAMPLES_DIR / "vis_0111_1716.mp4")
SHARED = (
    default_data_dir() / "video" / "ir" / "0111_1716.mp4",
    default_data_dir() / "video" / "vis" / "0111_1716.mp4",
)
STAGES = ("capture", "wait", "sync", "prepare", "registration", "clip", "fusion", "color", "deliver")
BASELINE = "average"
#: untimed frames before the CLIP comparison: on this CPU the first 4-5 CLIP+fusion passes run 2-5x
#: slower (allocations, kernel selection), which would weigh on the first computation of the cached
#: engine far more than on the every-frame engine's many
CLIP_WARMUP = 6


def default_inputs() -> tuple[str, str]:
    """The built-in sample pair (assets/samples), else the same clip in ../shared/data."""
    for ir, vis in (SAMPLE, SHARED):
        if ir.is_file() and vis.is_file():
            return str(ir), str(vis)
    raise FusioncamError(
        f"no default video pair: neither {SAMPLE[0]} nor {SHARED[0]} exists; give --ir and --vis"
    )


@dataclass
class BenchConfig:
    ir: str
    vis: str
    methods: Sequence[str] = ()
    devices: Sequence[str] = ()
    frames: int = 150  # fused frames per run
    seconds: float = 8.0  # ... or this long, whichever comes first
    clip_refresh: int = 8
    clip_frames: int = 24  # frames of the CLIP cache comparison (0: skip it)
    clip_model: str = "ViT-B-32"  # open_clip architecture of the CLIP stand-in; "tiny" for tests
    clip_size: tuple[int, int] | None = (160, 120)  # frame size of the CLIP comparison (None: as is)
    modes: Sequence[str] = ("unpaced", "paced")
    #: the rig of the runs: a Rig, None (no warp), or "synthetic": a small scale and shift, so that the
    #: registration stage costs what a calibrated rig costs (the sample clips are already registered)
    rig: Any = "synthetic"
    progress: Callable[[str], None] | None = None


@dataclass
class RunResult:
    method: str
    device: str
    mode: str
    frames: int = 0
    fps: float = 0.0  # fused frames per second (first to last result)
    source_fps: float = 0.0
    latency_ms_mean: float = 0.0
    latency_ms_p95: float = 0.0
    skipped_pairs: int = 0
    dropped_pairs: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)
    error: str = ""

    @property
    def keeps_up(self) -> bool:
        """Paced: fused at >= 93% of the source rate (28 of 30 fps)."""
        return self.source_fps > 0 and self.fps >= 0.93 * self.source_fps


def _say(cfg: BenchConfig, msg: str) -> None:
    if cfg.progress is not None:
        cfg.progress(msg)


def run_pipeline(
    ir: str, vis: str, engine: FusionEngine, *, paced: bool, frames: int, seconds: float
) -> RunResult:
    """Run the live pipeline on a looping file pair until ``frames`` results or ``seconds`` passed."""
    results: list[tuple[float, FusedResult]] = []

    def on_result(r: FusedResult) -> None:
        results.append((time.monotonic(), r))

    pipe = LivePipeline(ir, vis, engine, pace=paced, loop=True, on_result=on_result, max_frames=frames)
    pipe.start()
    t_start = time.monotonic()  # start-up (opening files, first decode) is not timed, but bounded
    while not results and not pipe.wait(0.02) and time.monotonic() - t_start < 30.0:
        pass
    finished = pipe.wait(seconds)
    pipe.stop()
    st = pipe.stats()
    out = RunResult(engine.method, engine.device, "paced" if paced else "unpaced")
    out.source_fps = min(c.fps for c in pipe.captures.values())
    out.skipped_pairs, out.dropped_pairs = st.skipped_pairs, st.dropped_pairs
    if not results:
        out.error = f"no fused frame ({pipe.state}: {st.sources})" if finished else "no fused frame in time"
        return out
    warm = min(5, len(results) // 5)  # first frames pay one-off costs (allocations, torch kernels)
    kept = results[warm:]
    out.frames = len(results)
    if len(kept) > 1:
        out.fps = (len(kept) - 1) / (kept[-1][0] - kept[0][0])
    lat = np.array([r.latency_ms for _, r in kept])
    out.latency_ms_mean, out.latency_ms_p95 = float(lat.mean()), float(np.percentile(lat, 95))
    out.timings_ms = {s: float(np.mean([r.timings.get(s, 0.0) for _, r in kept])) for s in STAGES}
    out.timings_ms["total"] = float(np.mean([r.timings.get("total", 0.0) for _, r in kept]))
    return out


# --- the CLIP cache ---------------------------------------------------------------------------------


def _decode_pairs(ir: str, vis: str, n: int, size: tuple[int, int] | None = None) -> list[FramePair]:
    """The first ``n`` pairs of two files, decoded up front (the CLIP comparison times compute only),
    resized to ``size`` (width, height) when given."""
    import cv2

    from fusioncam.io.sources import open_source

    def fit(f: Frame) -> Frame:
        if size is None or f.size == tuple(size):
            return f
        return Frame(cv2.resize(f.image, tuple(size), interpolation=cv2.INTER_AREA), f.t, f.index)

    pairs = []
    with open_source(ir, loop=True) as s_ir, open_source(vis, loop=True) as s_vis:
        for _ in range(n):
            a, b = s_ir.read(), s_vis.read()
            if a is None or b is None:
                break
            pairs.append(FramePair(fit(a), fit(b)))
    if not pairs:
        raise FusioncamError(f"could not decode any frame pair from {ir} and {vis}")
    return pairs


def _clip_stand_in(clip_model: str, device: str, workdir: str) -> tuple[Any, str]:
    """A CLIP-using MGFusion fuser whose CLIP tower has random weights, and a line saying so.

    ``clip_model="tiny"`` is the tests' tiny CLIP (through the same weight-loading path as real
    weights); any other name is an open_clip architecture built with random weights.
    """

    from fusioncam.models.clip_encoder import ClipImageEncoder, save_tiny_clip
    from fusioncam.models.factory import create_model
    from fusioncam.models.fuser import MGFusionFuser

    if clip_model == "tiny":
        name, path = save_tiny_clip(workdir)
        encoder = ClipImageEncoder(name, "", weights=path)
        note = "tiny random CLIP (tests only: its cost is far below a real CLIP's)"
    else:
        encoder = ClipImageEncoder.with_random_weights(clip_model)
        name = clip_model
        note = (
            f"open_clip {clip_model} with RANDOM weights: a forward pass costs the same as with the "
            "real weights, so the ratio holds for them"
        )
    model = create_model("mgfusion_fast", clip_encoder=encoder, clip_model=name)
    fuser = MGFusionFuser(model=model, device=device)
    fuser.name = f"mgfusion_fast+clip[{name}]"
    return fuser, note


def run_clip_cache(cfg: BenchConfig, device: str) -> dict[str, Any]:
    """CLIP cost per fused frame with ``clip_refresh=K`` ("cached") vs 1 ("every_frame").

    The two engines share one fuser and process the same decoded frames alternately, frame by frame,
    so a change of machine load during the run weighs on both alike. Two ratios are reported: the
    plain one (mean CLIP ms per frame, K=1 over K) and a robust one that prices every CLIP computation
    of both engines at their pooled median (a load spike during one of the few computations of the
    cached engine then cannot swing the ratio) plus the measured cost of each reuse check.
    """
    pairs = _decode_pairs(cfg.ir, cfg.vis, cfg.clip_frames + CLIP_WARMUP, cfg.clip_size)
    with tempfile.TemporaryDirectory(prefix="fusioncam-bench-") as tmp:
        fuser, note = _clip_stand_in(cfg.clip_model, device, tmp)
        warm = FusionEngine(fuser, device=device, clip_refresh=1)
        for p in pairs[:CLIP_WARMUP]:  # warm-up (allocations, kernel selection), not timed
            warm.process(_restamp(p))
        engines = {
            "cached": FusionEngine(fuser, device=device, clip_refresh=cfg.clip_refresh),
            "every_frame": FusionEngine(fuser, device=device, clip_refresh=1),
        }
        timings: dict[str, list[dict[str, float]]] = {k: [] for k in engines}
        computed: list[float] = []  # CLIP ms of the frames where features were computed (both engines)
        reused: dict[str, list[float]] = {k: [] for k in engines}  # CLIP ms of the frames reusing them
        for i, p in enumerate(pairs[CLIP_WARMUP:]):
            order = list(engines.items())
            for key, eng in order if i % 2 == 0 else order[::-1]:  # neither engine always goes first
                r = eng.process(_restamp(p))
                timings[key].append(r.timings)
                (computed if r.clip_refreshed else reused[key]).append(r.timings["clip"])
        out: dict[str, Any] = {
            "fuser": fuser.name,
            "clip": note,
            "device": device,
            "frames": len(pairs) - CLIP_WARMUP,
            "size": list(pairs[0].vis.size),
        }
        for key, eng in engines.items():
            tms = timings[key]
            st = eng.stats()
            out[key] = {
                "clip_refresh": eng.clip_refresh,
                "clip_ms_per_frame": float(np.mean([t["clip"] for t in tms])),
                "fusion_ms_per_frame": float(np.mean([t["fusion"] for t in tms])),
                "fps": 1000.0 / float(np.mean([t["total"] for t in tms])),
                "clip_refreshes": st["clip_refreshes"],
                "scene_changes": st["scene_changes"],
            }
    cached, every = out["cached"], out["every_frame"]
    out["clip_cost_ratio"] = every["clip_ms_per_frame"] / max(cached["clip_ms_per_frame"], 1e-9)
    out["throughput_ratio"] = cached["fps"] / max(every["fps"], 1e-9)
    n = out["frames"]
    median = float(np.median(computed))
    robust = {k: (out[k]["clip_refreshes"] * median + sum(reused[k])) / n for k in engines}
    out["clip_ms_per_computation_median"] = median
    out["reuse_check_ms_mean"] = float(np.mean(reused["cached"])) if reused["cached"] else 0.0
    out["clip_cost_ratio_robust"] = robust["every_frame"] / max(robust["cached"], 1e-9)
    return out


def _restamp(p: FramePair) -> FramePair:
    """The pair with capture time 'now', so the engine's latency figure means compute time here."""
    now = time.monotonic()
    return FramePair(Frame(p.ir.image, now, p.ir.index, p.ir.raw), Frame(p.vis.image, now, p.vis.index))


# --- the whole benchmark ------------------------------------------------------------------------------


def _devices(requested: Sequence[str]) -> tuple[list[str], list[str]]:
    """(devices to run, notes about the ones skipped)."""
    notes = []
    if not requested:
        requested = ["cpu", "cuda"]
        explicit = False
    else:
        explicit = True
    out = []
    for d in requested:
        if d == "cpu":
            out.append("cpu")
            continue
        try:
            out.append(resolve_device(d))
        except FusioncamError:
            if explicit:
                raise
            notes.append(f"{d}: not measured, none here (name it with --device to require it)")
    return list(dict.fromkeys(out)), notes


def run_plan(methods: Sequence[str], devices: Sequence[str]) -> list[tuple[str, str]]:
    """The (device, method) runs, in order: each network method on every device, each classical
    method once, on the CPU, whatever the devices asked for.

    Classical fusers are OpenCV on the CPU, so a "cuda" run of them would time the same thing again;
    but they must run even when only ``--device cuda`` is asked for, since ``average`` is the baseline
    of every ratio (the CUDA rows are then compared with it on the same machine, in the same run)."""
    from fusioncam.processing.fusers import fuser_info

    classical = [m for m in methods if fuser_info(m).classical]
    plan = [("cpu", m) for m in classical]
    for device in devices:
        plan += [(device, m) for m in methods if m not in classical]
    return plan


def run_bench(cfg: BenchConfig) -> dict[str, Any]:
    """Every run of the benchmark; a plain dict (the JSON report), formatted by :func:`format_report`."""
    for p in (cfg.ir, cfg.vis):
        if not Path(p).exists():
            raise FusioncamError(f"input not found: {p}")
    if cfg.frames < 2:
        raise FusioncamError(f"--frames must be >= 2, got {cfg.frames}")
    methods = list(cfg.methods) or list_fusers()
    unknown = [m for m in methods if m not in list_fusers()]
    if unknown:
        raise FusioncamError(
            f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(list_fusers())}"
        )
    if BASELINE not in methods:
        methods.insert(0, BASELINE)  # the baseline of every ratio is measured in the same run
    devices, notes = _devices(cfg.devices)
    rig = cfg.rig
    if isinstance(rig, str) and rig == "synthetic":
        first = _decode_pairs(cfg.ir, cfg.vis, 1)[0]
        H = np.array([[1.01, 0.0, -3.0], [0.0, 1.01, -2.0], [0.0, 0.0, 1.0]])
        rig = Rig(H, first.ir.size, first.vis.size, method="bench-synthetic")
        notes.append("registration: a synthetic rig (1% scale, a few px shift) so that the warp is timed")
    report: dict[str, Any] = {
        "inputs": {"ir": cfg.ir, "vis": cfg.vis},
        "machine": _machine(),
        "settings": {
            "frames": cfg.frames,
            "seconds": cfg.seconds,
            "clip_refresh": cfg.clip_refresh,
            "clip_frames": cfg.clip_frames,
            "modes": list(cfg.modes),
        },
        "notes": notes,
        "runs": [],
        "clip_cache": [],
    }
    for device, method in run_plan(methods, devices):
        try:
            engine = FusionEngine(method, rig=rig, device=device, clip_refresh=cfg.clip_refresh)
        except FusioncamError as e:
            engine = _untrained_stand_in(method, device, cfg.clip_refresh, rig)
            if engine is None:
                report["notes"].append(f"{method} on {device}: skipped ({e})")
                continue
            report["notes"].append(
                f"{method} on {device}: no trained weights ({e}); timed with the same architecture "
                "and RANDOM weights instead (its speed does not depend on the weights' values)"
            )
        for mode in cfg.modes:
            _say(cfg, f"{device} {method} {mode} ...")
            r = run_pipeline(
                cfg.ir, cfg.vis, engine, paced=mode == "paced", frames=cfg.frames, seconds=cfg.seconds
            )
            report["runs"].append({**r.__dict__, "keeps_up": r.keeps_up})
    if cfg.clip_frames > 0:
        for device in devices:
            _say(cfg, f"{device} CLIP cache K={cfg.clip_refresh} vs K=1 ...")
            try:
                report["clip_cache"].append(run_clip_cache(cfg, device))
            except FusioncamError as e:
                report["notes"].append(f"CLIP cache on {device}: skipped ({e})")
    _add_ratios(report)
    return report


def _untrained_stand_in(method: str, device: str, clip_refresh: int, rig: Rig | None) -> FusionEngine | None:
    """For "mgfusion" without shipped weights: the default architecture with random weights."""
    if method != "mgfusion":
        return None
    try:
        from fusioncam.models.factory import create_model
        from fusioncam.models.fuser import DEFAULT_WEIGHTS, MGFusionFuser

        fuser = MGFusionFuser(model=create_model(DEFAULT_WEIGHTS), device=device)
    except (FusioncamError, ImportError):
        return None
    fuser.name = f"mgfusion[{DEFAULT_WEIGHTS}, random weights]"
    return FusionEngine(fuser, rig=rig, device=device, clip_refresh=clip_refresh)


def _machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    try:
        import cv2

        info["opencv"] = cv2.__version__
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:  # pragma: no cover
        pass
    return info


def _add_ratios(report: dict[str, Any]) -> None:
    base = {(r["device"], r["mode"]): r["fps"] for r in report["runs"] if r["method"] == BASELINE}
    cpu_base = {m: f for (d, m), f in base.items() if d == "cpu"}
    for r in report["runs"]:
        b = base.get((r["device"], r["mode"])) or cpu_base.get(r["mode"])
        r["fps_vs_average"] = r["fps"] / b if b else None


def format_report(report: dict[str, Any], command: str = "") -> str:
    """The report as text tables (the format recorded in docs/bench.md)."""
    m = report["machine"]
    lines = []
    if command:
        lines.append(f"$ {command}")
    lines.append(
        f"inputs: {report['inputs']['ir']} + {report['inputs']['vis']}; machine: {m.get('cpu_count')} CPU "
        f"cores, torch {m.get('torch')}, OpenCV {m.get('opencv')}, GPU: {m.get('cuda') or 'none'}"
    )
    s = report["settings"]
    lines.append(
        f"each run: up to {s['frames']} fused frames or {s['seconds']:g} s; "
        "fps ratios against 'average' in the same mode, measured in this run (classical fusers run on"
        " the CPU, so the CUDA rows are compared with the CPU's 'average')"
    )
    lines.append("")
    mw = max([10, *(len(r["method"]) for r in report["runs"])])
    hdr = (
        f"{'device':<7} {'method':<{mw}} {'mode':<8} {'fused fps':>9} {'x average':>9} "
        f"{'keeps up':>8} {'latency ms':>10} {'p95':>6} {'skipped':>7}"
    )
    lines += [hdr, "-" * len(hdr)]
    for r in report["runs"]:
        ratio = f"{r['fps_vs_average']:.3f}" if r.get("fps_vs_average") else "-"
        keeps = ("yes" if r["keeps_up"] else "NO") if r["mode"] == "paced" else "-"
        lat = f"{r['latency_ms_mean']:.1f}" if r["mode"] == "paced" else "(queued)"
        p95 = f"{r['latency_ms_p95']:.0f}" if r["mode"] == "paced" else "-"
        lines.append(
            f"{r['device']:<7} {r['method']:<{mw}} {r['mode']:<8} {r['fps']:>9.1f} {ratio:>9} "
            f"{keeps:>8} {lat:>10} {p95:>6} {r['skipped_pairs']:>7}"
            + (f"  error: {r['error']}" if r["error"] else "")
        )
    lines.append("")
    lines.append(
        "mean ms per fused frame and stage (capture = the source's read/decode, wait = capture to "
        "worker pick-up)"
    )
    hdr = f"{'device':<7} {'method':<{mw}} {'mode':<8} " + " ".join(f"{st[:8]:>8}" for st in STAGES)
    lines += [hdr, "-" * len(hdr)]
    for r in report["runs"]:
        t = r["timings_ms"]
        lines.append(
            f"{r['device']:<7} {r['method']:<{mw}} {r['mode']:<8} "
            + " ".join(f"{t.get(st, 0.0):>8.2f}" for st in STAGES)
        )
    for c in report["clip_cache"]:
        k, one = c["cached"], c["every_frame"]
        lines += [
            "",
            f"CLIP feature cache on {c['device']}: {c['fuser']}, {c['frames']} frames at "
            f"{c['size'][0]}x{c['size'][1]} (CLIP sees 224x224 whatever the frame size; the network's "
            "own cost scales with it)",
            f"  CLIP: {c['clip']}",
            f"  K=1 (every frame): CLIP {one['clip_ms_per_frame']:.1f} ms per fused frame "
            f"({one['clip_refreshes']} computations), fusion {one['fusion_ms_per_frame']:.1f} ms, "
            f"{one['fps']:.2f} fused fps",
            f"  K={k['clip_refresh']}: CLIP {k['clip_ms_per_frame']:.1f} ms per fused frame "
            f"({k['clip_refreshes']} computations, {k['scene_changes']} on a scene change), "
            f"fusion {k['fusion_ms_per_frame']:.1f} ms, {k['fps']:.2f} fused fps",
            f"  => CLIP cost per fused frame {c['clip_cost_ratio']:.1f}x lower with K={k['clip_refresh']} "
            f"(robust: {c['clip_cost_ratio_robust']:.1f}x, pricing each computation at the pooled median "
            f"{c['clip_ms_per_computation_median']:.0f} ms and each reuse check at its measured "
            f"{c['reuse_check_ms_mean']:.2f} ms); fused throughput x{c['throughput_ratio']:.2f}",
        ]
    if report["notes"]:
        lines += ["", *[f"note: {n}" for n in report["notes"]]]
    return "\n".join(lines)
