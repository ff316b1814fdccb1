"""What the deep graph draws inside its plot: the grid, and one pixel's samples.

Both are single graphics items that paint everything they show in one pass with QPainter, in
screen coordinates. A pixel's graph is a few dozen points per channel, and re-plotting it on every
click through a dozen pyqtgraph curve and scatter items cost more (in Python, per item and per
call) than drawing it: one item per pixel keeps a click well inside a frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QLineF, QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainter, QPen, QPixmap, QPolygonF
from PySide6.QtWidgets import QGraphicsObject

GRID_OPACITY = (0.16, 0.07)  # major and minor grid lines over the background
MARKER_SIZE = 8.0  # diameter of a sample's marker, screen pixels
MARKER_PIXMAP = 12  # the square a marker is drawn into (its size and the pen around it)
PINNED_MARKER_SIZE = 6.0
DIMMED_ALPHA = 60  # markers of samples outside a Deep ID selection


def blend(colour: QColor, over: QColor, opacity: float) -> QColor:
    """``colour`` at ``opacity`` over ``over``, as one opaque colour (cheap to draw, same look)."""
    mix = [round(a * opacity + b * (1.0 - opacity)) for a, b in
           zip(colour.getRgb()[:3], over.getRgb()[:3], strict=True)]
    return QColor(*mix)


def _cosmetic(colour: QColor, width: float, style=Qt.PenStyle.SolidLine) -> QPen:
    pen = QPen(colour, width, style)
    pen.setCosmetic(True)
    return pen


class ViewSized(QGraphicsObject):
    """An item whose bounds are the view box's visible rectangle (it draws whatever is in view)."""

    def __init__(self, view_box: pg.ViewBox):
        super().__init__()
        self.view_box = view_box
        self._rect = QRectF()
        view_box.sigRangeChanged.connect(self._on_range_changed)

    def _on_range_changed(self, *_args) -> None:
        self.prepareGeometryChange()
        self._rect = self.view_box.viewRect()
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt override
        return QRectF(self._rect)


class GridLines(ViewSized):
    """The plot's grid, at the axes' tick values, drawn as opaque lines behind the curves.

    pyqtgraph's own grid draws translucent lines from the axes over the whole plot on every
    axis repaint, and blending them was the most expensive part of redrawing the graph; opaque
    lines pre-blended over the background look the same and cost a tenth of that.
    """

    def __init__(self, plot: pg.PlotItem, background: QColor):
        super().__init__(plot.getViewBox())
        self.plot = plot
        self.pens = [_cosmetic(blend(QColor(255, 255, 255), background, a), 0) for a in GRID_OPACITY]
        self.setZValue(-1000)

    def lines(self) -> list[list[QLineF]]:
        """The grid lines per level (major first), in view coordinates."""
        rect = self.view_box.viewRect()
        size = self.view_box.size()
        if not (rect.width() > 0 and rect.height() > 0 and size.width() > 0 and size.height() > 0):
            return []
        levels: list[list[QLineF]] = [[] for _ in self.pens]
        x0, x1, y0, y1 = rect.left(), rect.right(), rect.top(), rect.bottom()
        for name, lo, hi, pixels, vertical in (("bottom", x0, x1, size.width(), True),
                                               ("left", y0, y1, size.height(), False)):
            ticks = self.plot.getAxis(name).tickValues(lo, hi, pixels)
            for level, (_spacing, values) in enumerate(ticks[:len(self.pens)]):
                for v in values:
                    if lo <= v <= hi:
                        levels[level].append(QLineF(v, y0, v, y1) if vertical else QLineF(x0, v, x1, v))
        return levels

    def paint(self, painter, *_args) -> None:
        for pen, lines in reversed(list(zip(self.pens, self.lines(), strict=False))):
            if lines:
                painter.setPen(pen)
                painter.drawLines(lines)


@dataclass
class Series:
    """One channel of one pixel as plotted: a point per sample at (Z, value)."""

    x: np.ndarray
    y: np.ndarray
    hollow: np.ndarray  # volume samples: hollow markers and a span from Z to ZBack
    x_back: np.ndarray  # ZBack (the span's end) per sample
    dimmed: np.ndarray | None = None  # samples outside a selection (drawn faint)


@dataclass
class PixelPlot:
    """Everything drawn for one pixel: the channels' series and the opacity step curve."""

    series: dict[str, Series] = field(default_factory=dict)
    steps: tuple[np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0))


