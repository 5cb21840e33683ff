"""The boundaries of ARCHITECTURE.md, checked on the source: what must never import what.

Static (AST) checks of every module's imports, including imports inside functions, so a lazy import
cannot slip a forbidden dependency past the test.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# folder -> (package name, forbidden import prefixes)
RULES = {
    "fusioncam": ("fusioncam", ("PyQt6", "PySide6", "fusioncam.ui")),
    "models": (
        "fusioncam.models",
        (
            "cv2",
            "PyQt6",
            "PySide6",
            "fusioncam.ui",
            "fusioncam.live.engine",
            "fusioncam.io.sources",
            "fusioncam.io.capture",
            "fusioncam.live.sync",
            "fusioncam.io.sinks",
            "fusioncam.calibration",
        ),
    ),
    "calibration": (
        "fusioncam.calibration",
        ("PyQt6", "PySide6", "torch", "fusioncam.models", "fusioncam.live.engine", "fusioncam.ui"),
    ),
}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def _modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


# The CLI is the shell that opens the GUI: it may import fusioncam.ui (never Qt itself).
EXCEPTIONS = {ROOT / "fusioncam" / "cli": ("fusioncam.ui",)}


@pytest.mark.parametrize("folder", sorted(RULES))
def test_forbidden_imports(folder: str) -> None:
    _pkg, forbidden = RULES[folder]
    bad = []
    for path in _modules(folder):
        allowed = [a for d, names in EXCEPTIONS.items() if d in path.parents for a in names]
        for line, name in _imports(path):
            if any(name == a or name.startswith(a + ".") for a in allowed):
                continue
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not bad, "boundary violations:\n" + "\n".join(bad)


def test_only_cli_and_ui_parse_arguments() -> None:
    allowed = {ROOT / "fusioncam" / "cli", ROOT / "ui"}
    bad = []
    for folder in ("fusioncam", "models", "calibration", "ui"):
        for path in _modules(folder):
            if any(a in path.parents for a in allowed):
                continue
            if any(name == "argparse" for _, name in _imports(path)):
                bad.append(str(path.relative_to(ROOT)))
    assert not bad, f"argument parsing outside fusioncam.cli / fusioncam.ui: {bad}"


def test_installed_layout_has_no_bare_top_level_packages() -> None:
    """ui/, calibration/ and models/ must import as fusioncam.* and never as bare packages."""
    import importlib.util
    import sys

    import fusioncam.calibration
    import fusioncam.models
    import fusioncam.ui

    assert Path(fusioncam.ui.__file__).parent == ROOT / "ui"
    assert Path(fusioncam.models.__file__).parent == ROOT / "models"
    assert Path(fusioncam.calibration.__file__).parent == ROOT / "calibration"
    # With the repository root off sys.path, a bare `ui` must not be importable.
    saved = list(sys.path)
    try:
        sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT]
        for name in ("ui", "models", "calibration"):
            sys.modules.pop(name, None)
            assert importlib.util.find_spec(name) is None, f"bare top-level package '{name}' is installed"
    finally:
        sys.path[:] = saved


def test_regular_install_carries_data_and_no_bare_packages(tmp_path: Path) -> None:
    """A wheel (what a regular install unpacks) holds the configs, sample clips and shipped weights
    under fusioncam/, and nothing at the top level but fusioncam and its metadata."""
    import subprocess
    import sys
    import zipfile

    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    if build.returncode != 0 and "No module named" in build.stderr:
        pytest.skip(f"cannot build a wheel offline here: {build.stderr.strip().splitlines()[-1]}")
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("fusioncam-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"fusioncam", next(t for t in tops if t.endswith(".dist-info"))}, tops
    for needed in (
        "fusioncam/ui/main_window.py",
        "fusioncam/calibration/auto.py",
        "fusioncam/models/configs/mgfusion_fast_noclip.json",
        "fusioncam/assets/samples/ir_0111_1716.mp4",
        "fusioncam/assets/samples/NOTICE.md",
        "fusioncam/assets/weights/mgfusion_fast_noclip.safetensors",
        "fusioncam/assets/weights/mgfusion_noclip.safetensors",
        "fusioncam/assets/weights/mgfusion_noclip.md",
    ):
        assert needed in names, f"{needed} missing from the wheel"
