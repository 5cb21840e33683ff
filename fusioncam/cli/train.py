"""``fusioncam train``: train MGFusion on the train split of the shared data.

Configuration is layered, lowest first: :class:`~fusioncam.models.train.TrainConfig` defaults, then a
``--config`` YAML file (keys are TrainConfig fields; an unknown key is rejected with the closest valid
one), then command-line flags. The resolved configuration is written to ``OUT/config.yaml`` before
training starts, so every run can be repeated with ``fusioncam train --config OUT/config.yaml``.

At the end the model is evaluated on the test split with :func:`fusioncam.evaluation.metrics.compute_metrics`
(passed to the library as a callback: ``fusioncam.models`` never imports the pipeline).
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from fusioncam.config import apply_mapping, read_yaml_mapping
from fusioncam.errors import FusioncamError

__all__ = ["add_arguments", "run", "resolve_config", "load_config_yaml", "apply_overrides"]

# flag dest -> TrainConfig field
_FLAG_FIELDS = {
    "model": "model",
    "datasets": "datasets",
    "data": "data_dir",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "crop": "crop",
    "lr_peak": "lr_peak",
    "seed": "seed",
    "device": "device",
    "clip_weights": "clip_weights",
    "max_steps": "max_steps",
    "lambda_on": "lambda_on",
    "amp": "amp",
    "init_weights": "init_weights",
}


def _csv_list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="YAML", help="training config file (keys of TrainConfig)")
    p.add_argument("--model", help="model config name (see fusioncam.models.factory.list_models)")
    p.add_argument(
        "--datasets",
        type=_csv_list,
        metavar="A,B",
        help="train-split datasets (default roadscene,msrs,m3svd)",
    )
    p.add_argument("--data", metavar="DIR", help="data folder with splits.yaml (default ../shared/data)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--crop", type=int, help="training crop size in pixels (paper: 256)")
    p.add_argument("--lr-peak", type=float, help="peak learning rate after warm-up (paper: 1e-3)")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--amp", choices=["none", "fp16", "bf16"], help="mixed precision on CUDA")
    p.add_argument("--out", metavar="DIR", help="output folder (default runs/train_<model>_<time>)")
    p.add_argument(
        "--resume",
        metavar="CKPT",
        help="continue from a checkpoint (.safetensors or .state.pt) of an earlier run; without --config "
        "its stored config is reused, and its run folder is the default --out",
    )
    p.add_argument(
        "--init-weights",
        metavar="CKPT",
        help="start from these weights with a fresh optimizer and schedule (fine-tune / warm restart)",
    )
    p.add_argument("--clip-weights", metavar="FILE", help="CLIP weights file (CLIP-guided models)")
    p.add_argument("--max-steps", type=int, help="cap on the number of training steps")
    p.add_argument("--lambda-on", choices=["intensity", "gradient"], help="which loss term lambda weights")
    p.add_argument(
        "--threads", type=int, metavar="N", help="CPU threads for torch (1 is fastest on a busy machine)"
    )
    p.add_argument("--no-eval", action="store_true", help="skip the test-split evaluation at the end")


# --- config layering --------------------------------------------------------------------------------


def apply_overrides(config: Any, mapping: dict[str, Any], source: str) -> Any:
    """A copy of ``config`` with ``mapping`` applied; unknown keys get a close-match suggestion."""
    return apply_mapping(config, mapping, source, what="config key")


def load_config_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """The mapping of TrainConfig keys in a ``--config`` file (one-line errors; empty file: ``{}``)."""
    return read_yaml_mapping(path, "config file")


def resolve_config(args: argparse.Namespace, base: dict[str, Any] | None = None) -> Any:
    """Defaults (or ``base``, a resumed run's config), then ``--config``, then the flags given."""
    from fusioncam.models.train import TrainConfig

    config = TrainConfig()
    if base:
        config = apply_overrides(config, base, "the resumed checkpoint's config")
    if getattr(args, "config", None):
        config = apply_overrides(config, load_config_yaml(args.config), args.config)
    flags = {
        field: getattr(args, dest)
        for dest, field in _FLAG_FIELDS.items()
        if getattr(args, dest, None) is not None
    }
    config = apply_overrides(config, flags, "command line")
    config.validate()
    return config


def _save_config(config: Any, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "config.yaml"
    tmp = out / "config.yaml.tmp"
    with open(tmp, "w") as f:
        f.write("# resolved training config; repeat with: fusioncam train --config config.yaml\n")
        yaml.safe_dump(config.to_dict(), f, sort_keys=False)
    os.replace(tmp, path)
    return path


# --- progress --------------------------------------------------------------------------------------


class _TrainProgress:
    """Turns the library's :class:`TrainProgress` events into :class:`fusioncam.progress.ProgressBar`s.

    One bar per phase (load, train, eval), its label carrying the epoch, loss and learning rate. When
    stderr is not a terminal (a background run logging to a file) the bar stays silent, so a plain line
    is printed every ``log_every_s`` seconds instead.
    """

    UNITS = {"load": "pairs", "train": "steps", "eval": "pairs"}

    def __init__(self, stream=None, log_every_s: float = 30.0):
        self.stream = stream if stream is not None else sys.stderr
        self.log_every_s = log_every_s
        self.bar = None
        self.phase = None
        self.last_log = 0.0

    def __call__(self, p: Any) -> None:
        from fusioncam.progress import ProgressBar

        if p.phase != self.phase:
            self.close()
            self.phase = p.phase
            self.bar = ProgressBar(
                p.total, label=p.phase, stream=self.stream, unit=self.UNITS.get(p.phase, "")
            )
            self.bar.n = p.done - 1  # a resumed run starts part-way
        if p.loss is not None:
            self.bar.label = f"{p.phase} epoch {p.epoch} loss {p.loss:.4f} lr {p.lr:.2e}"
        self.bar.update(p.done - self.bar.n)
        now = time.monotonic()
        if not self.bar.enabled and (now - self.last_log >= self.log_every_s) and p.done < p.total:
            self.last_log = now
            self.stream.write(self.bar.line() + "\n")
            self.stream.flush()
        if p.done >= p.total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            self.phase = None


# --- run --------------------------------------------------------------------------------------------


def _metrics_callback():
    try:
        from fusioncam.evaluation.metrics import compute_metrics
    except ImportError:
        return None

    def evaluate(ir, vis, fused):
        return compute_metrics(ir, vis, fused)

    return evaluate


def _check_model(name: str) -> None:
    from fusioncam.models.factory import list_models

    names = list_models()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise FusioncamError(f"unknown model '{name}'{hint}; choose one of: {', '.join(names)}")


def _resumed_config(resume: Path) -> dict[str, Any] | None:
    """The TrainConfig stored in a checkpoint's metadata (so ``--resume`` alone repeats the run)."""
    import json

    from fusioncam.models.factory import read_checkpoint_metadata
    from fusioncam.models.train import weights_path_for

    meta = read_checkpoint_metadata(weights_path_for(resume))
    try:
        return json.loads(meta["train_config"])
    except (KeyError, ValueError):
        return None


def run(args: argparse.Namespace) -> int:
    from fusioncam.evaluation.dataset import load_split
    from fusioncam.io.outputs import check_output_folder
    from fusioncam.models.train import preflight, train

    base = None
    if args.resume:
        if not Path(args.resume).is_file():
            raise FusioncamError(f"resume: checkpoint {args.resume} not found")
        if not args.resume.endswith((".safetensors", ".state.pt")):
            raise FusioncamError(
                f"resume: {args.resume} is not a training checkpoint (give the .safetensors or .state.pt "
                "file that `fusioncam train` writes into the run's checkpoints/ folder)"
            )
        if not args.config:
            base = _resumed_config(Path(args.resume))
    config = resolve_config(args, base)
    _check_model(config.model)
    preflight(config, check_init=not args.resume)
    if args.threads is not None:
        if args.threads < 1:
            raise FusioncamError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    train_groups = load_split("train", config.data_dir, config.datasets)
    pairs = [p for group in train_groups.values() for p in group]
    if not pairs:
        raise FusioncamError(f"no training pairs in the train split of datasets {', '.join(config.datasets)}")
    test = None
    if not args.no_eval:
        test = {k: v for k, v in load_split("test", config.data_dir, config.test_datasets).items() if v}

    if args.out:
        out = Path(args.out)
    elif args.resume and Path(args.resume).parent.name == "checkpoints":
        out = Path(args.resume).parent.parent  # continue in the run's own folder
    else:
        out = Path(f"runs/train_{config.model}_{time.strftime('%Y%m%d-%H%M%S')}")
    check_output_folder(out, "--out")
    saved = _save_config(config, out)
    counts = ", ".join(f"{k} {len(v)}" for k, v in train_groups.items() if v)
    print(f"training {config.model} on {len(pairs)} pairs ({counts}); config saved to {saved}")

    progress = _TrainProgress()
    try:
        result = train(
            config,
            pairs,
            test,
            out_dir=out,
            resume=args.resume,
            progress=progress,
            evaluate=_metrics_callback(),
        )
    finally:
        progress.close()
    print(
        f"done: {result.steps} steps, {result.epochs_done} epochs, {result.wall_s:.0f} s, "
        f"final loss {result.final_loss:.4f}; weights {result.checkpoint}"
    )
    if result.evaluation:
        ev = result.evaluation
        keys = list(ev["mean"])
        print("test split " + " ".join(f"{k:>8s}" for k in keys))
        for name, row in {**ev["per_dataset"], "mean": ev["mean"]}.items():
            print(f"{name:10s} " + " ".join(f"{row.get(k, float('nan')):8.4f}" for k in keys))
        print(f"evaluation saved to {out / 'eval.json'}")
    return 0
