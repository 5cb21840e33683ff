"""The per-frame work: registration (rig, warps), colour handling and the fusers."""
