"""``fusioncam live`` (the default command): open the live GUI on an IR and a VIS source.

``fusioncam --ir /dev/video1 --vis /dev/video0 [--rig rig.yaml] [--method NAME] [--device auto|cpu|cuda]
[--record DIR] [--config settings.yaml] [--clip-refresh K] [--thermal16] [--no-pace]``

Settings are layered: defaults, then the per-user file the GUI saves on close, then ``--config``, then
the flags given here. Everything checkable without opening a device is checked before the window opens
(sources exist, rig file, method, values), so a mistake is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from fusioncam.config import LAYOUTS, PALETTES, Settings, resolve_settings, user_settings_path
from fusioncam.errors import FusioncamError
from fusioncam.io.outputs import check_file_outputs, check_image_output, check_output_folder

__all__ = ["add_arguments", "add_common_arguments", "run", "display_problem", "settings_from_args", "launch"]

_HEADLESS_PLATFORMS = ("offscreen", "minimal", "vnc", "eglfs", "linuxfb", "vkkhrdisplay")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by ``live`` and ``demo``."""
    g = parser.add_argument_group("fusion")
    from fusioncam.processing.fusers import list_fusers  # no torch: the registry only

    g.add_argument("--method", help=f"fusion method: {', '.join(list_fusers())}")
    g.add_argument(
        "--weights",
        metavar="FILE|NAME",
        help="checkpoint of a network fuser: a file, or a shipped name such as mgfusion_noclip (the GPU"
        " quality preset); default: mgfusion_fast_noclip",
    )
    g.add_argument(
        "--clip-weights",
        metavar="FILE",
        help="CLIP weights for a CLIP-guided network (default: the local open_clip/Hugging Face cache)",
    )
    g.add_argument("--device", help="auto (CUDA when present), cpu, cuda or cuda:N")
    g.add_argument("--clip-refresh", type=int, metavar="K", help="recompute CLIP features every K frames")
    g.add_argument("--palette", choices=PALETTES, help="IR display palette")
    g.add_argument("--layout", choices=LAYOUTS, help="window layout")
    g.add_argument("--no-pace", action="store_true", help="read file sources as fast as possible")
    g.add_argument("--record", metavar="DIR", help="start recording into DIR as soon as frames arrive")
    g.add_argument("--config", metavar="YAML", help="settings file (same keys as the saved settings)")
    h = parser.add_argument_group("unattended runs (CI, screenshots)")
    h.add_argument("--quit-after", type=float, metavar="SECONDS", help="close the window after SECONDS")
    h.add_argument("--screenshot", metavar="PNG", help="save a grab of the window just before quitting")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        f"Settings: defaults, then {user_settings_path()} (saved when the window closes), then --config, "
        "then these flags."
    )
    g = parser.add_argument_group(
        "sources (a /dev/videoN path, a camera index, a video file or an image folder/glob)"
    )
    g.add_argument("--ir", metavar="SRC", help="thermal (IR) source")
    g.add_argument("--vis", metavar="SRC", help="visible (VIS) source")
    g.add_argument(
        "--rig", metavar="YAML", help="rig file with the IR->VIS homography (`fusioncam calibrate`)"
    )
    g.add_argument("--thermal16", action="store_true", help="read the IR camera as raw 16-bit (Y16)")
    g.add_argument("--loop", action="store_true", help="restart file sources at their end")
    g.add_argument(
        "--sync-tolerance",
        type=float,
        metavar="MS",
        help="max IR/VIS timestamp gap of a pair (default: half a frame)",
    )
    add_common_arguments(parser)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The flags that were given, as a partial settings mapping (flags not given leave settings alone)."""
    o: dict[str, dict[str, Any]] = {"sources": {}, "engine": {}, "display": {}, "record": {}}

    def put(section: str, key: str, value: Any) -> None:
        if value is not None:
            o[section][key] = value

    put("sources", "ir", getattr(args, "ir", None))
    put("sources", "vis", getattr(args, "vis", None))
    if getattr(args, "thermal16", False):
        o["sources"]["thermal16"] = True
    if getattr(args, "loop", False):
        o["sources"]["loop"] = True
    if args.no_pace:
        o["sources"]["pace"] = False
    put("sources", "sync_tolerance_ms", getattr(args, "sync_tolerance", None))
    put("engine", "rig", getattr(args, "rig", None))
    put("engine", "method", args.method)
    put("engine", "device", args.device)
    put("engine", "weights", args.weights)
    put("engine", "clip_weights", args.clip_weights)
    put("engine", "clip_refresh", args.clip_refresh)
    put("display", "palette", args.palette)
    put("display", "layout", args.layout)
    put("record", "output_dir", args.record)
    return {k: v for k, v in o.items() if v}


def settings_from_args(
    args: argparse.Namespace, extra: dict[str, Any] | None = None
) -> tuple[Settings, Path]:
    """Resolve the settings layers; returns them with the per-user settings path."""
    user_file = user_settings_path()
    overrides = _overrides(args)
    for section, values in (extra or {}).items():
        overrides.setdefault(section, {}).update(values)
    if args.quit_after is not None and not args.quit_after > 0:
        raise FusioncamError(f"--quit-after must be > 0 seconds, got {args.quit_after}")
    settings = resolve_settings(user_file=user_file, config_file=args.config, overrides=overrides)
    return settings, user_file


def check_settings(settings: Settings) -> None:
    """Everything that can be checked without opening a device or loading a network."""
    from fusioncam.io.sources import classify_spec
    from fusioncam.processing.fusers import check_clip_weights, check_weights, fuser_info
    from fusioncam.processing.registration import Rig

    s = settings.sources
    if not s.ir or not s.vis:
        missing = " and ".join(f"--{n}" for n, v in (("ir", s.ir), ("vis", s.vis)) if not v)
        raise FusioncamError(
            f"no {missing} source given: pass --ir SRC --vis SRC (a /dev/videoN path, a camera index, "
            "a video file or an image folder), or run `fusioncam demo`"
        )
    for name, spec in (("IR", s.ir), ("VIS", s.vis)):
        try:
            classify_spec(spec)
        except FusioncamError as e:
            raise FusioncamError(f"{name} source: {e}") from None
        device = spec
        if spec.isdigit() and sys.platform.startswith("linux"):
            device = f"/dev/video{spec}"  # what OpenCV opens for camera index N on Linux (V4L2)
        if device.startswith("/dev/") and not Path(device).exists():
            present = sorted(str(p) for p in Path("/dev").glob("video*"))
            which = spec if device == spec else f"{spec} ({device})"
            raise FusioncamError(
                f"{name} source: camera {which} not found (cameras here: {', '.join(present) or 'none'})"
            )
    info = fuser_info(settings.engine.method)
    if info.flickers:
        from fusioncam.processing.fusers import list_fusers

        raise FusioncamError(
            f"{info.name} is a still-image baseline: {info.flickers}, so its fused video flickers; "
            f"live, use one of {', '.join(list_fusers(video_only=True))} (`fusioncam fuse` and `eval` do "
            "take it)"
        )
    if settings.engine.weights:
        check_weights(settings.engine.weights)
        if not info.classical and Path(settings.engine.weights).expanduser().is_file():
            # A checkpoint the user named is bad input if it cannot load: refuse it here rather than let
            # the window fall back to a classical fuser (the fallback is for weights that are missing).
            from fusioncam.models.factory import load_model

            load_model(Path(settings.engine.weights).expanduser(), attach_clip=False)
    if settings.engine.clip_weights:
        check_clip_weights(settings.engine.clip_weights)
    if settings.engine.rig:
        Rig.load(Path(settings.engine.rig).expanduser())


def display_problem(env: dict[str, str] | None = None, platform: str | None = None) -> str | None:
    """Why no window can open here, or None. Only X11/Wayland systems need a display variable."""
    env = dict(os.environ) if env is None else env
    platform = platform or sys.platform
    if platform.startswith(("win", "darwin")):
        return None
    qpa = env.get("QT_QPA_PLATFORM", "")
    if qpa.split(":")[0] in _HEADLESS_PLATFORMS:
        return None
    if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return None
    return (
        "no display found (neither DISPLAY nor WAYLAND_DISPLAY is set): for offline fusion run "
        "`fusioncam fuse`, or set QT_QPA_PLATFORM=offscreen for a headless run (with --quit-after)"
    )


def launch(
    args: argparse.Namespace,
    settings: Settings,
    user_file: Path,
    *,
    persist_sources: bool,
    title: str,
) -> int:
    check_settings(settings)
    if args.record is not None:
        check_output_folder(settings.record.output_dir, "--record")
    if args.screenshot is not None:
        e = settings.engine
        inputs = [settings.sources.ir, settings.sources.vis, e.rig, e.weights, e.clip_weights]
        (shot,) = check_file_outputs([("--screenshot", args.screenshot)], inputs)
        check_image_output("--screenshot", shot)
    problem = display_problem()
    if problem:
        raise FusioncamError(problem)
    # Qt loads only here: the CLI is the one part of the fusioncam package that may open the GUI
    # (ARCHITECTURE.md: "only fusioncam.cli and fusioncam.ui touch the screen").
    from fusioncam.ui.app import run_gui

    return run_gui(
        settings,
        settings_path=user_file,
        persist_sources=persist_sources,
        record=args.record is not None,
        quit_after=args.quit_after,
        screenshot=args.screenshot,
        title=title,
    )


def run(args: argparse.Namespace) -> int:
    settings, user_file = settings_from_args(args)
    s = settings.sources
    return launch(
        args, settings, user_file, persist_sources=True, title=f"fusioncam: IR {s.ir} | VIS {s.vis}"
    )
