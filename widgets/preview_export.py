"""The save dialog both preview panels use to export their full-resolution result."""

from __future__ import annotations

import os

from PySide6.QtWidgets import QFileDialog, QWidget


def ask_preview_export_path(parent: QWidget, document, effect: str, last_dir: str | None) -> str | None:
    """Ask where to write the ``effect`` preview; the default name is ``<stem>_<effect>.exr`` next to the file."""
    start = last_dir or (os.path.dirname(document.path) if document is not None else "")
    stem = os.path.splitext(document.name if document is not None else "preview")[0].removesuffix(".deep")
    path, _ = QFileDialog.getSaveFileName(parent, f"Export the {effect} preview",
                                          os.path.join(start, f"{stem}_{effect}.exr"), "OpenEXR images (*.exr)")
    return path or None
