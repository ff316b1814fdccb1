"""The deep graph: one deep pixel's samples over depth, in the style of RenderMan's dsview.

R, G and B are drawn red, green and blue, alpha yellow, the accumulated opacity (the
pixel's deep opacity function) as a white step curve. A bar above the graph shows each
sample's own (un-premultiplied) colour along depth. Point samples have solid markers;
volume samples (``ZBack > Z``, or a negative alpha as PRMan writes) are drawn as spans
from Z to ZBack with hollow markers. The depth axis zooms and pans; hovering a sample sets
the model's hovered sample (the sample table highlights its row). A pinned pixel is drawn
dashed for comparison. Each pixel is drawn by one item (``widgets.deep_graph_items``) and
the graph fits its axes to the pixel itself, so a click redraws the plot once.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPointF, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QVBoxLayout, QWidget

from app.document import DocumentModel
from app.render import PixelProfile
from core.layers import alpha_channel, find_layer, group_channels
from core.model import DeepImage
from widgets.deep_graph_items import DIMMED_ALPHA, GridLines, PixelPlot, SamplesItem, Series
from widgets.text_line import TextLine

BACKGROUND = QColor(24, 24, 26)
CHANNEL_COLOURS = {"R": QColor(235, 70, 70), "G": QColor(80, 210, 90), "B": QColor(80, 140, 255),
                   "A": QColor(240, 210, 40)}
ACCUMULATED_COLOUR = QColor(235, 235, 235)
HOVER_RADIUS_PX = 10.0
SELECTED_COLOUR = QColor(255, 150, 30)
SLOTS = ("R", "G", "B", "A")
RANGE_PAD = 0.05  # fraction of the data's extent left around it when the graph fits a pixel
__all__ = ["DIMMED_ALPHA", "DeepGraph", "accumulated_curve", "graph_channels"]


def _pen(colour: QColor, width: float = 1.5, style=Qt.PenStyle.SolidLine):
    return pg.mkPen(colour, width=width, style=style)


def _clear(item: pg.ScatterPlotItem) -> None:
    """Empty a scatter item, unless it is empty already (pyqtgraph redoes its work even then)."""
    if len(item.data):
        item.setData([], [])


def graph_channels(image: DeepImage) -> dict[str, str]:
    """Which channel each graph slot (R, G, B, A) plots: the root layer's colour and alpha."""
    layers = group_channels(image.channels)
    root = find_layer(layers, "")
    slots: dict[str, str] = {}
    if root is not None:
        r, g, b = root.rgb
        if not root.is_grey:
            for slot, name in zip("RGB", (r, g, b), strict=True):
                if name is not None:
                    slots[slot] = name
        elif r is not None and r != root.alpha and r not in ("Z", "ZBack"):
            slots["R"] = r
    a = alpha_channel(layers, "")
    if a is not None:
        slots["A"] = a
    return slots


def accumulated_curve(profile: PixelProfile) -> tuple[np.ndarray, np.ndarray]:
    """Points of the opacity-over-depth step curve: flat between samples, rising at each.

    A point sample steps up at its Z; a volume sample ramps linearly from Z to ZBack.
    """
    acc = profile.accumulated
    n = profile.count
    if acc is None or n == 0:
        return np.zeros(0), np.zeros(0)
    before = np.concatenate(([0.0], acc[:-1]))
    xs = np.empty(2 * n, dtype=np.float64)
    ys = np.empty(2 * n, dtype=np.float64)
    xs[0::2] = profile.z
    xs[1::2] = np.maximum(profile.zback, profile.z)
    ys[0::2] = before
    ys[1::2] = acc
    return xs, ys


