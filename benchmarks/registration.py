"""Evaluate the three calibration methods against ground-truth homographies in ../shared/data/registration.

Sets (see the data README and the ``_about`` entries of the JSON files):

- ``superfusion_roadscene``: 20 pairs ``ir_warp/<n>`` (deliberately misaligned IR) vs ``vi/<n>``;
  ``homography_fit.json[n]["H_warp_to_ir"]`` maps ir_warp pixels to aligned-IR (= VIS) pixels, so it is
  the true ``vis_H_ir``.
- ``roadscene_flir``: 221 pairs ``ir/<n>.png`` (full 640x512 FLIR frame) vs ``vis/<n>.jpg`` (a VIS crop);
  ``homographies.json[n]["H_crop_to_full"]`` maps VIS-crop pixels into the IR frame, so the true
  ``vis_H_ir`` is its inverse.

Error: mean distance, in VIS pixels, between the estimated and true IR->VIS mappings over a 10x10 grid
spanning the VIS image (the IR points the true H sends there are mapped by both Hs)
(:func:`fusioncam.calibration.report.transfer_error`).

Methods:
- ``auto``: the automatic method on the real image pairs. Success = a confident result; refused pairs
  count as failures in every column (error = infinity). ``wrong+confident`` counts confident results
  more than 5 px off: silent failures, which must stay at 0.
- ``points``: 8 well-spread correspondences taken from the true H (exact, and with 1 px click noise).
- ``target``: a 9x6 chessboard rendered in 4 poses through each pair's true H, with thermal-like
  contrast on the IR side (low contrast, blur, noise, inverted polarity in every other view).

Usage: ``python benchmarks/registration.py [--set NAME] [--limit N] [--methods auto,points,target]``
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from fusioncam.calibration import (
    BoardSpec,
    estimate_from_points,
    estimate_from_target,
    register_auto,
    render_board,
)
from fusioncam.calibration.auto import patch_agreement
from fusioncam.calibration.images import content_mask, to_gray8
from fusioncam.calibration.report import apply_h, transfer_error
from fusioncam.errors import FusioncamError
from fusioncam.evaluation.dataset import default_data_dir

SETS = ("superfusion_roadscene", "roadscene_flir")
# Reference only (not part of "all"):
# - superfusion_aligned: the *aligned* SuperFusion pairs ir/<n> vs vi/<n> with the identity as truth, i.e.
#   how well RoadScene's own IR/VIS registration agrees with the method;
# - superfusion_same_modality: ir_warp/<n> vs the aligned ir/<n> (IR on both sides) with the same truth as
#   superfusion_roadscene, i.e. the method's error where the truth's premise (aligned IR = VIS) holds
#   exactly and only the elastic part of the warp and the method itself remain.
EXTRA_SETS = ("superfusion_aligned", "superfusion_same_modality")
METHODS = ("auto", "points", "points_noisy", "target")
# The sets read from superfusion_roadscene/: (IR folder, VIS folder, whether the truth is the fitted
# H_warp_to_ir of the pair; otherwise the identity).
SUPERFUSION = {
    "superfusion_roadscene": ("ir_warp", "vi", True),
    "superfusion_same_modality": ("ir_warp", "ir", True),
    "superfusion_aligned": ("ir", "vi", False),
}


def iter_pairs(
    root: Path, name: str, limit: int | None, stride: int = 1
) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(name, ir, vis, true vis_H_ir) for each pair of a set, images as OpenCV reads them."""
    base = root / name
    if name in SUPERFUSION:
        ir_dir, vis_dir, warped = SUPERFUSION[name]
        base = root / "superfusion_roadscene"
        gt = json.loads((base / "homography_fit.json").read_text())
        items = [
            (k.split("/")[-1], np.array(v["H_warp_to_ir"]) if warped else np.eye(3))
            for k, v in gt.items()
            if k != "_about"
        ]
        paths = [(n, base / ir_dir / n, base / vis_dir / n, H) for n, H in items]
    elif name == "roadscene_flir":
        gt = json.loads((base / "homographies.json").read_text())
        items = [(k, np.linalg.inv(np.array(v["H_crop_to_full"]))) for k, v in gt.items() if k != "_about"]
        paths = [(n, base / "ir" / f"{n}.png", base / "vis" / f"{n}.jpg", H) for n, H in items]
    else:
        raise FusioncamError(f"unknown set {name!r}; choose from {', '.join(SETS + EXTRA_SETS)}")
    for n, ir_p, vis_p, H in paths[::stride][:limit]:
        ir = cv2.imread(str(ir_p), cv2.IMREAD_UNCHANGED)
        vis = cv2.imread(str(vis_p), cv2.IMREAD_UNCHANGED)
        if ir is None or vis is None:
            raise FusioncamError(f"cannot read pair {n} in {base}")
        yield n, ir, vis, H / H[2, 2]


