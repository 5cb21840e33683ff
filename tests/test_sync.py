"""Synchronizer: nearest-timestamp pairing of two streams, checked against an independent brute force."""

from __future__ import annotations

import numpy as np
import pytest

from fusioncam.errors import FusioncamError
from fusioncam.io.frames import Frame
from fusioncam.live.sync import Synchronizer

IMG = np.zeros((2, 2), np.uint8)


def jittered_times(fps: float, n: int, jitter: float, offset: float, rng) -> list[float]:
    """Frame times of a camera at ``fps`` with uniform jitter of +-jitter periods (strictly increasing)."""
    base = offset + np.arange(n) / fps
    t = base + rng.uniform(-jitter, jitter, n) / fps
    assert np.all(np.diff(t) > 0)
    return t.tolist()


def brute_force_pairs(t_ir: list[float], t_vis: list[float], tol: float) -> set[tuple[int, int]]:
    """Mutual nearest neighbours within tol, computed directly from the whole sequences."""
    a, b = np.asarray(t_ir), np.asarray(t_vis)
    d = np.abs(a[:, None] - b[None, :])
    nearest_b = d.argmin(axis=1)
    nearest_a = d.argmin(axis=0)
    return {(i, int(j)) for i, j in enumerate(nearest_b) if nearest_a[j] == i and d[i, j] <= tol}


def arrival_order(t_ir, t_vis):
    """(stream, index) in the order a host would receive them (by timestamp)."""
    events = [(t, "ir", i) for i, t in enumerate(t_ir)] + [(t, "vis", i) for i, t in enumerate(t_vis)]
    return [(s, i) for _t, s, i in sorted(events)]


def run(sync: Synchronizer, order, t_ir, t_vis, end=True):
    times = {"ir": t_ir, "vis": t_vis}
    pairs = []
    for s, i in order:
        pairs += sync.push(s, Frame(IMG, times[s][i], i))
    if end:
        pairs += sync.end("ir")
        pairs += sync.end("vis")
    return pairs


