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
