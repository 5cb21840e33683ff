"""Temporal stability of the fusers on the real synchronized videos of ../shared/data/video.

A fused stream must not flicker: it may change from frame to frame only as much as its inputs do. For
each clip, this script fuses the first N frame pairs with every classical fuser (and, with
``--mgfusion``, the shipped CPU network) and prints two flicker figures as ratios against the more
flickering of the two inputs, measured in the same run:

- ``global``: the mean absolute temporal second difference of the frame mean,
  ``|m[t] - (m[t-1] + m[t+1]) / 2|``, i.e. brightness pumping of the whole picture;
- ``local``: the same second difference per pixel, averaged over the frame, i.e. shimmering regions.

A ratio near or below 1 means the fuser adds no flicker of its own. This decides which fusers the live
app offers (``FuserInfo.flickers``). Results and the command are recorded in docs/fusers_video.md.

Usage: ``python benchmarks/flicker.py [--frames 60] [--clips 0111_1716,0117_1620] [--mgfusion]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from fusioncam.calibration.images import read_frames
from fusioncam.evaluation.dataset import default_data_dir
from fusioncam.processing.fusers import create_fuser, fuser_info, list_fusers


def flicker(frames: list[np.ndarray]) -> tuple[float, float]:
    """(global, local) temporal second difference, in gray levels; needs at least 3 frames."""
    x = np.stack([f.astype(np.float32) for f in frames])
    m = x.mean(axis=(1, 2))
    glob = float(np.abs(m[1:-1] - 0.5 * (m[:-2] + m[2:])).mean())
    local = float(np.abs(x[1:-1] - 0.5 * (x[:-2] + x[2:])).mean())
    return glob, local


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="shared data folder (default: ../shared/data)")
    ap.add_argument("--frames", type=int, default=60, help="frame pairs per clip (default 60)")
    ap.add_argument("--clips", default="0111_1716,0117_1620", help="comma list of clips in video/")
    ap.add_argument("--mgfusion", action="store_true", help="also the shipped CPU network (slow)")
    args = ap.parse_args(argv)
    video = (args.data or default_data_dir()) / "video"
    if not (video / "ir").is_dir():
        print(f"skipped: no synchronized videos at {video}", file=sys.stderr)
        return 0
    methods = list_fusers(classical_only=True) + (["mgfusion"] if args.mgfusion else [])
    print(
        f"# python benchmarks/flicker.py --frames {args.frames} --clips {args.clips}"
        + (" --mgfusion" * args.mgfusion)
    )
    print("# ratios against the more flickering input of the same clip and frames (1 = as much as it)")
    print(f"{'clip':10s} {'method':11s} {'global':>8s} {'local':>8s}  offered live")
    for clip in args.clips.split(","):
        ir = read_frames(video / "ir" / f"{clip}.mp4", limit=args.frames)
        vis = read_frames(video / "vis" / f"{clip}.mp4", limit=args.frames)
        n = min(len(ir), len(vis))
        if n < 3:
            print(f"{clip}: fewer than 3 frame pairs, skipped", file=sys.stderr)
            continue
        ir, vis = ir[:n], vis[:n]
        if ir[0].shape != vis[0].shape:
            ir = [cv2.resize(f, (vis[0].shape[1], vis[0].shape[0])) for f in ir]
        base = [max(a, b) for a, b in zip(flicker(ir), flicker(vis), strict=True)]
        print(f"{clip:10s} {'(inputs)':11s} {base[0]:8.3f} {base[1]:8.3f}  gray levels, {n} frames")
        for name in methods:
            fuser = create_fuser(name)
            g, loc = flicker([fuser.fuse(a, b) for a, b in zip(ir, vis, strict=True)])
            live = "no" if fuser_info(name).flickers else "yes"
            print(f"{clip:10s} {name:11s} {g / base[0]:8.2f} {loc / base[1]:8.2f}  {live}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
