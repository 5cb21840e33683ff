"""Evaluation of fusion methods with the six metrics over the shared train/test split.

For every pair of the split and every method: the registered IR (one gray channel; IR stored as three
equal channels is collapsed) and the VIS luminance (Y of YCrCb, what the fusers see in the product) are
fused by the method; the metrics then compare gray IR, gray VIS (MATLAB ``rgb2gray`` weights, see
:func:`fusioncam.evaluation.metrics.to_gray`) and the fused gray image. The pairs in
``../shared/data/pairs`` are already registered, so no rig is applied.

The result is a plain dict (JSON-ready): one row per pair and method, the mean of each metric per
dataset and method, and the mean over datasets (each dataset weighs the same, whatever its size).
A network fuser can be given a checkpoint (``weights``): it is then shown as ``mgfusion[<file stem>]``
(or a chosen label), so several checkpoints and the shipped weights can sit in one comparison.
Pairs run in up to two worker processes (processes, not threads: numpy, scipy and OpenCV release the
GIL only in parts of this work, and a process per core uses both cores without reasoning about which).
"""

from __future__ import annotations

import csv
import io
import json
import math
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

from fusioncam.errors import FusioncamError
from fusioncam.evaluation.dataset import PairPath, load_split
from fusioncam.evaluation.metrics import HIGHER_IS_BETTER, METRIC_NAMES, compute_metrics, to_gray
from fusioncam.io.outputs import atomic_write_bytes
from fusioncam.processing.color import split_luma, to_bgr
from fusioncam.processing.color import to_gray as to_gray_u8
from fusioncam.processing.fusers import Fuser, create_fuser, fuser_info, list_fusers

__all__ = [
    "ALL_CLASSICAL",
    "MAX_WORKERS",
    "Method",
    "resolve_methods",
    "plan_methods",
    "load_pair",
    "evaluate_pair",
    "evaluate",
    "write_csv",
    "write_json",
]

ALL_CLASSICAL = "all-classical"
MAX_WORKERS = 2  # the metrics are CPU-bound; more processes would fight over a small machine

ProgressFn = Callable[[int, int, PairPath], None]


def resolve_methods(methods: Sequence[str]) -> list[str]:
    """Expand ``all-classical`` and check every name against the fuser registry (unknown -> error)."""
    if not methods:
        raise FusioncamError(f"no method given; name one or more fusers, or '{ALL_CLASSICAL}'")
    out: list[str] = []
    for name in methods:
        names = list_fusers(classical_only=True) if name == ALL_CLASSICAL else [name]
        for n in names:
            try:
                fuser_info(n)
            except FusioncamError as e:  # it names the unknown method and the known ones
                raise FusioncamError(f"{e}, or '{ALL_CLASSICAL}'") from None
            if n not in out:
                out.append(n)
    return out


class Method(NamedTuple):
    """One evaluated method: the registered fuser ``fuser``, built with ``weights`` (a checkpoint of a
    network fuser; None: its default) and shown as ``label`` in rows, tables and files."""

    label: str
    fuser: str
    weights: str | None = None


def plan_methods(
    methods: Sequence[str], weights: str | os.PathLike | None = None, label: str | None = None
) -> list[Method]:
    """The methods to evaluate, with ``weights`` given to the network (non-classical) fusers among them.

    A network fuser with weights is labelled ``<fuser>[<checkpoint stem>]``, or ``label`` when given
    (only with weights, and only for one network method). Weights with only classical methods, or a
    label that repeats another method's, are errors: the result would not say what was measured.
    """
    names = resolve_methods(methods)
    if weights is None:
        if label is not None:
            raise FusioncamError("a label names a checkpoint: give the weights it belongs to")
        return [Method(n, n) for n in names]
    weights = os.fspath(weights)
    network = [n for n in names if not fuser_info(n).classical]
    if not network:
        raise FusioncamError(
            f"weights are for network fusers such as mgfusion, but only classical methods were asked "
            f"for ({', '.join(names)})"
        )
    if label is not None:
        if not label.strip():
            raise FusioncamError("the label of a checkpoint must not be empty")
        if len(network) > 1:
            raise FusioncamError(
                f"one label for {len(network)} network methods ({', '.join(network)}); leave it out to "
                "show each as <method>[<checkpoint stem>]"
            )
    stem = Path(weights).stem or weights
    plan = [Method(label or f"{n}[{stem}]", n, weights) if n in network else Method(n, n) for n in names]
    labels = [m.label for m in plan]
    for m in plan:
        if labels.count(m.label) > 1:
            raise FusioncamError(f"label '{m.label}' is also the name of another method; choose another")
    return plan


