"""``fusioncam eval`` in-process on a tiny run over the shared data, its outputs and its bad inputs."""

from __future__ import annotations

import csv
import json
import math

import pytest

from fusioncam.cli import main
from fusioncam.evaluation.evaluate import ALL_CLASSICAL, evaluate, resolve_methods
from fusioncam.evaluation.metrics import METRIC_NAMES
from fusioncam.processing.fusers import list_fusers


def _one_line_error(capsys, needle: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith("fusioncam eval: error:")
    assert needle in err
    return err


def test_eval_tiny_run_writes_csv_and_json(data_dir, tmp_path, capsys):
    out_csv, out_json = tmp_path / "m.csv", tmp_path / "m.json"
    rc = main(
        [
            "eval",
            "--method", "average",
            "--method", "max",
            "--datasets", "msrs,roadscene",
            "--limit", "1",
            "--workers", "1",
            "--data", str(data_dir),
            "--csv", str(out_csv),
            "--json", str(out_json),
        ]
    )  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert (
        "msrs (1 pairs" in printed and "roadscene (1 pairs" in printed and "mean over 2 datasets" in printed
    )
    assert "Qcv" in printed and "average" in printed and "max" in printed

    rows = list(csv.DictReader(out_csv.open()))
    assert [(r["dataset"], r["method"]) for r in rows] == [
        ("msrs", "average"),
        ("msrs", "max"),
        ("roadscene", "average"),
        ("roadscene", "max"),
    ]
    assert list(rows[0])[3:] == list(METRIC_NAMES)
    doc = json.loads(out_json.read_text())
    assert doc["counts"] == {"msrs": 1, "roadscene": 1}
    # The mean over datasets is the mean of the per-dataset means; CSV and JSON agree.
    for m in ("average", "max"):
        for k in METRIC_NAMES:
            per = [doc["per_dataset"][ds][m][k] for ds in ("msrs", "roadscene")]
            assert doc["mean"][m][k] == pytest.approx(sum(per) / 2)
    assert float(rows[0]["SSIM"]) == pytest.approx(doc["per_dataset"]["msrs"]["average"]["SSIM"])
    assert 1.2 < doc["per_dataset"]["msrs"]["average"]["SSIM"] < 1.5
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_evaluate_two_workers_same_as_one(data_dir):
    kw = dict(data_dir=data_dir, datasets=["roadscene"], limit=2)
    one = evaluate(["average"], workers=1, **kw)
    two = evaluate(["average"], workers=2, **kw)
    assert one["rows"] == two["rows"]
    assert all(math.isfinite(r[k]) for r in one["rows"] for k in METRIC_NAMES)


def test_all_classical_expands_to_registry():
    names = resolve_methods([ALL_CLASSICAL, "average"])
    assert names == list_fusers(classical_only=True)
    assert "mgfusion" not in names


def test_unknown_method(data_dir, capsys):
    rc = main(["eval", "--method", "averag", "--data", str(data_dir), "--limit", "1"])
    assert rc == 2
    _one_line_error(capsys, "unknown fusion method 'averag'")


def test_unknown_dataset(data_dir, capsys):
    rc = main(["eval", "--method", "average", "--data", str(data_dir), "--datasets", "nosuch"])
    assert rc == 2
    _one_line_error(capsys, "nosuch")


def test_missing_data_dir(tmp_path, capsys):
    rc = main(["eval", "--method", "average", "--data", str(tmp_path / "absent")])
    assert rc == 2
    _one_line_error(capsys, "data folder")
    rc = main(["eval", "--method", "average", "--data", str(tmp_path)])  # a folder without splits.yaml
    assert rc == 2
    _one_line_error(capsys, "data split not found")


def test_output_folder_missing_fails_before_work(data_dir, tmp_path, capsys):
    rc = main(
        ["eval", "--method", "average", "--data", str(data_dir), "--csv", str(tmp_path / "no" / "x.csv")]
    )
    assert rc == 2
    _one_line_error(capsys, "does not exist")


def test_bad_limit(data_dir, capsys):
    rc = main(["eval", "--method", "average", "--data", str(data_dir), "--limit", "0"])
    assert rc == 2
    _one_line_error(capsys, "limit must be at least 1")


def test_existing_output_kept_on_error(data_dir, tmp_path, capsys):
    out = tmp_path / "m.csv"
    out.write_text("previous results\n")
    rc = main(["eval", "--method", "nosuch", "--data", str(data_dir), "--csv", str(out)])
    assert rc == 2
    assert out.read_text() == "previous results\n"


# --- --weights / --label: a checkpoint for the network fuser ------------------------------------------


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    """A small randomly initialised no-CLIP MGFusion checkpoint (no download, fast on the CPU)."""
    import torch

    from fusioncam.models.factory import create_model, save_checkpoint

    torch.manual_seed(0)
    model = create_model("mgfusion_fast_noclip", width=8, depth=1, heads=2, adapter_hidden=8)
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


def _eval_argv(data_dir, *extra):
    return ["eval", "--datasets", "roadscene", "--limit", "1", "--data", str(data_dir), *extra]


def test_weights_are_used_and_named_after_the_checkpoint(data_dir, tiny_ckpt, tmp_path, capsys):
    from fusioncam.evaluation.dataset import load_split
    from fusioncam.evaluation.evaluate import load_pair
    from fusioncam.evaluation.metrics import compute_metrics, to_gray
    from fusioncam.processing.fusers import create_fuser

    out_json = tmp_path / "m.json"
    argv = _eval_argv(data_dir, "--method", "mgfusion", "--method", "average", "--weights", str(tiny_ckpt))
    assert main([*argv, "--json", str(out_json)]) == 0
    assert "mgfusion[tiny]" in capsys.readouterr().out
    doc = json.loads(out_json.read_text())
    assert doc["methods"] == ["mgfusion[tiny]", "average"]  # classical methods keep their names
    assert doc["weights"] == {"mgfusion[tiny]": str(tiny_ckpt)}
    # Known answer: the row is what this checkpoint's fuser gives on that pair.
    row = next(r for r in doc["rows"] if r["method"] == "mgfusion[tiny]")
    pair = load_split("test", data_dir=data_dir, datasets=["roadscene"])["roadscene"][0]
    ir, vis_y, vis = load_pair(pair)
    fused = create_fuser("mgfusion", weights=str(tiny_ckpt)).fuse(ir, vis_y)
    expected = compute_metrics(ir.astype(float), to_gray(vis, "VIS"), fused)
    for k in METRIC_NAMES:
        assert row[k] == pytest.approx(expected[k], nan_ok=True)


def test_label_names_the_checkpoint_in_csv(data_dir, tiny_ckpt, tmp_path, capsys):
    out_csv = tmp_path / "m.csv"
    argv = _eval_argv(data_dir, "--method", "mgfusion", "--weights", str(tiny_ckpt), "--label", "stage1")
    assert main([*argv, "--csv", str(out_csv)]) == 0
    assert "stage1" in capsys.readouterr().out
    assert [r["method"] for r in csv.DictReader(out_csv.open())] == ["stage1"]


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--method", "average", "--weights", "CKPT"], "only classical methods"),
        (["--method", "all-classical", "--weights", "CKPT"], "only classical methods"),
        (["--method", "mgfusion", "--weights", "MISSING"], "weights file not found"),
        (["--method", "mgfusion", "--label", "x"], "give the weights"),
        (["--method", "mgfusion", "--method", "average", "--weights", "CKPT", "--label", "average"], "label"),
        (["--method", "mgfusion", "--weights", "CKPT", "--label", " "], "must not be empty"),
    ],
)
def test_bad_weights_or_label(data_dir, tiny_ckpt, tmp_path, capsys, extra, needle):
    subst = {"CKPT": str(tiny_ckpt), "MISSING": str(tmp_path / "none.safetensors")}
    rc = main(_eval_argv(data_dir, *(subst.get(a, a) for a in extra)))
    assert rc == 2
    _one_line_error(capsys, needle)
