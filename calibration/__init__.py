"""fusioncam.calibration: estimate the IR-to-VIS homography of a camera rig (never imports models, engine or Qt)."""