class DeepGraph(QWidget):
    """Plot of the current pixel's deep samples (and the pinned pixel's, dashed).

    ``sample_hovered(index | None)`` is emitted when the mouse moves onto or off a sample
    (the model's ``hovered_sample`` is set at the same time).
    """

    sample_hovered = Signal(object)

    def __init__(self, model: DocumentModel, parent=None):
        super().__init__(parent)
        self.model = model
        self.setObjectName("deep_graph")
        self.header = TextLine("Click a pixel to see its samples")
        self.header.setObjectName("deep_graph_header")
        self.layout_widget = pg.GraphicsLayoutWidget()
        self.layout_widget.setBackground(BACKGROUND)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(2)
        layout.addWidget(self.header)
        layout.addWidget(self.layout_widget, 1)

        self.bar_plot = self.layout_widget.addPlot(row=0, col=0)
        self.bar_plot.setMaximumHeight(34)
        self.bar_plot.hideAxis("left")
        self.bar_plot.hideAxis("bottom")
        self.bar_plot.setMouseEnabled(x=False, y=False)
        self.bar_plot.hideButtons()
        self.bar_plot.setMenuEnabled(False)
        self.bar_plot.setYRange(-1.1, 1.0, padding=0)
        self.colour_bar = pg.BarGraphItem(x0=[], x1=[], y0=[], height=[], brushes=[], pen=None)
        self.pinned_bar = pg.BarGraphItem(x0=[], x1=[], y0=[], height=[], brushes=[], pen=None)
        self.bar_plot.addItem(self.colour_bar)
        self.bar_plot.addItem(self.pinned_bar)

        self.plot = self.layout_widget.addPlot(row=1, col=0)
        self.plot.setMenuEnabled(False)
        self.grid = GridLines(self.plot, BACKGROUND)
        self.plot.addItem(self.grid, ignoreBounds=True)
        self.plot.setLabel("bottom", "depth (Z)")
        self.plot.setLabel("left", "value")
        for plot in (self.plot, self.bar_plot):  # no "(x1e3)" relabelling on every range change
            for name in ("bottom", "left", "top", "right"):
                plot.getAxis(name).enableAutoSIPrefix(False)
        self._depth_label = "depth (Z)"
        self.plot.setMouseEnabled(x=True, y=False)  # zoom and pan the depth axis only
        # the graph fits each pixel itself (cheaper than pyqtgraph asking every item for its bounds)
        # and fits the value axis to what is visible when the depth axis is zoomed or panned
        self.plot.disableAutoRange()
        self.plot.getViewBox().sigXRangeChanged.connect(self._fit_values_to_visible)
        # pyqtgraph's "A" (auto-range) button would ask the items for bounds they do not report:
        # it fits the pixel the way a click does
        self.plot.autoBtn.clicked.disconnect(self.plot.autoBtnClicked)
        self.plot.autoBtn.clicked.connect(self._on_auto_button)
        self._fitting = False
        self.bar_plot.setXLink(self.plot)
        self.legend = self.plot.addLegend(offset=(8, 4), labelTextColor=(210, 210, 210), colCount=5,
                                          brush=pg.mkBrush(24, 24, 26, 200))

        vb = self.plot.getViewBox()
        self.pinned_samples = SamplesItem(vb, CHANNEL_COLOURS, ACCUMULATED_COLOUR, BACKGROUND, pinned=True)
        self.samples = SamplesItem(vb, CHANNEL_COLOURS, ACCUMULATED_COLOUR, BACKGROUND)
        for item in (self.pinned_samples, self.samples):
            self.plot.addItem(item, ignoreBounds=True)
        # the legend's entries stand for the channels (clicking one hides or shows that channel)
        self.legend_items: dict[str, pg.PlotDataItem] = {}
        for slot in SLOTS:
            colour = CHANNEL_COLOURS[slot]
            self.legend_items[slot] = pg.PlotDataItem(pen=_pen(colour), symbol="o", symbolSize=8,
                                                      symbolPen=_pen(colour, 1.5), symbolBrush=pg.mkBrush(colour))
        self.legend_items["opacity"] = pg.PlotDataItem(pen=_pen(ACCUMULATED_COLOUR, 2.0))
        for name, item in self.legend_items.items():
            self.legend.addItem(item, name)
            item.visibleChanged.connect(lambda name=name, item=item: self._on_legend_toggled(name, item))
        self.hover_marker = pg.ScatterPlotItem(size=18, pen=_pen(QColor(255, 255, 255), 2.0), brush=None,
                                               symbol="o")
        self.plot.addItem(self.hover_marker)
        self.hover_line = pg.InfiniteLine(angle=90, movable=False,
                                          pen=_pen(QColor(255, 255, 255, 90), 1.0, Qt.PenStyle.DotLine))
        self.hover_line.setVisible(False)
        self.plot.addItem(self.hover_line, ignoreBounds=True)

        self._hovering = False  # the model's hovered sample came from the mouse over this graph
        self.profile: PixelProfile | None = None
        self.pinned_profile: PixelProfile | None = None
        self.slots: dict[str, str] = {}

        # selection emphasis (Deep IDs): rings on selected samples, the others dimmed
        self.emphasis_provider = None  # provider(image, profile) -> bool per sample | None
        self.emphasis: np.ndarray | None = None
        self.selection_marker = pg.ScatterPlotItem(size=15, pen=_pen(SELECTED_COLOUR, 2.0), brush=None, symbol="o")
        self.plot.addItem(self.selection_marker)

        # pyqtgraph makes its context menus without a parent: tie them to this widget so they go with it
        for plot in (self.bar_plot, self.plot):
            for menu in (plot.ctrlMenu, plot.getViewBox().menu):
                if menu is not None:
                    menu.setParent(self, menu.windowFlags())
        # hover from the viewport's own mouse events: pyqtgraph's sigMouseMoved drops moves that come
        # within 10 ms of the previous one, so a quick move off a marker could leave it hovered
        self.layout_widget.viewport().installEventFilter(self)
        for signal in (model.document_changed, model.part_changed, model.pixel_changed, model.pinned_changed):
            signal.connect(self.refresh)
        for signal in (model.exposure_changed, model.gamma_changed, model.transfer_changed):
            signal.connect(self._on_tone_changed)
        model.hovered_sample_changed.connect(self._on_hovered_sample_changed)
        self.refresh()

    # ------------------------------------------------------------------ model -> graph
    def _on_tone_changed(self, *_args) -> None:
        """Only the colour bars depend on the tone: recolour them, keep the curves and the zoom."""
        if not isinstance(self.model.image, DeepImage):
            return
        # the same samples, coloured by the model for the new tone
        if self.profile is not None:
            self.profile = self.model.pixel_profile((self.profile.x, self.profile.y))
        if self.pinned_profile is not None:
            self.pinned_profile = self.model.pixel_profile((self.pinned_profile.x, self.pinned_profile.y))
        self._update_bar(self.colour_bar, self.profile, 0.0)
        self._update_bar(self.pinned_bar, self.pinned_profile, -1.1)
        if self.emphasis is not None and self.profile is not None and self.profile.count:
            self.colour_bar.setOpts(brushes=self._emphasis_bar_brushes(self.profile, self.emphasis))

    def refresh(self, *_args, autorange: bool = True) -> None:
        """Rebuild the curves from the model's current and pinned pixels."""
        model = self.model
        image = model.image
        pixel = model.current_pixel
        deep = isinstance(image, DeepImage)
        self.slots = graph_channels(image) if deep else {}
        self.profile = model.pixel_profile(pixel) if deep else None
        pinned = model.pinned_pixel
        self.pinned_profile = model.pixel_profile(pinned) if deep and pinned != pixel else None
        self._clear_emphasis()
        self._update_items()
        self._update_header(image, pixel, deep)
        self._apply_emphasis()
        self._on_hovered_sample_changed(model.hovered_sample)
        if autorange:
            self.fit()

    def _update_header(self, image, pixel, deep: bool) -> None:
        if image is None:
            text = "No image"
        elif not deep:
            text = "Flat part: no deep samples (see the sample table for the pixel's values)"
        elif pixel is None:
            text = "Click a pixel to see its samples"
        elif self.profile is None:
            text = f"Pixel ({pixel[0]}, {pixel[1]}): outside the data window"
        else:
            n = self.profile.count
            volumes = int(self.profile.is_volume.sum())
            text = f"Pixel ({pixel[0]}, {pixel[1]}): {n} sample{'s' if n != 1 else ''}"
            if volumes:
                text += f", {volumes} volume"
            if self.profile.accumulated is not None and n:
                text += f", opacity {float(self.profile.accumulated[-1]):.4g}"
        if self.pinned_profile is not None:
            p = self.pinned_profile
            text += f"   · pinned ({p.x}, {p.y}): {p.count} samples (dashed)"
        self.header.setText(text)
        label = "depth (Z)" if self.profile is None or self.profile.has_depth else "sample index (no Z channel)"
        if label != self._depth_label:  # relabelling re-lays out the plot
            self._depth_label = label
            self.plot.setLabel("bottom", label)

    def _pixel_plot(self, prof: PixelProfile | None, dimmed: np.ndarray | None = None) -> PixelPlot | None:
        """What the graph draws for one pixel: each channel's (Z, value) points and the opacity steps."""
        if prof is None or prof.count == 0:
            return None
        z = prof.z.astype(np.float64)
        zback = np.maximum(prof.zback, prof.z).astype(np.float64)
        series = {}
        for slot in SLOTS:
            name = self.slots.get(slot)
            if name is None:
                continue
            values = prof.values[name].astype(np.float64)
            if slot == "A":
                values = np.abs(values)
            series[slot] = Series(z, values, prof.is_volume, zback, dimmed)
        xs, ys = accumulated_curve(prof)
        return PixelPlot(series, self._extend_steps(xs, ys, prof))

    def _update_items(self) -> None:
        self.samples.set_plot(self._pixel_plot(self.profile))
        self._update_bar(self.colour_bar, self.profile, 0.0)
        self.pinned_samples.set_plot(self._pixel_plot(self.pinned_profile))
        self._update_bar(self.pinned_bar, self.pinned_profile, -1.1)

    def _on_legend_toggled(self, name: str, item: pg.PlotDataItem) -> None:
        """A legend entry was clicked: hide or show that channel (or the opacity curve) of both pixels."""
        for samples in (self.samples, self.pinned_samples):
            samples.set_hidden(name, not item.isVisible())

    def _depth_extent(self) -> tuple[float, float] | None:
        zs = [p for p in (self.profile, self.pinned_profile) if p is not None and p.count]
        if not zs:
            return None
        lo = min(float(np.min(p.z)) for p in zs)
        hi = max(float(np.max(np.maximum(p.zback, p.z))) for p in zs)
        finite = np.isfinite([lo, hi])
        if not finite.all():
            return None
        pad = max((hi - lo) * 0.05, abs(hi) * 1e-3, 1e-3)
        return lo - pad, hi + pad

    def _value_extent(self, lo: float | None = None, hi: float | None = None) -> tuple[float, float] | None:
        """The range of the values plotted for samples reaching into depths ``lo..hi`` (all when None)."""
        parts = []
        for prof in (self.profile, self.pinned_profile):
            if prof is None or not prof.count:
                continue
            keep = slice(None)
            if lo is not None and hi is not None:
                keep = (np.maximum(prof.zback, prof.z) >= lo) & (prof.z <= hi)
            for slot, name in self.slots.items():
                values = prof.values[name][keep]
                parts.append(np.abs(values) if slot == "A" else values)
            if prof.accumulated is not None:
                parts.append(prof.accumulated[keep])
                parts.append(np.zeros(1, np.float32))  # the opacity curve starts at 0
        values = np.concatenate([np.asarray(v, np.float64).ravel() for v in parts]) if parts else np.zeros(0)
        values = values[np.isfinite(values)]
        if not values.size:
            return None
        vlo, vhi = float(values.min()), float(values.max())
        pad = max((vhi - vlo) * RANGE_PAD, abs(vhi) * 1e-3, 1e-3)
        return vlo - pad, vhi + pad

    def fit(self) -> None:
        """Show the whole of the current (and pinned) pixel's samples, in one range change."""
        depth = self._depth_extent()
        if depth is None:
            return
        values = self._value_extent() or (-0.05, 1.05)
        self._fitting = True
        try:
            self.plot.getViewBox().setRange(xRange=depth, yRange=values, padding=0)
        finally:
            self._fitting = False
        # pyqtgraph applies a new range to the items' transforms when it next paints, and that
        # marks the scene dirty again: one more repaint per click. Apply it now instead.
        for plot in (self.plot, self.bar_plot):
            plot.getViewBox().updateMatrix()

    def _on_auto_button(self, *_args) -> None:
        self.fit()
        self.plot.autoBtn.hide()

    def _fit_values_to_visible(self, _vb=None, x_range=None) -> None:
        """After the depth axis was zoomed or panned, fit the value axis to the samples in view."""
        if self._fitting:
            return
        lo, hi = x_range if x_range is not None else self.plot.getViewBox().viewRange()[0]
        values = self._value_extent(lo, hi)
        if values is not None:
            self._fitting = True
            try:
                self.plot.getViewBox().setYRange(*values, padding=0)
            finally:
                self._fitting = False

    def _extend_steps(self, xs: np.ndarray, ys: np.ndarray, prof: PixelProfile | None):
        """Start the opacity curve at 0 before the first sample and hold it after the last."""
        extent = self._depth_extent()
        if prof is None or xs.size == 0 or extent is None:
            return xs, ys
        return np.concatenate(([extent[0]], xs, [extent[1]])), np.concatenate(([0.0], ys, [ys[-1]]))

    def _update_bar(self, bar: pg.BarGraphItem, prof: PixelProfile | None, y0: float) -> None:
        if prof is None or prof.count == 0:
            bar.setOpts(x0=[], x1=[], y0=[], height=[], brushes=[])
            return
        extent = self._depth_extent()
        z, zb = prof.z.astype(np.float64), np.maximum(prof.zback, prof.z).astype(np.float64)
        # a point sample's colour runs to the next sample; a volume covers Z..ZBack
        nxt = np.concatenate((z[1:], [extent[1] if extent is not None else z[-1] + 1.0]))
        x1 = np.where(prof.is_volume, zb, np.maximum(nxt, z))
        minimum = ((extent[1] - extent[0]) if extent is not None else 1.0) * 0.004
        x1 = np.maximum(x1, z + minimum)
        brushes = [pg.mkBrush(QColor(int(c[0]), int(c[1]), int(c[2]))) for c in prof.colours]
        bar.setOpts(x0=z, x1=x1, y0=np.full(prof.count, y0), height=np.full(prof.count, 1.0), brushes=brushes)

    # ------------------------------------------------------------------ selection emphasis
    def set_sample_emphasis(self, provider) -> None:
        """Highlight some samples: ``provider(image, profile)`` returns a bool per sample (depth order) or None.

        Selected samples get a ring, the others are dimmed (markers and colour bar). Call
        ``refresh(autorange=False)`` when what the provider returns changes.
        """
        self.emphasis_provider = provider
        self.refresh(autorange=False)

    def _clear_emphasis(self) -> None:
        _clear(self.selection_marker)

    def _apply_emphasis(self) -> None:
        prof = self.profile
        chosen = None
        if self.emphasis_provider is not None and prof is not None and prof.count:
            chosen = self.emphasis_provider(self.model.image, prof)
        self.emphasis = None if chosen is None else np.asarray(chosen, dtype=bool)
        if self.emphasis is None or self.emphasis.shape != (prof.count,):
            self.emphasis = None
            _clear(self.selection_marker)
            return
        sel = self.emphasis
        self.samples.set_plot(self._pixel_plot(prof, dimmed=~sel))
        xs, ys = [], []
        for x, y in (self.samples.getData(slot) for slot in self.slots):
            xs.extend(x[sel].tolist())
            ys.extend(y[sel].tolist())
        self.selection_marker.setData(xs, ys)
        if prof.count:
            self.colour_bar.setOpts(brushes=self._emphasis_bar_brushes(prof, sel))
        n = int(sel.sum())
        self.header.setText(self.header.text() + f"   · {n} selected sample{'s' if n != 1 else ''} (Deep IDs)")

    @staticmethod
    def _emphasis_bar_brushes(prof: PixelProfile, sel: np.ndarray) -> list:
        """The colour bar's brushes with the samples not selected darkened."""
        brushes = []
        for s, c in zip(sel, prof.colours, strict=True):
            colour = QColor(int(c[0]), int(c[1]), int(c[2]))
            if not s:
                colour = colour.darker(300)
            brushes.append(pg.mkBrush(colour))
        return brushes

    # ------------------------------------------------------------------ hover
    def sample_at(self, scene_pos: QPointF) -> int | None:
        """The sample whose marker (or volume span) is nearest a scene position, within a few pixels."""
        prof = self.profile
        vb = self.plot.getViewBox()
        if prof is None or prof.count == 0 or not vb.sceneBoundingRect().contains(scene_pos):
            return None
        p = vb.mapSceneToView(scene_pos)
        px_w, px_h = vb.viewPixelSize()
        if not (px_w > 0 and px_h > 0):
            return None
        z = prof.z.astype(np.float64)
        zb = np.maximum(prof.zback, prof.z).astype(np.float64)
        # horizontal distance to the span Z..ZBack (zero inside it), in screen pixels
        dx = np.maximum(np.maximum(z - p.x(), p.x() - zb), 0.0) / px_w
        best, best_d = None, HOVER_RADIUS_PX
        for slot, name in self.slots.items():
            values = prof.values[name].astype(np.float64)
            if slot == "A":
                values = np.abs(values)
            d = np.hypot(dx, (values - p.y()) / px_h)
            d[~np.isfinite(d)] = np.inf
            i = int(np.argmin(d))
            if d[i] < best_d:
                best, best_d = i, float(d[i])
        return best

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt override
        if obj is self.layout_widget.viewport():
            kind = event.type()
            if kind == QEvent.Type.MouseMove:
                self._on_mouse_moved(self.layout_widget.mapToScene(event.position().toPoint()))
            elif kind == QEvent.Type.Leave:
                self._on_mouse_moved(None)
        return super().eventFilter(obj, event)

    def _on_mouse_moved(self, scene_pos: QPointF | None) -> None:
        """Hover the sample under the mouse (None: the mouse left the graph)."""
        if self.profile is None:
            return
        index = self.sample_at(scene_pos) if scene_pos is not None else None
        if scene_pos is None and not self._hovering:
            return  # leaving the graph clears only a hover the graph made (not the table's)
        self._hovering = index is not None
        if index != self.model.hovered_sample:
            self.model.set_hovered_sample(index)
            self.sample_hovered.emit(index)

    def _on_hovered_sample_changed(self, index) -> None:
        prof = self.profile
        if prof is None or index is None or index >= prof.count:
            _clear(self.hover_marker)
            self.hover_line.setVisible(False)
            return
        xs, ys = [], []
        for slot, name in self.slots.items():
            v = float(prof.values[name][index])
            xs.append(float(prof.z[index]))
            ys.append(abs(v) if slot == "A" else v)
        self.hover_marker.setData(xs, ys)
        self.hover_line.setPos(float(prof.z[index]))
        self.hover_line.setVisible(True)
