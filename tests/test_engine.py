"""FusionEngine (registration, colour, CLIP feature cache) and LivePipeline (skipping, failures)."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
import torch

from fusioncam.errors import FusioncamError
from fusioncam.io.frames import Frame, FramePair
from fusioncam.live.engine import FusedResult, FusionEngine, LivePipeline
from fusioncam.processing.registration import Rig, warp_ir_to_vis

H, W = 48, 64


def textured(seed: int, shape=(H, W)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(shape[0] // 4, shape[1] // 4), dtype=np.uint8)
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def pair_of(ir: np.ndarray, vis: np.ndarray, i: int = 0, t: float | None = None) -> FramePair:
    t = time.monotonic() if t is None else t
    return FramePair(Frame(ir, t, i), Frame(vis, t, i))


class CountingClipFuser:
    """A network-like fuser (fuse_tensor, encode_clip) that counts CLIP computations."""

    name = "counting_clip"
    uses_clip = True
    device = "cpu"

    def __init__(self):
        self.encode_calls = 0
        self.features_seen: list[object] = []

    def encode_clip(self, ir, vis):
        self.encode_calls += 1
        return torch.full((ir.shape[0], 2, 4), float(self.encode_calls))

    def fuse_tensor(self, ir, vis, clip_features=None):
        self.features_seen.append(clip_features)
        return torch.maximum(ir, vis)

    def fuse(self, ir, vis):  # the uint8 interface, unused by the engine for tensor fusers
        return np.maximum(ir, vis)


class SlowFuser:
    name = "slow"

    def __init__(self, delay: float):
        self.delay = delay

    def fuse(self, ir, vis):
        time.sleep(self.delay)
        return cv2.addWeighted(ir, 0.5, vis, 0.5, 0.0)


class FailingFuser:
    name = "failing"

    def __init__(self, fail_first: int):
        self.left = fail_first

    def fuse(self, ir, vis):
        if self.left > 0:
            self.left -= 1
            raise FusioncamError("simulated fusion failure")
        return ir


class TestEngineClassical:
    def test_gray_pair_matches_the_fuser(self):
        ir, vis = textured(1), textured(2)
        eng = FusionEngine("average", device="cpu")
        r = eng.process(pair_of(ir, vis))
        assert isinstance(r, FusedResult)
        np.testing.assert_array_equal(r.fused, cv2.addWeighted(ir, 0.5, vis, 0.5, 0.0))
        assert r.ir_registered is ir and r.vis is vis
        assert {"prepare", "registration", "clip", "fusion", "color", "total"} <= set(r.timings)
        assert r.clip_refreshed is False and r.index == 0 and r.device == "cpu" and r.method == "average"
        assert 0.0 <= r.latency_ms < 60_000

    def test_colour_vis_gives_colour_with_the_vis_chroma(self):
        ir = textured(1)
        base = textured(2).astype(np.int16) // 2 + 60  # a moderately saturated colour image
        vis = np.dstack([base, base + 10 * (textured(3) > 128), base + 20]).astype(np.uint8)
        r = FusionEngine("max", device="cpu").process(pair_of(cv2.merge([ir, ir, ir]), vis))
        assert r.fused.shape == (H, W, 3)
        y_vis = cv2.cvtColor(vis, cv2.COLOR_BGR2YCrCb)
        y_out = cv2.cvtColor(r.fused, cv2.COLOR_BGR2YCrCb)
        # luminance is the fused one, chroma (up to YCrCb round trip) the VIS one
        np.testing.assert_allclose(y_out[..., 0], np.maximum(ir, y_vis[..., 0]), atol=3)
        chroma_err = np.abs(y_out[..., 1:].astype(int) - y_vis[..., 1:].astype(int))
        assert np.mean(chroma_err <= 3) > 0.98  # a few pixels clip at the edge of the gamut
        assert r.ir_registered.ndim == 2
        # the same colour recombination as fusioncam.processing.color.fuse_color (offline `fuse`), bit for bit
        from fusioncam.processing.color import fuse_color
        from fusioncam.processing.fusers import create_fuser

        np.testing.assert_array_equal(r.fused, fuse_color(create_fuser("max"), ir, vis))

    def test_rig_warps_ir_into_the_vis_plane(self):
        ir = textured(1, (30, 40))
        vis = textured(2)
        H_ = np.array([[1.5, 0, 4], [0, 1.5, -2], [0, 0, 1]], float)
        rig = Rig(H_, (40, 30), (W, H))
        eng = FusionEngine("average", rig=rig, device="cpu")
        r = eng.process(pair_of(ir, vis))
        np.testing.assert_array_equal(r.ir_registered, warp_ir_to_vis(ir, rig, (W, H)))
        eng.set_rig(None)  # without a rig, IR of another size is only resized
        r = eng.process(pair_of(ir, vis))
        assert r.ir_registered.shape == (H, W) and r.index == 1

    def test_a_fuser_returning_the_wrong_shape_is_a_clear_error(self):
        class Bad:
            name = "bad"

            def fuse(self, ir, vis):
                return ir[:10]

        with pytest.raises(FusioncamError, match="fuser 'bad' returned"):
            FusionEngine(Bad(), device="cpu").process(pair_of(textured(1), textured(2)))

    def test_set_fuser_switches_method_live(self):
        eng = FusionEngine("average", device="cpu")
        eng.set_fuser("max")
        ir, vis = textured(1), textured(2)
        np.testing.assert_array_equal(eng.process(pair_of(ir, vis)).fused, np.maximum(ir, vis))
        assert eng.method == "max"

    def test_setters_never_wait_for_the_frame_in_progress(self):
        class Gated:
            name = "gated"

            def __init__(self):
                self.entered, self.release, self.released_in_time = threading.Event(), threading.Event(), None

            def fuse(self, ir, vis):
                self.entered.set()
                self.released_in_time = self.release.wait(5)  # False if the setters blocked us
                return ir

        gated = Gated()
        eng = FusionEngine(gated, device="cpu")
        out = []
        worker = threading.Thread(target=lambda: out.append(eng.process(pair_of(textured(1), textured(2)))))
        worker.start()
        assert gated.entered.wait(5)
        eng.clip_refresh = 3
        eng.set_rig(Rig.identity((W, H)))
        eng.set_fuser("max")
        gated.release.set()
        worker.join(5)
        assert gated.released_in_time is True
        assert out[0].method == "gated"  # the frame in progress finished with its own settings
        assert eng.process(pair_of(textured(1), textured(2))).method == "max" and eng.clip_refresh == 3

    def test_bad_settings_are_user_errors(self):
        with pytest.raises(FusioncamError, match="unknown fusion method"):
            FusionEngine("averge", device="cpu")
        with pytest.raises(FusioncamError, match="CLIP refresh"):
            FusionEngine("average", clip_refresh=0)
        eng = FusionEngine("average", device="cpu")
        with pytest.raises(FusioncamError, match="CLIP refresh"):
            eng.clip_refresh = -1
        with pytest.raises(FusioncamError, match="device"):
            FusionEngine("average", device="tpu").set_device("tpu")

    @pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
    def test_cuda_without_gpu_is_a_clear_error(self):
        with pytest.raises(FusioncamError, match="CUDA"):
            FusionEngine(CountingClipFuser(), device="cuda")


class TestClipCache:
    def run(self, eng, frames):
        return [eng.process(pair_of(ir, vis, i)) for i, (ir, vis) in enumerate(frames)]

    def static(self, n):
        ir, vis = textured(1), textured(2)
        rng = np.random.default_rng(0)
        out = []
        for _ in range(n):  # sensor noise of +-2 levels: not a scene change
            noise = rng.integers(-2, 3, size=ir.shape)
            out.append((np.clip(ir + noise, 0, 255).astype(np.uint8), vis))
        return out

    def test_refreshes_every_k_frames_and_reuses_in_between(self):
        fuser = CountingClipFuser()
        eng = FusionEngine(fuser, device="cpu", clip_refresh=8)
        results = self.run(eng, self.static(20))
        assert [i for i, r in enumerate(results) if r.clip_refreshed] == [0, 8, 16]
        assert fuser.encode_calls == 3
        # the features given to the network are the cached ones, reused as the same object
        assert fuser.features_seen[1] is fuser.features_seen[0]
        assert fuser.features_seen[8] is not fuser.features_seen[7]
        st = eng.stats()
        assert st["clip_refreshes"] == 3 and st["clip_reuses"] == 17 and st["scene_changes"] == 0

    def test_k_equal_1_computes_every_frame(self):
        fuser = CountingClipFuser()
        eng = FusionEngine(fuser, device="cpu", clip_refresh=1)
        assert all(r.clip_refreshed for r in self.run(eng, self.static(5)))
        assert fuser.encode_calls == 5

    def test_scene_change_forces_a_refresh_and_restarts_the_count(self):
        frames = self.static(6) + [(textured(7), textured(8))] * 12
        fuser = CountingClipFuser()
        eng = FusionEngine(fuser, device="cpu", clip_refresh=8)
        results = self.run(eng, frames)
        assert [i for i, r in enumerate(results) if r.clip_refreshed] == [0, 6, 14]
        assert eng.stats()["scene_changes"] == 1

    def test_scene_detector_can_be_switched_off(self):
        frames = self.static(6) + [(textured(7), textured(8))] * 4
        fuser = CountingClipFuser()
        eng = FusionEngine(fuser, device="cpu", clip_refresh=8, scene_change_threshold=None)
        results = self.run(eng, frames)
        assert [i for i, r in enumerate(results) if r.clip_refreshed] == [0, 8]

    def test_changing_k_or_the_fuser_live(self):
        fuser = CountingClipFuser()
        eng = FusionEngine(fuser, device="cpu", clip_refresh=100)
        frames = self.static(12)
        self.run(eng, frames[:4])
        eng.clip_refresh = 2
        results = self.run(eng, frames[4:8])
        assert [r.clip_refreshed for r in results] == [True, False, True, False]
        other = CountingClipFuser()
        eng.set_fuser(other)
        assert eng.process(pair_of(*frames[0])).clip_refreshed and other.encode_calls == 1

    def test_registration_on_the_device_matches_opencv(self):
        # the kornia path that runs on CUDA, exercised on the CPU
        ir = textured(1, (30, 40))
        rig = Rig(np.array([[1.5, 0.1, 4], [0, 1.5, -2], [0, 0, 1]], float), (40, 30), (W, H))
        eng = FusionEngine(CountingClipFuser(), rig=rig, device="cpu", device_registration=True)
        got = eng.process(pair_of(ir, textured(2))).ir_registered
        ref = warp_ir_to_vis(ir, rig, (W, H))
        assert got.dtype == np.uint8 and got.shape == ref.shape
        inner = (slice(8, -8), slice(8, -8))  # away from the border, where the two differ in padding
        assert np.abs(got[inner].astype(int) - ref[inner]).max() <= 2

    def test_the_network_path_matches_the_fusers_own_uint8_path(self):
        from fusioncam.models.factory import create_model
        from fusioncam.models.fuser import MGFusionFuser

        torch.manual_seed(0)
        fuser = MGFusionFuser(model=create_model("mgfusion_fast_noclip"), device="cpu")
        ir, vis = textured(1), textured(2)
        got = FusionEngine(fuser, device="cpu").process(pair_of(ir, vis)).fused
        assert np.abs(got.astype(int) - fuser.fuse(ir, vis)).max() <= 1  # rounding only

    def test_a_fuser_without_clip_is_never_asked_for_features(self):
        class NoClip(CountingClipFuser):
            uses_clip = False

        fuser = NoClip()
        results = self.run(FusionEngine(fuser, device="cpu"), self.static(3))
        assert fuser.encode_calls == 0 and not any(r.clip_refreshed for r in results)
        assert fuser.features_seen == [None, None, None]


class FakeSource:
    """A file-like or live source of ``n`` frames with index-encoded images."""

    def __init__(self, n=None, fps=100.0, live=False, fail_after=None, block_after=None):
        self.name, self.fps, self.size, self.is_live, self.frame_count = "fake", fps, (W, H), live, n
        self.n, self.fail_after, self.block_after = n, fail_after, block_after
        self.release = threading.Event()
        self.i = 0
        self.since_start = 0
        self.starts = 0

    def start(self):
        self.starts += 1
        self.since_start = 0

    def read(self):
        if self.n is not None and self.i >= self.n:
            return None
        if self.block_after is not None and self.i == self.block_after:
            self.release.wait(10)
        if self.fail_after is not None and self.since_start >= self.fail_after:
            raise FusioncamError("camera unplugged")
        if self.is_live:
            time.sleep(1.0 / self.fps)
        i = self.i
        self.i += 1
        self.since_start += 1
        return Frame(
            np.full((H, W), i % 256, np.uint8), time.monotonic() if self.is_live else i / self.fps, i
        )

    def stop(self):
        pass


class TimedSource:
    """A file-like source with given (jittered) timestamps."""

    def __init__(self, times, fps):
        self.name, self.fps, self.size, self.is_live, self.frame_count = (
            "timed",
            fps,
            (W, H),
            False,
            len(times),
        )
        self.times = times
        self.i = 0

    def start(self):
        self.i = 0

    def read(self):
        if self.i >= len(self.times):
            return None
        self.i += 1
        return Frame(np.full((H, W), self.i % 256, np.uint8), self.times[self.i - 1], self.i - 1)

    def stop(self):
        pass


def wait_for(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return False


class TestLivePipeline:
    def test_unpaced_files_fuse_every_pair_in_order(self):
        results = []
        p = LivePipeline(
            FakeSource(30),
            FakeSource(30),
            FusionEngine("average", device="cpu"),
            pace=False,
            on_result=results.append,
        )
        p.start()
        assert p.wait(10)
        p.stop()
        assert [(r.pair.ir.index, r.pair.vis.index) for r in results] == [(i, i) for i in range(30)]
        st = p.stats()
        assert st.fused == 30 and st.skipped_pairs == 0 and st.state == "ended"
        assert {"registration", "fusion", "wait", "sync", "deliver"} <= set(st.timings_ms)

    def test_two_files_at_30_and_22_fps_pair_by_timestamp_through_the_threads(self):
        rng = np.random.default_rng(4)
        times = {
            "ir": (np.arange(60) / 30.0 + rng.uniform(-0.3, 0.3, 60) / 30.0).tolist(),
            "vis": (0.005 + np.arange(44) / 22.0 + rng.uniform(-0.3, 0.3, 44) / 22.0).tolist(),
        }
        tol = 0.5 / 22.0
        a, b = np.asarray(times["ir"]), np.asarray(times["vis"])
        d = np.abs(a[:, None] - b[None, :])
        expected = [(i, int(j)) for i, j in enumerate(d.argmin(1)) if d.argmin(0)[j] == i and d[i, j] <= tol]
        results = []
        p = LivePipeline(
            TimedSource(times["ir"], 30.0),
            TimedSource(times["vis"], 22.0),
            FusionEngine("average", device="cpu"),
            pace=False,
            sync_tolerance=tol,
            on_result=results.append,
        )
        p.start()
        assert p.wait(10)
        p.stop()
        assert [(r.pair.ir.source_index, r.pair.vis.source_index) for r in results] == expected
        assert p.stats().sync["pairs"] == len(expected) > 30

    def test_slow_fusion_fuses_the_newest_pair_and_counts_skipped(self):
        results = []
        p = LivePipeline(
            FakeSource(60, fps=100.0),
            FakeSource(60, fps=100.0),
            FusionEngine(SlowFuser(0.1), device="cpu"),
            pace=True,
            on_result=results.append,
        )
        p.start()
        assert p.wait(15)
        p.stop()
        st = p.stats()
        idx = [r.pair.vis.index for r in results]
        assert idx == sorted(idx) and len(set(idx)) == len(idx)
        assert len(results) < 40  # fusion at ~10/s cannot keep up with 100 pairs/s
        assert st.dropped_pairs > 0 and st.dropped_pairs + st.fused <= 60
        assert st.fused == len(results)

    def test_a_source_that_stops_is_reported_and_the_pipeline_carries_on(self):
        events = []
        results = []
        vis = FakeSource(None, fps=100.0, live=True, fail_after=20)
        p = LivePipeline(
            FakeSource(None, fps=100.0, live=True),
            vis,
            FusionEngine("average", device="cpu"),
            on_result=results.append,
            on_status=lambda *e: events.append(e),
            watchdog_timeout=0.1,
            capture_options={"backoff_initial": 0.05},
        )
        p.start()
        assert wait_for(lambda: ("vis", "reconnecting") in [(n, s) for n, s, _ in events])
        n_before = len(results)
        assert wait_for(lambda: len(results) > n_before + 5)  # fusing again after the reconnect
        p.stop()
        assert p.stats().sources["vis"]["reconnects"] >= 1
        assert ("pipeline", "stopped") in [(n, s) for n, s, _ in events]

    def test_a_file_that_fails_mid_run_ends_the_pipeline_with_the_reason(self):
        events = []
        p = LivePipeline(
            FakeSource(50),
            FakeSource(None, fail_after=10),
            FusionEngine("max", device="cpu"),
            pace=False,
            on_status=lambda *e: events.append(e),
        )
        p.start()
        assert p.wait(10)
        p.stop()
        assert ("vis", "failed") in [(n, s) for n, s, _ in events]
        assert p.state == "failed" and p.stats().fused == 10

    def test_fusion_errors_are_reported_once_and_fusing_continues(self):
        events = []
        p = LivePipeline(
            FakeSource(20),
            FakeSource(20),
            FusionEngine(FailingFuser(3), device="cpu"),
            pace=False,
            on_status=lambda *e: events.append(e),
        )
        p.start()
        assert p.wait(10)
        p.stop()
        errors = [d for n, s, d in events if s == "error"]
        assert errors == ["simulated fusion failure"]
        assert p.stats().fused == 17 and p.stats().errors == 3

    def test_max_frames_stops_the_pipeline(self):
        p = LivePipeline(
            FakeSource(None),
            FakeSource(None),
            FusionEngine("average", device="cpu"),
            pace=False,
            max_frames=7,
        )
        p.start()
        assert p.wait(10)
        p.stop()
        assert p.stats().fused == 7 and p.state == "stopped"

    def test_stages_timed_outside_are_averaged_into_the_stats(self):
        p = LivePipeline(FakeSource(5), FakeSource(5), FusionEngine("average", device="cpu"), pace=False)
        p.start()
        assert p.wait(10)
        p.stop()
        for ms in (4.0, 6.0):
            p.record_timing("display", ms)
        st = p.stats()
        assert st.timings_ms["display"] == pytest.approx(5.0) and "fusion" in st.timings_ms
        assert st.as_dict()["fused"] == 5

    def test_the_rate_of_a_slow_network_is_reported(self):
        p = LivePipeline(
            FakeSource(None, fps=100.0),
            FakeSource(None, fps=100.0),
            FusionEngine(SlowFuser(0.7), device="cpu"),
            pace=True,
        )
        p.start()
        assert wait_for(lambda: p.stats().fused >= 3, timeout=15)
        st = p.stats()
        p.stop()
        assert 0.2 < st.fps < 2.0  # about 1.4/s: not 0, though fewer than 2 results fit in 2 s
        assert st.skipped_pairs + st.dropped_pairs > 0
