"""The image canvas: the current frame in a zoomable, pannable pyqtgraph view.

It shows the model's :class:`~app.render.Frame` (ready-made uint8 RGBA, never
auto-levelled) at the data window's true position in EXR pixel space, outlines the display
window when it differs, marks the current and pinned pixels, and draws the pixel values as
text when zoomed far in (visible pixels only). Hovering writes the model's hover pixel,
a click its current pixel, a Shift+click its pinned pixel.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QGraphicsRectItem

from app.document import DocumentModel
from app.render import Frame, format_value
from core.layers import half_open

BACKGROUND = QColor(30, 30, 32)
#: Screen pixels an image pixel needs before its values are drawn, per line of text.
TEXT_PX_PER_LINE = 16
TEXT_MIN_PX = 40
#: Above this zoom (screen pixels per pixel) the current/pinned rings hide: the outline shows the pixel.
RING_MAX_ZOOM = 24.0
#: Never draw more value labels than this (a huge screen at the threshold zoom).
MAX_TEXT_PIXELS = 4000


def _rect_pen(color: QColor, width: float = 1.0, style=Qt.PenStyle.SolidLine) -> QPen:
    pen = QPen(color)
    pen.setCosmetic(True)  # the same width at any zoom
    pen.setWidthF(width)
    pen.setStyle(style)
    return pen


class _PixelValueText(pg.GraphicsObject):
    """Draws each visible pixel's values as text once pixels are big enough on screen."""

    def __init__(self, view_box: pg.ViewBox):
        super().__init__()
        self._view_box = view_box
        self._frame: Frame | None = None
        self.drawn_count = 0  # how many pixels the last paint labelled (for tests)

    def set_frame(self, frame: Frame | None) -> None:
        self.prepareGeometryChange()
        self._frame = frame
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt override
        f = self._frame
        if f is None:
            return QRectF()
        x0, y0, x1, y1 = half_open(f.data_window)
        return QRectF(x0, y0, x1 - x0, y1 - y0)

    def min_pixel_size(self) -> float:
        """Screen pixels a pixel needs before its values are drawn."""
        lines = len(self._frame.values) if self._frame is not None else 1
        return max(TEXT_MIN_PX, TEXT_PX_PER_LINE * (lines + 0.5))

    def paint(self, painter: QPainter, option, widget=None) -> None:
        self.drawn_count = 0
        f = self._frame
        if f is None or not f.values:
            return
        transform = painter.transform()
        scale = math.hypot(transform.m11(), transform.m12())
        if scale < self.min_pixel_size():
            return
        x0, y0, x1, y1 = half_open(f.data_window)
        visible = self._view_box.viewRect().intersected(QRectF(x0, y0, x1 - x0, y1 - y0))
        if visible.isEmpty():
            return
        vx0, vy0 = max(x0, math.floor(visible.left())), max(y0, math.floor(visible.top()))
        vx1, vy1 = min(x1, math.ceil(visible.right())), min(y1, math.ceil(visible.bottom()))
        if (vx1 - vx0) * (vy1 - vy0) > MAX_TEXT_PIXELS:
            return
        labels = list(f.values)
        font = QFont()
        font.setPixelSize(int(min(13, max(9, scale / (len(labels) + 2)))))
        painter.save()
        painter.resetTransform()
        painter.setFont(font)
        for y in range(vy0, vy1):
            for x in range(vx0, vx1):
                lx, ly = x - x0, y - y0
                r, g, b = (int(c) for c in f.rgba[ly, lx, :3])
                luma = 0.2126 * r + 0.7152 * g + 0.0722 * b
                painter.setPen(QColor(0, 0, 0) if luma > 140 else QColor(235, 235, 235))
                text = "\n".join(f"{format_value(f.values[k][ly, lx])}" for k in labels)
                painter.drawText(transform.mapRect(QRectF(x, y, 1, 1)), Qt.AlignmentFlag.AlignCenter, text)
                self.drawn_count += 1
        painter.restore()


class FrameItem(pg.ImageItem):
    """The frame's uint8 RGBA pixels, handed to Qt as a premultiplied image without a copy.

    pyqtgraph wraps such an array as straight (non-premultiplied) RGBA, which Qt converts
    in full on every paint, even to redraw the few pixels under a moved marker. Frames are
    valid premultiplied data (opaque, or fully transparent black where a colour map shows
    infinity), so they can be drawn as they are.
    """

    def render(self) -> None:
        img = self.image
        if img is None or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 4 or not img.flags.c_contiguous:
            super().render()
            return
        h, w = img.shape[:2]
        self.qimage = QImage(img.data, w, h, w * 4, QImage.Format.Format_RGBA8888_Premultiplied)
        self._frame_pixels = img  # the QImage reads this array's memory: keep it alive with it
        self._renderRequired = False
        self._unrenderable = False


