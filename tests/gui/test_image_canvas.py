"""ImageCanvas: shows the model's frame at its data window, follows and sets the model's pixels."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from app.document import DocumentModel
from app.render import RenderRequest, Tone, View, render_frame
from core.model import Box
from tests.gui.helpers import EventSpy, make_deep, make_document
from widgets.image_canvas import ImageCanvas
from widgets.pixel_readout import PixelReadout

pytestmark = pytest.mark.gui

DW = Box(10, 20, 17, 25)  # 8 x 6, not at the origin
DISPLAY = Box(0, 0, 31, 31)


@pytest.fixture
def setup(qtbot):
    model = DocumentModel()
    image = make_deep(np.random.default_rng(0).integers(0, 4, (6, 8)), data_window=DW, display_window=DISPLAY)
    model.set_document(make_document(image))
    canvas = ImageCanvas(model)
    qtbot.addWidget(canvas)
    canvas.resize(400, 400)
    canvas.show()
    qtbot.waitExposed(canvas)
    frame = render_frame(RenderRequest(model.part_key, image, View("color"), Tone())).frame
    model.set_frame(frame)
    return model, canvas, image, frame


def test_frame_is_shown_at_the_data_window(setup):
    model, canvas, image, frame = setup
    np.testing.assert_array_equal(canvas.image_item.image, frame.rgba)
    rect = canvas.image_item.mapRectToParent(canvas.image_item.boundingRect())
    assert (rect.left(), rect.top(), rect.width(), rect.height()) == (10, 20, 8, 6)
    assert canvas.display_outline.isVisible()
    out = canvas.display_outline.rect()
    assert (out.left(), out.top(), out.width(), out.height()) == (0, 0, 32, 32)
    # no auto-levels: the item shows the uint8 as is
    assert canvas.image_item.levels is None or tuple(np.ravel(canvas.image_item.levels)[:2]) == (0, 255)


def test_outline_hidden_when_windows_match(qtbot, setup):
    model, canvas, image, frame = setup
    same = make_deep(np.ones((3, 3), int))
    model.set_document(make_document(same, path="/other.exr"))
    model.set_frame(render_frame(RenderRequest(model.part_key, same, View("color"), Tone())).frame)
    assert not canvas.display_outline.isVisible()


def test_click_sets_current_pixel_and_shift_click_pins(qtbot, setup):
    model, canvas, image, frame = setup
    canvas.fit()
    pos = canvas.widget_pos_of(13, 22)
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert model.current_pixel == (13, 22)
    assert canvas.current_marker.isVisible() and canvas.current_marker.rect().topLeft() == QPointF(13, 22)
    pos = canvas.widget_pos_of(11, 21)
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, pos=pos)
    assert model.pinned_pixel == (11, 21) and model.current_pixel == (13, 22)
    assert canvas.pinned_marker.isVisible()
    model.set_current_pixel(None)
    assert not canvas.current_marker.isVisible()


def test_hover_sets_model_hover_and_readout(qtbot, setup):
    model, canvas, image, frame = setup
    readout = PixelReadout(model)
    qtbot.addWidget(readout)
    canvas.fit()
    qtbot.mouseMove(canvas.viewport(), canvas.widget_pos_of(15, 24))
    qtbot.waitUntil(lambda: model.hover_pixel == (15, 24), timeout=2000)
    lx, ly = 5, 4
    n = int(image.offsets[ly * 8 + lx + 1] - image.offsets[ly * 8 + lx])
    assert readout.text().startswith("x 15  y 24")
    assert f"R {frame.values['R'][ly, lx]:.6g}" in readout.text()
    assert f"{n} sample" in readout.text()


def test_every_mouse_move_updates_the_hover_pixel(qtbot, setup):
    """pyqtgraph's scene drops moves within 10 ms of the last one; the canvas must not, or the
    readout would show a pixel the mouse has already left."""
    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QMouseEvent

    model, canvas, image, frame = setup
    canvas.fit()
    viewport = canvas.viewport()
    for pixel in ((11, 21), (16, 24), (12, 22), (13, 23)):
        pos = QPointF(canvas.widget_pos_of(*pixel))
        event = QMouseEvent(QEvent.Type.MouseMove, pos, viewport.mapToGlobal(pos.toPoint()).toPointF(),
                            Qt.MouseButton.NoButton, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(viewport, event)
        assert model.hover_pixel == pixel


def test_readout_text_changes_do_not_relayout_the_status_bar(qtbot, setup):
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QMainWindow

    model, canvas, image, frame = setup
    window = QMainWindow()
    qtbot.addWidget(window)
    readout = PixelReadout(model)
    window.statusBar().addWidget(readout, 1)
    window.show()
    qtbot.waitExposed(window)
    qtbot.wait(20)  # the first layout of the shown window
    with EventSpy(window.statusBar(), QEvent.Type.LayoutRequest) as requests:
        for pixel in ((11, 21), (16, 24), (12, 22)):
            model.set_hover_pixel(pixel)
            QApplication.processEvents()
            assert readout.text().startswith(f"x {pixel[0]}  y {pixel[1]}")
    assert requests == []
    assert readout.isReadOnly()  # selectable and copyable, not editable


def test_the_canvas_shows_the_frame_pixels_as_they_are(qtbot, setup):
    """The frame goes to Qt as premultiplied RGBA without a copy: the screen shows its bytes."""
    model, canvas, image, frame = setup
    canvas.fit()
    for item in (canvas.current_marker, canvas.current_ring, canvas.pinned_marker, canvas.pinned_ring):
        item.setVisible(False)
    qtbot.wait(30)
    shot = canvas.viewport().grab().toImage()
    ratio = shot.devicePixelRatio()
    for ly in range(frame.rgba.shape[0]):
        for lx in range(frame.rgba.shape[1]):
            pos = canvas.widget_pos_of(lx + DW.xmin, ly + DW.ymin)
            got = shot.pixelColor(int(pos.x() * ratio), int(pos.y() * ratio))
            assert (got.red(), got.green(), got.blue()) == tuple(int(v) for v in frame.rgba[ly, lx, :3]), (lx, ly)


def test_fit_and_one_to_one(qtbot, setup):
    model, canvas, image, frame = setup
    canvas.fit()
    view = canvas.view_box.viewRect()
    assert view.contains(canvas.content_rect())
    assert canvas.zoom() > 5  # 32 px of image in a ~400 px view
    canvas.one_to_one()
    assert canvas.zoom() == pytest.approx(1.0, rel=0.02)


def test_pixel_values_drawn_only_when_zoomed_in(qtbot, setup):
    model, canvas, image, frame = setup
    canvas.fit()
    canvas.viewport().repaint()
    assert canvas.value_text.drawn_count == 0
    canvas.centre_on(13.5, 22.5, zoom=120)
    canvas.viewport().repaint()
    qtbot.waitUntil(lambda: canvas.value_text.drawn_count > 0, timeout=2000)
    visible = canvas.view_box.viewRect()
    assert canvas.value_text.drawn_count <= (visible.width() + 2) * (visible.height() + 2)
    assert canvas.value_text.drawn_count < 8 * 6  # only the visible pixels, not the whole image


def test_wheel_zooms_around_the_cursor(qtbot, setup):
    model, canvas, image, frame = setup
    canvas.fit()
    before = canvas.zoom()
    pos = canvas.widget_pos_of(12, 21)
    under = canvas.view_box.mapSceneToView(canvas.mapToScene(pos))
    event = QWheelEvent(QPointF(pos), QPointF(canvas.viewport().mapToGlobal(pos)), QPoint(0, 0), QPoint(0, 240),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
                        False)
    QApplication.sendEvent(canvas.viewport(), event)
    assert canvas.zoom() > before * 1.2
    after = canvas.view_box.mapSceneToView(canvas.mapToScene(pos))
    assert (after.x(), after.y()) == pytest.approx((under.x(), under.y()), abs=0.05)  # same point under the cursor


def test_zoom_by_keeps_centre(qtbot, setup):
    model, canvas, image, frame = setup
    canvas.fit()
    before = canvas.zoom()
    canvas.zoom_by(2.0)
    assert canvas.zoom() == pytest.approx(before * 2, rel=0.05)
