"""Start the GUI: the QApplication, the main window, and the timed quit/screenshot used headless.

``--quit-after`` and ``--screenshot`` exist so the demo can run unattended (CI, the README check, and
making docs/screenshot.png with ``QT_QPA_PLATFORM=offscreen``).
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path

from PyQt6.QtCore import QTimer
from PyQt6.QtWidgets import QApplication

from fusioncam.config import Settings
from fusioncam.errors import FusioncamError

from .main_window import MainWindow
from .worker import PipelineFactory

__all__ = ["run_gui", "save_screenshot"]


def save_screenshot(window: MainWindow, path: str | Path) -> Path:
    """Grab the window (works offscreen) and save it as PNG through a temporary name."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix or '.png'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not window.grab().save(str(tmp)):
            raise FusioncamError(f"cannot save screenshot to {path} (Qt could not write {tmp.name})")
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise FusioncamError(f"cannot save screenshot to {path}: {e.strerror or e}") from None
    return path


def _summary(window: MainWindow) -> str:
    """One line for unattended runs: what the window showed and at what rate (the status bar's numbers)."""
    stats = window.worker.stats() or {}
    engine = stats.get("engine") or {}
    fps = stats.get("fps") or window.worker.result_rate()
    rate = f"{fps:.2f} fused/s" if window.worker.results >= 2 else "no rate from one result"
    live_engine = window.worker.engine
    device = engine.get("device") or getattr(live_engine, "device", None) or "?"
    return (
        f"{window.painted} results shown of {window.worker.results} fused; {rate}, "
        f"latency {float(stats.get('latency_ms_mean') or 0.0):.0f} ms, "
        f"skipped {stats.get('skipped_pairs', 0)}, dropped {stats.get('dropped_pairs', 0)} pairs; "
        f"{engine.get('method', window.settings.engine.method)} on {device}"
    )


def run_gui(
    settings: Settings,
    *,
    settings_path: Path | None = None,
    persist_sources: bool = True,
    record: bool = False,
    quit_after: float | None = None,
    screenshot: str | Path | None = None,
    title: str = "fusioncam",
    pipeline_factory: PipelineFactory | None = None,
) -> int:
    """Open the window and run the Qt event loop until it is closed (or ``quit_after`` seconds pass).

    With ``quit_after`` the run is a check: it returns 1 if no fused frame was ever shown, with the
    reason on stderr. The screenshot is taken just before quitting, once at least one frame is shown
    (waiting up to 60 s more for a slow start, e.g. loading MGFusion on a CPU).
    """
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("fusioncam")
    window = MainWindow(
        settings,
        settings_path=settings_path,
        persist_sources=persist_sources,
        pipeline_factory=pipeline_factory,
        record_on_start=record,
        title=title,
    )
    window.show()
    outcome: dict[str, str] = {}

    if quit_after is not None or screenshot is not None:
        deadline = time.monotonic() + (quit_after if quit_after is not None else 5.0)
        hard_deadline = deadline + 60.0

        def check() -> None:
            now = time.monotonic()
            stalled = window.worker.state == "idle" and window.last_error is not None
            if now < deadline and not stalled:
                return
            if window.painted == 0 and now < hard_deadline and not stalled:
                return
            timer.stop()
            outcome["summary"] = _summary(window)
            if screenshot is not None and window.painted > 0:
                try:
                    outcome["screenshot"] = str(save_screenshot(window, screenshot))
                except FusioncamError as e:
                    outcome["error"] = str(e)
            window.close()

        timer = QTimer(window)
        timer.setInterval(100)
        timer.timeout.connect(check)
        timer.start()

    # An unexpected exception in a slot would abort a PyQt6 application; show it and keep running.
    previous_hook = sys.excepthook

    def excepthook(exc_type, exc, tb) -> None:
        traceback.print_exception(exc_type, exc, tb, file=sys.stderr)
        window.show_error(f"internal error: {exc_type.__name__}: {exc}")

    sys.excepthook = excepthook
    try:
        app.exec()
        window.shutdown()  # idempotent: also when the loop ended without closeEvent
    finally:
        sys.excepthook = previous_hook
    if quit_after is not None or screenshot is not None:
        if "summary" in outcome:
            print(f"fusioncam: {outcome['summary']}", file=sys.stderr)
        if window.painted == 0:
            reason = window.last_error or "no result within the time limit"
            print(f"fusioncam: no fused frame was shown: {reason}", file=sys.stderr)
            return 1
        if "error" in outcome:
            print(f"fusioncam: {outcome['error']}", file=sys.stderr)
            return 1
    return 0
