"""The Cryptomatte preview and picker on the image canvas.

Adds one image item to the :class:`~widgets.image_canvas.ImageCanvas` view box, above the
beauty and below the pixel markers, showing the model's :class:`~app.crypto_model.Overlay`
(uint8 RGBA over the layer's data window; its alpha blends it over the beauty). Listens to the
canvas's clicks without taking them over: the canvas still sets the current pixel (the deep
graph and sample table follow the click) and pins on Shift+click; when picking is on, a plain
click also adds the top id not yet selected, Ctrl+click or Alt+click removes one.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QObject, QRectF, Qt
from PySide6.QtWidgets import QDockWidget

from app.crypto_model import CryptoModel, Overlay
from core.layers import half_open
from widgets.image_canvas import ImageCanvas

REMOVE_MODIFIERS = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier


class CryptoCanvasTool(QObject):
    """Draws the preview overlay and turns canvas clicks into picks while picking is active."""

    def __init__(self, canvas: ImageCanvas, crypto: CryptoModel, dock: QDockWidget | None = None,
                 parent: QObject | None = None):
        super().__init__(parent if parent is not None else canvas)
        self.canvas = canvas
        self.crypto = crypto
        # with a dock, picking follows whether it is shown (a tab behind another one is not)
        self._dock_shown = dock is None or dock.isVisible()
        if dock is not None:
            dock.visibilityChanged.connect(self._on_dock_visibility)
        self.overlay_item = pg.ImageItem(axisOrder="row-major")
        self.overlay_item.setObjectName("crypto_overlay")
        self.overlay_item.setVisible(False)
        canvas.view_box.addItem(self.overlay_item, ignoreBounds=True)
        self.overlay_item.stackBefore(canvas.display_outline)  # over the beauty, under the markers
        self.overlay: Overlay | None = None
        canvas.scene().sigMouseClicked.connect(self._on_clicked)
        crypto.overlay_changed.connect(self.set_overlay)
        self.set_overlay(crypto.overlay)

    @property
    def picking_active(self) -> bool:
        """Clicks pick ids when picking is on, a layer is current and the panel is shown."""
        return self.crypto.picking and self.crypto.layer is not None and self._dock_shown

    def _on_dock_visibility(self, visible: bool) -> None:
        self._dock_shown = bool(visible)

    def set_overlay(self, overlay: Overlay | None) -> None:
        self.overlay = overlay
        if overlay is None or not overlay.rgba.size:
            self.overlay_item.clear()
            self.overlay_item.setVisible(False)
            return
        x0, y0, x1, y1 = half_open(overlay.data_window)
        self.overlay_item.setImage(overlay.rgba, autoLevels=False)
        self.overlay_item.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
        self.overlay_item.setVisible(True)

    def _on_clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or event.double() or self.canvas.frame is None:
            return
        modifiers = event.modifiers()
        if modifiers & Qt.KeyboardModifier.ShiftModifier or not self.picking_active:
            return
        x, y = self.canvas.pixel_at(event.scenePos())
        self.crypto.pick(x, y, remove=bool(modifiers & REMOVE_MODIFIERS))