class TestPairing:
    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_matches_brute_force_at_30_and_22_fps_with_jitter(self, seed):
        rng = np.random.default_rng(seed)
        t_ir = jittered_times(30.0, 120, 0.3, 0.0, rng)
        t_vis = jittered_times(22.0, 88, 0.3, 0.004, rng)
        sync = Synchronizer(fps={"ir": 30.0, "vis": 22.0})
        tol = 0.5 / 22.0
        assert sync.tolerance == pytest.approx(tol)
        pairs = run(sync, arrival_order(t_ir, t_vis), t_ir, t_vis)
        got = {(p.ir.index, p.vis.index) for p in pairs}
        expected = brute_force_pairs(t_ir, t_vis, tol)
        assert got == expected
        assert len(expected) > 60  # the test pairs something substantial
        # pairs come out in time order, each frame at most once
        assert [p.ir.index for p in pairs] == sorted(p.ir.index for p in pairs)
        st = sync.stats()
        assert st.pairs == len(expected)
        assert st.dropped["ir"] == 120 - len(expected)
        assert st.dropped["vis"] == 88 - len(expected)
        skews = [abs(t_ir[i] - t_vis[j]) * 1000 for i, j in expected]
        assert st.skew_max_abs_ms == pytest.approx(max(skews))
        assert st.skew_mean_abs_ms == pytest.approx(np.mean(skews))

    def test_result_does_not_depend_on_arrival_interleaving(self):
        rng = np.random.default_rng(5)
        t_ir = jittered_times(30.0, 60, 0.3, 0.0, rng)
        t_vis = jittered_times(22.0, 44, 0.3, 0.01, rng)
        expected = brute_force_pairs(t_ir, t_vis, 0.02)
        # one camera's frames all arrive late (a slow USB bus): same pairs
        order = [("ir", i) for i in range(60)] + [("vis", j) for j in range(44)]
        pairs = run(Synchronizer(0.02, max_queue=1000), order, t_ir, t_vis)
        assert {(p.ir.index, p.vis.index) for p in pairs} == expected
        # random interleaving that keeps each stream in order
        left = {"ir": list(range(60)), "vis": list(range(44))}
        order = []
        while left["ir"] or left["vis"]:
            s = rng.choice([k for k, v in left.items() if v])
            order.append((str(s), left[s].pop(0)))
        pairs = run(Synchronizer(0.02, max_queue=1000), order, t_ir, t_vis)
        assert {(p.ir.index, p.vis.index) for p in pairs} == expected

    def test_tolerance_rejects_far_frames(self):
        t_ir = [0.0, 0.1, 0.2]
        t_vis = [0.05, 0.11, 0.26]
        pairs = run(Synchronizer(0.02), arrival_order(t_ir, t_vis), t_ir, t_vis)
        assert [(p.ir.index, p.vis.index) for p in pairs] == [(1, 1)]

    def test_tolerance_defaults_to_half_period_of_slower_stream_from_observed_intervals(self):
        sync = Synchronizer()
        assert sync.tolerance is None  # unknown until each stream shows one interval
        for i in range(3):
            sync.push("ir", Frame(IMG, i / 30.0, i))
            sync.push("vis", Frame(IMG, i / 15.0 + 0.001, i))
        assert sync.tolerance == pytest.approx(0.5 / 15.0)

    def test_a_camera_slower_than_its_nominal_fps_widens_the_tolerance(self):
        sync = Synchronizer(fps={"ir": 30, "vis": 30})
        assert sync.tolerance == pytest.approx(0.5 / 30)
        for i in range(8):  # the IR camera claims 30 fps but delivers 9
            sync.push("ir", Frame(IMG, i / 9.0, i))
        assert sync.tolerance == pytest.approx(0.5 / 9.0)

    def test_waits_for_proof_then_end_flushes(self):
        sync = Synchronizer(0.02)
        assert sync.push("ir", Frame(IMG, 0.000, 0)) == []
        # VIS 0.005 is IR 0's nearest, but a later IR frame might be nearer to it: no decision yet
        assert sync.push("vis", Frame(IMG, 0.005, 0)) == []
        pairs = sync.end("ir")
        assert [(p.ir.index, p.vis.index) for p in pairs] == [(0, 0)]
        assert pairs[0].skew == pytest.approx(-0.005)

    def test_eager_mode_pairs_cameras_in_step_at_once(self):
        sync = Synchronizer(fps={"ir": 30, "vis": 30}, eager=True)
        emitted_at = []
        for i in range(10):
            t = i / 30.0
            sync.push("ir", Frame(IMG, t, i))
            out = sync.push("vis", Frame(IMG, t + 0.002, i))
            emitted_at.append([(p.ir.index, p.vis.index) for p in out])
        # from the second frame on (one interval known), each pair leaves with its second frame
        assert emitted_at[1:] == [[(i, i)] for i in range(1, 10)]

    def test_eager_pairs_stay_within_tolerance_and_unique(self):
        rng = np.random.default_rng(3)
        t_ir = jittered_times(30.0, 90, 0.2, 0.0, rng)
        t_vis = jittered_times(22.0, 66, 0.2, 0.003, rng)
        sync = Synchronizer(fps={"ir": 30, "vis": 22}, eager=True)
        pairs = run(sync, arrival_order(t_ir, t_vis), t_ir, t_vis)
        tol = 0.5 / 22
        assert all(abs(p.skew) <= tol for p in pairs)
        assert len({p.ir.index for p in pairs}) == len(pairs) == len({p.vis.index for p in pairs})
        assert len(pairs) >= 0.9 * len(brute_force_pairs(t_ir, t_vis, tol))


class TestBoundsAndErrors:
    def test_stalled_stream_does_not_grow_the_other_queue(self):
        sync = Synchronizer(0.01, max_queue=4)
        for i in range(20):
            assert sync.push("ir", Frame(IMG, i / 30.0, i)) == []
        assert sync.pending("ir") == 4
        st = sync.stats()
        assert st.overflow["ir"] == 16 and st.dropped["ir"] == 16
        # the VIS stream comes back: the newest IR frames still pair
        pairs = sync.push("vis", Frame(IMG, 19 / 30.0, 0))
        pairs += sync.end("ir")
        assert [(p.ir.index, p.vis.index) for p in pairs] == [(19, 0)]

    def test_out_of_order_frame_is_dropped_and_counted(self):
        sync = Synchronizer(0.01)
        sync.push("ir", Frame(IMG, 1.0, 0))
        assert sync.push("ir", Frame(IMG, 0.5, 1)) == []
        assert sync.stats().out_of_order["ir"] == 1

    def test_exhausted_when_a_stream_ended_and_nothing_can_pair(self):
        sync = Synchronizer(0.01)
        sync.push("ir", Frame(IMG, 0.0, 0))
        sync.end("vis")
        assert sync.exhausted
        assert sync.stats().dropped["ir"] == 1

    def test_bad_arguments(self):
        with pytest.raises(FusioncamError, match="tolerance"):
            Synchronizer(0.0)
        with pytest.raises(FusioncamError, match="stream"):
            Synchronizer(0.01).push("depth", Frame(IMG, 0.0, 0))
        sync = Synchronizer(0.01)
        sync.end("ir")
        with pytest.raises(FusioncamError, match="after its end"):
            sync.push("ir", Frame(IMG, 0.0, 0))
