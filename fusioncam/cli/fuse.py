"""``fusioncam fuse``: fuse IR/VIS images, image folders or videos offline.

A thin shell over :func:`fusioncam.offline.fuse.fuse_files`: parse, draw a progress bar, print the summary
and the warnings (pairing mismatches, size differences) on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import sys
import threading

from fusioncam.errors import FusioncamError
from fusioncam.offline.pairing import PAIR_RULES

__all__ = ["add_arguments", "run"]


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


MAX_FPS = 1000.0


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return v


def _fps(text: str) -> float:
    v = _positive_float(text)
    if v > MAX_FPS:  # video writers reject absurd rates (and the sources treat them as unknown)
        raise argparse.ArgumentTypeError(f"must be at most {MAX_FPS:g} frames/s, got {text}")
    return v


def add_arguments(p: argparse.ArgumentParser) -> None:
    from fusioncam.offline.fuse import DEFAULT_METHOD
    from fusioncam.processing.fusers import list_fusers

    p.add_argument(
        "--ir",
        required=True,
        metavar="SRC",
        help="IR input: an image, a folder or glob of images, or a video",
    )
    p.add_argument("--vis", required=True, metavar="SRC", help="VIS input, same kinds as --ir")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="an image file, a folder (PNG frames) or a video (.mp4 mp4v, .avi MJPG) at the VIS frame rate",
    )
    p.add_argument(
        "--rig", metavar="RIG.yaml", help="IR->VIS homography from `fusioncam calibrate` (default: identity)"
    )
    p.add_argument(
        "--method",
        default=DEFAULT_METHOD,
        help=f"fusion method: {', '.join(list_fusers())} (default {DEFAULT_METHOD})",
    )
    p.add_argument("--side-by-side", metavar="PATH", help="also write IR (registered) | VIS | fused to PATH")
    p.add_argument("--frames-dir", metavar="DIR", help="also write every fused frame as PNG into DIR")
    p.add_argument(
        "--pair-by",
        choices=PAIR_RULES,
        default="auto",
        help="pair frames by index, by timestamp, or auto (default): by timestamp if frame rates differ",
    )
    p.add_argument(
        "--tolerance-ms",
        type=_positive_float,
        metavar="MS",
        help="largest IR/VIS time difference when pairing by time (default: half a frame)",
    )
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="device of network fusers (default auto)",
    )
    p.add_argument(
        "--weights",
        metavar="FILE|NAME",
        help="checkpoint of a network fuser such as mgfusion: a file, or a shipped name (mgfusion_noclip)",
    )
    p.add_argument(
        "--clip-weights",
        metavar="FILE",
        help="CLIP weights for a CLIP-guided network (default: the local open_clip/Hugging Face cache)",
    )
    p.add_argument("--max-frames", type=_positive_int, metavar="N", help="stop after N frame pairs")
    p.add_argument(
        "--fps",
        type=_fps,
        help="frame rate of image inputs and of a video made from them (default 30)",
    )


@contextlib.contextmanager
def _terminate_as_interrupt():
    """Treat SIGTERM (``kill``, a closing terminal's job control) like Ctrl-C while fusing, so the
    partial outputs are deleted on the way out instead of left behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace) -> int:
    from fusioncam.offline.fuse import fuse_files
    from fusioncam.progress import ProgressBar

    bar: ProgressBar | None = None

    def progress(done: int, total: int | None) -> None:
        nonlocal bar
        if bar is None:
            bar = ProgressBar(total=total, label="fuse")
        bar.update(done - bar.n)

    try:
        with _terminate_as_interrupt():
            result = fuse_files(
                args.ir,
                args.vis,
                args.output,
                rig=args.rig,
                method=args.method,
                side_by_side=args.side_by_side,
                frames_dir=args.frames_dir,
                pair_by=args.pair_by,
                tolerance=args.tolerance_ms / 1000.0 if args.tolerance_ms else None,
                device=args.device,
                weights=args.weights,
                clip_weights=args.clip_weights,
                max_frames=args.max_frames,
                fps=args.fps,
                progress=progress,
            )
    except (FusioncamError, KeyboardInterrupt):
        if bar is not None:
            bar.abort()
        raise
    outs = ", ".join(str(p) for p in result.outputs)
    note = f"with {result.method} -> {outs}"
    if bar is not None:
        bar.abort()  # erase the bar; the summary below uses the loop's own timing
    print(
        f"fuse: {result.frames} frames in {result.seconds:.1f} s ({result.fps:.1f} frames/s) {note}",
        file=sys.stderr,
    )
    for w in result.warnings:
        print(f"fusioncam fuse: warning: {w}", file=sys.stderr)
    return 0
