"""Locate the shared IR/VIS pairs and their fixed train/test split.

The data lives outside the repository (``../shared/data`` from the project root, or ``$FUSIONCAM_DATA``);
it is never committed. ``splits.yaml`` names each pair by file stem, the same in ``ir/`` and ``vis/``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from fusioncam.errors import FusioncamError

__all__ = ["PairPath", "default_data_dir", "load_split", "DATASETS"]

DATASETS = ("roadscene", "msrs", "llvip", "m3svd", "kaist")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class PairPath:
    dataset: str
    stem: str
    ir: Path
    vis: Path


def default_data_dir() -> Path:
    """``$FUSIONCAM_DATA`` if set, else ``../shared/data`` beside the project checkout."""
    env = os.environ.get("FUSIONCAM_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def _find(folder: Path, stem: str) -> Path:
    for ext in IMAGE_EXTS:
        p = folder / f"{stem}{ext}"
        if p.is_file():
            return p
    raise FusioncamError(f"no image named {stem}.* in {folder}")


def load_split(
    split: str = "test", data_dir: str | Path | None = None, datasets: list[str] | None = None
) -> dict[str, list[PairPath]]:
    """Pairs of ``split`` ("train" or "test") per dataset, in the order of ``splits.yaml``."""
    root = Path(data_dir) if data_dir else default_data_dir()
    if root.exists() and not root.is_dir():
        raise FusioncamError(f"data folder {root} is a file, not a folder")
    split_file = root / "splits.yaml"
    if not split_file.is_file():
        raise FusioncamError(
            f"data split not found at {split_file}; put the shared data there or set FUSIONCAM_DATA"
        )
    try:
        splits = yaml.safe_load(split_file.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise FusioncamError(f"cannot read {split_file}: {str(e).splitlines()[0]}") from None
    if not isinstance(splits, dict):
        raise FusioncamError(
            f"{split_file} must map 'train' and 'test' to datasets, got {type(splits).__name__}"
        )
    if split not in splits or not isinstance(splits[split], dict):
        raise FusioncamError(f"split '{split}' not in {split_file}; choose 'train' or 'test'")
    wanted = datasets or list(splits[split])
    unknown = [d for d in wanted if d not in splits[split]]
    if unknown:
        raise FusioncamError(f"unknown dataset(s) {', '.join(unknown)}; known: {', '.join(splits[split])}")
    out: dict[str, list[PairPath]] = {}
    for ds in wanted:
        stems = splits[split][ds] or []
        base = root / "pairs" / ds
        out[ds] = [PairPath(ds, s, _find(base / "ir", s), _find(base / "vis", s)) for s in stems]
    return out