class ImageCanvas(pg.GraphicsView):
    """The model's frame in a ViewBox: zoom to cursor (wheel), pan (drag), fit, 1:1."""

    #: emitted with the zoom (screen pixels per image pixel) whenever the view changes
    zoom_changed = Signal(float)

    def __init__(self, model: DocumentModel, parent=None):
        super().__init__(parent, background=BACKGROUND)
        self.model = model
        self.setObjectName("image_canvas")
        self.view_box = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False, defaultPadding=0.02)
        self.view_box.setLimits(minXRange=2, minYRange=2)
        self.setCentralItem(self.view_box)
        menu = self.view_box.menu  # pyqtgraph makes it without a parent: let it go with the canvas
        if menu is not None:
            menu.setParent(self, menu.windowFlags())

        self.image_item = FrameItem(axisOrder="row-major")
        self.view_box.addItem(self.image_item)
        self.display_outline = QGraphicsRectItem()
        self.display_outline.setPen(_rect_pen(QColor(200, 200, 200, 170), 1.0, Qt.PenStyle.DashLine))
        self.display_outline.setVisible(False)
        self.view_box.addItem(self.display_outline, ignoreBounds=True)
        self.value_text = _PixelValueText(self.view_box)
        self.view_box.addItem(self.value_text, ignoreBounds=True)
        self.pinned_marker = QGraphicsRectItem(0, 0, 1, 1)
        self.pinned_marker.setPen(_rect_pen(QColor(0, 220, 255), 2.0, Qt.PenStyle.DashLine))
        self.pinned_marker.setVisible(False)
        self.view_box.addItem(self.pinned_marker, ignoreBounds=True)
        self.current_marker = QGraphicsRectItem(0, 0, 1, 1)
        self.current_marker.setPen(_rect_pen(QColor(255, 210, 0), 2.0))
        self.current_marker.setVisible(False)
        self.view_box.addItem(self.current_marker, ignoreBounds=True)
        # rings of constant screen size, so the pixels are easy to find when zoomed out
        self.current_ring = pg.ScatterPlotItem(size=17, symbol="s", pxMode=True, brush=None,
                                               pen=pg.mkPen(QColor(255, 210, 0), width=1.5))
        self.pinned_ring = pg.ScatterPlotItem(size=17, symbol="o", pxMode=True, brush=None,
                                              pen=pg.mkPen(QColor(0, 220, 255), width=1.5))
        for ring in (self.current_ring, self.pinned_ring):
            self.view_box.addItem(ring, ignoreBounds=True)

        self._frame: Frame | None = None
        self._fitted_path: str | None = None
        # the hover pixel follows this view's own mouse moves (see mouseMoveEvent), not the scene's
        # sigMouseMoved, which drops moves within 10 ms of the last and could leave the readout stale
        self.scene().sigMouseClicked.connect(self._on_mouse_clicked)
        self.view_box.sigRangeChanged.connect(self._on_range_changed)
        model.frame_changed.connect(self._on_frame_changed)
        model.pixel_changed.connect(self._on_pixel_changed)
        model.pinned_changed.connect(self._on_pinned_changed)
        model.document_changed.connect(self._on_document_changed)
        self._on_frame_changed(model.frame)
        self._on_pixel_changed(model.current_pixel)
        self._on_pinned_changed(model.pinned_pixel)

    # ------------------------------------------------------------------ model -> view
    @property
    def frame(self) -> Frame | None:
        return self._frame

    def _on_document_changed(self, document) -> None:
        if document is None:
            self._fitted_path = None

    def _on_frame_changed(self, frame: Frame | None) -> None:
        self._frame = frame
        if frame is None:
            self.image_item.clear()
            self.display_outline.setVisible(False)
            self.value_text.set_frame(None)
            return
        x0, y0, x1, y1 = half_open(frame.data_window)
        if frame.rgba.size:
            self.image_item.setImage(frame.rgba, autoLevels=False)
            self.image_item.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
        else:
            self.image_item.clear()
        d0x, d0y, d1x, d1y = half_open(frame.display_window)
        self.display_outline.setRect(QRectF(d0x, d0y, d1x - d0x, d1y - d0y))
        self.display_outline.setVisible(frame.display_window != frame.data_window)
        self.value_text.set_frame(frame)
        if frame.key[0] != self._fitted_path:  # first frame of a newly opened file
            self._fitted_path = frame.key[0]
            self.fit()

    @staticmethod
    def _place(marker: QGraphicsRectItem, ring: pg.ScatterPlotItem, pixel) -> None:
        marker.setVisible(pixel is not None)
        if pixel is None:
            ring.setData([], [])
            return
        marker.setRect(QRectF(pixel[0], pixel[1], 1, 1))
        ring.setData([pixel[0] + 0.5], [pixel[1] + 0.5])

    def _on_pixel_changed(self, pixel) -> None:
        self._place(self.current_marker, self.current_ring, pixel)

    def _on_pinned_changed(self, pixel) -> None:
        self._place(self.pinned_marker, self.pinned_ring, pixel)

    def _on_range_changed(self, *_args) -> None:
        zoom = self.zoom()
        for ring in (self.current_ring, self.pinned_ring):  # the pixel outline is enough up close
            ring.setVisible(zoom < RING_MAX_ZOOM)
        self.zoom_changed.emit(zoom)

    # ------------------------------------------------------------------ navigation
    def content_rect(self) -> QRectF:
        """The display window united with the data window, in EXR pixel space."""
        f = self._frame
        if f is None:
            return QRectF(0, 0, 1, 1)
        rects = []
        for box in (f.display_window, f.data_window):
            if not box.is_empty:
                x0, y0, x1, y1 = half_open(box)
                rects.append(QRectF(x0, y0, x1 - x0, y1 - y0))
        if not rects:
            return QRectF(0, 0, 1, 1)
        r = rects[0]
        for other in rects[1:]:
            r = r.united(other)
        return r

    def fit(self) -> None:
        """Show the whole image (display and data windows)."""
        self.view_box.setRange(rect=self.content_rect(), padding=0.02)

    def one_to_one(self) -> None:
        """One image pixel per screen pixel, around the current centre."""
        centre = self.view_box.viewRect().center()
        size = self.view_box.size()
        w, h = max(size.width(), 1.0), max(size.height(), 1.0)
        self.view_box.setRange(xRange=(centre.x() - w / 2, centre.x() + w / 2),
                               yRange=(centre.y() - h / 2, centre.y() + h / 2), padding=0)

    def zoom(self) -> float:
        """Screen pixels per image pixel."""
        px = self.view_box.viewPixelSize()[0]
        return 1.0 / px if px > 0 else 1.0

    def visible_rect(self) -> tuple[float, float, float, float]:
        """The part of EXR pixel space on screen: (x0, y0, x1, y1)."""
        r = self.view_box.viewRect()
        return r.left(), r.top(), r.right(), r.bottom()

    def zoom_by(self, factor: float, centre: QPointF | None = None) -> None:
        """Zoom in (factor > 1) or out around ``centre`` (view coordinates; default the view centre)."""
        s = 1.0 / factor
        self.view_box.scaleBy((s, s), center=centre)

    def centre_on(self, x: float, y: float, zoom: float | None = None) -> None:
        """Centre the view on (x, y) in EXR pixel space, optionally at a zoom (screen px per pixel)."""
        size = self.view_box.size()
        z = self.zoom() if zoom is None else zoom
        w, h = max(size.width(), 1.0) / z, max(size.height(), 1.0) / z
        self.view_box.setRange(xRange=(x - w / 2, x + w / 2), yRange=(y - h / 2, y + h / 2), padding=0)

    # ------------------------------------------------------------------ coordinates
    def pixel_at(self, scene_pos: QPointF) -> tuple[int, int]:
        """The EXR pixel under a scene position."""
        p = self.view_box.mapSceneToView(scene_pos)
        return math.floor(p.x()), math.floor(p.y())

    def widget_pos_of(self, x: int, y: int) -> QPoint:
        """Widget coordinates of the centre of EXR pixel (x, y) (for tests and tooltips)."""
        scene = self.view_box.mapViewToScene(QPointF(x + 0.5, y + 0.5))
        return self.mapFromScene(scene)

    # ------------------------------------------------------------------ mouse
    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        if self._frame is None or not self.view_box.sceneBoundingRect().contains(scene_pos):
            self.model.set_hover_pixel(None)
            return
        self.model.set_hover_pixel(self.pixel_at(scene_pos))

    def _on_mouse_clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self._frame is None or event.double():
            return
        pixel = self.pixel_at(event.scenePos())
        if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.model.set_pinned_pixel(None if self.model.pinned_pixel == pixel else pixel)
        else:
            self.model.set_current_pixel(pixel)
        event.accept()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt override
        self._on_mouse_moved(self.mapToScene(event.position().toPoint()))
        super().mouseMoveEvent(event)

    def leaveEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.model.set_hover_pixel(None)
        super().leaveEvent(event)
