"""How much of the automatic method's error on ``superfusion_roadscene`` is the ground truth's own?

The truth of that set, ``H_warp_to_ir``, maps the deliberately misaligned IR (``ir_warp``) to the *aligned*
IR, and is compared with an IR->VIS estimate: it assumes that RoadScene's aligned IR sits exactly on its
VIS image. This script measures that premise with three numbers per pair, all from the automatic method:

- ``warp``: error of the estimate on ``ir_warp`` vs ``vi`` against the truth (what the main benchmark
  reports);
- ``aligned``: the estimate on the aligned ``ir`` vs ``vi`` against the identity (RoadScene's own
  registration as the method sees it);
- ``consistency``: the first estimate carried back through the known warp (``vis_H_warp @ inv(H_truth)``,
  an aligned-IR -> VIS mapping) against the second. Small values mean the method finds the same
  IR->VIS geometry from both inputs, so its distance from the truth is in the truth's premise rather
  than in the method;
- ``same_modality``: the estimate on ``ir_warp`` vs the aligned ``ir`` (IR on both sides) against the
  truth: the method's error where the premise holds exactly.

Errors are mean distances in VIS pixels over a 10x10 grid (``transfer_error``), as in ``registration.py``.

Usage: ``python benchmarks/registration_consistency.py [--data DIR] [--limit N]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from registration import iter_pairs  # the benchmark beside this script

from fusioncam.calibration import register_auto
from fusioncam.calibration.report import transfer_error
from fusioncam.evaluation.dataset import default_data_dir


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="registration data folder")
    ap.add_argument("--limit", type=int, default=None, help="first N pairs")
    args = ap.parse_args(argv)
    base = (args.data or default_data_dir() / "registration") / "superfusion_roadscene"
    if not (base / "homography_fit.json").is_file():
        print(f"superfusion_roadscene not found at {base} (set FUSIONCAM_DATA or --data)", file=sys.stderr)
        return 2
    print(f"# {' '.join(['python', *sys.argv])}")
    print(f"{'pair':10s} {'warp':>6s} {'aligned':>8s} {'consistency':>11s} {'same_modality':>13s}")
    rows = []
    for n, ir_warp, vis, H in iter_pairs(base.parent, "superfusion_roadscene", args.limit):
        ir = cv2.imread(str(base / "ir" / n), cv2.IMREAD_UNCHANGED)  # the aligned IR of the same pair
        size = (vis.shape[1], vis.shape[0])
        r_warp = register_auto(ir_warp, vis)  # what the main benchmark measures
        r_aligned = register_auto(ir, vis)  # RoadScene's own registration, as the method sees it
        r_same = register_auto(ir_warp, ir)  # IR on both sides: the truth's premise holds exactly
        if r_warp.vis_H_ir is None or r_aligned.vis_H_ir is None or r_same.vis_H_ir is None:
            print(f"{n:10s} (no result)")
            continue
        row = (
            transfer_error(r_warp.vis_H_ir, H, size),
            transfer_error(r_aligned.vis_H_ir, np.eye(3), size),
            transfer_error(r_warp.vis_H_ir @ np.linalg.inv(H), r_aligned.vis_H_ir, size),
            transfer_error(r_same.vis_H_ir, H, size),
        )
        flag = "" if r_warp.confident and r_aligned.confident else "  (not confident)"
        print(f"{n:10s} {row[0]:6.2f} {row[1]:8.2f} {row[2]:11.2f} {row[3]:13.2f}{flag}", flush=True)
        rows.append(row)
    if rows:
        med = np.median(np.asarray(rows), axis=0)
        print(f"{'median':10s} {med[0]:6.2f} {med[1]:8.2f} {med[2]:11.2f} {med[3]:13.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