def _read(path: Path, flags: int) -> np.ndarray:
    img = cv2.imread(str(path), flags)
    if img is None:
        raise FusioncamError(f"cannot read image {path}")
    return img


def load_pair(pair: PairPath) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(IR gray uint8, VIS luminance uint8, VIS as read: gray or BGR uint8) of one registered pair.

    The IR and the VIS luminance come from :mod:`fusioncam.processing.color`, as in ``fusioncam fuse``:
    IR stored as three equal channels (LLVIP) collapses to that channel exactly, VIS luminance is Y of YCrCb.
    """
    ir = _read(pair.ir, cv2.IMREAD_UNCHANGED)
    vis = _read(pair.vis, cv2.IMREAD_UNCHANGED)
    for name, img, path in (("IR", ir, pair.ir), ("VIS", vis, pair.vis)):
        if img.dtype != np.uint8:
            raise FusioncamError(f"{name} image {path} is {img.dtype}; evaluation expects 8-bit images")
    if ir.shape[:2] != vis.shape[:2]:
        raise FusioncamError(
            f"{pair.dataset}/{pair.stem}: IR is {ir.shape[1]}x{ir.shape[0]} but VIS is "
            f"{vis.shape[1]}x{vis.shape[0]}; evaluation needs registered pairs of one size"
        )
    if vis.ndim == 3 and vis.shape[2] == 4:
        vis = to_bgr(vis)
    vis_y, _chroma = split_luma(vis)
    return to_gray_u8(ir), vis_y, vis


# One fuser per (method, weights) and process, built on first use (a network loads its weights once).
_FUSERS: dict[tuple[str, str | None], Fuser] = {}


def _fuser(method: Method) -> Fuser:
    key = (method.fuser, method.weights)
    if key not in _FUSERS:
        options = {} if method.weights is None else {"weights": method.weights}
        _FUSERS[key] = create_fuser(method.fuser, **options)
    return _FUSERS[key]


def _import_fuser_modules(modules: Sequence[str]) -> None:
    """Worker initializer: import the modules that register the fusers (a fresh interpreter has only
    the built-in registry)."""
    import importlib

    for m in modules:
        importlib.import_module(m)


def evaluate_pair(pair: PairPath, methods: Sequence[str | Method]) -> list[dict[str, Any]]:
    """Fuse one pair with each method (a fuser name or a :class:`Method`) and compute the six metrics;
    one row dict per method, named by its label."""
    ir, vis_y, vis = load_pair(pair)
    ir_gray = ir.astype(np.float64)
    vis_gray = to_gray(vis, "VIS")
    rows = []
    for m in methods:
        method = m if isinstance(m, Method) else Method(m, m)
        fused = _fuser(method).fuse(ir, vis_y)
        if fused.shape != ir.shape:
            raise FusioncamError(f"method '{method.label}' returned {fused.shape} for a {ir.shape} pair")
        row: dict[str, Any] = {"dataset": pair.dataset, "stem": pair.stem, "method": method.label}
        row.update(compute_metrics(ir_gray, vis_gray, fused))
        rows.append(row)
    return rows


def _mean(values: list[float]) -> float:
    """Mean that skips NaN (like VIFB's ``nanmean``); NaN when nothing is left."""
    finite = [v for v in values if not math.isnan(v)]
    return float(sum(finite) / len(finite)) if finite else float("nan")


def evaluate(
    methods: Sequence[str],
    split: str = "test",
    data_dir: str | Path | None = None,
    datasets: Sequence[str] | None = None,
    limit: int | None = None,
    workers: int = MAX_WORKERS,
    progress: ProgressFn | None = None,
    weights: str | os.PathLike | None = None,
    label: str | None = None,
) -> dict[str, Any]:
    """Evaluate ``methods`` (fuser names or ``all-classical``) on ``split`` of the shared data.

    ``limit`` keeps the first N pairs of each dataset; ``workers`` <= 1 runs in this process (forced
    when a non-classical method such as mgfusion is asked for, so the network loads once, and for
    fusers defined in ``__main__``). Worker processes are spawned fresh and import the modules that
    define the requested fusers; a fuser registered inside a function body needs ``workers=1``.
    ``progress(done, total, pair)`` is called after each pair. ``weights``/``label``: a checkpoint for
    the network methods and how to show them (see :func:`plan_methods`). Returns a dict with ``split``,
    ``methods`` (their labels), ``weights`` ({label: checkpoint} of the methods given one),
    ``metrics``, ``higher_is_better``, ``counts`` (pairs per dataset), ``rows`` (one per pair and
    method), ``per_dataset`` ({dataset: {method: {metric: mean}}}) and ``mean`` ({method: {metric: mean
    over datasets}}).
    """
    plan = plan_methods(methods, weights, label)
    names = [m.label for m in plan]
    if limit is not None and limit < 1:
        raise FusioncamError(f"limit must be at least 1 pair per dataset, got {limit}")
    pairs_by_ds = load_split(split, data_dir=data_dir, datasets=list(datasets) if datasets else None)
    pairs = [p for ps in pairs_by_ds.values() for p in (ps[:limit] if limit else ps)]
    if not pairs:
        raise FusioncamError(f"split '{split}' has no pairs for the chosen datasets")
    modules = sorted({fuser_info(m.fuser).factory.__module__ for m in plan})
    if any(not fuser_info(m.fuser).classical for m in plan) or "__main__" in modules:
        workers = 1  # load a network once; a fuser defined in a script cannot be re-imported by workers
    workers = max(1, min(int(workers), MAX_WORKERS, len(pairs)))

    results: list[list[dict[str, Any]]] = []
    if workers == 1:
        for m in plan:
            _fuser(m)  # a missing checkpoint or CLIP fails now, not after the first pair's work
        for i, pair in enumerate(pairs, 1):
            results.append(evaluate_pair(pair, plan))
            if progress:
                progress(i, len(pairs), pair)
    else:
        # "spawn": a fresh interpreter per worker, safe whatever threads (OpenCV, Qt, torch) the caller runs.
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=_import_fuser_modules, initargs=(modules,)
        ) as pool:
            # map keeps the order of the split; results arrive as the slowest pair in flight finishes.
            for i, (pair, rows) in enumerate(
                zip(pairs, pool.map(evaluate_pair, pairs, [plan] * len(pairs)), strict=True), 1
            ):
                results.append(rows)
                if progress:
                    progress(i, len(pairs), pair)
    rows = [r for rs in results for r in rs]

    counts = {ds: sum(1 for p in pairs if p.dataset == ds) for ds in pairs_by_ds}
    per_dataset: dict[str, dict[str, dict[str, float]]] = {}
    for ds, n in counts.items():
        if n == 0:
            continue
        sel = {m: [r for r in rows if r["dataset"] == ds and r["method"] == m] for m in names}
        per_dataset[ds] = {m: {k: _mean([r[k] for r in sel[m]]) for k in METRIC_NAMES} for m in names}
    mean = {m: {k: _mean([per_dataset[ds][m][k] for ds in per_dataset]) for k in METRIC_NAMES} for m in names}
    return {
        "split": split,
        "methods": names,
        "weights": {m.label: m.weights for m in plan if m.weights is not None},
        "metrics": list(METRIC_NAMES),
        "higher_is_better": dict(HIGHER_IS_BETTER),
        "counts": {ds: n for ds, n in counts.items() if n},
        "rows": rows,
        "per_dataset": per_dataset,
        "mean": mean,
    }


def _write_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` through a temporary file beside ``path``, renamed into place when complete."""
    path = Path(path)
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


def write_csv(result: dict[str, Any], path: str | Path) -> Path:
    """One row per pair and method: dataset, stem, method, then the six metrics (full precision)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["dataset", "stem", "method", *result["metrics"]])
    for r in result["rows"]:
        w.writerow([r["dataset"], r["stem"], r["method"], *(repr(float(r[k])) for k in result["metrics"])])
    return _write_atomic(path, buf.getvalue())


def _json_safe(x: Any) -> Any:
    """NaN is not JSON: write it as null."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    return x


def write_json(result: dict[str, Any], path: str | Path) -> Path:
    """The whole result dict as JSON (NaN as null)."""
    return _write_atomic(path, json.dumps(_json_safe(result), indent=1) + "\n")
