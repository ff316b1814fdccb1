"""The Deep IDs layer of the image canvas: the selection preview over the image, and picking.

It adds an ``ImageItem`` as a child of the canvas's image item, so it sits exactly on the
data window, above the image and below the pixel markers and value text; it shows the
:class:`~app.deepid_model.DeepIdModel` overlay (mask tint, or the selected objects alone)
while it matches the frame on screen. While "Pick" is on, a left click on the canvas picks the
ids of the front visible sample (Ctrl or Alt: removes them), as long as the Deep IDs panel is shown (it
shares a tabbed dock with the Cryptomatte panel: only the shown one picks); the canvas itself still makes the
clicked pixel current (Shift+click pins and does not pick). The cursor is a cross while picking.
"""

from __future__ import annotations

from collections.abc import Callable

import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt

from app.deepid_model import DeepIdModel
from widgets.image_canvas import ImageCanvas

OVERLAY_Z = 1.0


class DeepIdOverlay(QObject):
    """Keeps the canvas's Deep IDs overlay in step with the model, and turns clicks into picks."""

    def __init__(self, canvas: ImageCanvas, model: DeepIdModel, active: Callable[[], bool] | None = None,
                 parent: QObject | None = None):
        super().__init__(parent if parent is not None else canvas)
        self.canvas = canvas
        self.model = model
        self._active = active or (lambda: True)
        self.item = pg.ImageItem(axisOrder="row-major")
        self.item.setParentItem(canvas.image_item)  # the image item's local space is the frame's pixels
        self.item.setZValue(OVERLAY_Z)
        self.item.setVisible(False)
        model.overlay_changed.connect(self.refresh)
        model.preview_mode_changed.connect(self.refresh)
        model.pick_enabled_changed.connect(self._on_pick_enabled)
        canvas.model.frame_changed.connect(self.refresh)
        canvas.scene().sigMouseClicked.connect(self._on_mouse_clicked)
        self._on_pick_enabled(model.pick_enabled)
        self.refresh()

    @property
    def picking_active(self) -> bool:
        """Clicks pick when Pick is on and the Deep IDs panel is shown (a tabbed dock: only the shown tab picks)."""
        return self.model.pick_enabled and self._active()

    @property
    def shown(self) -> bool:
        return self.item.isVisible()

    def refresh(self, *_args) -> None:
        """Show the model's overlay when it belongs to the part and size of the frame on screen."""
        overlay = self.model.overlay
        frame = self.canvas.frame
        ok = (overlay is not None and frame is not None and self.model.overlay_key == frame.key
              and overlay.shape[:2] == frame.rgba.shape[:2] and overlay.size > 0)
        if ok:
            self.item.setImage(overlay, autoLevels=False)
        self.item.setVisible(ok)

    def _on_pick_enabled(self, enabled: bool) -> None:
        viewport = self.canvas.viewport()
        if enabled:
            viewport.setCursor(Qt.CursorShape.CrossCursor)
        else:
            viewport.unsetCursor()

    def _on_mouse_clicked(self, event) -> None:
        if (not self.picking_active or event.button() != Qt.MouseButton.LeftButton or event.double()
                or self.canvas.frame is None):
            return
        modifiers = event.modifiers()
        if modifiers & Qt.KeyboardModifier.ShiftModifier:
            return  # Shift+click pins a pixel
        remove = bool(modifiers & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier))
        self.model.pick(self.canvas.pixel_at(event.scenePos()), remove=remove)