class SamplesItem(ViewSized):
    """One pixel's samples: a line and a marker per sample for each channel, spans for volume
    samples and the accumulated-opacity step curve. ``pinned`` draws the dashed comparison style
    (thin dashed lines, small crosses, no spans)."""

    def __init__(self, view_box: pg.ViewBox, colours: dict[str, QColor], opacity_colour: QColor,
                 background: QColor, pinned: bool = False):
        super().__init__(view_box)
        self.colours = dict(colours)
        self.pinned = pinned
        self.background = QBrush(background)
        self.plot_data = PixelPlot()
        self._stamps: dict[tuple, QPixmap] = {}  # a marker drawn once per colour, kind and pixel ratio
        self.hidden: set[str] = set()  # channels (and "opacity") switched off in the legend
        style = Qt.PenStyle.DashLine if pinned else Qt.PenStyle.SolidLine
        shade = (lambda c: c.darker(110)) if pinned else (lambda c: c)
        self.line_pens = {k: _cosmetic(shade(c), 1.2 if pinned else 1.5, style) for k, c in colours.items()}
        self.span_pens = {k: _cosmetic(c, 3.0) for k, c in colours.items()}
        self.marker_pens = {k: _cosmetic(shade(c), 1.0 if pinned else 1.5) for k, c in colours.items()}
        dims = {}
        for k, c in colours.items():
            dim = QColor(c)
            dim.setAlpha(DIMMED_ALPHA)
            dims[k] = dim
        self.dim_colours = dims
        self.opacity_pen = _cosmetic(opacity_colour.darker(130) if pinned else opacity_colour,
                                     1.5 if pinned else 2.0, style)

    # ------------------------------------------------------------------ data
    def set_plot(self, plot: PixelPlot | None) -> None:
        self.plot_data = plot or PixelPlot()
        self.update()

    def set_hidden(self, slot: str, hidden: bool) -> None:
        (self.hidden.add if hidden else self.hidden.discard)(slot)
        self.update()

    def getData(self, slot: str) -> tuple[np.ndarray, np.ndarray]:  # noqa: N802 - like pyqtgraph's items
        """The (Z, value) points plotted for a channel (empty when it has none)."""
        s = self.plot_data.series.get(slot)
        return (s.x, s.y) if s is not None else (np.zeros(0), np.zeros(0))

    def spans(self, slot: str) -> tuple[np.ndarray, np.ndarray]:
        """The volume spans of a channel as (Z, ZBack) pairs flattened, and their values repeated."""
        s = self.plot_data.series.get(slot)
        if s is None or self.pinned or not s.hollow.any():
            return np.zeros(0), np.zeros(0)
        xs = np.empty(2 * int(s.hollow.sum()))
        xs[0::2], xs[1::2] = s.x[s.hollow], s.x_back[s.hollow]
        return xs, np.repeat(s.y[s.hollow], 2)

    def marker_styles(self, slot: str) -> list[tuple[bool, int]]:
        """Per marker of a channel: (hollow, alpha of its colour)."""
        s = self.plot_data.series.get(slot)
        if s is None:
            return []
        dimmed = s.dimmed if s.dimmed is not None else np.zeros(s.x.shape, bool)
        return [(bool(h), DIMMED_ALPHA if d else 255) for h, d in zip(s.hollow, dimmed, strict=True)]

    def dataBounds(self, axis: int, frac: float = 1.0, orthoRange=None):  # noqa: N802 - pyqtgraph's auto-range
        """The data's extent along an axis (for pyqtgraph's "auto-range" button and menu)."""
        parts = []
        for s in self.plot_data.series.values():
            parts.append(np.concatenate((s.x, s.x_back)) if axis == 0 else s.y)
        xs, ys = self.plot_data.steps
        parts.append(xs if axis == 0 else ys)
        values = np.concatenate(parts) if parts else np.zeros(0)
        values = values[np.isfinite(values)]
        if not values.size:
            return None
        return float(values.min()), float(values.max())

    # ------------------------------------------------------------------ drawing
    def paint(self, painter: QPainter, *_args) -> None:
        data = self.plot_data
        if not data.series and not data.steps[0].size:
            return
        t = painter.transform()  # view -> screen: the view box only scales and translates
        sx, sy, dx, dy = t.m11(), t.m22(), t.dx(), t.dy()
        painter.save()
        painter.resetTransform()

        def screen(x, y):
            return x * sx + dx, y * sy + dy

        xs, ys = data.steps
        if xs.size and "opacity" not in self.hidden:
            painter.setPen(self.opacity_pen)
            _polyline(painter, *screen(xs, ys))
        for slot, s in data.series.items():
            if slot in self.hidden or not s.x.size:
                continue
            px, py = screen(s.x, s.y)
            painter.setPen(self.line_pens[slot])
            _polyline(painter, px, py)
            if not self.pinned and s.hollow.any():
                painter.setPen(self.span_pens[slot])
                bx = s.x_back[s.hollow] * sx + dx
                painter.drawLines([QLineF(a, b, c, b) for a, b, c in
                                   zip(px[s.hollow].tolist(), py[s.hollow].tolist(), bx.tolist(), strict=True)])
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)  # the pinned pixel's crosses
        for slot, s in data.series.items():
            if slot in self.hidden or not s.x.size:
                continue
            px, py = screen(s.x, s.y)
            if self.pinned:
                self._crosses(painter, slot, px, py)
            else:
                self._markers(painter, slot, s, px, py)
        painter.restore()

    def _markers(self, painter: QPainter, slot: str, s: Series, px: np.ndarray, py: np.ndarray) -> None:
        """Solid discs for point samples, rings for volume samples; faint when dimmed.

        Each kind of marker is drawn once into a small pixmap and stamped at every sample:
        ten times quicker than drawing the circles (a volume pixel has 200 markers or more)."""
        ok = np.isfinite(px) & np.isfinite(py)
        dimmed = s.dimmed if s.dimmed is not None else np.zeros(px.shape, bool)
        dpr = painter.device().devicePixelRatioF() if painter.device() is not None else 1.0
        half = MARKER_PIXMAP / 2.0
        for faint in (True, False):
            colour = self.dim_colours[slot] if faint else self.colours[slot]
            for hollow in (False, True):
                keep = ok & (dimmed == faint) & (s.hollow == hollow)
                if not keep.any():
                    continue
                stamp = self._marker(colour, hollow, dpr)
                for x, y in zip(px[keep].tolist(), py[keep].tolist(), strict=True):
                    painter.drawPixmap(QPointF(x - half, y - half), stamp)

    def _marker(self, colour: QColor, hollow: bool, dpr: float) -> QPixmap:
        key = (colour.rgba(), hollow, dpr)
        stamp = self._stamps.get(key)
        if stamp is None:
            size = int(np.ceil(MARKER_PIXMAP * dpr))
            stamp = QPixmap(size, size)
            stamp.setDevicePixelRatio(dpr)
            stamp.fill(Qt.GlobalColor.transparent)
            p = QPainter(stamp)
            p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            p.setPen(QPen(colour, 1.5))
            p.setBrush(self.background if hollow else QBrush(colour))
            centre = MARKER_PIXMAP / 2.0
            p.drawEllipse(QPointF(centre, centre), MARKER_SIZE / 2.0, MARKER_SIZE / 2.0)
            p.end()
            self._stamps[key] = stamp
        return stamp

    def _crosses(self, painter: QPainter, slot: str, px: np.ndarray, py: np.ndarray) -> None:
        ok = np.isfinite(px) & np.isfinite(py)
        h = PINNED_MARKER_SIZE / 2.0
        painter.setPen(self.marker_pens[slot])
        lines = []
        for x, y in zip(px[ok].tolist(), py[ok].tolist(), strict=True):
            lines.append(QLineF(x - h, y - h, x + h, y + h))
            lines.append(QLineF(x - h, y + h, x + h, y - h))
        if lines:
            painter.drawLines(lines)


def _points(px: np.ndarray, py: np.ndarray) -> QPolygonF:
    return QPolygonF([QPointF(x, y) for x, y in zip(px.tolist(), py.tolist(), strict=True)])


def _polyline(painter: QPainter, px: np.ndarray, py: np.ndarray) -> None:
    """A line through the points, broken where a value is not finite."""
    ok = np.isfinite(px) & np.isfinite(py)
    if ok.all():
        runs = [(0, px.size)]
    else:  # runs of finite points
        edges = np.flatnonzero(np.diff(np.r_[False, ok, False].astype(np.int8)))
        runs = list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))
    for a, b in runs:
        if b - a >= 2:
            painter.drawPolyline(_points(px[a:b], py[a:b]))
