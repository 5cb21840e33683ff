"""Offline work on files: look-ahead pairing of finite sources and the fuse loop."""
