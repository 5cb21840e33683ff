"""fusioncam.ui: the PyQt6 GUI. The only package that imports Qt."""
