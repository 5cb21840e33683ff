"""Where commands may write: checks made before anything is computed or written.

The unit tests cover :mod:`fusioncam.io.outputs`; the command tests hold every command that writes files
to the rule "an input is never overwritten, and a failure leaves older outputs as they were".
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from fusioncam.cli import main
from fusioncam.errors import FusioncamError
from fusioncam.io.outputs import (
    atomic_write_bytes,
    check_file_outputs,
    check_image_output,
    check_output_folder,
    input_files,
)


def run_cli(capsys, *argv) -> tuple[int, list[str]]:
    code = main([str(a) for a in argv])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return code, err


def one_error(capsys, *argv) -> str:
    code, err = run_cli(capsys, *argv)
    assert code == 2 and len(err) == 1, err  # one clear line, no traceback
    return err[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- fusioncam.io.outputs --------------------------------------------------------------------------------
class TestCheckFileOutputs:
    def test_paths_come_back_and_none_stays_none(self, tmp_path):
        a, b = check_file_outputs([("table", tmp_path / "a.csv"), ("json", None)])
        assert a == tmp_path / "a.csv" and b is None

    @pytest.mark.parametrize("name", ["", " ", "sub/", "."])
    def test_no_file_name(self, tmp_path, name):
        with pytest.raises(FusioncamError, match="give a file name"):
            check_file_outputs([("table", name)])

    def test_folder_missing_a_file_or_itself_a_folder(self, tmp_path):
        (tmp_path / "f.txt").write_text("x")
        with pytest.raises(FusioncamError, match="does not exist"):
            check_file_outputs([("table", tmp_path / "no" / "a.csv")])
        with pytest.raises(FusioncamError, match="is not a folder"):
            check_file_outputs([("table", tmp_path / "f.txt" / "a.csv")])
        with pytest.raises(FusioncamError, match="is a folder; give a file name"):
            check_file_outputs([("table", tmp_path)])

    def test_inputs_files_of_input_folders_and_glob_matches(self, tmp_path):
        views = tmp_path / "views"
        views.mkdir()
        (views / "0.png").write_bytes(b"x")
        (tmp_path / "pts.csv").write_text("x")
        for out, inputs in [
            (tmp_path / "pts.csv", [tmp_path / "pts.csv"]),
            (views / "0.png", [views]),
            (views / "0.png", [str(views / "*.png")]),
        ]:
            with pytest.raises(FusioncamError, match="is also an input"):
                check_file_outputs([("rig file", out)], inputs)
        # a new file inside an input folder is no input, and a missing input names nothing
        check_file_outputs([("rig file", views / "rig.yaml")], [views, tmp_path / "missing.png"])
        assert input_files([None, ""]) == set()

    def test_two_outputs_on_one_path_and_forbidden_folders(self, tmp_path):
        with pytest.raises(FusioncamError, match="is also the --csv"):
            check_file_outputs([("--csv", tmp_path / "e.csv"), ("--json", tmp_path / "e.csv")])
        data = tmp_path / "data"
        (data / "pairs").mkdir(parents=True)
        with pytest.raises(FusioncamError, match="is inside the data folder"):
            check_file_outputs([("--csv", data / "pairs" / "e.csv")], forbidden_dirs=[("data folder", data)])

    def test_image_extensions(self, tmp_path):
        check_image_output("check image", tmp_path / "c.jpg")
        for bad in ("c.xyz", "c.yaml", "c"):
            with pytest.raises(FusioncamError, match="cannot write"):
                check_image_output("check image", tmp_path / bad)

    def test_output_folder(self, tmp_path):
        check_output_folder(tmp_path / "new" / "deeper", "--record")  # created later, with parents
        (tmp_path / "f").write_text("x")
        with pytest.raises(FusioncamError, match="is a file; give a folder"):
            check_output_folder(tmp_path / "f", "--record")
        with pytest.raises(FusioncamError, match="is a file, not a folder"):
            check_output_folder(tmp_path / "f" / "sub", "--record")

    def test_atomic_write_keeps_the_usual_permissions(self, tmp_path):
        path = tmp_path / "e.csv"
        atomic_write_bytes(path, b"a,b\n")
        umask = os.umask(0)
        os.umask(umask)
        assert path.read_bytes() == b"a,b\n"
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not a private temp file's 0600
        assert [p.name for p in tmp_path.iterdir()] == ["e.csv"]


# --- calibrate ---------------------------------------------------------------------------------------------
H_TRUE = np.array([[1.1, 0.02, 30.0], [-0.01, 1.05, 12.0], [1e-5, 2e-5, 1.0]])


@pytest.fixture()
def points_case(tmp_path):
    ir = np.random.default_rng(0).uniform([10, 10], [300, 240], size=(10, 2))
    vis = cv2.perspectiveTransform(ir.reshape(-1, 1, 2), H_TRUE).reshape(-1, 2)
    csv = tmp_path / "pts.csv"
    csv.write_text(
        "ir_x,ir_y,vis_x,vis_y\n"
        + "".join(f"{a},{b},{c},{d}\n" for (a, b), (c, d) in zip(ir, vis, strict=True))
    )
    cv2.imwrite(str(tmp_path / "ir.png"), np.random.default_rng(1).integers(0, 255, (256, 320), np.uint8))
    cv2.imwrite(str(tmp_path / "vis.png"), np.full((360, 480, 3), 100, np.uint8))
    base = [
        "calibrate",
        "points",
        "--points",
        csv,
        "--ir",
        tmp_path / "ir.png",
        "--vis",
        tmp_path / "vis.png",
    ]
    return tmp_path, base


class TestCalibrate:
    @pytest.mark.parametrize(
        "extra, needle",
        [
            (["-o", "pts.csv"], "rig file {d}/pts.csv is also an input"),
            (["-o", "ir.png"], "rig file {d}/ir.png is also an input"),
            (["-o", "rig.yaml", "--check", "vis.png"], "check image {d}/vis.png is also an input"),
            (["-o", "rig.yaml", "--check", "rig.yaml"], "is also the rig file"),
            (["-o", "rig.yaml", "--check", "c.xyz"], "cannot write '.xyz' images"),
            (["-o", "rig.yaml", "--check", "nodir/c.png"], "does not exist"),
            (["-o", ""], "rig file: give a file name"),
            (["-o", "rig.yaml", "--threshold", "nan"], "inlier threshold must be a positive number"),
            (["-o", "rig.yaml", "--threshold", "0"], "inlier threshold must be a positive number"),
        ],
    )
    def test_refused_before_anything_is_written(self, points_case, capsys, extra, needle):
        d, base = points_case
        (d / "rig.yaml").write_text("older rig\n")
        before = snapshot(d)
        argv = [*base, *[a if a.startswith("-") or a in ("nan", "0", "") else d / a for a in extra]]
        assert needle.format(d=d) in one_error(capsys, *argv)
        assert snapshot(d) == before

    def test_short_csv_row(self, points_case, capsys):
        d, base = points_case
        csv = d / "pts.csv"
        csv.write_text(csv.read_text() + "1,2,3\n")
        assert "row 11 has 3 values, the header names 4" in one_error(capsys, *base, "-o", d / "rig.yaml")

    def test_swapped_points_that_fold_the_image_are_refused(self, tmp_path, capsys):
        # four points whose fit puts the horizon across the IR frame: no camera pair does that
        pts = tmp_path / "twisted.yaml"
        ir = [[10, 10], [300, 10], [300, 240], [10, 240]]
        vis = [[10, 10], [300, 10], [10, 240], [300, 240]]
        pts.write_text(yaml.safe_dump({"ir": ir, "vis": vis}))
        argv = ["calibrate", "points", "--points", pts, "--ir-size", "320x256", "--vis-size", "320x256"]
        msg = one_error(capsys, *argv, "-o", tmp_path / "rig.yaml")
        assert "IR frame to infinity" in msg and not (tmp_path / "rig.yaml").exists()

    def test_auto_folders_must_pair_before_every_thins_them(self, tmp_path, capsys):
        for name, n in (("ir", 3), ("vis", 1)):
            (tmp_path / name).mkdir()
            for i in range(n):
                cv2.imwrite(str(tmp_path / name / f"{i}.png"), np.zeros((8, 8), np.uint8))
        argv = [
            "calibrate",
            "auto",
            "--ir",
            tmp_path / "ir",
            "--vis",
            tmp_path / "vis",
            "-o",
            tmp_path / "r.yaml",
        ]
        assert "3 IR images but 1 VIS images" in one_error(capsys, *argv)  # --every 30 leaves 1 of each
        msg = one_error(
            capsys,
            "calibrate",
            "points",
            "--points",
            tmp_path / "ir",
            "--ir-size",
            "8x8",
            "--vis-size",
            "8x8",
            "-o",
            tmp_path / "r.yaml",
        )
        assert "is a folder; give a YAML or CSV file" in msg

    def test_target_view_limits(self, tmp_path, capsys):
        (tmp_path / "v").mkdir()
        argv = [
            "calibrate",
            "target",
            "--ir",
            tmp_path / "v",
            "--vis",
            tmp_path / "v",
            "--board",
            "chessboard:9x6",
        ]
        for bad in ("0", "-1"):
            msg = one_error(capsys, *argv, "--max-views", bad, "-o", tmp_path / "rig.yaml")
            assert f"--max-views must be >= 1, got {bad}" in msg


# --- eval, bench, train, weights --------------------------------------------------------------------------
class TestOtherCommands:
    def test_eval_never_writes_into_the_data(self, tmp_path, capsys):
        data = tmp_path / "data"
        data.mkdir()
        (data / "splits.yaml").write_text("test: {}\n")
        before = snapshot(data)
        msg = one_error(capsys, "eval", "--data", data, "--method", "average", "--csv", data / "splits.yaml")
        assert "is inside the data folder" in msg and snapshot(data) == before
        argv = ["eval", "--data", data, "--method", "average", "--csv", tmp_path / "e.csv"]
        msg = one_error(capsys, *argv, "--json", tmp_path / "e.csv")
        assert "is also the --csv" in msg

    def test_eval_malformed_split_file(self, tmp_path, capsys):
        (tmp_path / "splits.yaml").write_text("test: [unclosed\n")
        assert "cannot read" in one_error(capsys, "eval", "--data", tmp_path, "--method", "average")
        (tmp_path / "splits.yaml").write_text("- a\n- b\n")
        assert "must map 'train' and 'test'" in one_error(
            capsys, "eval", "--data", tmp_path, "--method", "average"
        )
        msg = one_error(capsys, "eval", "--data", tmp_path / "splits.yaml", "--method", "average")
        assert "is a file, not a folder" in msg

    def test_bench_json_checked_before_the_run(self, tmp_path, capsys):
        ir = tmp_path / "ir.mp4"
        ir.write_bytes(b"a video")
        argv = ["bench", "--ir", ir, "--vis", ir, "--json"]
        assert "is also an input" in one_error(capsys, *argv, ir)
        assert ir.read_bytes() == b"a video"
        assert "does not exist" in one_error(capsys, *argv, tmp_path / "no" / "b.json")
        assert "--seconds must be a positive number" in one_error(capsys, "bench", "--seconds", "nan")

    def test_train_checks_before_writing_its_run_folder(self, tmp_path, capsys):
        run = tmp_path / "run"
        run.mkdir()
        (run / "config.yaml").write_text("older config\n")
        garbage = tmp_path / "garbage.safetensors"
        garbage.write_bytes(b"not a checkpoint at all")
        base = ["train", "--model", "mgfusion_fast_noclip", "--out"]
        msg = one_error(capsys, *base, run, "--init-weights", garbage)
        assert "cannot read checkpoint" in msg and "not a valid safetensors file" in msg
        assert (run / "config.yaml").read_text() == "older config\n"
        assert "needs CUDA" in one_error(capsys, *base, tmp_path / "new", "--amp", "bf16", "--device", "cpu")
        assert not (tmp_path / "new").exists()
        assert "crop must be 8 to 2048" in one_error(capsys, *base, tmp_path / "new", "--crop", "100000")
        assert "is a file; give a folder" in one_error(capsys, *base, garbage)
        png = tmp_path / "garbage.png"
        png.write_bytes(b"x")
        assert "is not a training checkpoint" in one_error(capsys, "train", "--resume", png)

    def test_weights_fetch_timeout(self, capsys):
        for bad in ("0", "-1", "nan"):
            assert "--timeout must be a positive number" in one_error(
                capsys, "weights", "fetch", "--timeout", bad
            )


# --- the live app (checked before any window opens) ---------------------------------------------------------
class TestLive:
    @pytest.fixture(autouse=True)
    def _settings(self, tmp_path, monkeypatch):
        monkeypatch.setenv("FUSIONCAM_SETTINGS", str(tmp_path / "user" / "settings.yaml"))
        monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")

    def test_outputs_and_inputs(self, tmp_path, capsys):
        img = tmp_path / "vis.png"
        cv2.imwrite(str(img), np.zeros((8, 8), np.uint8))
        (tmp_path / "file").write_text("x")
        base = ["--ir", img, "--vis", img, "--method", "average", "--quit-after", "1"]
        assert "--screenshot" in one_error(capsys, *base, "--screenshot", img)
        assert "is a folder" in one_error(capsys, *base, "--screenshot", tmp_path)
        assert "cannot write '.xyz'" in one_error(capsys, *base, "--screenshot", tmp_path / "s.xyz")
        assert "--record" in one_error(capsys, *base, "--record", tmp_path / "file")
        assert "--record: give a folder name" in one_error(capsys, *base, "--record", "")
        assert "must be a finite number" in one_error(capsys, *base, "--sync-tolerance", "nan")
        assert "camera 99 (/dev/video99) not found" in one_error(capsys, "--ir", "99", "--vis", img)
        assert not (tmp_path / "user" / "settings.yaml").exists()  # nothing bad was saved

    def test_a_named_checkpoint_that_cannot_load_is_refused(self, tmp_path, capsys):
        """The window's fallback to a classical fuser is for missing weights, not for a bad file."""
        import torch
        from safetensors.torch import save_file

        from fusioncam.models.factory import create_model, save_checkpoint

        base = ["--ir", "synthetic", "--vis", "synthetic", "--method", "mgfusion", "--quit-after", "1"]
        garbage = tmp_path / "garbage.safetensors"
        garbage.write_bytes(b"\x00" * 64)
        assert "cannot read checkpoint" in one_error(capsys, *base, "--weights", garbage)
        model = create_model("mgfusion_fast_noclip")
        nan = tmp_path / "nan.safetensors"
        save_checkpoint(model, nan)
        from safetensors import safe_open

        with safe_open(str(nan), framework="pt") as f:
            meta, state = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
        bad_meta = tmp_path / "badmeta.safetensors"
        save_file(state, str(bad_meta), metadata={**meta, next(k for k in meta if "config" in k): "{oops"})
        assert "not valid JSON" in one_error(capsys, *base, "--weights", bad_meta)
        first = next(k for k, v in state.items() if v.is_floating_point())
        state[first] = torch.full_like(state[first], float("nan"))
        save_file(state, str(nan), metadata=meta)
        assert "NaN or infinite weights" in one_error(capsys, *base, "--weights", nan)
