"""`fusioncam [live]` and `fusioncam demo`: bad flags (exit 2, one line), no display, headless runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fusioncam.cli import main
from fusioncam.cli.live import display_problem
from fusioncam.config import load_settings
from fusioncam.processing.registration import Rig

ROOT = Path(__file__).resolve().parents[1]
SYN = [
    "--ir",
    "synthetic:64x48",
    "--vis",
    "synthetic:64x48",
    "--loop",
    "--method",
    "average",
    "--device",
    "cpu",
]


@pytest.fixture(autouse=True)
def user_settings(tmp_path: Path, monkeypatch) -> Path:
    """Never read or write the real per-user settings; have a display (offscreen)."""
    path = tmp_path / "user" / "settings.yaml"
    monkeypatch.setenv("FUSIONCAM_SETTINGS", str(path))
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    return path


def run_cli(capsys, *argv: str) -> tuple[int, list[str]]:
    code = main(list(argv))
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return code, err


class TestBadInput:
    @pytest.mark.parametrize(
        "argv, needle",
        [
            (["--ir", "/nonexistent/ir.mp4", "--vis", "synthetic"], "IR source: input not found"),
            (["--ir", "synthetic", "--vis", "missing_vis.mp4"], "VIS source: input not found"),
            (["--ir", "/dev/video97", "--vis", "synthetic"], "IR source: camera /dev/video97 not found"),
            ([*SYN, "--clip-refresh", "0"], "clip_refresh must be >= 1"),
            ([*SYN, "--method", "averag"], "did you mean 'average'"),
            ([*SYN, "--device", "tpu"], "engine.device"),
            ([*SYN, "--rig", "no_such_rig.yaml"], "rig file not found"),
            ([*SYN, "--weights", "no_such.safetensors"], "weights file not found: no_such.safetensors"),
            ([*SYN, "--weights", "mgfusion_nope"], "nor is it a shipped checkpoint: mgfusion_fast_noclip"),
            ([*SYN, "--clip-weights", "no_clip.bin"], "CLIP weights file not found: no_clip.bin"),
            ([*SYN, "--sync-tolerance", "-3"], "sync_tolerance_ms must be > 0"),
            ([*SYN, "--method", "gff"], "gff is a still-image baseline"),
            ([*SYN, "--method", "max_detail"], "its fused video flickers"),
            ([*SYN, "--quit-after", "0"], "--quit-after must be > 0"),
            (["--vis", "synthetic"], "no --ir source given"),
            (["live"], "run `fusioncam demo`"),
        ],
    )
    def test_exit_2_with_one_line(self, capsys, argv: list[str], needle: str) -> None:
        code, err = run_cli(capsys, *argv)
        assert code == 2
        assert len(err) == 1 and needle in err[0], err

    def test_weights_by_shipped_name_pass_the_check(self) -> None:
        # a shipped checkpoint is named, not given as a file (e.g. --weights mgfusion_noclip)
        from fusioncam.cli.live import check_settings
        from fusioncam.config import Settings

        settings = Settings()
        settings.sources.ir, settings.sources.vis = "synthetic", "synthetic"
        settings.engine.method, settings.engine.weights = "mgfusion", "mgfusion_fast_noclip"
        check_settings(settings)  # raises on a name that is neither a file nor shipped

    def test_config_file_with_unknown_key(self, capsys, tmp_path: Path) -> None:
        cfg = tmp_path / "c.yaml"
        cfg.write_text("display:\n  pallete: jet\n")
        code, err = run_cli(capsys, *SYN, "--config", str(cfg))
        assert code == 2 and len(err) == 1 and "did you mean 'display.palette'" in err[0]

    def test_bad_rig_file(self, capsys, tmp_path: Path) -> None:
        rig = tmp_path / "rig.yaml"
        rig.write_text("vis_H_ir: [[1, 0], [0, 1]]\nir_size: [64, 48]\nvis_size: [64, 48]\n")
        code, err = run_cli(capsys, *SYN, "--rig", str(rig))
        assert code == 2 and len(err) == 1 and "3x3" in err[0]

    def test_no_display(self, capsys, monkeypatch) -> None:
        for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
            monkeypatch.delenv(var, raising=False)
        if sys.platform.startswith(("win", "darwin")):
            pytest.skip("a desktop session always has a display on this platform")
        code, err = run_cli(capsys, *SYN)
        assert code == 2 and len(err) == 1
        assert "no display" in err[0] and "fusioncam fuse" in err[0] and "QT_QPA_PLATFORM=offscreen" in err[0]


class TestDisplayProblem:
    def test_cases(self) -> None:
        assert display_problem({}, "linux") is not None
        assert display_problem({"DISPLAY": ":0"}, "linux") is None
        assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
        assert display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
        assert display_problem({"QT_QPA_PLATFORM": "xcb"}, "linux") is not None
        assert display_problem({}, "darwin") is None and display_problem({}, "win32") is None


class TestHeadlessRun:
    def test_live_records_screenshots_and_saves_settings(self, qapp, capsys, tmp_path, user_settings) -> None:
        rig = tmp_path / "rig.yaml"
        Rig.identity((64, 48)).save(rig)
        shot = tmp_path / "shot.png"
        out = tmp_path / "rec"
        code, err = run_cli(
            capsys, *SYN, "--rig", str(rig), "--palette", "jet", "--record", str(out),
            "--quit-after", "1", "--screenshot", str(shot),
        )  # fmt: skip
        assert code == 0, err
        assert shot.is_file() and shot.stat().st_size > 1000
        (folder,) = list(out.iterdir())
        meta = json.loads((folder / "recording.json").read_text())
        assert meta["frames"] > 5 and (folder / "fused.mp4").is_file()
        assert meta["settings"]["engine"]["rig"] == str(rig)
        saved = load_settings(user_settings)
        assert saved.display.palette == "jet" and saved.sources.ir == "synthetic:64x48"
        assert saved.engine.rig == str(rig)

    def test_a_failed_start_is_a_failed_check(self, qapp, capsys, tmp_path) -> None:
        # an unreadable video passes the spec check (the file exists) but cannot be opened
        bad = tmp_path / "bad.mp4"
        bad.write_bytes(b"not a video")
        code, err = run_cli(
            capsys, "--ir", str(bad), "--vis", "synthetic", "--method", "average", "--quit-after", "5"
        )
        assert code == 1 and err and "no fused frame was shown" in err[-1]


def test_demo_runs_headless(tmp_path: Path) -> None:
    """The README's demo command, unattended: the sample clips play and the screenshot is written."""
    shot = tmp_path / "demo.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "FUSIONCAM_SETTINGS": str(tmp_path / "s.yaml")}
    proc = subprocess.run(
        [sys.executable, "-m", "fusioncam", "demo", "--method", "average", "--device", "cpu",
         "--quit-after", "1.5", "--screenshot", str(shot)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert shot.is_file() and shot.stat().st_size > 10_000
    assert "fused/s" in proc.stderr and "average on cpu" in proc.stderr  # the unattended summary line
    assert load_settings(tmp_path / "s.yaml").sources.ir == ""  # the demo keeps the user's sources
