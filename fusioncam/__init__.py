"""fusioncam: fuse a thermal (IR) and a visible (VIS) camera into one picture, live and offline.

The core package holds the pipeline (sources, sync, registration, fusion, sinks) and never imports Qt.
The network lives in :mod:`fusioncam.models`, calibration in :mod:`fusioncam.calibration` and the GUI
in :mod:`fusioncam.ui`.
"""

from fusioncam.errors import FusioncamError

__version__ = "0.1.0"
__all__ = ["FusioncamError", "__version__"]
