"""``fusioncam calibrate {points,target,auto}``: estimate IR->VIS H, write the rig and a check image.

A thin shell over :mod:`fusioncam.calibration`: it reads the inputs, calls one estimator, saves the rig
YAML (atomically) and a check image (IR warped onto VIS, atomically too), and prints the error report.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from fusioncam.errors import FusioncamError
from fusioncam.io.outputs import atomic_write_bytes, check_file_outputs, check_image_output

__all__ = ["add_arguments", "run"]

CHECK_MODES = ("checkerboard", "blend", "edges")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="method", metavar="METHOD", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("-o", "--output", required=True, help="rig file to write (YAML)")
        p.add_argument("--check", help="check image to write (default: <rig stem>_check.png beside the rig)")
        p.add_argument(
            "--check-mode",
            choices=CHECK_MODES,
            default="checkerboard",
            help="checkerboard blend, colour blend or IR edges over VIS (default: checkerboard)",
        )
        p.add_argument(
            "--ir-id", help="identity of the IR camera to record in the rig (default: the IR input)"
        )
        p.add_argument(
            "--vis-id", help="identity of the VIS camera to record in the rig (default: the VIS input)"
        )

    p = sub.add_parser(
        "points",
        help="from corresponding points (YAML or CSV file)",
        description="Fit H to hand-picked IR/VIS point pairs (robust to a few bad clicks).",
    )
    p.add_argument(
        "--points", required=True, help="YAML {ir: [[x,y],..], vis: [[x,y],..]} or CSV ir_x,ir_y,vis_x,vis_y"
    )
    p.add_argument("--ir-size", help="IR image size WxH (taken from --ir when omitted)")
    p.add_argument("--vis-size", help="VIS image size WxH (taken from --vis when omitted)")
    p.add_argument("--ir", help="an IR image, for the check image (and the size)")
    p.add_argument("--vis", help="a VIS image, for the check image (and the size)")
    p.add_argument("--fit", choices=("magsac", "ransac", "lsq"), default="magsac", help="robust estimator")
    p.add_argument("--threshold", type=float, default=3.0, help="inlier threshold in VIS pixels (default 3)")
    common(p)

    p = sub.add_parser(
        "target",
        help="from a chessboard or circle grid seen in several view pairs",
        description="Detect a calibration board in IR/VIS view pairs and fit one H over all views.",
    )
    p.add_argument("--ir", required=True, help="IR views: a folder, a glob (quoted), an image, or a video")
    p.add_argument("--vis", required=True, help="VIS views, in the same order as --ir")
    p.add_argument(
        "--board", required=True, help="chessboard:COLSxROWS[:square_mm] or circles:COLSxROWS[:asym]"
    )
    p.add_argument("--every", type=int, default=1, help="use every N-th frame/image (default 1)")
    p.add_argument("--max-views", type=int, default=200, help="read at most this many views (default 200)")
    p.add_argument("--threshold", type=float, default=2.0, help="inlier threshold in VIS pixels (default 2)")
    common(p)

    p = sub.add_parser(
        "auto",
        help="from ordinary scene content (no target)",
        description="Align IR to VIS from scene edges; refuses when the result is not confident.",
    )
    p.add_argument("--ir", required=True, help="IR image, or a video / folder of frames (see --pairs)")
    p.add_argument("--vis", required=True, help="VIS image, or a video / folder of frames")
    p.add_argument(
        "--pairs",
        type=int,
        default=3,
        help="frame pairs to try from videos or folders; the best wins (default 3)",
    )
    p.add_argument(
        "--every", type=int, default=30, help="take every N-th frame of a video or folder (default 30)"
    )
    p.add_argument(
        "--scale-range",
        default="0.5:2.0",
        help="IR pixels per VIS pixel to search, MIN:MAX (default 0.5:2.0)",
    )
    p.add_argument("--min-confidence", type=float, default=None, help="refuse below this confidence")
    common(p)


def run(args: argparse.Namespace) -> int:
    from fusioncam.calibration import check_image, format_report

    if args.method == "points" and args.check and not (args.ir and args.vis):
        raise FusioncamError("--check needs both --ir and --vis images")
    # Both outputs are checked before anything is read or written: a bad check-image path must not
    # leave a new rig beside an old check image, nor may either output replace an input.
    inputs = [getattr(args, name, None) for name in ("points", "ir", "vis")]
    out, check = Path(args.output), None
    if args.check:
        check = Path(args.check)
    elif out.name and (args.method != "points" or (args.ir and args.vis)):
        check = out.with_name(out.stem + "_check.png")  # a rig path with no name: its own check says so
    out, check = check_file_outputs([("rig file", args.output), ("check image", check)], inputs)
    if check is not None:
        check_image_output("check image", check)
    handlers = {"points": _points, "target": _target, "auto": _auto}
    rig, ir_img, vis_img = handlers[args.method](args)
    check_img = check_image(ir_img, vis_img, rig, mode=args.check_mode) if check is not None else None
    rig.save(out)
    print(f"rig written to {out}")
    if check is not None:
        _write_check(check, check_img)
        print(f"check image written to {check}")
    print(format_report(rig))
    return 0


# --- methods ----------------------------------------------------------------------------------------------
def _cameras(args: argparse.Namespace) -> dict[str, str]:
    cams = {}
    ir = args.ir_id or getattr(args, "ir", None)
    vis = args.vis_id or getattr(args, "vis", None)
    if ir:
        cams["ir"] = str(ir)
    if vis:
        cams["vis"] = str(vis)
    return cams


def _points(args: argparse.Namespace):
    from fusioncam.calibration import estimate_from_points, load_points, read_gray

    ir_img = read_gray(args.ir) if args.ir else None
    vis_img = read_gray(args.vis) if args.vis else None
    ir_size = _size_arg(args.ir_size, "--ir-size", ir_img, "--ir")
    vis_size = _size_arg(args.vis_size, "--vis-size", vis_img, "--vis")
    ir_pts, vis_pts = load_points(args.points)
    rig, _ = estimate_from_points(
        ir_pts,
        vis_pts,
        ir_size,
        vis_size,
        method=args.fit,
        threshold_px=args.threshold,
        cameras=_cameras(args),
    )
    return rig, ir_img, vis_img


def _target(args: argparse.Namespace):
    from fusioncam.calibration import BoardSpec, estimate_from_target

    board = BoardSpec.parse(args.board)  # fail on a bad spec before reading any video
    if args.max_views < 1:
        raise FusioncamError(f"--max-views must be >= 1, got {args.max_views}")
    irs, viss = _read_views(args, args.max_views, "views")
    rig, report = estimate_from_target(irs, viss, board, threshold_px=args.threshold, cameras=_cameras(args))
    used = [v["view"] for v in report["per_view"] if v.get("used")]
    return rig, irs[used[0]], viss[used[0]]


def _auto(args: argparse.Namespace):
    from fusioncam.calibration import AutoParams, estimate_auto, read_gray

    params = AutoParams(scale_range=_range_arg(args.scale_range))
    if args.min_confidence is not None:
        params.min_confidence = args.min_confidence
    if _is_image(args.ir) and _is_image(args.vis):
        irs, viss = [read_gray(args.ir)], [read_gray(args.vis)]
    else:
        if args.pairs < 1:
            raise FusioncamError(f"--pairs must be >= 1, got {args.pairs}")
        irs, viss = _read_views(args, args.pairs, "frames")
    rig, report = estimate_auto(irs, viss, params, cameras=_cameras(args))
    best = report.get("best_frame_pair", 0)  # the check image shows the frame pair that won
    return rig, irs[best], viss[best]


# --- helpers ----------------------------------------------------------------------------------------------
def _read_views(args: argparse.Namespace, limit: int, what: str) -> tuple[list, list]:
    """IR and VIS frames of the same moments: equal counts from folders, the common start of videos."""
    from fusioncam.calibration import read_frames
    from fusioncam.calibration.images import list_images

    if not (_is_video(args.ir) or _is_video(args.vis)):
        # folders must pair image for image: compare them whole, before --every thins them out
        n_ir, n_vis = len(list_images(args.ir)), len(list_images(args.vis))
        if n_ir != n_vis:
            raise FusioncamError(f"{n_ir} IR images but {n_vis} VIS images: give the same number of each")
    irs = read_frames(args.ir, every=args.every, limit=limit)
    viss = read_frames(args.vis, every=args.every, limit=limit)
    if len(irs) != len(viss):
        if not (_is_video(args.ir) and _is_video(args.vis)):
            raise FusioncamError(
                f"{len(irs)} IR {what} but {len(viss)} VIS {what}: give the same number of each"
            )
        n = min(len(irs), len(viss))  # two recordings of different length: pair frames from the start
        print(f"note: the videos give {len(irs)} IR and {len(viss)} VIS {what}; using the first {n} of each")
        irs, viss = irs[:n], viss[:n]
    return irs, viss


def _is_video(spec: str) -> bool:
    from fusioncam.calibration.images import VIDEO_EXTS

    return Path(spec).is_file() and Path(spec).suffix.lower() in VIDEO_EXTS


def _is_image(spec: str) -> bool:
    """A single image file (or a path that is not there: reading it then gives the clear error)."""
    p = Path(spec)
    return not p.is_dir() and not _is_video(spec) and not any(c in str(spec) for c in "*?[")


def _size_arg(text: str | None, flag: str, image: np.ndarray | None, img_flag: str) -> tuple[int, int]:
    size = None
    if text:
        try:
            w, h = (int(v) for v in text.lower().split("x"))
        except ValueError:
            raise FusioncamError(f"{flag} must look like 640x512, got {text!r}") from None
        if w <= 0 or h <= 0:
            raise FusioncamError(f"{flag} must be positive, got {text!r}")
        size = (w, h)
    if image is not None:
        img_size = (image.shape[1], image.shape[0])
        if size is not None and size != img_size:
            raise FusioncamError(
                f"{flag} {size[0]}x{size[1]} does not match the {img_flag} image "
                f"({img_size[0]}x{img_size[1]})"
            )
        size = img_size
    if size is None:
        raise FusioncamError(f"give {flag} WxH (or an image with {img_flag})")
    return size


def _range_arg(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError:
        raise FusioncamError(f"--scale-range must look like 0.5:2.0, got {text!r}") from None
    if not 0 < lo < hi:
        raise FusioncamError(f"--scale-range needs 0 < MIN < MAX, got {text!r}")
    return lo, hi


def _write_check(path: Path, img: np.ndarray) -> None:
    """Write the check image atomically (temporary name in the same folder, then rename)."""
    ok, buf = cv2.imencode(path.suffix.lower(), img)
    if not ok:  # pragma: no cover - the extension was checked by check_image_output
        raise FusioncamError(f"cannot encode the check image as {path.suffix}; use .png or .jpg")
    atomic_write_bytes(path, buf.tobytes())
