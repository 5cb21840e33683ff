"""The ``fusioncam`` command: a thin shell over the library.

``fusioncam --ir SRC --vis SRC`` opens the live GUI; subcommands do the rest. Each subcommand lives in
its own module here with two functions, ``add_arguments(parser)`` and ``run(args) -> int``, and calls
into the library; this module only builds the parser and turns :class:`FusioncamError` into one clear
line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from fusioncam.errors import FusioncamError
from fusioncam.memory import tune_cpu_allocator

__all__ = ["main", "build_parser", "SUBCOMMANDS"]

# name -> (module under fusioncam.cli, one-line help). Modules are imported lazily so that
# `fusioncam fuse` never pays for importing Qt, nor `fusioncam eval` for torch.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "live": ("live", "open the live GUI on two sources (the default when no subcommand is given)"),
    "demo": ("demo", "open the live GUI on the built-in sample clips"),
    "fuse": ("fuse", "fuse IR/VIS images, image folders or videos offline"),
    "eval": ("evaluate", "compute the six fusion metrics on the test split"),
    "calibrate": ("calibrate", "estimate the IR->VIS homography of a camera rig"),
    "train": ("train", "train the MGFusion network"),
    "bench": ("bench", "benchmark the live pipeline per stage and per method"),
    "weights": ("weights", "fetch and cache CLIP weights, or show where they are looked for"),
}

EXIT_USER_ERROR = 2


def _module(name: str):
    return importlib.import_module(f"fusioncam.cli.{SUBCOMMANDS[name][0]}")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the problem (and where to read more), exit 2.

    Subcommand parsers are made by ``add_subparsers``, which builds them with this same class.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with ``only`` just that subcommand's module is imported (fast start-up)."""
    parser = _Parser(
        prog="fusioncam",
        description="Fuse a thermal (IR) and a visible (VIS) camera into one picture, live and offline.",
        epilog="Without a subcommand, `fusioncam --ir SRC --vis SRC` opens the live GUI.",
    )
    from fusioncam import __version__

    parser.add_argument("--version", action="version", version=f"fusioncam {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_mod, help_) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if only is None or only == name:
            _module(name).add_arguments(p)
            p.set_defaults(_run=_module(name).run)
    return parser


def _quiet_opencv() -> None:
    """Keep errors to one line: silence FFmpeg's and OpenCV's own stderr chatter ("moov atom not found",
    backend warnings) about inputs we already report. The CLI owns the process, so it may set this; the
    library never does. Set the variables yourself to see the chatter again."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    import cv2

    if os.environ["OPENCV_LOG_LEVEL"] == "ERROR":
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _quiet_opencv()
    tune_cpu_allocator()  # network inference reuses its large buffers (docs/mgfusion_speed.md)
    if argv and argv[0] not in SUBCOMMANDS and argv[0] not in ("-h", "--help", "--version"):
        argv.insert(0, "live")  # `fusioncam --ir A --vis B` is the live GUI
    only = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    parser = build_parser(only=only if only else "__none__")
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return int(args._run(args) or 0)
    except FusioncamError as e:
        print(f"fusioncam {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"fusioncam {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
