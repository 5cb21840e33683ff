"""Offline fusion of files: the loop behind ``fusioncam fuse``, reusable by the GUI and the benchmarks.

``fuse_files`` opens two file sources, pairs them (:mod:`fusioncam.offline.pairing`), warps each IR frame onto
the VIS image plane (the rig's homography; identity without a rig, or a plain resize when the sizes
differ and no rig is given, said in a warning), fuses luminance with a registered fuser and puts the VIS
colour back (:func:`fusioncam.processing.color.fuse_color`), and writes the results through
:mod:`fusioncam.io.sinks`.
Every check a user can fail (paths, method, rig, decodability) runs before the first output byte is
written, and outputs only appear under their final names once complete.

No printing here: progress goes to a callback and the warnings come back in :class:`FuseResult`.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fusioncam.errors import FusioncamError
from fusioncam.io.sinks import ImageDirSink, check_output_path, open_sink, output_kind
from fusioncam.io.sources import ImageSequenceSource, Source, SourceKind, classify_spec, open_source
from fusioncam.offline.pairing import PairingReport, pair_sources
from fusioncam.processing.color import fuse_color, is_color, to_bgr, to_gray
from fusioncam.processing.fusers import Fuser, check_clip_weights, check_weights, create_fuser, fuser_info
from fusioncam.processing.registration import Rig, warp_ir_to_vis

__all__ = ["DEFAULT_METHOD", "FuseResult", "fuse_files", "compose_side_by_side", "register_ir"]

DEFAULT_METHOD = "laplacian"
DEFAULT_FPS = 30.0

ProgressFn = Callable[[int, int | None], None]


@dataclass
class FuseResult:
    frames: int
    seconds: float
    method: str
    report: PairingReport
    outputs: list[Path]
    warnings: list[str] = field(default_factory=list)  # registration notes + the pairing report's

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


_END = object()


class _Prefetch:
    """Iterates ``items`` in a background thread, up to ``depth`` items ahead.

    Decoding the two inputs then overlaps fusing and encoding: OpenCV releases the GIL while it decodes.
    Exceptions raised by the iterator are re-raised in the consumer, at the item where they happened.
    """

    def __init__(self, items: Iterable[Any], depth: int = 4):
        self._items = items
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fusioncam-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which re-raises it
            self._put(_Raised(e))
            return
        self._put(_END)

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self._q.get()
            if item is _END:
                return
            if isinstance(item, _Raised):
                raise item.exc
            yield item

    def close(self) -> None:
        """Stop the thread (it finishes the item it is reading) and wait for it."""
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._q.get(timeout=0.05)
        self._thread.join()


@dataclass
class _Raised:
    exc: BaseException


class _WriteBehind:
    """Writes frames to the sinks in a background thread, so encoding overlaps the next frame's fusion.

    ``submit`` blocks when ``depth`` frames are waiting (bounded memory) and re-raises a failure of an
    earlier write; ``finish`` waits for the queue to drain. Sinks are only touched by this thread until
    ``finish`` or ``close`` returns.
    """

    def __init__(self, depth: int = 4):
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fusioncam-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (job := self._q.get()) is not _END:
            if self._error is not None:
                continue  # drain without writing after a failure
            try:
                for sink, image, name in job:
                    if name is None:
                        sink.write(image)
                    else:
                        sink.write(image, name=name)
            except BaseException as e:  # noqa: BLE001 - re-raised in the submitting thread
                self._error = e

    def _check(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def submit(self, job: list[tuple[Any, np.ndarray, str | None]]) -> None:
        self._check()
        self._q.put(job)

    def finish(self) -> None:
        self.close()
        self._check()

    def close(self) -> None:
        if self._thread.is_alive():
            self._q.put(_END)
            self._thread.join()


class _Plain:
    """Same interface as :class:`_Prefetch`, without a thread."""

    def __init__(self, items: Iterable[Any]):
        self._items = items

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def close(self) -> None:
        pass


class _WriteNow:
    """Same interface as :class:`_WriteBehind`, writing in the calling thread."""

    def submit(self, job: list[tuple[Any, np.ndarray, str | None]]) -> None:
        for sink, image, name in job:
            if name is None:
                sink.write(image)
            else:
                sink.write(image, name=name)

    def finish(self) -> None:
        pass

    def close(self) -> None:
        pass


def compose_side_by_side(ir: np.ndarray, vis: np.ndarray, fused: np.ndarray) -> np.ndarray:
    """IR (registered) | VIS | fused in one row, all at the VIS height; BGR if any of them is colour."""
    h = vis.shape[0]
    parts = []
    for img in (ir, vis, fused):
        if img.shape[0] != h:
            w = max(1, round(img.shape[1] * h / img.shape[0]))
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        parts.append(img)
    if any(is_color(p) for p in parts):
        parts = [to_bgr(p) for p in parts]
    return cv2.hconcat(parts)


def register_ir(
    ir: np.ndarray, vis_size: tuple[int, int], rig: Rig | None, notes: list[str] | None = None
) -> np.ndarray:
    """IR (gray) in the VIS image plane: the rig's warp, identity, or a resize when sizes differ.

    ``notes`` collects one warning per distinct situation.
    """
    ir_size = (ir.shape[1], ir.shape[0])
    if rig is not None:
        if notes is not None and (ir_size != rig.ir_size or vis_size != rig.vis_size):
            _note(
                notes,
                f"the rig was calibrated at IR {rig.ir_size[0]}x{rig.ir_size[1]}, VIS "
                f"{rig.vis_size[0]}x{rig.vis_size[1]} but the frames are IR {ir_size[0]}x{ir_size[1]}, "
                f"VIS {vis_size[0]}x{vis_size[1]}: its homography is rescaled",
            )
        return warp_ir_to_vis(ir, rig, vis_size)
    if ir_size != vis_size:
        if notes is not None:
            _note(
                notes,
                f"IR {ir_size[0]}x{ir_size[1]} and VIS {vis_size[0]}x{vis_size[1]} differ in size and no rig "
                "was given: IR is resized to VIS (give --rig for a real registration)",
            )
        return cv2.resize(ir, vis_size, interpolation=cv2.INTER_LINEAR)
    return ir


def _note(notes: list[str], text: str) -> None:
    if text not in notes:
        notes.append(text)


def _input_paths(spec: str, src: Source) -> set[Path]:
    paths = {Path(spec).resolve()}
    if isinstance(src, ImageSequenceSource):
        paths |= {p.resolve() for p in src.files}
    return paths


def _check_outputs(outputs: list[tuple[str, Path]], inputs: set[Path], sources: list[Source]) -> None:
    """Refuse outputs that would overwrite an input, or two outputs on one path."""
    image_dirs = {p.resolve().parent for s in sources if isinstance(s, ImageSequenceSource) for p in s.files}
    seen: dict[Path, str] = {}
    for what, path in outputs:
        check_output_path(path)
        res = path.resolve()
        if res in inputs:
            raise FusioncamError(f"{what} {path} is also an input; choose another output name")
        if output_kind(path) == "dir" and res in image_dirs:
            raise FusioncamError(f"{what} folder {path} holds the input images; choose another folder")
        if res in seen:
            raise FusioncamError(f"{what} {path} is also the {seen[res]}; give each output its own path")
        seen[res] = what


def _make_fuser(
    method: str,
    device: str,
    notes: list[str],
    weights: str | Path | None = None,
    clip_weights: str | Path | None = None,
) -> Fuser:
    info = fuser_info(method)  # unknown names raise here, with a suggestion
    if info.classical:
        if device == "cuda":
            notes.append(f"'{method}' is a classical fuser and runs on the CPU; --device cuda is ignored")
        return create_fuser(method)
    kwargs: dict[str, Any] = {}
    if device != "auto":
        kwargs["device"] = device
    if weights is not None:
        kwargs["weights"] = str(weights)
    if clip_weights is not None:
        kwargs["clip_weights"] = str(clip_weights)
    return create_fuser(method, **kwargs)


def _open_file_source(spec: str, fps: float | None, role: str) -> Source:
    if classify_spec(spec) is SourceKind.CAMERA:
        raise FusioncamError(f"{role} {spec} is a camera; fuse works on files (use `fusioncam live`)")
    return open_source(spec, fps=fps)


def fuse_files(
    ir: str | Path,
    vis: str | Path,
    output: str | Path,
    *,
    rig: Rig | str | Path | None = None,
    method: str = DEFAULT_METHOD,
    fuser: Fuser | None = None,
    side_by_side: str | Path | None = None,
    frames_dir: str | Path | None = None,
    pair_by: str = "auto",
    tolerance: float | None = None,
    device: str = "auto",
    weights: str | Path | None = None,
    clip_weights: str | Path | None = None,
    max_frames: int | None = None,
    fps: float | None = None,
    progress: ProgressFn | None = None,
    threads: bool = True,
) -> FuseResult:
    """Fuse two file inputs (images, image folders/globs, videos) into ``output``.

    Args:
        ir, vis: input specs, as :func:`fusioncam.io.sources.open_source` takes them.
        output: an image file, a folder (numbered PNGs, or the VIS file names for image folders) or a
            video (.mp4 mp4v, .avi MJPG) at the VIS frame rate.
        rig: a :class:`Rig` or the path of its YAML; None: the inputs are already registered.
        method: a name of :func:`fusioncam.processing.fusers.list_fusers` (ignored when ``fuser`` is given).
        side_by_side: optional second output of IR (registered) | VIS | fused.
        frames_dir: optional folder that also receives every fused frame as PNG.
        pair_by: "auto", "index" or "time" (:mod:`fusioncam.offline.pairing`).
        device: "auto", "cpu" or "cuda", for network fusers.
        weights: checkpoint file of a network fuser (default: the one it ships or finds itself).
        clip_weights: CLIP weights file for a CLIP-guided network (default: the local cache).
        max_frames: stop after this many pairs.
        fps: frame rate of image inputs (their timestamps and a video made from them); default 30.
        progress: called as ``progress(frames_done, total_or_None)`` after each frame.
        threads: decode ahead and encode behind in two helper threads (the default); False runs
            everything in the calling thread (the baseline of the benchmark, and for debugging).
    """
    if max_frames is not None and max_frames < 1:
        raise FusioncamError(f"max-frames must be >= 1, got {max_frames}")
    ir, vis = str(ir), str(vis)
    notes: list[str] = []
    outputs = [("output", Path(output))]
    if side_by_side is not None:
        outputs.append(("side-by-side output", Path(side_by_side)))
    if frames_dir is not None:
        if output_kind(frames_dir) != "dir":
            raise FusioncamError(f"frames folder {frames_dir} looks like a file; give a folder")
        outputs.append(("frames folder", Path(frames_dir)))
    for _what, path in outputs:
        output_kind(path)  # unknown extensions fail before any work
    if isinstance(rig, (str, Path)):
        rig = Rig.load(rig)
    if fuser is None:
        info = fuser_info(method)  # an unknown name fails here, before anything is opened
        if weights is not None:
            if info.classical:
                raise FusioncamError(f"--weights is for network fusers; '{method}' has no weights")
            check_weights(weights)
        if clip_weights is not None:
            if info.classical:
                raise FusioncamError(f"--clip-weights is for network fusers; '{method}' uses no CLIP")
            check_clip_weights(clip_weights)

    with contextlib.ExitStack() as stack:
        src_ir = stack.enter_context(_open_file_source(ir, fps, "IR input"))
        src_vis = stack.enter_context(_open_file_source(vis, fps, "VIS input"))
        _check_outputs(outputs, _input_paths(ir, src_ir) | _input_paths(vis, src_vis), [src_ir, src_vis])
        pairing = stack.enter_context(pair_sources(src_ir, src_vis, by=pair_by, tolerance=tolerance))
        report = pairing.report

        counts = [c for c in (src_ir.frame_count, src_vis.frame_count) if c is not None]
        if report.rule == "time" and src_vis.frame_count is not None:
            total = src_vis.frame_count
        else:
            total = min(counts) if len(counts) == 2 else None
        if max_frames is not None:
            total = min(total, max_frames) if total else max_frames
        out_fps = src_vis.fps or src_ir.fps or fps or DEFAULT_FPS
        for what, path in outputs:
            if output_kind(path) == "image" and total != 1:
                n = f"{total} frames" if total else "an unknown number of frames"
                raise FusioncamError(
                    f"{what} {path} is one image but the inputs give {n}; give a folder or a video "
                    "(or --max-frames 1)"
                )

        info = fuser_info(method) if fuser is None else None
        if info is not None and info.flickers and total != 1:
            _note(
                notes, f"{method} is a still-image baseline ({info.flickers}): a fused video of it flickers"
            )
        if fuser is None:  # built once the inputs are known good: a network fuser is slow to load
            fuser = _make_fuser(method, device, notes, weights, clip_weights)
        method = getattr(fuser, "name", method)
        sinks = [stack.enter_context(open_sink(path, out_fps)) for _what, path in outputs]
        vis_names = None
        if isinstance(src_vis, ImageSequenceSource):
            # frames take the VIS images' names, unless two share a stem (a.png, a.jpg): then numbers
            stems = [f.stem for f in src_vis.files]
            if len(set(stems)) == len(stems):
                vis_names = src_vis.files
            elif any(output_kind(p) == "dir" for _w, p in outputs):
                _note(notes, "VIS images share file names up to the extension: output frames are numbered")
        # Closed first (LIFO): the threads stop before the sinks finalise or abort.
        limited = itertools.islice(pairing, max_frames) if max_frames else pairing
        writer = _WriteBehind() if threads else _WriteNow()
        stack.callback(writer.close)
        pairs = _Prefetch(limited) if threads else _Plain(limited)
        stack.callback(pairs.close)
        n = 0
        t0 = time.perf_counter()
        for pair in pairs:
            vis_img = pair.vis.image
            vis_size = (vis_img.shape[1], vis_img.shape[0])
            ir_reg = register_ir(to_gray(pair.ir.image), vis_size, rig, notes)
            fused = fuse_color(fuser, ir_reg, vis_img)
            job = []
            for (what, _path), sink in zip(outputs, sinks, strict=True):
                image = compose_side_by_side(ir_reg, vis_img, fused) if what.startswith("side") else fused
                name = None
                if isinstance(sink, ImageDirSink) and vis_names is not None:
                    name = vis_names[pair.vis.index % len(vis_names)].stem + ".png"
                job.append((sink, image, name))
            writer.submit(job)
            n += 1
            if progress is not None:
                progress(n, total)
            if max_frames is not None and n >= max_frames:
                break
        pairs.close()
        writer.finish()
        if n == 0:
            raise FusioncamError("no frame pairs: " + "; ".join(report.warnings or [report.summary()]))
        pairing.close()
        for sink in sinks:
            sink.close()
        seconds = time.perf_counter() - t0

    warnings = notes + report.warnings
    return FuseResult(n, seconds, method, report, [p for _w, p in outputs], warnings)