def _size(img: np.ndarray) -> tuple[int, int]:
    return img.shape[1], img.shape[0]


def run_auto(ir, vis, H_true, rng) -> tuple[bool, float, dict]:
    res = register_auto(ir, vis)
    err = transfer_error(res.vis_H_ir, H_true, _size(vis)) if res.vis_H_ir is not None else float("inf")
    d = res.details
    keys = ("ecc_correlation", "patches_agreeing", "patches_tested", "patch_coverage", "model")
    info = {"confidence": res.confidence, **{k: d[k] for k in keys if k in d}}
    # The same local check under the *true* H: how well the ground truth itself fits the image content
    # (RoadScene's VIS/IR pairs are registered by hand, and near objects show parallax).
    ir_g, vis_g = to_gray8(ir), to_gray8(vis)
    agree, tested, *_ = patch_agreement(
        vis_g, content_mask(vis_g), ir_g, content_mask(ir_g), np.linalg.inv(H_true)
    )
    info["gt_patches_agreeing"] = agree
    return res.confident, err, info


def _true_points(ir, vis, H_true, rng) -> tuple[np.ndarray, np.ndarray]:
    """Up to 8 VIS points spread over the frame (a jittered 3x3 grid minus the centre) whose IR partners
    fall inside the IR image, as a person would click them."""
    (iw, ih), (w, h) = _size(ir), _size(vis)
    g = np.array([[x, y] for y in (0.2, 0.5, 0.8) for x in (0.2, 0.5, 0.8) if (x, y) != (0.5, 0.5)])
    vis_pts = (g + rng.uniform(-0.05, 0.05, g.shape)) * [w - 1, h - 1]
    ir_pts = apply_h(np.linalg.inv(H_true), vis_pts)
    inside = (ir_pts[:, 0] >= 0) & (ir_pts[:, 1] >= 0) & (ir_pts[:, 0] <= iw - 1) & (ir_pts[:, 1] <= ih - 1)
    return ir_pts[inside], vis_pts[inside]


def run_points(ir, vis, H_true, rng, noise: float = 0.0) -> tuple[bool, float]:
    ir_pts, vis_pts = _true_points(ir, vis, H_true, rng)
    if noise:
        ir_pts = np.clip(ir_pts + rng.normal(0, noise, ir_pts.shape), 0, np.array(_size(ir)) - 1)
        vis_pts = vis_pts + rng.normal(0, noise, vis_pts.shape)
    rig, _ = estimate_from_points(ir_pts, vis_pts, _size(ir), _size(vis))
    return True, transfer_error(rig.vis_H_ir, H_true, _size(vis))


BOARD = BoardSpec.parse("chessboard:9x6")


