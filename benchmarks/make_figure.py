"""Figure for docs/mgfusion.md: test pairs with their sources and fused results, one row per pair.

Columns: IR | VIS | each requested method (classical fusers, mgfusion). Every fuser works on the VIS
luminance (Y of YCrCb) as in the product; the VIS column shows the colour image, fused columns show the
fused luminance in gray (the quantity the metrics compare). Tiles are scaled to one height and labelled.

    python benchmarks/make_figure.py --out docs/figures/mgfusion_examples.png \
        --method max --method gff --method mgfusion --pair m3svd/0114_1551_0010 --height 300

Without ``--pair`` the first test pair of each dataset is used. ``--weights FILE`` evaluates a given
mgfusion checkpoint instead of the shipped default; ``--method mgfusion:NAME`` adds a column of the
checkpoint NAME (a shipped name or a file), so that two checkpoints can stand side by side.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from fusioncam.errors import FusioncamError
from fusioncam.evaluation.dataset import load_split
from fusioncam.evaluation.evaluate import load_pair
from fusioncam.processing.color import to_bgr
from fusioncam.processing.fusers import create_fuser


def _tile(img: np.ndarray, height: int, label: str) -> np.ndarray:
    img = to_bgr(img) if img.ndim == 2 else img
    h, w = img.shape[:2]
    img = cv2.resize(img, (round(w * height / h), height), interpolation=cv2.INTER_AREA)
    scale = height / 300
    thick = max(1, round(2 * scale))
    org = (round(8 * scale), round(26 * scale))
    # A dark outline under white text keeps the label readable on any background.
    cv2.putText(img, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(img, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, (255, 255, 255), thick, cv2.LINE_AA)
    return img


def make_figure(
    pairs: list, methods: list[str], height: int = 220, weights: str | None = None, gap: int = 4
) -> np.ndarray:
    fusers = {}
    for m in methods:
        method, _, ckpt = m.partition(":")  # "mgfusion:mgfusion_noclip": a column per checkpoint
        ckpt = ckpt or (weights if method == "mgfusion" else "")
        label = Path(ckpt).stem if ":" in m else m
        fusers[label] = create_fuser(method, weights=ckpt) if ckpt else create_fuser(method)
    rows = []
    for pair in pairs:
        ir, vis_y, vis = load_pair(pair)
        tiles = [_tile(ir, height, f"IR {pair.dataset}"), _tile(vis, height, "VIS")]
        for m, f in fusers.items():
            tiles.append(_tile(f.fuse(ir, vis_y), height, m))
        row = tiles[0]
        for t in tiles[1:]:
            row = np.hstack([row, np.full((height, gap, 3), 255, np.uint8), t])
        rows.append(row)
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    out = rows[0]
    for r in rows[1:]:
        out = np.vstack([out, np.full((gap, width, 3), 255, np.uint8), r])
    return out


def _select(pairs_by_ds: dict, wanted: list[str] | None) -> list:
    if not wanted:
        return [ps[0] for ps in pairs_by_ds.values() if ps]
    out = []
    for spec in wanted:
        ds, _, stem = spec.partition("/")
        match = [p for p in pairs_by_ds.get(ds, []) if p.stem == stem]
        if not match:
            raise FusioncamError(f"pair {spec} is not in the test split")
        out.append(match[0])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/figures/mgfusion_examples.png")
    ap.add_argument("--method", action="append", help="fusion method column (repeatable)")
    ap.add_argument("--pair", action="append", help="dataset/stem of a test pair (repeatable)")
    ap.add_argument("--weights", help="mgfusion checkpoint (default: the shipped preset)")
    ap.add_argument("--height", type=int, default=220)
    ap.add_argument("--data", help="shared data folder")
    args = ap.parse_args(argv)
    try:
        pairs = _select(load_split("test", args.data), args.pair)
        img = make_figure(pairs, args.method or ["laplacian", "mgfusion"], args.height, args.weights)
    except FusioncamError as e:
        print(f"make_figure: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp" + out.suffix)
    if not cv2.imwrite(str(tmp), img, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        print(f"make_figure: error: cannot write {out}", file=sys.stderr)
        return 2
    tmp.replace(out)
    print(f"wrote {out} ({img.shape[1]}x{img.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
