"""Offline pairing: by index and by timestamp, with every mismatch reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fusioncam.errors import FusioncamError
from fusioncam.io.frames import Frame
from fusioncam.io.sources import SyntheticSource
from fusioncam.offline.pairing import fps_differ, pair_sources


def started(**kw) -> SyntheticSource:
    src = SyntheticSource(size=(16, 12), **kw)
    src.start()
    return src


class TestByIndex:
    def test_equal_counts(self):
        p = pair_sources(started(count=5), started(count=5))
        pairs = list(p)
        assert [(a.ir.index, a.vis.index) for a in pairs] == [(i, i) for i in range(5)]
        r = p.report
        assert r.finished and r.pairs == 5 and r.ir_frames == r.vis_frames == 5
        assert r.ir_unpaired == r.vis_unpaired == 0 and r.warnings == []

    def test_more_ir_frames_reported(self):
        p = pair_sources(started(count=151), started(count=149))
        assert len(list(p)) == 149
        r = p.report
        assert r.ir_unpaired == 2 and r.vis_unpaired == 0
        assert r.warnings == ["IR has 151 frames, VIS 149: the last 2 IR frames are unpaired"]

    def test_more_vis_frames_reported(self):
        p = pair_sources(started(count=3), started(count=4))
        list(p)
        assert p.report.vis_unpaired == 1
        assert p.report.warnings == ["IR has 3 frames, VIS 4: the last 1 VIS frame is unpaired"]

    def test_different_rates_warned(self):
        p = pair_sources(started(count=3, fps=30), started(count=3, fps=22), by="index")
        list(p)
        (w,) = p.report.warnings
        assert "frame rates differ: IR 30 fps, VIS 22 fps" in w and "not simultaneous" in w

    def test_stopped_early_is_not_a_mismatch(self):
        p = pair_sources(started(count=10), started(count=8))
        with p:
            next(p)
        assert p.report.stopped_early and not p.report.finished and p.report.warnings == []


class TestByTime:
    def test_auto_switches_on_different_rates(self):
        p = pair_sources(started(count=30, fps=30), started(count=22, fps=22), by="auto")
        pairs = list(p)
        r = p.report
        assert r.rule == "time"
        assert r.pairs == 22 and len(pairs) == 22 and r.vis_unpaired == 0
        assert all(abs(pr.skew) <= 0.5 / 22 + 1e-9 for pr in pairs)
        assert r.ir_unpaired == 30 - 22 and r.ir_reused == 0
        assert any("frame rates differ: IR 30 fps, VIS 22 fps; pairing by timestamp" == w for w in r.warnings)

    def test_nearest_is_chosen(self):
        ir = started(count=10, fps=10)  # t = 0, .1, .2 ...
        vis = started(count=4, fps=10, t0=0.03)  # t = .03, .13, ...
        pairs = list(pair_sources(ir, vis, by="time"))
        assert [pr.ir.index for pr in pairs] == [0, 1, 2, 3]
        assert all(pr.skew == pytest.approx(-0.03) for pr in pairs)

    def test_slower_ir_is_reused(self):
        p = pair_sources(started(count=10, fps=10), started(count=20, fps=20), by="time")
        pairs = list(p)
        r = p.report
        assert r.pairs == 20 and r.ir_reused == 10 and r.ir_unpaired == 0
        # VIS frames at the IR instants take those IR frames; each IR frame serves two VIS frames
        assert [pairs[i].ir.index for i in (0, 2, 4, 6)] == [0, 1, 2, 3]
        assert all(abs(pr.skew) <= 0.05 + 1e-9 for pr in pairs)

    def test_out_of_tolerance_vis_frames_unpaired(self):
        ir = started(count=5, fps=10, t0=1.0)  # IR starts one second later
        vis = started(count=15, fps=10)
        p = pair_sources(ir, vis, by="time", tolerance=0.01)
        pairs = list(p)
        r = p.report
        assert len(pairs) == 5 and r.vis_unpaired == 10 and r.ir_unpaired == 0
        assert [pr.vis.index for pr in pairs] == [10, 11, 12, 13, 14]
        assert any("10 of 15 VIS frames had no IR frame within 10 ms" in w for w in r.warnings)

    def test_unused_ir_counted(self):
        ir = started(count=20, fps=10)
        vis = started(count=5, fps=10)
        p = pair_sources(ir, vis, by="time")
        list(p)
        assert p.report.ir_unpaired == 15 and p.report.ir_frames == 20
        assert any("15 of 20 IR frames were not used" in w for w in p.report.warnings)


def test_bad_arguments():
    with pytest.raises(FusioncamError, match="pairing rule"):
        pair_sources(started(), started(), by="nearest")
    with pytest.raises(FusioncamError, match="tolerance"):
        pair_sources(started(), started(), by="time", tolerance=-1)


def test_fps_differ():
    assert fps_differ(30, 22) and not fps_differ(30, 30.1) and not fps_differ(None, 30)


def test_summary_line():
    p = pair_sources(started(count=2), started(count=2))
    list(p)
    assert p.report.summary().startswith("2 pairs by index")


class ListSource:
    """A finite source over given timestamps whose stated ``frame_count`` may lie (a damaged file)."""

    is_live = False

    def __init__(self, n: int, fps: float = 10.0, stated: int | None = None, files=None, name="list"):
        self.name, self.fps, self.size = name, fps, (4, 4)
        self.frame_count = stated if stated is not None else n
        self.n, self.i = n, 0
        if files is not None:
            self.files = files

    def start(self):
        self.i = 0

    def read(self):
        if self.i >= self.n:
            return None
        f = Frame(np.zeros((4, 4), np.uint8), self.i / self.fps, self.i)
        self.i += 1
        return f

    def stop(self):
        pass


def test_truncated_file_is_reported():
    p = pair_sources(ListSource(5, stated=8, name="ir.mp4"), ListSource(5))
    list(p)
    assert "IR ir.mp4 ended after 5 of the 8 frames its file states (damaged file?)" in p.report.warnings


def test_image_folders_with_different_names_are_reported():
    ir = ListSource(3, files=[Path("a.png"), Path("b.png"), Path("c.png")])
    vis = ListSource(3, files=[Path("a.png"), Path("x.png"), Path("c.png")])
    p = pair_sources(ir, vis)
    list(p)
    (w,) = p.report.warnings
    assert w.startswith(
        "1 of 3 pairs by index join files of different names (first: IR b.png with VIS x.png)"
    )
    same = pair_sources(
        ListSource(2, files=[Path("a.png"), Path("b.png")]),
        ListSource(2, files=[Path("a.jpg"), Path("b.jpg")]),
    )
    list(same)
    assert same.report.warnings == []
