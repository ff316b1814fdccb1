"""The split-screen wipe of the recolor comparison on the image canvas, with a draggable divider.

Over the preview (the deep recolor) it lays the matte-based grade, clipped to the columns
right of the divider: moving the divider only moves the clip, no image is rebuilt. The
divider is a vertical line the user drags; its position is the
:class:`~app.preview_model.PreviewModel`'s wipe position (a fraction of the data window's
width, snapped to a pixel column), so the model, the line and the clip stay in step.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QObject, QRectF, Qt
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsRectItem

from app.preview_model import PreviewFrame, PreviewModel
from core.layers import half_open
from widgets.image_canvas import ImageCanvas

DIVIDER_COLOUR = QColor(255, 220, 90)
LABEL = "deep recolor  ◀ ▶  matte grade"


class WipeOverlay(QObject):
    """The matte-based side of the wipe and its divider."""

    def __init__(self, canvas: ImageCanvas, model: PreviewModel, parent: QObject | None = None):
        super().__init__(parent if parent is not None else canvas)
        self.canvas = canvas
        self.model = model
        self.clip = QGraphicsRectItem()
        self.clip.setFlag(QGraphicsItem.GraphicsItemFlag.ItemClipsChildrenToShape, True)
        self.clip.setPen(QPen(Qt.PenStyle.NoPen))
        self.clip.setVisible(False)
        canvas.view_box.addItem(self.clip, ignoreBounds=True)
        self.clip.stackBefore(canvas.display_outline)  # over the preview image, under the markers
        self.item = pg.ImageItem(axisOrder="row-major")
        self.item.setParentItem(self.clip)
        pen = pg.mkPen(DIVIDER_COLOUR, width=2)
        self.divider = pg.InfiniteLine(angle=90, movable=True, pen=pen,
                                       hoverPen=pg.mkPen(QColor(255, 255, 255), width=3), label=LABEL,
                                       labelOpts={"position": 0.04, "color": (255, 235, 160),
                                                  "fill": (0, 0, 0, 150), "movable": False})
        self.divider.setVisible(False)
        self.divider.setZValue(50)
        canvas.view_box.addItem(self.divider, ignoreBounds=True)
        self.frame: PreviewFrame | None = None
        self._moving = False
        self.divider.sigPositionChanged.connect(self._on_divider_moved)
        model.preview_changed.connect(self.set_preview)
        model.wipe_position_changed.connect(lambda _f: self._place())
        self.set_preview(model.preview)

    @property
    def shown(self) -> bool:
        return self.clip.isVisible()

    def split_x(self) -> float | None:
        """The divider's x in EXR pixel space (the first column of the matte side), or None when hidden."""
        f = self.frame
        if f is None:
            return None
        return f.data_window.xmin + self.model.wipe_column(f.rgba.shape[1])

    def set_preview(self, frame: PreviewFrame | None) -> None:
        ok = (frame is not None and frame.compare_rgba is not None
              and frame.target.key == self.canvas.model.part_key and frame.compare_rgba.size > 0)
        self.frame = frame if ok else None
        self.clip.setVisible(ok)
        self.divider.setVisible(ok)
        if not ok:
            self.item.clear()
            return
        x0, y0, x1, y1 = half_open(frame.data_window)
        self.item.setImage(frame.compare_rgba, autoLevels=False)
        self.item.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
        self.divider.setBounds((x0, x1))
        self._place()

    def _place(self) -> None:
        f = self.frame
        if f is None:
            return
        x0, y0, x1, y1 = half_open(f.data_window)
        split = self.split_x()
        self.clip.setRect(QRectF(split, y0, x1 - split, y1 - y0))
        if not self._moving:
            self._moving = True
            try:
                self.divider.setValue(split)
            finally:
                self._moving = False

    def _on_divider_moved(self, line) -> None:
        f = self.frame
        if f is None or self._moving:
            return
        x0, _y0, x1, _y1 = half_open(f.data_window)
        width = max(x1 - x0, 1)
        self._moving = True  # the model's signal moves the clip, not the line under the mouse
        try:
            self.model.set_wipe_position((float(line.value()) - x0) / width)
        finally:
            self._moving = False
