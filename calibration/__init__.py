"""fusioncam.calibration: estimate the IR-to-VIS homography of a camera rig.

Never imports the models, the engine or Qt.

One interface for three estimators: each returns ``(Rig, report)``, where ``Rig.vis_H_ir`` maps IR pixels
to VIS pixels and ``report`` (also stored as ``Rig.report`` and written to the rig YAML) holds the quality
numbers: inliers, reprojection error RMS/median/max in VIS pixels, point coverage, confidence, and
method-specific facts (board spec, views used, ...).

- :func:`estimate_from_points` - hand-picked correspondences (file or GUI), robust fit.
- :func:`estimate_from_target` - a chessboard or circle grid in several view pairs.
- :func:`estimate_auto` - ordinary scene content, no target; refuses when not confident.

:func:`check_image` draws IR warped onto VIS for a person to judge the result.
"""

from .auto import AutoParams, AutoResult, estimate_auto, register_auto
from .images import read_frames, read_gray, to_gray8
from .points import estimate_from_points, fit_homography, load_points
from .report import check_image, format_report, transfer_error
from .target import BoardSpec, detect_board, estimate_from_target, render_board

__all__ = [
    "estimate_from_points",
    "estimate_from_target",
    "estimate_auto",
    "register_auto",
    "AutoParams",
    "AutoResult",
    "BoardSpec",
    "detect_board",
    "render_board",
    "load_points",
    "fit_homography",
    "check_image",
    "format_report",
    "transfer_error",
    "read_gray",
    "read_frames",
    "to_gray8",
]
