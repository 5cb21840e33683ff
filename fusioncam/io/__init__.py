"""Frames in and out: file and camera sources, capture threads, writers, recorder, output checks."""