def run_target(ir, vis, H_true, rng) -> tuple[bool, float]:
    """Board views placed inside the VIS frame, rendered into IR through the inverse of the true H."""
    (iw, ih), (vw, vh) = _size(ir), _size(vis)
    irs, viss = [], []
    for k in range(4):
        s = min(vw, vh) / 480.0 * rng.uniform(0.55, 0.7)
        a = np.radians(rng.uniform(-10, 10))
        tx = (0.05 + 0.45 * (k % 2)) * vw + rng.uniform(0, 0.05 * vw)
        ty = (0.05 + 0.4 * (k // 2)) * vh + rng.uniform(0, 0.05 * vh)
        vis_H_board = np.array(
            [[s * np.cos(a), -s * np.sin(a), tx], [s * np.sin(a), s * np.cos(a), ty], [0, 0, 1]]
        )
        v = render_board(BOARD, (vw, vh), vis_H_board)
        i = render_board(BOARD, (iw, ih), np.linalg.inv(H_true) @ vis_H_board).astype(np.float32)
        i = 110 + (i - i.min()) * (30.0 / max(1.0, float(i.max() - i.min())))
        if k % 2:
            i = 250 - i
        i = cv2.GaussianBlur(i, (0, 0), 1.0) + rng.normal(0, 1.5, i.shape)
        irs.append(np.clip(i, 0, 255).astype(np.uint8))
        viss.append(v)
    try:
        rig, _ = estimate_from_target(irs, viss, BOARD)
    except FusioncamError:
        return False, float("inf")
    return True, transfer_error(rig.vis_H_ir, H_true, (vw, vh))


RUNNERS: dict[str, Callable] = {
    "auto": run_auto,
    "points": run_points,
    "points_noisy": lambda ir, vis, H, rng: run_points(ir, vis, H, rng, noise=1.0),
    "target": run_target,
}


def summarise(rows: list[tuple[bool, float, float]]) -> dict[str, float]:
    ok = np.array([r[0] for r in rows])
    err = np.array([r[1] if r[0] else np.inf for r in rows])
    raw = np.array([r[1] for r in rows])
    return {
        "pairs": len(rows),
        "success": float(ok.mean()),
        "median_px": float(np.median(err)),
        "p90_px": float(np.percentile(err, 90)) if np.isfinite(err).all() else _pct_inf(err, 90),
        "under5": float((err < 5).mean()),
        "wrong_confident": int((ok & (raw >= 5)).sum()),
        "refused_but_good": int((~ok & (raw < 5)).sum()),
        "gt_patch_share": _share(rows, "gt_patches_agreeing"),
        "patch_share": _share(rows, "patches_agreeing"),
        "time_s": float(np.mean([r[2] for r in rows])),
    }


def _pair_str(s: dict) -> str:
    if not np.isfinite(s["patch_share"]):
        return f"{'-':>13s}"
    return f"{s['patch_share']:>6.2f}/{s['gt_patch_share']:<6.2f}"


def _share(rows: list, key: str) -> float:
    """Median share of tested image patches that agree with an H (the found one, or the true one)."""
    v = [r[4][key] / r[4]["patches_tested"] for r in rows if r[4].get("patches_tested") and key in r[4]]
    return float(np.median(v)) if v else float("nan")


def _pct_inf(err: np.ndarray, q: float) -> float:
    s = np.sort(err)
    k = int(np.ceil(q / 100 * len(s))) - 1
    return float(s[max(0, k)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="registration data folder")
    ap.add_argument("--set", choices=(*SETS, *EXTRA_SETS, "all"), default="all")
    ap.add_argument("--limit", type=int, default=None, help="first N pairs of each set (after --stride)")
    ap.add_argument("--stride", type=int, default=1, help="every N-th pair (a spread-out subset)")
    ap.add_argument("--methods", default=",".join(METHODS), help=f"comma list of {', '.join(METHODS)}")
    ap.add_argument("--verbose", action="store_true", help="one line per pair")
    ap.add_argument("--json", type=Path, help="also write the per-pair results here")
    args = ap.parse_args(argv)
    root = args.data or default_data_dir() / "registration"
    if not root.is_dir():
        print(f"registration data not found at {root} (set FUSIONCAM_DATA or --data)", file=sys.stderr)
        return 2
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in RUNNERS]
    if bad:
        print(f"unknown method(s) {', '.join(bad)}; choose from {', '.join(METHODS)}", file=sys.stderr)
        return 2
    sets = SETS if args.set == "all" else (args.set,)
    print(f"# {' '.join(['python', *sys.argv])}")
    print(f"# {platform.node()} | {platform.processor() or platform.machine()} | OpenCV {cv2.__version__}")
    header = (
        f"{'set':26s} {'method':13s} {'pairs':>5s} {'success':>8s} {'median':>7s} {'p90':>7s} "
        f"{'<5px':>6s} {'wrong+conf':>10s} {'refused-ok':>10s} {'s/pair':>7s} {'agree ours/GT':>13s}"
    )
    print(header)
    everything = {}
    for name in sets:
        per_method: dict[str, list] = {m: [] for m in methods}
        for n, ir, vis, H in iter_pairs(root, name, args.limit, args.stride):
            for m in methods:
                rng = np.random.default_rng(zlib.crc32(f"{n}/{m}".encode()))
                t = time.perf_counter()
                ok, err, *extra = RUNNERS[m](ir, vis, H, rng)
                dt = time.perf_counter() - t
                info = extra[0] if extra else {}
                per_method[m].append((ok, err, dt, n, info))
                if args.verbose:
                    more = " ".join(f"{k}={v}" for k, v in info.items())
                    print(
                        f"  {name} {n} {m}: {'ok' if ok else 'REFUSED'} {err:.3f} px {dt:.2f} s {more}",
                        flush=True,
                    )
        for m in methods:
            s = summarise(per_method[m])
            everything[f"{name}/{m}"] = {
                "summary": s,
                "pairs": [
                    {"pair": r[3], "ok": r[0], "error_px": r[1], "time_s": r[2], **r[4]}
                    for r in per_method[m]
                ],
            }
            print(
                f"{name:26s} {m:13s} {s['pairs']:5d} {100 * s['success']:7.1f}% {s['median_px']:7.3f} "
                f"{s['p90_px']:7.3f} {100 * s['under5']:5.1f}% {s['wrong_confident']:10d} "
                f"{s['refused_but_good']:10d} {s['time_s']:7.2f} {_pair_str(s)}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
