"""``fusioncam bench`` on a tiny synthetic video pair: it runs, prints ratios, writes its JSON.

No assertion on speed: only on what the report contains and on counts that do not depend on it.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from fusioncam.cli import main


@pytest.fixture(scope="module")
def tiny_videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    paths = []
    for name, seed in (("ir.mp4", 1), ("vis.mp4", 2)):
        rng = np.random.default_rng(seed)
        # a still picture with a flicker of one gray level: no scene change for the CLIP cache's detector
        base = cv2.resize(rng.integers(0, 250, (6, 8), dtype=np.uint8), (64, 48))
        w = cv2.VideoWriter(str(d / name), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (64, 48))
        assert w.isOpened()
        for i in range(20):
            w.write(cv2.cvtColor(base + np.uint8(i % 2), cv2.COLOR_GRAY2BGR))
        w.release()
        paths.append(str(d / name))
    return paths


def test_bench_runs_and_reports_ratios(tiny_videos, tmp_path, capsys):
    ir, vis = tiny_videos
    out_json = tmp_path / "bench.json"
    rc = main(
        [
            "bench",
            "--ir",
            ir,
            "--vis",
            vis,
            "--methods",
            "max,mgfusion",
            "--device",
            "cpu",
            "--frames",
            "8",
            "--seconds",
            "3",
            "--clip-frames",
            "3",
            "--clip-refresh",
            "8",
            "--clip-model",
            "tiny",
            "--clip-size",
            "input",
            "--json",
            str(out_json),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "x average" in out and "keeps up" in out and "CLIP cost per fused frame" in out
    report = json.loads(out_json.read_text())
    runs = {(r["method"], r["mode"]): r for r in report["runs"]}
    # the baseline is always measured in the same run, and each ratio is against it
    net = [r for r in report["runs"] if r["method"].startswith("mgfusion")]
    assert len(net) == 2 and all(r["frames"] > 0 for r in net)  # trained weights or a random stand-in
    runs = {k: r for k, r in runs.items() if not k[0].startswith("mgfusion")}
    assert set(runs) == {("average", "unpaced"), ("average", "paced"), ("max", "unpaced"), ("max", "paced")}
    assert runs["average", "unpaced"]["fps_vs_average"] == pytest.approx(1.0)
    assert runs["max", "paced"]["fps_vs_average"] == pytest.approx(
        runs["max", "paced"]["fps"] / runs["average", "paced"]["fps"]
    )
    assert all(r["frames"] == 8 and r["fps"] > 0 and not r["error"] for r in runs.values())
    assert runs["max", "unpaced"]["skipped_pairs"] == 0  # unpaced: every pair fused
    clip = report["clip_cache"][0]
    assert clip["every_frame"]["clip_refreshes"] == 3 and clip["cached"]["clip_refreshes"] == 1
    assert clip["cached"]["scene_changes"] == 0 and clip["cached"]["clip_refresh"] == 8
    assert clip["clip_cost_ratio_robust"] > 1  # even a tiny CLIP costs more than a thumbnail check
    assert clip["clip_cost_ratio"] > 0 and "RANDOM" not in clip["clip"]  # the tiny CLIP says what it is


def test_bench_rejects_bad_input_with_one_line(tiny_videos, tmp_path, capsys):
    assert main(["bench", "--ir", str(tmp_path / "missing.mp4"), "--vis", tiny_videos[1]]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "missing.mp4" in err
    assert main(["bench", "--ir", tiny_videos[0]]) == 2
    assert "both --ir and --vis" in capsys.readouterr().err
    assert main(["bench", "--ir", tiny_videos[0], "--vis", tiny_videos[1], "--methods", "avg"]) == 2
    assert "unknown method" in capsys.readouterr().err
    assert (
        main(["bench", "--ir", tiny_videos[0], "--vis", tiny_videos[1], "--rig", str(tmp_path / "r.yaml")])
        == 2
    )
    assert "rig file not found" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_bench_on_cuda_without_a_gpu_says_so(tiny_videos, capsys):
    assert main(["bench", "--ir", tiny_videos[0], "--vis", tiny_videos[1], "--device", "cuda"]) == 2
    assert "CUDA" in capsys.readouterr().err


def test_classical_fusers_run_once_on_the_cpu_even_when_only_cuda_is_asked_for():
    # the baseline of every ratio must be measured in the same run, whatever the devices
    from fusioncam.evaluation.bench import run_plan

    plan = run_plan(["average", "laplacian", "mgfusion"], ["cuda"])
    assert plan == [("cpu", "average"), ("cpu", "laplacian"), ("cuda", "mgfusion")]
    plan = run_plan(["average", "mgfusion"], ["cpu", "cuda"])
    assert plan == [("cpu", "average"), ("cpu", "mgfusion"), ("cuda", "mgfusion")]
