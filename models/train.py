"""Training MGFusion: the paper's recipe as a library function (the CLI owns argument parsing).

Recipe (MGFusion, Front. Neurorobot. 2024): Adam; the learning rate rises linearly from 1e-4 to 1e-3
over the first 20% of the steps, then decays back to 1e-4. The paper does not say how it decays; we use
a half cosine (:func:`lr_at`, ``decay="linear"`` is the alternative), which stays near the peak a little
longer and lands smoothly on the base rate.

Reproducibility: the model is initialised from ``seed``; batch order per epoch comes from a generator
seeded by ``(seed, epoch)`` and each sample's augmentation from ``(seed, epoch, index)``
(:class:`~fusioncam.models.data.FusionPairDataset`), so resuming from a checkpoint at step ``s``
continues with exactly the batches the uninterrupted run would have drawn.

Outputs in ``out_dir``: ``checkpoints/epoch_NNNN.safetensors`` (weights + config, via
:func:`~fusioncam.models.factory.save_checkpoint`) with ``epoch_NNNN.state.pt`` beside it (optimizer,
step, RNG; loaded with ``torch.load(weights_only=True)``), ``model.safetensors`` (the final weights),
``log.csv`` (one row per step) and ``eval.json`` (the test-split evaluation). Every file is written under
a temporary name and renamed when complete, so an interrupted run never leaves a half-written file.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusioncam.errors import FusioncamError

from .data import ClipFeatureCache, FusionPairDataset

__all__ = [
    "TrainConfig",
    "TrainProgress",
    "TrainResult",
    "lr_at",
    "preflight",
    "resolve_device",
    "train",
    "fuse_tensor",
    "state_path_for",
    "weights_path_for",
    "evaluate_model",
]

DECAYS = ("cosine", "linear")
AMP_MODES = ("none", "fp16", "bf16")
#: the largest training crop: above any image of the shared data, and a batch of them still fits memory
MAX_CROP = 2048
LAMBDA_ON = ("intensity", "gradient")


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved beside its outputs (``config.yaml``)."""

    model: str = "mgfusion_fast_noclip"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    clip_weights: str | None = None  # explicit CLIP weights file (CLIP models only)
    # Start from these weights (a checkpoint of the same architecture) with a fresh optimizer and
    # schedule: fine-tuning, or a warm restart of a finished run. Ignored when resuming.
    init_weights: str | None = None
    # Data. LLVIP is left out by default: its terms forbid commercial use of derivative works.
    data_dir: str | None = None
    datasets: list[str] = field(default_factory=lambda: ["roadscene", "msrs", "m3svd"])
    test_datasets: list[str] | None = None  # None: every dataset of the test split
    crop: int = 256
    # Optimisation (the paper's recipe).
    epochs: int = 30
    batch_size: int = 8
    max_steps: int | None = None  # cap on the total number of steps (the schedule spans them)
    lr_base: float = 1e-4
    lr_peak: float = 1e-3
    warmup_frac: float = 0.2
    decay: str = "cosine"
    grad_clip: float | None = None  # max gradient norm; None: no clipping (the paper mentions none)
    # Loss: lambda = 0.2 weighting one of the two terms (see fusioncam.models.losses).
    loss_lambda: float = 0.2
    lambda_on: str = "intensity"
    seed: int = 0
    device: str = "auto"
    amp: str = "none"  # CUDA only: "fp16" (with a gradient scaler) or "bf16"
    clip_cache_dir: str | None = None  # where cached CLIP features go (None: memory only)

    def validate(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise FusioncamError(msg)

        need(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        need(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        need(8 <= self.crop <= MAX_CROP, f"crop must be 8 to {MAX_CROP} pixels, got {self.crop}")
        need(self.max_steps is None or self.max_steps >= 1, f"max_steps must be >= 1, got {self.max_steps}")
        need(0 < self.lr_base and 0 < self.lr_peak, "learning rates must be positive")
        need(0.0 <= self.warmup_frac < 1.0, f"warmup_frac must be in [0, 1), got {self.warmup_frac}")
        need(self.decay in DECAYS, f"decay must be one of {', '.join(DECAYS)}, got '{self.decay}'")
        need(self.amp in AMP_MODES, f"amp must be one of {', '.join(AMP_MODES)}, got '{self.amp}'")
        need(
            self.lambda_on in LAMBDA_ON,
            f"lambda_on must be one of {', '.join(LAMBDA_ON)}, got '{self.lambda_on}'",
        )
        need(self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"), "bad device")
        need(self.grad_clip is None or self.grad_clip > 0, "grad_clip must be positive or null")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TrainProgress:
    """What the progress callback receives: ``phase`` is "load", "train" or "eval"."""

    phase: str
    done: int
    total: int
    epoch: int = 0
    loss: float | None = None
    lr: float | None = None


@dataclass
class TrainResult:
    out_dir: Path
    checkpoint: Path  # the final weights (model.safetensors)
    steps: int
    epochs_done: int
    wall_s: float  # training wall time over all sessions of this run (resumes included)
    final_loss: float  # mean total loss over the last (up to) 50 steps
    evaluation: dict[str, Any] | None = None


def lr_at(
    step: int,
    total_steps: int,
    base: float = 1e-4,
    peak: float = 1e-3,
    warmup_frac: float = 0.2,
    decay: str = "cosine",
) -> float:
    """The learning rate for ``step`` (0-based) of ``total_steps``: linear warm-up, then decay.

    ``lr_at(0) == base``, ``lr_at(warmup) == peak`` with ``warmup = round(warmup_frac * total)``,
    ``lr_at(total) == base``; between warm-up and the end a half cosine (or a line) from peak to base.
    """
    if total_steps <= 0:
        raise ValueError("total_steps must be positive")
    step = min(max(step, 0), total_steps)
    warmup = round(warmup_frac * total_steps)
    if warmup > 0 and step <= warmup:
        return base + (peak - base) * step / warmup
    frac = (step - warmup) / max(1, total_steps - warmup)
    if decay == "cosine":
        return base + (peak - base) * 0.5 * (1.0 + math.cos(math.pi * frac))
    if decay == "linear":
        return peak + (base - peak) * frac
    raise ValueError(f"unknown decay '{decay}'")


def preflight(config: TrainConfig, check_init: bool = True) -> torch.device:
    """Everything about ``config`` that can fail before any data is read or file written: its values,
    the device and AMP on it, and (``check_init``; not when resuming) a readable ``init_weights``
    checkpoint. Returns the device."""
    from .factory import read_checkpoint_metadata

    config.validate()
    device = resolve_device(config.device)
    if config.amp != "none" and device.type != "cuda":
        raise FusioncamError(f"amp '{config.amp}' needs CUDA; use amp: none on the CPU")
    if check_init and config.init_weights is not None:
        if not Path(config.init_weights).is_file():
            raise FusioncamError(f"init_weights: checkpoint {config.init_weights} not found")
        read_checkpoint_metadata(config.init_weights)  # unreadable files fail here, not after loading data
    return device


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise FusioncamError("device 'cuda' requested but CUDA is not available; use --device cpu")
    return torch.device(device)


def state_path_for(checkpoint: str | os.PathLike) -> Path:
    """``.../epoch_0003.safetensors`` -> ``.../epoch_0003.state.pt`` (optimizer, step, RNG)."""
    p = Path(checkpoint)
    name = p.name
    for suffix in (".safetensors", ".state.pt"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return p.with_name(name + ".state.pt")


def weights_path_for(checkpoint: str | os.PathLike) -> Path:
    """The weights file of a checkpoint named by either of its two files."""
    state = state_path_for(checkpoint)
    return state.with_name(state.name[: -len(".state.pt")] + ".safetensors")


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _save_weights(model: torch.nn.Module, path: Path, metadata: dict[str, str]) -> None:
    from .factory import save_checkpoint

    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    save_checkpoint(model, tmp, metadata=metadata)
    os.replace(tmp, path)


def _loss_fn(config: TrainConfig) -> Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    from . import losses

    def fn(fused: torch.Tensor, ir: torch.Tensor, vis: torch.Tensor):
        return losses.fusion_loss(fused, ir, vis, lam=config.loss_lambda, lambda_on=config.lambda_on)

    return fn


@torch.no_grad()
def fuse_tensor(model: torch.nn.Module, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
    """Fuse a 1 x 1 x H x W pair of any size (every MGFusion layer is size-agnostic: no padding)."""
    feats = model.encode_clip(ir, vis) if getattr(model, "uses_clip", False) else None
    return model(ir, vis, clip_features=feats).clamp(0, 1)


def _u8(x: torch.Tensor) -> np.ndarray:
    return (x.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).squeeze().cpu().numpy()


def _as_groups(pairs: Any) -> dict[str, list[Any]]:
    if pairs is None:
        return {}
    if isinstance(pairs, dict):
        return {k: list(v) for k, v in pairs.items() if v}
    return {"test": list(pairs)} if pairs else {}


def evaluate_model(
    model: torch.nn.Module,
    pairs_test: Any,
    loss_fn: Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]],
    device: torch.device,
    evaluate: Callable[[np.ndarray, np.ndarray, np.ndarray], dict[str, float]] | None = None,
    progress: Callable[[TrainProgress], None] | None = None,
) -> dict[str, Any]:
    """Mean loss (and ``evaluate``'s metrics on uint8 images) per dataset, plus the mean over datasets."""
    groups = _as_groups(pairs_test)
    total = sum(len(v) for v in groups.values())
    was_training = model.training
    model.eval()
    per: dict[str, dict[str, float]] = {}
    done = 0
    try:
        for name, pairs in groups.items():
            ds = FusionPairDataset(pairs, crop=None, augment=False)
            sums: dict[str, float] = {}
            for i in range(len(ds)):
                s = ds[i]
                ir, vis = s["ir"][None].to(device), s["vis"][None].to(device)
                fused = fuse_tensor(model, ir, vis)
                loss, _ = loss_fn(fused, ir, vis)
                row = {"loss": float(loss)}
                if evaluate is not None:
                    row.update({k: float(v) for k, v in evaluate(_u8(ir), _u8(vis), _u8(fused)).items()})
                for k, v in row.items():
                    sums[k] = sums.get(k, 0.0) + v
                done += 1
                if progress:
                    progress(TrainProgress("eval", done, total))
            per[name] = {k: v / len(ds) for k, v in sums.items()}
    finally:
        model.train(was_training)
    keys = sorted({k for d in per.values() for k in d})
    mean = {k: float(np.mean([d[k] for d in per.values() if k in d])) for k in keys}
    return {"per_dataset": per, "mean": mean, "pairs": total}


def _rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _load_state(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FusioncamError(f"resume: training state {path} not found (it is saved beside each checkpoint)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise FusioncamError(f"resume: cannot read training state {path}: {type(e).__name__}") from None


def train(
    config: TrainConfig,
    pairs_train: Sequence[Any],
    pairs_test: Any = None,
    *,
    out_dir: str | os.PathLike,
    resume: str | os.PathLike | None = None,
    progress: Callable[[TrainProgress], None] | None = None,
    evaluate: Callable[[np.ndarray, np.ndarray, np.ndarray], dict[str, float]] | None = None,
) -> TrainResult:
    """Train ``config.model`` on ``pairs_train`` ((ir, vis) paths or PairPath objects).

    ``pairs_test`` (a list, or ``{dataset: list}``) is evaluated at the end: mean loss, plus the metrics
    ``evaluate(ir_u8, vis_u8, fused_u8) -> dict`` returns (the CLI passes fusioncam.evaluation.metrics;
    this module does not import the pipeline). ``resume`` is a checkpoint written by an earlier run (its
    ``.safetensors`` or ``.state.pt``); training continues at its step with identical state.
    """
    from .factory import create_model, load_checkpoint

    device = preflight(config, check_init=resume is None)
    out = Path(out_dir)
    ckpt_dir = out / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)

    state = None
    if resume is not None:
        weights = weights_path_for(resume)
        if not weights.is_file():
            raise FusioncamError(f"resume: checkpoint {weights} not found")
        state = _load_state(state_path_for(resume))
        if state.get("model") != config.model:
            raise FusioncamError(
                f"resume: checkpoint is of model '{state.get('model')}', the config asks for '{config.model}'"
            )

    torch.manual_seed(config.seed)
    model = create_model(
        config.model, device=str(device), clip_pretrained=config.clip_weights, **config.model_overrides
    )
    start_from = weights if resume is not None else config.init_weights
    if start_from is not None:
        if not Path(start_from).is_file():
            raise FusioncamError(f"init_weights: checkpoint {start_from} not found")
        load_checkpoint(model, start_from)  # raises FusioncamError for unreadable/mismatched files
    model.train()
    params = model.trainable_parameters()  # never CLIP's
    optimizer = torch.optim.Adam(params, lr=config.lr_base)
    scaler = torch.amp.GradScaler("cuda", enabled=config.amp == "fp16")
    amp_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(config.amp)

    def on_load(k: int, n: int) -> None:
        if progress:
            progress(TrainProgress("load", k, n))

    dataset = FusionPairDataset(
        pairs_train, crop=config.crop, augment=True, seed=config.seed, progress=on_load
    )
    bs = config.batch_size
    steps_per_epoch = len(dataset) // bs
    if steps_per_epoch == 0:
        raise FusioncamError(f"{len(dataset)} training pairs are fewer than one batch of {bs}")
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)

    clip_cache = None
    if getattr(model, "uses_clip", False):
        mc = model.config
        key = f"{mc.clip_model}:{config.clip_weights or mc.clip_pretrained}"
        clip_cache = ClipFeatureCache(dataset, model.encode_clip, key, device, config.clip_cache_dir)

    step, elapsed_before = 0, 0.0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["torch"])
        if device.type == "cuda" and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"], device)
        step = int(state["step"])
        elapsed_before = float(state.get("elapsed_s", 0.0))

    loss_fn = _loss_fn(config)
    log_path = out / "log.csv"
    writer: csv.DictWriter | None = None
    if state is not None and log_path.is_file():
        # Resuming into the same folder: keep the rows up to the checkpoint's step (a crashed run may
        # have logged steps past it, which are about to be repeated), then append.
        with open(log_path, newline="") as f:
            reader = csv.DictReader(f)
            header, kept = reader.fieldnames, [r for r in reader if int(r["step"]) <= step]
        tmp = log_path.with_name(log_path.name + ".tmp")
        with open(tmp, "w", newline="") as f:
            if header:
                w = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
                w.writeheader()
                w.writerows(kept)
        os.replace(tmp, log_path)
        log_file = open(log_path, "a", newline="")
        if header:
            writer = csv.DictWriter(log_file, fieldnames=header, extrasaction="ignore")
    else:
        log_file = open(log_path, "w", newline="")

    meta = {"model": config.model, "train_config": json.dumps(config.to_dict())}
    recent: list[float] = []
    t0 = time.perf_counter()

    def checkpoint(epochs_done: int) -> Path:
        elapsed = elapsed_before + time.perf_counter() - t0
        path = ckpt_dir / f"epoch_{epochs_done:04d}.safetensors"
        _save_weights(model, path, {**meta, "step": str(step), "epoch": str(epochs_done)})
        _atomic_torch_save(
            {
                "model": config.model,
                "step": step,
                "epoch": epochs_done,
                "total_steps": total_steps,
                "elapsed_s": elapsed,
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                "rng": _rng_state(device),
            },
            state_path_for(path),
        )
        return path

    try:
        while step < total_steps:
            epoch = step // steps_per_epoch
            dataset.set_epoch(epoch)
            g = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
            order = torch.randperm(len(dataset), generator=g)
            for b in range(step % steps_per_epoch, steps_per_epoch):
                idx = order[b * bs : (b + 1) * bs].tolist()
                samples = [dataset[i] for i in idx]
                ir = torch.stack([s["ir"] for s in samples]).to(device, non_blocking=True)
                vis = torch.stack([s["vis"] for s in samples]).to(device, non_blocking=True)
                feats = clip_cache.batch(idx, device) if clip_cache is not None else None
                lr = lr_at(
                    step, total_steps, config.lr_base, config.lr_peak, config.warmup_frac, config.decay
                )
                for group in optimizer.param_groups:
                    group["lr"] = lr
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    fused = model(ir, vis, clip_features=feats)
                loss, parts = loss_fn(fused.float(), ir, vis)
                if not torch.isfinite(loss):
                    raise FusioncamError(
                        f"training diverged at step {step} (loss {float(loss)}); "
                        "lower lr_peak or set grad_clip"
                    )
                scaler.scale(loss).backward()
                if config.grad_clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                step += 1

                row = {
                    "step": step,
                    "epoch": epoch + 1,
                    "loss": float(loss.detach()),
                    **{f"loss_{k}": float(v) for k, v in parts.items()},
                    "lr": lr,
                    "time_s": round(elapsed_before + time.perf_counter() - t0, 3),
                }
                if writer is None:
                    writer = csv.DictWriter(log_file, fieldnames=list(row), extrasaction="ignore")
                    writer.writeheader()
                writer.writerow(row)
                log_file.flush()
                recent = (recent + [row["loss"]])[-50:]
                if progress:
                    progress(TrainProgress("train", step, total_steps, epoch + 1, row["loss"], lr))
                if step >= total_steps:
                    break
            # A checkpoint at every epoch end, and where a max_steps cap stops mid-epoch.
            checkpoint(-(-step // steps_per_epoch))
    finally:
        log_file.close()

    wall = elapsed_before + time.perf_counter() - t0
    final = out / "model.safetensors"
    _save_weights(
        model,
        final,
        {**meta, "step": str(step), "epoch": str(-(-step // steps_per_epoch)), "wall_s": f"{wall:.1f}"},
    )
    evaluation = None
    if _as_groups(pairs_test):
        evaluation = evaluate_model(model, pairs_test, loss_fn, device, evaluate, progress)
        tmp = out / "eval.json.tmp"
        tmp.write_text(json.dumps(evaluation, indent=2))
        os.replace(tmp, out / "eval.json")
    return TrainResult(
        out_dir=out,
        checkpoint=final,
        steps=step,
        epochs_done=-(-step // steps_per_epoch),
        wall_s=wall,
        final_loss=float(np.mean(recent)) if recent else float("nan"),
        evaluation=evaluation,
    )
