"""``fusioncam demo``: the live GUI on the built-in sample clips (looping, played at their own fps).

The clips are a short registered IR/VIS pair from M3SVD (MIT licence; see assets/samples/NOTICE.md),
so no rig is needed. Method, device, palette and the other display choices come from the saved settings
and the flags, as for ``fusioncam live``; the demo never replaces the user's saved sources.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fusioncam.assets import SAMPLES_DIR
from fusioncam.errors import FusioncamError

from .live import add_common_arguments, launch, settings_from_args

__all__ = ["add_arguments", "run", "sample_clips"]

SAMPLES = SAMPLES_DIR
CLIP = "0111_1716"


def sample_clips(folder: Path = SAMPLES) -> tuple[Path, Path]:
    ir, vis = folder / f"ir_{CLIP}.mp4", folder / f"vis_{CLIP}.mp4"
    for p in (ir, vis):
        if not p.is_file():
            raise FusioncamError(
                f"sample clip {p} not found: the demo needs the assets/ folder of a source checkout; "
                "run `fusioncam --ir IR.mp4 --vis VIS.mp4` on your own clips instead"
            )
    return ir, vis


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    ir, vis = sample_clips()
    extra = {
        "sources": {
            "ir": str(ir),
            "vis": str(vis),
            "loop": True,
            "thermal16": False,
            "sync_tolerance_ms": None,
        }
    }
    if not args.no_pace:
        extra["sources"]["pace"] = True
    extra["engine"] = {"rig": None}
    settings, user_file = settings_from_args(args, extra)
    return launch(
        args, settings, user_file, persist_sources=False, title="fusioncam demo (M3SVD sample clips)"
    )
