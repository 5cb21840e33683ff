"""``fusioncam weights``: fetch CLIP weights into the local cache, or show where they are looked for.

    fusioncam weights fetch [--model ViT-B-32] [--pretrained openai] [--cache-dir DIR]
    fusioncam weights where [--model ViT-B-32] [--pretrained openai] [--cache-dir DIR]

Both go through :func:`fusioncam.models.clip_encoder.resolve_clip_weights`, the one place CLIP weights
are resolved, so what ``where`` reports is exactly what the network will load.
"""

from __future__ import annotations

import argparse
import math

from fusioncam.errors import FusioncamError

__all__ = ["add_arguments", "run"]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="ViT-B-32", help="open_clip architecture (default: ViT-B-32)")
    p.add_argument(
        "--pretrained", default="openai", help="open_clip weight tag (default: openai, the CLIP authors')"
    )
    p.add_argument(
        "--cache-dir",
        default=None,
        help="cache folder (default: the Hugging Face cache and open_clip's ~/.cache/clip)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    fetch = sub.add_parser("fetch", help="download CLIP weights into the cache (needs network access)")
    _common(fetch)
    fetch.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for the server to answer (default 5)"
    )
    where = sub.add_parser("where", help="show where CLIP and MGFusion weights are looked for and found")
    _common(where)


def run(args: argparse.Namespace) -> int:
    from fusioncam.models.clip_encoder import clip_weight_candidates, resolve_clip_weights

    if args.weights_command == "fetch":
        if not (math.isfinite(args.timeout) and args.timeout > 0):
            raise FusioncamError(f"--timeout must be a positive number of seconds, got {args.timeout}")
        # Raises FusioncamError with instructions when offline; the CLI prints it on one line.
        path = resolve_clip_weights(
            args.model, args.pretrained, args.cache_dir, allow_download=True, timeout=args.timeout
        )
        print(f"CLIP {args.model}/{args.pretrained}: {path}")
        return 0

    from fusioncam.models.factory import shipped_weights, shipped_weights_dir

    print(f"CLIP {args.model}/{args.pretrained} is looked for, in order, in:")
    print("  1. the file given with --clip-weights FILE")
    for i, line in enumerate(clip_weight_candidates(args.model, args.pretrained, args.cache_dir), 2):
        print(f"  {i}. {line}")
    try:
        found = resolve_clip_weights(args.model, args.pretrained, args.cache_dir, allow_download=False)
        print(f"found: {found}")
        status = 0
    except FusioncamError as e:
        print(f"not found: {e}")
        status = 1
    shipped = shipped_weights()
    print(f"MGFusion checkpoints shipped in {shipped_weights_dir()}:")
    for name, path in shipped.items():
        print(f"  {name}: {path}")
    if not shipped:
        print("  (none)")
    return status
