"""Markdown tables for docs/mgfusion.md from ``fusioncam eval --json`` results.

Merges one or more result files (e.g. the classical fusers and mgfusion, evaluated separately), prints
one table per test dataset and one for the mean over datasets, and checks the issue's targets against
the best classical fuser *per metric*: MGFusion must beat it on Q_AB/F, Q_CV (lower is better), VIF and
SCD, and stay within 5% of it on SSIM.

    python benchmarks/mgfusion_tables.py docs/mgfusion/eval_classical.json docs/mgfusion/eval_mgfusion.json \
        --network mgfusion
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

TARGETS = ("Qabf", "Qcv", "VIF", "SCD")
SSIM_TOLERANCE = 0.05


def merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    out = {"metrics": results[0]["metrics"], "higher_is_better": results[0]["higher_is_better"]}
    out["methods"], out["per_dataset"], out["mean"], out["counts"] = [], {}, {}, {}
    for r in results:
        out["methods"] += [m for m in r["methods"] if m not in out["methods"]]
        out["mean"].update(r["mean"])
        out["counts"].update(r.get("counts", {}))
        for ds, by_method in r["per_dataset"].items():
            out["per_dataset"].setdefault(ds, {}).update(by_method)
    return out


def _best(values: dict[str, float], higher: bool) -> tuple[str, float]:
    items = [(m, v) for m, v in values.items() if v == v]
    m, v = (max if higher else min)(items, key=lambda kv: kv[1])
    return m, v


def check_targets(
    rows: dict[str, dict[str, float]], network: str, classical: list[str], hib: dict
) -> list[str]:
    """Per target metric: "yes/no (network value vs best of ``classical`` on that metric: name value)"."""
    cells = []
    for k in (*TARGETS, "SSIM"):
        name, best = _best({m: rows[m][k] for m in classical}, hib[k])
        ours = rows[network][k]
        if k == "SSIM":
            ok = ours >= (1 - SSIM_TOLERANCE) * best
        else:
            ok = ours > best if hib[k] else ours < best
        cells.append(f"{'**yes**' if ok else 'no'} ({ours:.4g} vs {name} {best:.4g})")
    return cells


def targets_table(res: dict[str, Any], network: str, classical: list[str]) -> str:
    hib = res["higher_is_better"]
    head = ["Q_AB/F beaten", "Q_CV beaten (lower)", "VIF beaten", "SCD beaten", "SSIM within 5%"]
    lines = ["| test set | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for ds, rows in [*res["per_dataset"].items(), ("**mean**", res["mean"])]:
        lines.append(f"| {ds} | " + " | ".join(check_targets(rows, network, classical, hib)) + " |")
    return "\n".join(lines)


def table(rows: dict[str, dict[str, float]], metrics: list[str], hib: dict, methods: list[str]) -> str:
    arrows = {k: "↑" if hib[k] else "↓" for k in metrics}
    lines = ["| method | " + " | ".join(f"{k} {arrows[k]}" for k in metrics) + " |"]
    lines.append("|---|" + "---:|" * len(metrics))
    best = {k: _best({m: rows[m][k] for m in methods if m in rows}, hib[k])[0] for k in metrics}
    for m in methods:
        if m not in rows:
            continue
        vals = []
        for k in metrics:
            v = rows[m][k]
            s = f"{v:.1f}" if abs(v) >= 100 else f"{v:.4f}"
            vals.append(f"**{s}**" if best[k] == m else s)
        lines.append(f"| {m} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", nargs="+", help="fusioncam eval --json result files")
    ap.add_argument("--network", action="append", default=[], help="network method(s) to check targets for")
    ap.add_argument(
        "--reference",
        help="also check the targets against this one classical fuser (not the per-metric best)",
    )
    args = ap.parse_args(argv)
    res = merge([json.load(open(p)) for p in args.json])
    metrics, hib, methods = res["metrics"], res["higher_is_better"], res["methods"]
    from fusioncam.processing.fusers import list_fusers

    registered = set(list_fusers(classical_only=True))
    classical = [m for m in methods if m in registered]  # the baselines: registered classical fusers
    for ds, rows in res["per_dataset"].items():
        print(f"\n#### {ds} ({res['counts'].get(ds, '?')} test pairs)\n")
        print(table(rows, metrics, hib, methods))
    print(f"\n#### mean over {len(res['per_dataset'])} datasets\n")
    print(table(res["mean"], metrics, hib, methods))
    for net in args.network:
        print(f"\n#### targets for {net}: against the best classical fuser of each metric\n")
        print(targets_table(res, net, classical))
        if args.reference:
            print(f"\n#### targets for {net}: against {args.reference} alone\n")
            print(targets_table(res, net, [args.reference]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
