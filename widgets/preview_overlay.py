"""The preview on the image canvas, and the focus tool's clicks.

Adds one image item to the :class:`~widgets.image_canvas.ImageCanvas` view box, above the
image and the Cryptomatte overlay and below the pixel markers, showing the
:class:`~app.preview_model.PreviewModel`'s preview (uint8 RGBA over the part's data window,
already upscaled when it is a proxy) while it belongs to the open part. It listens to the
canvas's clicks without taking them over: the canvas still makes the clicked pixel current
(the deep graph and sample table follow it). While the focus tool is on and the Defocus
panel is the one shown (``active``), a plain click also focuses on that pixel; the panels
share a tabbed dock with the Deep IDs and Cryptomatte panels, so one click picks or
focuses, never both.
"""

from __future__ import annotations

from collections.abc import Callable

import pyqtgraph as pg
from PySide6.QtCore import QObject, QRectF, Qt

from app.preview_model import PreviewFrame, PreviewModel
from core.layers import half_open
from widgets.image_canvas import ImageCanvas


class PreviewOverlay(QObject):
    """Keeps the canvas's preview image in step with the model; turns clicks into focus while the tool is on."""

    def __init__(self, canvas: ImageCanvas, model: PreviewModel, active: Callable[[], bool] | None = None,
                 parent: QObject | None = None):
        super().__init__(parent if parent is not None else canvas)
        self.canvas = canvas
        self.model = model
        self._active = active or (lambda: True)
        self.item = pg.ImageItem(axisOrder="row-major")
        self.item.setObjectName("preview_image")
        self.item.setVisible(False)
        canvas.view_box.addItem(self.item, ignoreBounds=True)
        self.item.stackBefore(canvas.display_outline)  # over the image and the id overlays, under the markers
        self.frame: PreviewFrame | None = None
        model.preview_changed.connect(self.set_preview)
        canvas.model.document_changed.connect(lambda _d: self.set_preview(model.preview))
        canvas.scene().sigMouseClicked.connect(self._on_clicked)
        self.set_preview(model.preview)

    @property
    def shown(self) -> bool:
        return self.item.isVisible()

    @property
    def focus_active(self) -> bool:
        """Clicks focus while the focus tool is on and the Defocus panel is shown."""
        return self.model.focus_tool and self._active()

    def set_preview(self, frame: PreviewFrame | None) -> None:
        ok = (frame is not None and frame.target.key == self.canvas.model.part_key and frame.rgba.size > 0)
        self.frame = frame if ok else None
        if not ok:
            self.item.clear()
            self.item.setVisible(False)
            return
        x0, y0, x1, y1 = half_open(frame.data_window)
        self.item.setImage(frame.rgba, autoLevels=False)
        self.item.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
        self.item.setVisible(True)

    def _on_clicked(self, event) -> None:
        if (event.button() != Qt.MouseButton.LeftButton or event.double() or self.canvas.frame is None
                or not self.focus_active):
            return
        if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            return  # Shift+click pins a pixel
        self.model.focus_on(self.canvas.pixel_at(event.scenePos()))
