"""``fusioncam eval``: the six fusion metrics of one or more methods on the shared split.

A thin shell over :func:`fusioncam.evaluation.evaluate.evaluate`: it parses the flags, shows progress on
stderr, prints one table per dataset (rows: methods; columns: the metrics, an arrow saying which way is
better) and the mean over datasets, and writes the CSV/JSON files when asked (atomically: temp name + rename).
``--weights FILE`` evaluates a checkpoint of the network fuser (a training run's, an ablation's) beside
the shipped one, shown as ``mgfusion[<file stem>]`` or ``--label NAME``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from fusioncam.errors import FusioncamError

__all__ = ["add_arguments", "run", "format_tables"]


def _csv_list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list, e.g. roadscene,msrs")
    return items


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--method",
        action="append",
        required=True,
        metavar="NAME",
        help="fusion method to evaluate (repeat for several); 'all-classical' for every classical fuser",
    )
    p.add_argument("--split", default="test", help="split of splits.yaml to evaluate (default: test)")
    p.add_argument("--datasets", type=_csv_list, metavar="A,B", help="only these datasets (default: all)")
    p.add_argument(
        "--data", metavar="DIR", help="shared data folder (default: $FUSIONCAM_DATA or ../shared/data)"
    )
    p.add_argument("--csv", metavar="PATH", help="write one row per image and method to this CSV file")
    p.add_argument("--json", metavar="PATH", help="write the full result (rows and means) to this JSON file")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N pairs of each dataset")
    p.add_argument(
        "--weights",
        metavar="FILE",
        help="checkpoint for the network methods (mgfusion), e.g. a training run's model.safetensors; "
        "they are shown as mgfusion[<file stem>]",
    )
    p.add_argument(
        "--label",
        metavar="NAME",
        help="name the --weights method NAME instead of mgfusion[<file stem>] in the tables and files",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        metavar="N",
        help="worker processes, at most 2 (default 2; 0 or 1: run in this process)",
    )


def _arrows() -> tuple[str, str]:
    """Up/down arrows where the terminal can print them, else ASCII."""
    enc = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "↑↓".encode(enc)
    except (UnicodeEncodeError, LookupError):
        return "^", "v"
    return "↑", "↓"


def _fmt(x: float) -> str:
    if x != x:  # NaN
        return "nan"
    return f"{x:.2f}" if abs(x) >= 100 else f"{x:.4f}"


def format_tables(result: dict[str, Any]) -> str:
    """The per-dataset tables and the mean table as plain text."""
    up, down = _arrows()
    metrics = result["metrics"]
    heads = [f"{k}{up if result['higher_is_better'][k] else down}" for k in metrics]
    width = max(8, *(len(m) for m in result["methods"]))
    col = 10
    lines: list[str] = []

    def table(title: str, values: dict[str, dict[str, float]]) -> None:
        lines.append(title)
        lines.append(f"{'method':<{width}} " + " ".join(f"{h:>{col}}" for h in heads))
        for m in result["methods"]:
            lines.append(f"{m:<{width}} " + " ".join(f"{_fmt(values[m][k]):>{col}}" for k in metrics))
        lines.append("")

    for ds, values in result["per_dataset"].items():
        table(f"{ds} ({result['counts'][ds]} pairs, split {result['split']})", values)
    n_ds = len(result["per_dataset"])
    n_pairs = sum(result["counts"].values())
    table(f"mean over {n_ds} dataset{'s' if n_ds != 1 else ''} ({n_pairs} pairs)", result["mean"])
    return "\n".join(lines).rstrip() + "\n"


def run(args: argparse.Namespace) -> int:
    from fusioncam.evaluation.dataset import default_data_dir
    from fusioncam.evaluation.evaluate import MAX_WORKERS, evaluate, write_csv, write_json
    from fusioncam.io.outputs import check_file_outputs

    if not 0 <= args.workers <= MAX_WORKERS:
        raise FusioncamError(f"--workers must be between 0 and {MAX_WORKERS}, got {args.workers}")
    if args.data and not Path(args.data).is_dir():
        kind = "is a file, not a folder" if Path(args.data).exists() else "does not exist"
        raise FusioncamError(f"data folder {args.data} {kind} (give --data DIR or set FUSIONCAM_DATA)")
    # Fail before minutes of work, not after; and never write into the data being evaluated.
    data_root = Path(args.data) if args.data else default_data_dir()
    check_file_outputs(
        [("--csv", args.csv), ("--json", args.json)], forbidden_dirs=[("data folder", data_root)]
    )
    show = sys.stderr.isatty()

    def progress(done: int, total: int, pair) -> None:
        if show:
            end = "\n" if done == total else ""
            msg = f"\r[eval] {done}/{total} pairs ({pair.dataset}/{pair.stem})\x1b[K"
            print(msg, end=end, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    result = evaluate(
        args.method,
        split=args.split,
        data_dir=args.data,
        datasets=args.datasets,
        limit=args.limit,
        workers=args.workers,
        progress=progress,
        weights=args.weights,
        label=args.label,
    )
    wall = time.perf_counter() - t0
    sys.stdout.write(format_tables(result))
    n_pairs = sum(result["counts"].values())
    written = []
    if args.csv:
        written.append(str(write_csv(result, args.csv)))
    if args.json:
        written.append(str(write_json(result, args.json)))
    tail = f"; wrote {', '.join(written)}" if written else ""
    print(
        f"evaluated {len(result['methods'])} method(s) on {n_pairs} pairs in {wall:.1f} s{tail}",
        file=sys.stderr,
    )
    return 0
