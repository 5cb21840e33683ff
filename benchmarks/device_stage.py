"""Stage what ``benchmarks/device_check.sh`` needs on a lent GPU machine into ``.device/`` (git-ignored).

A lent machine reaches no network and receives only the repository (64 MiB at most), not the data
beside it. So, on this machine, before asking for the device:

- copy the pairs it needs from ``../shared/data``: the train split of the training datasets, with
  ``splits.yaml`` (the test split stays here: the checkpoint comes back and is evaluated here, since
  the whole test split would not fit beside the training pairs);
- download the wheels it lacks for its Python (3.12; its image has torch, timm, OpenCV, scipy, but not
  open_clip or kornia), as the device tool's README describes.

Then run ``benchmarks/device_check.sh`` there with ``carry: [".device"]`` (the command is printed).

Usage: ``python benchmarks/device_stage.py [--data DIR] [--datasets roadscene,msrs,m3svd] [--no-wheels]``
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from fusioncam.evaluation.dataset import default_data_dir, load_split

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / ".device"
LIMIT_BYTES = 64 * 2**20  # what the device tool carries in all, the repository included
# Not in the device image (see /work/.library/device/KINDS.md), with what they need that is not there.
WHEELS = ("open_clip_torch", "ftfy", "wcwidth", "kornia", "kornia_rs")
PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in (17, 24, 27, 28, 31, 34)] + ["manylinux2014_x86_64"]


def _copy_pairs(data: Path, split: str, datasets: list[str] | None) -> int:
    """Copy the IR and VIS files of a split; returns the bytes copied."""
    total = 0
    for pairs in load_split(split, data, datasets).values():
        for pair in pairs:
            for src in (pair.ir, pair.vis):
                dst = STAGE / "data" / src.relative_to(data)
                if not dst.exists():
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dst)
                total += dst.stat().st_size
    return total


def _download_wheels() -> None:
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
    cmd += ["--python-version", "3.12", "--implementation", "cp"]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    subprocess.run([*cmd, "-d", str(STAGE / "whl"), *WHEELS], check=True)


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="data folder with splits.yaml")
    ap.add_argument("--datasets", default="roadscene,msrs,m3svd", help="training datasets (train split)")
    ap.add_argument("--no-wheels", action="store_true", help="skip the wheel download")
    args = ap.parse_args(argv)
    data = args.data or default_data_dir()
    if not (data / "splits.yaml").is_file():
        print(f"no splits.yaml in {data} (set FUSIONCAM_DATA or --data)", file=sys.stderr)
        return 2
    (STAGE / "data").mkdir(parents=True, exist_ok=True)
    shutil.copy2(data / "splits.yaml", STAGE / "data" / "splits.yaml")
    train = _copy_pairs(data, "train", [d.strip() for d in args.datasets.split(",") if d.strip()])
    print(f"train pairs: {train / 2**20:.1f} MiB")
    if not args.no_wheels:
        _download_wheels()
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    repo = sum((ROOT / f.decode()).stat().st_size for f in tracked if f and (ROOT / f.decode()).is_file())
    staged = _tree_bytes(STAGE)
    mib = 2**20
    print(f"staged {staged / mib:.1f} MiB in {STAGE}; with the tracked files {(staged + repo) / mib:.1f} MiB")
    if staged + repo > LIMIT_BYTES:
        print("over the 64 MiB the device tool carries: stage fewer datasets", file=sys.stderr)
        return 1
    print('device run: command "bash benchmarks/device_check.sh", carry [".device"], timeout_s 600')
    return 0


if __name__ == "__main__":
    sys.exit(main())
