"""``fusioncam bench``: throughput and latency of the live pipeline per method, stage and device.

A thin shell over :func:`fusioncam.evaluation.bench.run_bench`: flags in, progress on stderr, the tables on
stdout, and the JSON report (written to a temporary name, renamed when complete) with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys

from fusioncam.errors import FusioncamError

__all__ = ["add_arguments", "run"]


def _csv(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list, e.g. average,laplacian")
    return items


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ir", help="IR video (default: the built-in sample clip assets/samples/ir_0111_1716.mp4)"
    )
    p.add_argument("--vis", help="VIS video (default: assets/samples/vis_0111_1716.mp4)")
    p.add_argument(
        "--methods",
        type=_csv,
        metavar="A,B",
        help="fusion methods (default: all registered; 'average' is always run as the baseline)",
    )
    p.add_argument(
        "--device", type=_csv, metavar="cpu,cuda", help="devices (default: cpu, and cuda when available)"
    )
    p.add_argument("--frames", type=int, default=150, help="fused frames per run (default: 150)")
    p.add_argument(
        "--seconds",
        type=float,
        default=8.0,
        help="stop a run after this many seconds if --frames is not reached (default: 8)",
    )
    p.add_argument(
        "--clip-refresh",
        type=int,
        default=8,
        metavar="K",
        help="CLIP refresh interval compared against K=1 (default: 8)",
    )
    p.add_argument(
        "--clip-frames",
        type=int,
        default=24,
        help="frames of the CLIP cache comparison; 0 skips it (default: 24)",
    )
    p.add_argument(
        "--clip-model",
        default="ViT-B-32",
        help="open_clip architecture of the random-weight CLIP used to time the cache "
        "(default: ViT-B-32; 'tiny' for a quick check)",
    )
    p.add_argument(
        "--clip-size",
        default="160x120",
        metavar="WxH",
        help="frame size of the CLIP cache comparison, to keep it short on a CPU; 'input' "
        "keeps the video's size (default: 160x120)",
    )
    p.add_argument(
        "--modes",
        type=_csv,
        default=["unpaced", "paced"],
        metavar="unpaced,paced",
        help="unpaced: as fast as possible, every pair; paced: files at their fps as cameras",
    )
    p.add_argument(
        "--rig",
        default="synthetic",
        help="rig YAML for the IR->VIS warp, 'none', or 'synthetic' (default: a small synthetic warp, so "
        "that registration is timed; the sample clips are already registered)",
    )
    p.add_argument("--json", metavar="PATH", help="also write the full report as JSON")


def run(args: argparse.Namespace) -> int:
    from fusioncam.evaluation.bench import BenchConfig, default_inputs, format_report, run_bench
    from fusioncam.io.outputs import atomic_write_bytes, check_file_outputs

    if (args.ir is None) != (args.vis is None):
        raise FusioncamError("give both --ir and --vis, or neither (the built-in sample clips)")
    ir, vis = (args.ir, args.vis) if args.ir else default_inputs()
    bad = [m for m in args.modes if m not in ("unpaced", "paced")]
    if bad:
        raise FusioncamError(f"unknown mode(s) {', '.join(bad)}; use unpaced and/or paced")
    if args.clip_refresh < 1:
        raise FusioncamError(f"--clip-refresh must be >= 1, got {args.clip_refresh}")
    if not (math.isfinite(args.seconds) and args.seconds > 0):
        raise FusioncamError(f"--seconds must be a positive number, got {args.seconds}")
    # checked before the benchmark runs for minutes, not after
    (json_path,) = check_file_outputs([("--json", args.json)], inputs=[ir, vis, args.rig])
    if args.clip_frames < 0:
        raise FusioncamError(f"--clip-frames must be >= 0, got {args.clip_frames}")
    clip_size = None
    if args.clip_size != "input":
        try:
            w, h = (int(v) for v in args.clip_size.lower().split("x"))
        except ValueError:
            raise FusioncamError(
                f"--clip-size must be WIDTHxHEIGHT or 'input', got {args.clip_size!r}"
            ) from None
        if w < 16 or h < 16:
            raise FusioncamError(f"--clip-size must be at least 16x16, got {args.clip_size}")
        clip_size = (w, h)
    if args.rig in ("synthetic", "none"):
        rig = None if args.rig == "none" else "synthetic"
    else:
        from fusioncam.processing.registration import Rig

        rig = Rig.load(args.rig)
    cfg = BenchConfig(
        ir=ir,
        vis=vis,
        methods=args.methods or (),
        devices=args.device or (),
        frames=args.frames,
        seconds=args.seconds,
        clip_refresh=args.clip_refresh,
        clip_frames=args.clip_frames,
        clip_model=args.clip_model,
        clip_size=clip_size,
        rig=rig,
        modes=args.modes,
        progress=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    report = run_bench(cfg)
    command = (
        "fusioncam bench " + " ".join(shlex.quote(a) for a in sys.argv[2:])
        if sys.argv[1:2] == ["bench"]
        else ""
    )
    print(format_report(report, command))
    if json_path is not None:
        atomic_write_bytes(json_path, json.dumps(report, indent=2, default=str).encode())
    return 0
