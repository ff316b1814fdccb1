"""The hover readout: x, y, the displayed values, Z and the sample count under the cursor.

A read-only, frameless line edit rather than a label: the text can still be selected and
copied, and a new text does not make the status bar (and through it the main window) lay
itself out and repaint again, which a label does on every ``setText`` (that is, on every
mouse move over the image and every click).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QLineEdit, QSizePolicy

from app.document import DocumentModel
from app.render import readout_text


class PixelReadout(QLineEdit):
    """A status-bar line that follows the model's hover pixel (the current pixel otherwise)."""

    def __init__(self, model: DocumentModel, parent=None):
        super().__init__(parent)
        self.model = model
        self.setObjectName("pixel_readout")
        self.setReadOnly(True)
        self.setFrame(False)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        palette = self.palette()  # look like the status bar's text, not like an input field
        palette.setColor(QPalette.ColorRole.Base, palette.color(QPalette.ColorRole.Window))
        self.setPalette(palette)
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
