"""Previews in the whole viewer on the demo scene: the docks, the focus tool's click rules, the wipe and its
divider, the Cryptomatte (flat beauty) recolor, the Preview menu, and exports that never touch the input."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from app.preview_model import flat_beauty
from core.defocus import focus_at
from core.recolor import Grade, matte_grade
from tests.gui.helpers import wait_rendered

pytestmark = pytest.mark.gui


def open_demo(qtbot, window, kind="deep") -> None:
    window.open_demo(kind)
    qtbot.waitUntil(lambda: window.model.document is not None, timeout=60000)
    wait_rendered(qtbot, window)
    qtbot.waitUntil(lambda: not window.deepid_model.busy and not window.crypto_model.busy, timeout=30000)


def wait_current(qtbot, preview, timeout=60000):
    qtbot.waitUntil(lambda: preview.is_current and not preview.busy, timeout=timeout)


def show_dock(qtbot, window, dock) -> None:
    dock.raise_()
    qtbot.waitUntil(lambda: not dock.visibleRegion().isEmpty(), timeout=5000)
    qtbot.wait(20)


def click_pixel(qtbot, window, x, y, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    canvas = window.canvas
    canvas.centre_on(x + 0.5, y + 0.5, zoom=6)
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, modifier, pos=canvas.widget_pos_of(x, y))


def drag(viewport, start, end, steps=8) -> None:
    """A left-button drag with real mouse events (QTest has no moves with a button held)."""
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for k in range(1, steps + 1):
        p = QPointF(start + (end - start) * (k / steps))
        event = QMouseEvent(QEvent.Type.MouseMove, p, viewport.mapToGlobal(p), Qt.MouseButton.NoButton,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(viewport, event)
        QApplication.processEvents()
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)


def test_docks_menu_and_camera_note(qtbot, main_window):
    window = main_window()
    tabbed = window.tabifiedDockWidgets(window.deepid_dock)
    assert window.defocus_dock in tabbed and window.recolor_dock in tabbed and window.crypto_dock in tabbed
    open_demo(qtbot, window)
    preview = window.preview_model
    assert preview.defocus.simple and "No camera data" in window.defocus_panel.camera_label.text()
    assert preview.scene is not None and 3.0 < preview.scene.z_min < preview.scene.z_max <= 10.0
    window.preview_effect_actions["defocus"].trigger()
    assert preview.effect == "defocus" and window.preview_effect_actions["defocus"].isChecked()
    wait_current(qtbot, preview)
    assert window.preview_overlay.shown and window.preview_overlay.item.image.shape == (180, 320, 4)
    assert np.array_equal(window.preview_overlay.item.image, preview.preview.rgba)
    window.preview_effect_actions["off"].trigger()
    assert not window.preview_overlay.shown and not window.preview_effect_actions["defocus"].isChecked()


def test_focus_tool_click_rules(qtbot, main_window):
    window = main_window()
    open_demo(qtbot, window)
    preview, image = window.preview_model, window.model.image
    show_dock(qtbot, window, window.defocus_dock)
    window.defocus_panel.focus_button.click()
    assert preview.focus_tool and window.focus_tool_action.isChecked()
    click_pixel(qtbot, window, 207, 100)  # the hero's body
    assert preview.defocus.focus_distance == focus_at(image, 207, 100)
    assert window.model.current_pixel == (207, 100)  # the click still inspects the pixel
    assert preview.effect == "defocus"
    wait_current(qtbot, preview)
    hero = preview.preview.result
    # in focus: the hero's inner pixels keep their flattened colour
    from core.kernels import flatten

    flat = flatten(image, ["R", "G", "B"])
    assert abs(float(hero["R"][100, 207]) - float(flat["R"][100, 207])) < 1e-3
    # Shift+click pins and does not focus
    focus = preview.defocus.focus_distance
    click_pixel(qtbot, window, 30, 150, Qt.KeyboardModifier.ShiftModifier)
    assert preview.defocus.focus_distance == focus and window.model.pinned_pixel == (30, 150)
    # with the Deep IDs panel shown, a click picks there and does not focus
    show_dock(qtbot, window, window.deepid_dock)
    window.deepid_model.set_pick_enabled(True)
    click_pixel(qtbot, window, 60, 150)  # the floor
    assert preview.defocus.focus_distance == focus and window.model.current_pixel == (60, 150)
    assert window.deepid_model.selected_count == 1
    # back on the Defocus panel (Deep IDs hidden): the click focuses and picks nothing more
    show_dock(qtbot, window, window.defocus_dock)
    click_pixel(qtbot, window, 60, 150)
    assert preview.defocus.focus_distance == focus_at(image, 60, 150) != focus
    assert window.deepid_model.selected_count == 1


def test_wipe_divider_and_matte_comparison(qtbot, main_window):
    window = main_window()
    open_demo(qtbot, window)
    preview = window.preview_model
    window.deepid_model.apply_query("hero")
    show_dock(qtbot, window, window.recolor_dock)
    grade = Grade(gain=(0.2, 0.45, 2.4))
    preview.set_grade(grade)
    preview.set_effect("recolor")
    wait_current(qtbot, preview)
    wipe = window.wipe_overlay
    assert wipe.shown and wipe.divider.isVisible()
    assert np.array_equal(wipe.item.image, preview.preview.compare_rgba)
    assert preview.wipe_position == 0.5 and wipe.divider.value() == 160
    assert wipe.clip.rect().left() == 160 and wipe.clip.rect().right() == 320
    # drag the divider on the canvas
    canvas = window.canvas
    canvas.fit()
    qtbot.wait(50)
    start = canvas.mapFromScene(canvas.view_box.mapViewToScene(QPointF(160, 150)))
    end = canvas.mapFromScene(canvas.view_box.mapViewToScene(QPointF(240, 150)))
    drag(canvas.viewport(), start, end)
    assert preview.wipe_position == pytest.approx(240 / 320, abs=2.5 / 320)
    split = preview.wipe_column(320)
    assert wipe.clip.rect().left() == split and wipe.split_x() == split
    # the model moves the divider too
    preview.set_wipe_position(0.25)
    assert wipe.divider.value() == 80 and wipe.clip.rect().left() == 80
    # the matte side is the matte grade of the flattened beauty with the visible coverage of the ids
    frame = preview.preview
    beauty = flat_beauty(window.model.image)
    matte = frame.selection.matte
    assert np.array_equal(np.dstack([frame.compare_result[c] for c in "RGBA"]), matte_grade(beauty, matte, grade))
    # compare off: no wipe
    preview.set_compare(False)
    wait_current(qtbot, preview)
    assert not wipe.shown


def test_cryptomatte_recolor_on_the_flat_demo(qtbot, main_window):
    window = main_window()
    open_demo(qtbot, window, "flat")
    preview, crypto = window.preview_model, window.crypto_model
    qtbot.waitUntil(lambda: crypto.ranks is not None, timeout=30000)
    assert preview.source == "cryptomatte" and not window.recolor_panel.compare_check.isEnabled()
    crypto.set_layer("CryptoObject")
    qtbot.waitUntil(lambda: crypto.ranks is not None, timeout=30000)
    crypto.set_selection(["/char/hero/body"])
    qtbot.waitUntil(lambda: crypto.matte is not None and crypto.matte.ids.size == 1, timeout=30000)
    grade = Grade(saturation=0.0, gain=(1.5, 1.5, 1.5))
    preview.set_grade(grade)
    preview.set_effect("recolor")
    wait_current(qtbot, preview)
    image = window.model.image
    ref = matte_grade(flat_beauty(image), crypto.matte.matte, grade)
    assert np.array_equal(np.dstack([preview.preview.result[c] for c in "RGBA"]), ref)
    assert preview.preview.compare_rgba is None and not window.wipe_overlay.shown
    assert "/char/hero/body" in window.recolor_panel.selection_label.text()
    # defocus needs deep samples
    preview.set_effect("defocus")
    qtbot.waitUntil(lambda: not preview.busy, timeout=10000)
    assert preview.preview is None and "deep" in window.defocus_panel.status_label.text()


def test_export_never_over_the_input(qtbot, main_window, tmp_path):
    window = main_window()
    open_demo(qtbot, window)
    preview = window.preview_model
    path = window.model.document.path
    before = (os.stat(path).st_mtime_ns, open(path, "rb").read())
    preview.set_effect("defocus")
    with qtbot.waitSignal(preview.export_failed, timeout=10000) as blocker:
        assert not preview.export(path)
    assert "refusing to overwrite" in blocker.args[1]
    assert (os.stat(path).st_mtime_ns, open(path, "rb").read()) == before
    out = tmp_path / "demo_defocus.exr"
    with qtbot.waitSignal(preview.export_finished, timeout=60000):
        preview.export(out)
    assert out.is_file() and "wrote" in window.statusBar().currentMessage()
