"""Shared fixtures: the real data in ../shared/data (skipped with a reason where absent), Qt offscreen."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("FUSIONCAM_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared IR/VIS data set; tests that need it skip with a clear reason where it is absent."""
    if not (DATA_DIR / "splits.yaml").is_file():
        pytest.skip(f"shared data not found at {DATA_DIR} (set FUSIONCAM_DATA to its folder)")
    return DATA_DIR


@pytest.fixture(scope="session")
def tiny_clip_checkpoint(tmp_path_factory) -> tuple[Path, str]:
    """(checkpoint, CLIP weights file): a tiny CLIP-guided network and the tiny random open_clip weights it
    was built with, saved to files so that tests load them through the same path as real weights."""
    import torch

    from fusioncam.models.clip_encoder import save_tiny_clip
    from fusioncam.models.factory import create_model, save_checkpoint

    d = tmp_path_factory.mktemp("tiny_clip")
    name, clip_path = save_tiny_clip(d)
    torch.manual_seed(0)
    model = create_model(
        "mgfusion_fast",
        clip_pretrained=clip_path,
        clip_model=name,
        allow_download=False,
        width=8,
        depth=1,
        heads=2,
        adapter_hidden=8,
    )
    return save_checkpoint(model, d / "clip_net.safetensors"), clip_path
