"""DeepGraph: curves, spans, opacity and colour bar match the pixel's samples; hover <-> model."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from app.document import DocumentModel
from tests.gui.helpers import EventSpy, make_deep, make_document, make_flat
from widgets.deep_graph import DeepGraph, accumulated_curve

pytestmark = pytest.mark.gui


@pytest.fixture
def setup(qtbot):
    model = DocumentModel()
    counts = np.array([[3, 0, 1], [6, 2, 9]])
    image = make_deep(counts, rng=np.random.default_rng(11), negative_alpha_at=(4,))
    model.set_document(make_document(image))
    graph = DeepGraph(model)
    qtbot.addWidget(graph)
    graph.resize(700, 400)
    graph.show()
    qtbot.waitExposed(graph)
    return model, graph, image


def samples(image, x, y):
    i = y * image.width + x
    a, b = int(image.offsets[i]), int(image.offsets[i + 1])
    return {k: v[a:b] for k, v in image.channels.items()}


def test_curves_match_the_clicked_pixel(setup):
    model, graph, image = setup
    model.set_current_pixel((0, 1))  # 6 samples; sample 4 of the image is its second (negative alpha)
    s = samples(image, 0, 1)
    for slot in "RGB":
        x, y = graph.samples.getData(slot)
        np.testing.assert_array_equal(x, s["Z"])
        np.testing.assert_array_equal(y, s[slot])
    x, y = graph.samples.getData("A")
    np.testing.assert_array_equal(y, np.abs(s["A"]))
    volume = (s["ZBack"] > s["Z"]) | (s["A"] < 0)
    assert volume[1]  # negative alpha marks a volume
    # spans: one (Z, ZBack) pair per volume sample at the sample's value
    xs, ys = graph.samples.spans("R")
    np.testing.assert_array_equal(xs[0::2], s["Z"][volume])
    np.testing.assert_array_equal(xs[1::2], s["ZBack"][volume])
    np.testing.assert_array_equal(ys[0::2], s["R"][volume])
    # hollow markers for volumes, solid for points
    assert graph.samples.marker_styles("R") == [(bool(v), 255) for v in volume]
    # accumulated opacity: after each sample, 1 - prod(1 - |a|)
    acc = 1 - np.cumprod(1 - np.abs(s["A"].astype(np.float64)))
    ax, ay = graph.samples.plot_data.steps
    np.testing.assert_allclose(ay[2::2], acc, rtol=1e-6)
    assert ay[0] == 0 and ay[-1] == pytest.approx(acc[-1], rel=1e-6)
    # the colour bar has one bar per sample starting at its depth
    np.testing.assert_array_equal(graph.colour_bar.opts["x0"], s["Z"])
    assert len(graph.colour_bar.opts["brushes"]) == 6
    assert "6 samples" in graph.header.text()


def test_empty_and_outside_pixels(setup):
    model, graph, image = setup
    model.set_current_pixel((1, 0))
    assert graph.profile.count == 0
    assert len(graph.samples.getData("R")[0]) == 0
    assert "0 samples" in graph.header.text()
    model.set_current_pixel((7, 7))
    assert graph.profile is None and "outside the data window" in graph.header.text()


def test_pinned_pixel_is_overlaid(setup):
    model, graph, image = setup
    model.set_current_pixel((0, 0))
    model.set_pinned_pixel((2, 1))
    s = samples(image, 2, 1)
    x, y = graph.pinned_samples.getData("G")
    np.testing.assert_array_equal(x, s["Z"])
    np.testing.assert_array_equal(y, s["G"])
    assert "pinned (2, 1)" in graph.header.text()
    model.set_pinned_pixel(None)
    x, _ = graph.pinned_samples.getData("G")
    assert len(x) == 0


def test_hovering_a_marker_sets_model_hovered_sample(qtbot, setup):
    model, graph, image = setup
    model.set_current_pixel((2, 1))
    s = samples(image, 2, 1)
    vb = graph.plot.getViewBox()
    qtbot.waitUntil(lambda: vb.viewRect().width() > 0, timeout=2000)
    back = float(np.maximum(s["Z"], s["ZBack"]).max())
    graph.plot.setXRange(float(s["Z"].min()) - 1.0, back + 1.0, padding=0)
    graph.plot.setYRange(-0.5, 1.5, padding=0)
    qtbot.waitUntil(lambda: abs(vb.viewRect().right() - (back + 1.0)) < 1e-6
                    and abs(vb.viewRect().bottom() - 1.5) < 1e-6, timeout=2000)
    k = 5
    scene = vb.mapViewToScene(QPointF(float(s["Z"][k]), float(s["G"][k])))
    with qtbot.waitSignal(graph.sample_hovered, timeout=2000) as blocker:
        qtbot.mouseMove(graph.layout_widget.viewport(), graph.layout_widget.mapFromScene(scene))
    assert blocker.args == [k] and model.hovered_sample == k
    assert graph.hover_line.isVisible() and graph.hover_line.value() == pytest.approx(float(s["Z"][k]))
    empty = vb.mapViewToScene(QPointF(back + 0.8, 1.4))  # no marker near
    qtbot.mouseMove(graph.layout_widget.viewport(), graph.layout_widget.mapFromScene(empty))
    qtbot.waitUntil(lambda: model.hovered_sample is None, timeout=2000)
    model.set_hovered_sample(2)  # e.g. from the table
    hx, _ = graph.hover_marker.getData()
    assert np.all(hx == s["Z"][2])


def test_flat_part_has_no_curves(qtbot):
    model = DocumentModel()
    model.set_document(make_document(make_flat()))
    graph = DeepGraph(model)
    qtbot.addWidget(graph)
    model.set_current_pixel((1, 1))
    assert graph.profile is None and "Flat part" in graph.header.text()


def test_accumulated_curve_steps_for_points_and_ramps_for_volumes():
    from app.render import PixelProfile

    z = np.array([1.0, 2.0], np.float32)
    zb = np.array([1.0, 3.0], np.float32)
    acc = np.array([0.5, 0.75], np.float32)
    prof = PixelProfile(0, 0, np.arange(2), z, zb, {}, np.array([0.5, 0.5]), zb > z, acc,
                        np.zeros((2, 4), np.uint8))
    xs, ys = accumulated_curve(prof)
    assert xs.tolist() == [1.0, 1.0, 2.0, 3.0]
    assert ys.tolist() == [0.0, 0.5, 0.5, 0.75]


# ---------------------------------------------------------------------- fitting, painting, hover robustness
def count_paints(qtbot, widget, action) -> int:
    """How many times ``widget`` paints while ``action()`` runs and the events it queued are handled."""
    from PySide6.QtCore import QEvent

    with EventSpy(widget, QEvent.Type.Paint) as painted:
        action()
        qtbot.wait(60)
    return len(painted)


def test_a_click_fits_the_pixel_in_one_range_change_and_one_repaint(qtbot, setup):
    model, graph, image = setup
    model.set_current_pixel((0, 0))
    qtbot.wait(60)
    vb = graph.plot.getViewBox()
    changes = []
    vb.sigRangeChanged.connect(lambda *_a: changes.append(vb.viewRange()))
    paints = count_paints(qtbot, graph.layout_widget.viewport(), lambda: model.set_current_pixel((2, 1)))
    assert paints == 1 and len(changes) == 1
    s = samples(image, 2, 1)
    (x0, x1), (y0, y1) = vb.viewRange()
    assert x0 < s["Z"].min() and x1 > np.maximum(s["Z"], s["ZBack"]).max()
    for slot in ("R", "G", "B"):
        assert y0 < s[slot].min() and y1 > s[slot].max()
    assert y0 < 0.0 and y1 > np.abs(s["A"]).max()  # the opacity curve starts at 0
    # the colour bar above follows the depth axis: a depth sits at the same screen x in both
    bar = graph.bar_plot.getViewBox()
    for z in (float(s["Z"].min()), float(s["Z"].max())):
        assert bar.mapViewToScene(QPointF(z, 0)).x() == pytest.approx(vb.mapViewToScene(QPointF(z, 0)).x(), abs=0.5)


def test_zooming_the_depth_axis_fits_the_values_in_view(qtbot, setup):
    model, graph, image = setup
    model.set_current_pixel((2, 1))
    s = samples(image, 2, 1)
    z = s["Z"].astype(np.float64)
    zb = np.maximum(s["Z"], s["ZBack"]).astype(np.float64)
    lo, hi = float(z[2]) - 1e-3, float(z[4]) + 1e-3  # samples 2..4 (and volumes reaching in)
    graph.plot.setXRange(lo, hi, padding=0)
    visible = (zb >= lo) & (z <= hi)
    values = np.concatenate([s[c][visible] for c in ("R", "G", "B")] + [np.abs(s["A"][visible])])
    (_, _), (y0, y1) = graph.plot.getViewBox().viewRange()
    assert y0 <= values.min() and y1 >= values.max()
    assert y1 - y0 <= (max(values.max(), 1.0) - min(values.min(), 0.0)) * 1.2  # fitted, not the whole pixel's


def test_a_quick_move_off_a_marker_is_not_dropped_and_leaving_clears_only_the_graphs_hover(qtbot, setup):
    """pyqtgraph's own mouse-move signal drops moves within 10 ms of the last; the graph must not."""
    from PySide6.QtCore import QEvent, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    model, graph, image = setup
    model.set_current_pixel((2, 1))
    s = samples(image, 2, 1)
    vb = graph.plot.getViewBox()
    back = float(np.maximum(s["Z"], s["ZBack"]).max())
    graph.plot.setXRange(float(s["Z"].min()) - 1.0, back + 1.0, padding=0)
    graph.plot.setYRange(-0.5, 1.5, padding=0)
    viewport = graph.layout_widget.viewport()

    def move(view_point: QPointF) -> None:
        pos = QPointF(graph.layout_widget.mapFromScene(vb.mapViewToScene(view_point)))
        event = QMouseEvent(QEvent.Type.MouseMove, pos, viewport.mapToGlobal(pos.toPoint()).toPointF(),
                            Qt.MouseButton.NoButton, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(viewport, event)

    for _ in range(3):  # back and forth, as fast as events come
        move(QPointF(float(s["Z"][3]), float(s["B"][3])))
        assert model.hovered_sample == 3
        move(QPointF(back + 0.8, 1.4))
        assert model.hovered_sample is None
    move(QPointF(float(s["Z"][3]), float(s["B"][3])))
    QApplication.sendEvent(viewport, QEvent(QEvent.Type.Leave))
    assert model.hovered_sample is None  # the mouse left: the graph's hover goes
    model.set_hovered_sample(2)  # a hover from the table stays when the mouse leaves the graph
    QApplication.sendEvent(viewport, QEvent(QEvent.Type.Leave))
    assert model.hovered_sample == 2


def test_grid_lines_sit_on_the_axis_ticks_and_are_opaque(setup):
    model, graph, image = setup
    model.set_current_pixel((2, 1))
    vb = graph.plot.getViewBox()
    (x0, x1), _ = vb.viewRange()
    major = graph.plot.getAxis("bottom").tickValues(x0, x1, vb.size().width())[0][1]
    lines = graph.grid.lines()
    xs = sorted({line.x1() for line in lines[0] if line.x1() == line.x2()})
    assert xs == sorted(v for v in major if x0 <= v <= x1)
    assert all(pen.color().alpha() == 255 for pen in graph.grid.pens)
    assert graph.grid.pens[0].color() != graph.grid.pens[1].color()  # major lines brighter than minor


def test_the_legend_hides_and_shows_a_channel(setup):
    model, graph, image = setup
    model.set_current_pixel((2, 1))
    model.set_pinned_pixel((0, 1))
    graph.legend_items["G"].setVisible(False)
    assert "G" in graph.samples.hidden and "G" in graph.pinned_samples.hidden
    graph.legend_items["G"].setVisible(True)
    assert "G" not in graph.samples.hidden
    graph.legend_items["opacity"].setVisible(False)
    assert "opacity" in graph.samples.hidden


def test_the_graph_draws_markers_where_the_samples_are(qtbot, setup):
    """Rendered pixels: a point sample's marker is filled with its channel's colour, a volume
    sample's marker is a ring (background inside), where the view maps the sample."""
    from widgets.deep_graph import BACKGROUND, CHANNEL_COLOURS

    model, graph, image = setup
    model.set_current_pixel((2, 1))
    s = samples(image, 2, 1)
    volume = (s["ZBack"] > s["Z"]) | (s["A"] < 0)
    for slot in ("R", "B", "A", "opacity"):  # only green drawn: nothing else over its markers
        graph.legend_items[slot].setVisible(False)
    graph.legend.setVisible(False)
    graph.hover_marker.setVisible(False)
    qtbot.wait(50)
    vb = graph.plot.getViewBox()
    shot = graph.layout_widget.viewport().grab().toImage()
    ratio = shot.devicePixelRatio()
    green = CHANNEL_COLOURS["G"]
    checked = {True: 0, False: 0}
    for i in range(len(s["Z"])):
        centre = graph.layout_widget.mapFromScene(vb.mapViewToScene(QPointF(float(s["Z"][i]), float(s["G"][i]))))
        others = [j for j in range(len(s["Z"])) if j != i and
                  (graph.layout_widget.mapFromScene(vb.mapViewToScene(QPointF(float(s["Z"][j]), float(s["G"][j]))))
                   - centre).manhattanLength() < 14]
        if others:  # markers overlap: skip
            continue
        colour = shot.pixelColor(int(centre.x() * ratio), int(centre.y() * ratio))
        expected = BACKGROUND if volume[i] else green
        assert abs(colour.red() - expected.red()) + abs(colour.green() - expected.green()) < 40, (i, colour.name())
        checked[bool(volume[i])] += 1
    assert checked[False] >= 1  # at least one point sample was checked


def test_non_finite_values_break_the_line_and_keep_the_extent(qtbot, setup):
    model, graph, image = setup
    i = int(image.offsets[1 * image.width + 2])  # first sample of (2, 1)
    image.channels["R"][i + 1] = np.nan
    image.channels["G"][i + 2] = np.inf
    model.set_current_pixel((2, 1))
    qtbot.wait(30)
    graph.layout_widget.viewport().repaint()  # paints without error
    lo, hi = graph.samples.dataBounds(1)
    assert np.isfinite(lo) and np.isfinite(hi)
    (_, _), (y0, y1) = graph.plot.getViewBox().viewRange()
    assert np.isfinite(y0) and np.isfinite(y1)


def test_the_auto_range_button_fits_the_pixel_again(qtbot, setup):
    model, graph, image = setup
    model.set_current_pixel((2, 1))
    vb = graph.plot.getViewBox()
    fitted = vb.viewRange()
    graph.plot.setXRange(2.0, 2.5, padding=0)  # zoomed in on the depth axis
    assert vb.viewRange()[0] == pytest.approx([2.0, 2.5])
    graph.plot.autoBtn.clicked.emit(graph.plot.autoBtn)
    assert vb.viewRange()[0] == pytest.approx(fitted[0]) and vb.viewRange()[1] == pytest.approx(fitted[1])
