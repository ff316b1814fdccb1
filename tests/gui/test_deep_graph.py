"""DeepGraph: curves, spans, opacity and colour bar match the pixel's samples; hover <-> model."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from app.document import DocumentModel
from tests.gui.helpers import make_deep, make_document, make_flat
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
        x, y = graph.curves[slot].getData()
        np.testing.assert_array_equal(x, s["Z"])
        np.testing.assert_array_equal(y, s[slot])
    x, y = graph.curves["A"].getData()
    np.testing.assert_array_equal(y, np.abs(s["A"]))
    volume = (s["ZBack"] > s["Z"]) | (s["A"] < 0)
    assert volume[1]  # negative alpha marks a volume
    # spans: one (Z, ZBack) pair per volume sample at the sample's value
    xs, ys = graph.spans["R"].getData()
    np.testing.assert_array_equal(xs[0::2], s["Z"][volume])
    np.testing.assert_array_equal(xs[1::2], s["ZBack"][volume])
    np.testing.assert_array_equal(ys[0::2], s["R"][volume])
    # hollow markers for volumes, solid for points
    brushes = graph.curves["R"].opts["symbolBrush"]
    solid = graph.curves["R"].opts["symbolPen"].color()
    for is_vol, brush in zip(volume, brushes, strict=True):
        assert (brush.color() != solid) == bool(is_vol)
    # accumulated opacity: after each sample, 1 - prod(1 - |a|)
    acc = 1 - np.cumprod(1 - np.abs(s["A"].astype(np.float64)))
    ax, ay = graph.accumulated.getData()
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
    assert graph.curves["R"].getData()[0] is None or len(graph.curves["R"].getData()[0]) == 0
    assert "0 samples" in graph.header.text()
    model.set_current_pixel((7, 7))
    assert graph.profile is None and "outside the data window" in graph.header.text()


def test_pinned_pixel_is_overlaid(setup):
    model, graph, image = setup
    model.set_current_pixel((0, 0))
    model.set_pinned_pixel((2, 1))
    s = samples(image, 2, 1)
    x, y = graph.pinned_curves["G"].getData()
    np.testing.assert_array_equal(x, s["Z"])
    np.testing.assert_array_equal(y, s["G"])
    assert "pinned (2, 1)" in graph.header.text()
    model.set_pinned_pixel(None)
    x, _ = graph.pinned_curves["G"].getData()
    assert x is None or len(x) == 0


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
