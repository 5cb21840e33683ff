"""fusioncam.models: the MGFusion network, CLIP encoder, losses and training (PyTorch only; no OpenCV, Qt or pipeline)."""
