"""Offline pairing of two finite sources (files): frame by frame, or by timestamp.

Live cameras are paired by :mod:`fusioncam.live.sync` as frames arrive; files can afford to look ahead, so
they are paired here. Two rules:

- ``"index"``: the n-th IR frame with the n-th VIS frame. Right for synchronized recordings (the
  M3SVD clips) and for two folders of aligned pairs.
- ``"time"``: VIS is the timeline (the fused picture lives in the VIS image plane, and its frame rate
  becomes the output's): each VIS frame gets the IR frame nearest in time, if within ``tolerance``
  (default: half the longer frame period). An IR frame may serve two VIS frames when IR is slower, and
  some IR frames go unused when IR is faster; both are counted.
- ``"auto"``: "time" when both frame rates are known and differ by more than 1 %, else "index".

Nothing is hidden: :class:`PairingReport` counts the frames of each source, the pairs and the unpaired
frames, and its :attr:`~PairingReport.warnings` say in words what did not match.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from fusioncam.errors import FusioncamError
from fusioncam.io.frames import Frame, FramePair
from fusioncam.io.sources import Source

__all__ = ["PAIR_RULES", "PairingReport", "Pairing", "pair_sources", "fps_differ"]

PAIR_RULES = ("auto", "index", "time")


def fps_differ(a: float | None, b: float | None, rel: float = 0.01) -> bool:
    """True when both rates are known and differ by more than ``rel`` (relative)."""
    return bool(a and b and abs(a - b) > rel * max(a, b))


def _fmt_fps(fps: float | None) -> str:
    return "unknown fps" if not fps else f"{fps:.3g} fps"


@dataclass
class PairingReport:
    """What pairing found; complete once the pairs have been iterated to the end (``finished``)."""

    ir_name: str
    vis_name: str
    rule: str
    ir_fps: float | None = None
    vis_fps: float | None = None
    tolerance: float | None = None
    ir_frames: int = 0  # frames read from IR
    vis_frames: int = 0  # frames read from VIS
    pairs: int = 0
    ir_unpaired: int = 0  # IR frames in no pair
    vis_unpaired: int = 0  # VIS frames in no pair
    ir_reused: int = 0  # "time": extra uses of IR frames that served more than one VIS frame
    max_skew: float = 0.0  # largest |t_ir - t_vis| of a pair, seconds
    finished: bool = False  # both sources were read to their end
    stopped_early: bool = False  # the caller stopped before the end (e.g. --max-frames)
    notes: list[str] = field(default_factory=list)  # extra warnings (rule chosen, ...)

    @property
    def warnings(self) -> list[str]:
        """Mismatches in words, e.g. "IR has 151 frames, VIS 149: the last 2 IR frames are unpaired"."""
        out = list(self.notes)
        if fps_differ(self.ir_fps, self.vis_fps):
            how = (
                "pairing by timestamp"
                if self.rule == "time"
                else "pairing by index pairs frames that are not simultaneous (use pairing by time)"
            )
            out.append(f"frame rates differ: IR {_fmt_fps(self.ir_fps)}, VIS {_fmt_fps(self.vis_fps)}; {how}")
        if self.stopped_early:
            return out
        if self.rule == "index" and self.ir_frames != self.vis_frames:
            longer, n = (
                ("IR", self.ir_unpaired) if self.ir_frames > self.vis_frames else ("VIS", self.vis_unpaired)
            )
            out.append(
                f"IR has {self.ir_frames} frames, VIS {self.vis_frames}: "
                f"the last {n} {longer} frame{'s are' if n != 1 else ' is'} unpaired"
            )
        if self.rule == "time":
            tol = f"{1000 * self.tolerance:.0f} ms" if self.tolerance is not None else "the tolerance"
            if self.vis_unpaired:
                out.append(
                    f"{self.vis_unpaired} of {self.vis_frames} VIS frames had no IR frame within {tol}"
                )
            if self.ir_unpaired:
                out.append(f"{self.ir_unpaired} of {self.ir_frames} IR frames were not used")
            if self.ir_reused:
                out.append(
                    f"IR frames were reused {self.ir_reused} times for further VIS frames (IR is slower)"
                )
        return out

    def summary(self) -> str:
        """One line: counts and rule."""
        return (
            f"{self.pairs} pairs by {self.rule} (IR {self.ir_frames} frames at {_fmt_fps(self.ir_fps)}, "
            f"VIS {self.vis_frames} at {_fmt_fps(self.vis_fps)}; unpaired IR {self.ir_unpaired}, "
            f"VIS {self.vis_unpaired})"
        )


class Pairing:
    """Iterator of :class:`FramePair` over two started sources, keeping :attr:`report` up to date.

    Use :func:`pair_sources`. Call :meth:`close` (or leave a ``with`` block) when stopping early: the
    report then says the counts cover only what was read.
    """

    def __init__(self, ir: Source, vis: Source, by: str = "index", tolerance: float | None = None):
        if by not in PAIR_RULES:
            raise FusioncamError(f"unknown pairing rule '{by}'; choose one of: {', '.join(PAIR_RULES)}")
        if tolerance is not None and not tolerance >= 0:
            raise FusioncamError(f"pairing tolerance must be >= 0 seconds, got {tolerance}")
        rule = by
        notes = []
        if by == "auto":
            rule = "time" if fps_differ(ir.fps, vis.fps) else "index"
        if rule == "time" and tolerance is None:
            periods = [1.0 / f for f in (ir.fps, vis.fps) if f]
            tolerance = 0.5 * max(periods) + 1e-6 if periods else 0.02
        if rule == "index":
            notes += _name_mismatch(ir, vis)
        self.ir = ir
        self.vis = vis
        self.report = PairingReport(
            ir.name, vis.name, rule, ir.fps, vis.fps, tolerance if rule == "time" else None, notes=notes
        )
        self._it = self._by_index() if rule == "index" else self._by_time()

    def __iter__(self) -> Iterator[FramePair]:
        return self

    def __next__(self) -> FramePair:
        return next(self._it)

    def close(self) -> None:
        """Stop early; the report marks its counts as partial unless the sources were exhausted."""
        if not self.report.finished:
            self.report.stopped_early = True
        self._it.close()

    def __enter__(self) -> Pairing:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _finish(self) -> None:
        """Mark the report complete; a file that ended before the length its container states is named."""
        r = self.report
        r.finished = True
        for role, src, got in (("IR", self.ir, r.ir_frames), ("VIS", self.vis, r.vis_frames)):
            said = getattr(src, "frame_count", None)
            if said is not None and got < said:
                r.notes.append(
                    f"{role} {src.name} ended after {got} of the {said} frames its file states "
                    "(damaged file?)"
                )

    def _read(self, which: str) -> Frame | None:
        src = self.ir if which == "ir" else self.vis
        frame = src.read()
        if frame is not None:
            if which == "ir":
                self.report.ir_frames += 1
            else:
                self.report.vis_frames += 1
        return frame

    def _emit(self, ir: Frame, vis: Frame) -> FramePair:
        pair = FramePair(ir, vis)
        self.report.pairs += 1
        self.report.max_skew = max(self.report.max_skew, abs(pair.skew))
        return pair

    def _by_index(self) -> Iterator[FramePair]:
        r = self.report
        while True:
            a = self._read("ir")
            b = self._read("vis")
            if a is None or b is None:
                break
            yield self._emit(a, b)
        # One source ended: count what is left of the other (read to its end; nothing is assumed).
        if a is not None:
            r.ir_unpaired += 1
            while self._read("ir") is not None:
                r.ir_unpaired += 1
        if b is not None:
            r.vis_unpaired += 1
            while self._read("vis") is not None:
                r.vis_unpaired += 1
        self._finish()

    def _by_time(self) -> Iterator[FramePair]:
        r = self.report
        tol = r.tolerance or 0.0
        prev: Frame | None = None  # the IR frame at or before the current VIS time
        nxt: Frame | None = self._read("ir")  # the first IR frame after it
        uses: dict[int, int] = {}  # IR index -> number of pairs it is in (only the last two kept)

        def drop(frame: Frame | None) -> None:
            if frame is not None and uses.pop(frame.index, 0) == 0:
                r.ir_unpaired += 1

        while (v := self._read("vis")) is not None:
            # Advance IR until nxt is after v.t; frames passed over without use are unpaired.
            while nxt is not None and nxt.t <= v.t:
                drop(prev)
                prev, nxt = nxt, self._read("ir")
            cands = [f for f in (prev, nxt) if f is not None]
            best = min(cands, key=lambda f: abs(f.t - v.t)) if cands else None
            if best is None or abs(best.t - v.t) > tol:
                r.vis_unpaired += 1
                continue
            n = uses.get(best.index, 0)
            if n:
                r.ir_reused += 1
            uses[best.index] = n + 1
            yield self._emit(best, v)
        drop(prev)
        drop(nxt)
        while (f := self._read("ir")) is not None:
            drop(f)
        self._finish()


def _name_mismatch(ir: Source, vis: Source) -> list[str]:
    """For two image folders paired by index: say where the file names stop matching."""
    a, b = getattr(ir, "files", None), getattr(vis, "files", None)
    if not a or not b:
        return []
    diff = [(x, y) for x, y in zip(a, b, strict=False) if x.stem != y.stem]
    if not diff:
        return []
    x, y = diff[0]
    n = min(len(a), len(b))
    return [
        f"{len(diff)} of {n} pairs by index join files of different names (first: IR {x.name} with VIS "
        f"{y.name}); check that the folders hold the same pairs"
    ]


def pair_sources(ir: Source, vis: Source, by: str = "index", tolerance: float | None = None) -> Pairing:
    """Pair two started file sources; iterate the result for :class:`FramePair`, read ``.report``.

    Args:
        by: "index", "time" or "auto" (see the module docstring).
        tolerance: seconds, for "time"; default half the longer frame period.
    """
    return Pairing(ir, vis, by=by, tolerance=tolerance)
