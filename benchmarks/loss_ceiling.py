"""What the paper's loss itself asks for: the six metrics of images that minimise it directly.

MGFusion is trained to minimise
``0.2 * ||F - max(IR, VIS)||_1 + || |grad F| - max(|grad IR|, |grad VIS|) ||_1``
(``fusioncam.models.losses.fusion_loss``). A network trained with it can at best reproduce, on unseen
pairs, the image that minimises that loss for each pair. This script computes that image directly, by
projected gradient descent on the fused image itself (Adam on the pixels, clamped to [0, 1], started
from ``max(IR, VIS)``, the minimiser of the intensity term), and scores it with the same evaluation as
every fuser (``fusioncam.evaluation.evaluate``). So it tells how far the loss's own optimum is from
the classical fusers on each metric: where it is behind, no amount of training with this loss closes the gap.

The optimum is a per-image optimisation, not a fuser one would ship (seconds per frame, and it sees the
test image's loss). It is registered as the fuser ``loss_optimum`` for this script only.

``--losses average,max,gff,mgfusion`` prints instead the training loss itself of each method's output,
averaged over the test pairs, beside the optimum's: how close each comes to what the loss asks for.

Usage: ``python benchmarks/loss_ceiling.py [--steps 150] [--lambda-on intensity] [--limit N]
[--json out.json] [--losses A,B,... [--weights NAME]]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from fusioncam.evaluation.dataset import load_split
from fusioncam.evaluation.evaluate import evaluate, load_pair, write_json
from fusioncam.models.losses import fusion_loss
from fusioncam.processing.fusers import create_fuser, register_fuser

ARGS = argparse.Namespace(steps=150, lr=0.01, lambda_on="intensity")


def _as_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.astype(np.float32) / 255.0)[None, None]


@register_fuser("loss_optimum", "Per-image minimiser of the MGFusion training loss (benchmark only).", False)
class LossOptimum:
    """Fuse by minimising the training loss over the fused image's pixels."""

    name = "loss_optimum"

    def fuse(self, ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
        a, b = _as_tensor(ir), _as_tensor(vis)
        f = torch.maximum(a, b).clone().requires_grad_(True)
        opt = torch.optim.Adam([f], lr=ARGS.lr)
        for _ in range(ARGS.steps):
            opt.zero_grad(set_to_none=True)
            loss, _ = fusion_loss(f, a, b, lambda_on=ARGS.lambda_on)
            loss.backward()
            opt.step()
            with torch.no_grad():
                f.clamp_(0.0, 1.0)
        return (f.detach()[0, 0].numpy() * 255.0 + 0.5).clip(0, 255).astype(np.uint8)


def loss_table(
    methods: list[str], data_dir: Path | None, limit: int | None, weights: str | None = None
) -> None:
    """Mean training loss of each method's fused output per test dataset, and over the datasets.

    ``weights`` (a checkpoint file or shipped name) goes to the network methods only."""
    from fusioncam.processing.fusers import fuser_info

    fusers = {
        m: create_fuser(m) if weights is None or fuser_info(m).classical else create_fuser(m, weights=weights)
        for m in methods
    }
    per_ds: dict[str, dict[str, float]] = {}
    for ds, pairs in load_split("test", data_dir).items():
        sums = dict.fromkeys(methods, 0.0)
        for pair in pairs[:limit]:
            ir, vis_y, _ = load_pair(pair)
            a, b = _as_tensor(ir), _as_tensor(vis_y)
            for m, fuser in fusers.items():
                with torch.no_grad():
                    loss, _ = fusion_loss(_as_tensor(fuser.fuse(ir, vis_y)), a, b, lambda_on=ARGS.lambda_on)
                sums[m] += float(loss)
        per_ds[ds] = {m: v / len(pairs[:limit]) for m, v in sums.items()}
        print(f"{ds:11s} " + " ".join(f"{per_ds[ds][m]:9.5f}" for m in methods), flush=True)
    mean = {m: float(np.mean([per_ds[d][m] for d in per_ds])) for m in methods}
    print(f"{'mean':11s} " + " ".join(f"{mean[m]:9.5f}" for m in methods))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=ARGS.steps, help="optimisation steps per image")
    ap.add_argument("--lr", type=float, default=ARGS.lr, help="Adam step size (intensity units of [0, 1])")
    ap.add_argument("--lambda-on", choices=("intensity", "gradient"), default=ARGS.lambda_on)
    ap.add_argument("--limit", type=int, default=None, help="first N test pairs of each dataset")
    ap.add_argument("--data", type=Path, default=None, help="data folder with splits.yaml")
    ap.add_argument("--json", type=Path, default=None, help="write the evaluation here")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--losses", default="", help="comma list of methods: print their mean training loss")
    ap.add_argument("--weights", help="with --losses: checkpoint (file or shipped name) of network methods")
    args = ap.parse_args(argv)
    ARGS.steps, ARGS.lr, ARGS.lambda_on = args.steps, args.lr, args.lambda_on
    torch.set_num_threads(args.threads)
    print(f"# {' '.join(['python', *sys.argv])}")
    if args.losses:
        methods = [m.strip() for m in args.losses.split(",") if m.strip()]
        print(f"# training loss ({ARGS.lambda_on} weighted by 0.2), mean over the test pairs")
        print("dataset     " + " ".join(f"{m[:9]:>9s}" for m in methods))
        loss_table(methods, args.data, args.limit, args.weights)
        return 0
    t0 = time.perf_counter()

    def progress(done: int, total: int, pair) -> None:
        elapsed = time.perf_counter() - t0
        print(f"[{elapsed:6.0f} s] {done}/{total} {pair.dataset}/{pair.stem}", file=sys.stderr)

    result = evaluate(["loss_optimum"], data_dir=args.data, limit=args.limit, workers=1, progress=progress)
    print(f"# {sum(result['counts'].values())} pairs in {time.perf_counter() - t0:.0f} s")
    metrics = result["metrics"]
    print("dataset     " + " ".join(f"{m:>9s}" for m in metrics))
    for ds, per_method in [*result["per_dataset"].items(), ("mean", result["mean"])]:
        row = per_method["loss_optimum"]
        print(f"{ds:11s} " + " ".join(f"{row[m]:9.4f}" for m in metrics))
    if args.json:
        write_json(result, args.json)
        print(json.dumps({"written": str(args.json)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
