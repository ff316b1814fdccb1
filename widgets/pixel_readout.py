"""The hover readout: x, y, the displayed values, Z and the sample count under the cursor."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from app.document import DocumentModel
from app.render import readout_text


class PixelReadout(QLabel):
    """A status-bar label that follows the model's hover pixel (the current pixel otherwise)."""

    def __init__(self, model: DocumentModel, parent=None):
        super().__init__(parent)
        self.model = model
        self.setObjectName("pixel_readout")
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        for signal in (model.hover_changed, model.pixel_changed, model.frame_changed, model.document_changed,
                       model.part_changed):
            signal.connect(self.refresh)
        self.refresh()

    def refresh(self, *_args) -> None:
        model = self.model
        pixel = model.hover_pixel or model.current_pixel
        if pixel is None or model.image is None:
            self.setText("")
            return
        frame = model.frame
        if frame is not None and frame.key != model.part_key:
            frame = None  # the frame of another part is still on screen: don't show its values
        self.setText(readout_text(frame, model.image, *pixel))
