"""Process-wide memory tuning for the applications' entry points (never called by library code).

Kept free of torch so the CLI can call it first thing at start-up without paying for the import.
"""

from __future__ import annotations

import ctypes
import ctypes.util

__all__ = ["tune_cpu_allocator"]


def tune_cpu_allocator(keep_bytes: int = 1 << 30) -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the OS. Process-wide; opt-in.

    Why: a 640x480 frame's activations are tensors of 20-80 MB. glibc serves blocks that large with
    mmap and unmaps them on free, so every frame the kernel maps and zeroes them again page by page;
    for ``mgfusion_fast_noclip`` that was about half of the CPU time of a forward pass (see
    docs/mgfusion_speed.md). Raising the mmap and trim thresholds to ``keep_bytes`` lets the heap reuse
    the blocks (the same as the environment variables ``MALLOC_MMAP_THRESHOLD_`` and
    ``MALLOC_TRIM_THRESHOLD_``); the process then keeps its peak memory instead of returning it.

    This changes process state, so library code never calls it: an application's entry point does
    (the live app, ``fusioncam bench``), before its first frame. Returns False where it cannot apply
    (not glibc: macOS, Windows, musl), True when both settings were taken.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's <malloc.h>
    mmap_ok = bool(mallopt(m_mmap_threshold, int(keep_bytes)))
    return bool(mallopt(m_trim_threshold, int(keep_bytes))) and mmap_ok
