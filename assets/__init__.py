"""Data shipped with fusioncam (no code): the sample clips and the trained weights with model cards.

Installed as the package ``fusioncam.assets`` so that a regular (non-editable) install carries them;
:data:`ASSETS_DIR` is where they are, in a source checkout and in site-packages alike.
"""

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent
SAMPLES_DIR = ASSETS_DIR / "samples"
WEIGHTS_DIR = ASSETS_DIR / "weights"
# The checkpoint a network fuser loads when none is named: small enough to run live on a CPU.
DEFAULT_WEIGHTS = "mgfusion_fast_noclip"


def shipped_weight_names(folder: Path = WEIGHTS_DIR) -> list[str]:
    """Names of the shipped checkpoints (``--weights NAME``), read from the folder: no torch needed."""
    return sorted(p.stem for p in folder.glob("*.safetensors"))
