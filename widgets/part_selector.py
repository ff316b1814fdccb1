"""The part selector: which part of a multi-part file the viewer shows."""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker
from PySide6.QtWidgets import QComboBox

from app.document import DocumentModel
from core.model import Part


def part_label(part: Part) -> str:
    """``"0: rgba.left · deepscanline 1920×814"``: index, name, type and data-window size."""
    h = part.header
    dw = h.data_window
    size = f" {dw.width}×{dw.height}" if dw is not None else ""
    return f"{part.index}: {h.label} · {h.type}{size}"


class PartSelector(QComboBox):
    """A combo box of the document's parts, bound to the model's part index."""

    def __init__(self, model: DocumentModel, parent=None):
        super().__init__(parent)
        self.model = model
        self.setObjectName("part_selector")
        self.setToolTip("Part of a multi-part file")
        self.currentIndexChanged.connect(self._on_index_changed)
        model.document_changed.connect(self._populate)
        model.part_changed.connect(self._on_part_changed)
        self._populate()

    def _populate(self, *_args) -> None:
        doc = self.model.document
        with QSignalBlocker(self):
            self.clear()
            if doc is not None:
                for part in doc.parts:
                    self.addItem(part_label(part))
                self.setCurrentIndex(self.model.part_index)
        self.setEnabled(doc is not None and len(doc.parts) > 1)

    def _on_part_changed(self, index: int) -> None:
        with QSignalBlocker(self):
            self.setCurrentIndex(index)

    def _on_index_changed(self, index: int) -> None:
        if index >= 0 and self.model.document is not None:
            self.model.set_part(index)
