"""Evaluate MGFusion checkpoint files with the six metrics, exactly as ``fusioncam eval`` does.

``fusioncam eval --method mgfusion`` evaluates the shipped default weights; this script evaluates any
checkpoints (training snapshots, ablations) by registering each as a fuser named after its label, then
calling :func:`fusioncam.evaluate.evaluate` (same pairs, same luminance path, same metrics).

    python benchmarks/eval_checkpoint.py runs/fast_noclip/model.safetensors:stage1 \
        --json docs/mgfusion/eval_stage1.json [--limit N] [--method laplacian]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fusioncam.cli.evaluate import format_tables
from fusioncam.errors import FusioncamError
from fusioncam.evaluate import evaluate, write_json
from fusioncam.fusers import register_fuser


def _register(label: str, path: str, device: str) -> None:
    def factory(**_kw):
        from fusioncam.models.fuser import MGFusionFuser

        return MGFusionFuser(weights=path, device=device)

    register_fuser(label, f"MGFusion checkpoint {path}", classical=False)(factory)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", metavar="FILE[:LABEL]", help="checkpoint files to evaluate")
    ap.add_argument("--method", action="append", default=[], help="also evaluate this registered fuser")
    ap.add_argument("--json", help="write the result here (fusioncam eval's JSON format)")
    ap.add_argument("--limit", type=int, help="first N pairs of each dataset")
    ap.add_argument("--datasets", help="comma-separated datasets (default: all)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    try:
        labels = []
        for spec in args.checkpoints:
            path, _, label = spec.partition(":")
            label = label or Path(path).stem
            if not Path(path).is_file():
                raise FusioncamError(f"checkpoint {path} not found")
            _register(label, path, args.device)
            labels.append(label)
        datasets = args.datasets.split(",") if args.datasets else None
        result = evaluate([*labels, *args.method], datasets=datasets, limit=args.limit, workers=1)
    except FusioncamError as e:
        print(f"eval_checkpoint: error: {e}", file=sys.stderr)
        return 2
    print(format_tables(result))
    if args.json:
        write_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
