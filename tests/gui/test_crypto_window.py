"""Cryptomatte in the main window: clicking the image picks ids (the Psyop gizmo's facts), the
click still inspects the pixel, preview modes draw on the canvas, HALF ids never key, and a
matte built by clicking the demo scene exports equal to the demo's ground truth."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog

from app.crypto_model import PREVIEW_MODES
from core.cryptomatte import crypto_ranks, layer_matte
from core.demo import demo_paths, read_truth
from core.exr_read import open_exr
from core.model import Box
from tests.gui.helpers import wait_rendered
from tests.shared_data import shared_path

pytestmark = pytest.mark.gui

PSYOP = ("cryptomatte", "psyop")
NO_MOD = Qt.KeyboardModifier.NoModifier


def open_and_settle(qtbot, window, path) -> None:
    window.open_file(path)
    qtbot.waitUntil(lambda: window.model.document is not None and window.model.document.path == str(path),
                    timeout=30000)
    wait_rendered(qtbot, window)
    settle(qtbot, window)


def settle(qtbot, window) -> None:
    qtbot.waitUntil(lambda: not window.crypto_model.busy, timeout=30000)


def click(qtbot, window, x: int, y: int, modifier=NO_MOD) -> None:
    """Zoom onto EXR pixel (x, y) and click it with the mouse."""
    canvas = window.canvas
    canvas.centre_on(x + 0.5, y + 0.5, zoom=16)
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, modifier, pos=canvas.widget_pos_of(x, y))


def test_psyop_picker_facts_by_clicking(qtbot, main_window):
    window = main_window()
    crypto = window.crypto_model
    open_and_settle(qtbot, window, shared_path(*PSYOP, "cornellBox_CryptoWildcard.0001.exr"))
    assert window.crypto_tool.picking_active  # the Cryptomatte tab came to the front
    # README: Nuke (600,150) is EXR (600,389) -> has_*_asterisk
    click(qtbot, window, 600, 389)
    assert crypto.selected_names() == ["has_*_asterisk"]
    assert window.model.current_pixel == (600, 389)  # the click still inspects the pixel
    assert window.matte_panel.matte_list_edit.text() == crypto.matte_list()
    click(qtbot, window, 350, 389)  # Nuke (350,150) -> sphere_?_2
    assert crypto.selected_names() == ["has_*_asterisk", "sphere_?_2"]
    assert "added sphere_?_2" in window.matte_panel.message_label.text()
    manifest_panel = window.crypto_manifest_panel
    assert set(manifest_panel.checked_names()) == {"has_*_asterisk", "sphere_?_2"}
    click(qtbot, window, 350, 389, Qt.KeyboardModifier.ControlModifier)  # Ctrl+click removes
    assert crypto.selected_names() == ["has_*_asterisk"]
    click(qtbot, window, 600, 389, Qt.KeyboardModifier.AltModifier)  # so does Alt+click
    assert crypto.selected_names() == []
    click(qtbot, window, 600, 389, Qt.KeyboardModifier.ShiftModifier)  # Shift+click pins, never picks
    assert window.model.pinned_pixel == (600, 389) and crypto.selected_names() == []
    # frame 2: the same spot holds has_n_asterisk
    open_and_settle(qtbot, window, shared_path(*PSYOP, "cornellBox_CryptoWildcard.0002.exr"))
    click(qtbot, window, 350, 389)
    assert crypto.selected_names() == ["has_n_asterisk"]
    settle(qtbot, window)
    np.testing.assert_array_equal(crypto.matte.matte, layer_matte(crypto.layer, crypto.layer_image, "has_n_asterisk"))
    window.matte_panel.copy_button.click()
    assert QGuiApplication.clipboard().text() == "has_n_asterisk"


def test_pick_toggle_and_hidden_panel_only_inspect(qtbot, main_window):
    window = main_window()
    crypto = window.crypto_model
    open_and_settle(qtbot, window, shared_path(*PSYOP, "cornellBox_CryptoWildcard.0001.exr"))
    window.crypto_pick_action.trigger()  # K
    assert not crypto.picking and not window.matte_panel.pick_button.isChecked()
    click(qtbot, window, 600, 389)
    assert window.model.current_pixel == (600, 389) and crypto.selected_names() == []
    window.crypto_pick_action.trigger()
    assert crypto.picking
    window.deepid_dock.raise_()  # another tab in front: the Cryptomatte panel is hidden
    qtbot.waitUntil(lambda: not window.crypto_tool.picking_active, timeout=5000)
    click(qtbot, window, 350, 389)
    assert window.model.current_pixel == (350, 389) and crypto.selected_names() == []
    window.crypto_dock.raise_()
    qtbot.waitUntil(lambda: window.crypto_tool.picking_active, timeout=5000)
    click(qtbot, window, 350, 389)
    assert crypto.selected_names() == ["sphere_?_2"]


def test_preview_modes_draw_on_the_canvas(qtbot, main_window):
    window = main_window()
    crypto = window.crypto_model
    tool = window.crypto_tool
    open_and_settle(qtbot, window, shared_path(*PSYOP, "cornellBox_CryptoWildcard.0001.exr"))
    crypto.set_matte_list("*asterisk")
    combo = window.matte_panel.preview_combo
    for mode in PREVIEW_MODES:
        i = combo.findData(mode)
        combo.setCurrentIndex(i)
        combo.activated.emit(i)
        settle(qtbot, window)
        if mode == "off":
            assert not tool.overlay_item.isVisible()
            continue
        assert tool.overlay_item.isVisible() and tool.overlay.mode == mode
        shown = tool.overlay_item.image
        assert shown.shape == (540, 626, 4)
        np.testing.assert_array_equal(shown, crypto.overlay.rgba)
        rect = tool.overlay_item.mapRectToParent(tool.overlay_item.boundingRect())
        assert (rect.left(), rect.top(), rect.width(), rect.height()) == (167, 0, 626, 540)
    # matte only: grey, white where the two asterisk objects cover the pixel fully
    assert tuple(crypto.overlay.rgba[389, 600 - 167]) == (255, 255, 255, 255)
    assert tuple(crypto.overlay.rgba[389, 350 - 167]) == (0, 0, 0, 255)


def test_half_ids_show_an_error_and_clicks_do_not_key(qtbot, main_window):
    window = main_window()
    crypto = window.crypto_model
    path = shared_path("cryptomatte", "cryptomatte-api", "images", "karma_cpu_solaris_one_crypto_16bit.exr")
    open_and_settle(qtbot, window, path)
    panel = window.matte_panel
    assert panel.isVisible() and panel.error_label.isVisible()
    assert "HALF" in panel.error_label.text() and "CryptoObject00.R" in panel.error_label.text()
    click(qtbot, window, 70, 40)
    assert window.model.current_pixel == (70, 40)
    assert crypto.selected_names() == [] and crypto.matte is None
    assert not window.crypto_tool.overlay_item.isVisible()
    assert "nothing picked" in panel.message_label.text()


def test_clicking_the_demo_scene_exports_its_ground_truth(qtbot, main_window, demo_dir, tmp_path, monkeypatch):
    window = main_window()
    crypto = window.crypto_model
    window.open_demo("flat")
    qtbot.waitUntil(lambda: window.model.document is not None, timeout=30000)
    wait_rendered(qtbot, window)
    settle(qtbot, window)
    combo = window.matte_panel.layer_combo
    i = [crypto.layer_label(la) for la in crypto.layers].index("CryptoObject")
    combo.setCurrentIndex(i)
    combo.activated.emit(i)
    settle(qtbot, window)
    assert crypto.layer.name == "CryptoObject"

    truth = read_truth(demo_paths(demo_dir)["truth"])
    objects = ["/char/hero/body", "/props/crate", "/set/floor"]
    for name in objects:  # click where the object covers the whole pixel: it is the top rank there
        cov = truth[name]
        y, x = np.unravel_index(int(np.argmax(cov)), cov.shape)
        assert cov[y, x] == 1.0
        click(qtbot, window, int(x), int(y))
    assert crypto.selected_names() == sorted(objects, key=str.lower)
    settle(qtbot, window)

    out_path = tmp_path / "hero_crate_floor.exr"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out_path), ""))
    reports = []
    crypto.export_finished.connect(reports.append)
    window.matte_panel.export_button.click()
    qtbot.waitUntil(lambda: bool(reports), timeout=30000)
    out = open_exr(out_path).parts[0].image
    source = crypto.layer_image
    assert list(out.channels) == ["A"] and out.channels["A"].dtype == np.float32
    assert out.data_window == source.data_window == Box(0, 0, 319, 179)
    assert out.display_window == source.display_window
    got = out.channels["A"]
    want = sum(truth[n].astype(np.float64) for n in objects)

    # Tolerance: the ranks keep the 6 highest-coverage ids of a pixel. A pixel whose objects all fit
    # in 6 ranks holds each one's coverage exactly (the same float32), so the matte differs from the
    # truth only by the float32 rounding of a sum of <= 6 terms (1e-6). Where more than 6 objects
    # meet (the dust cloud), the coverage of the dropped ones is lost: the error is at most what the
    # ranks did not keep, the pixel's total object coverage minus the sum of its rank coverages.
    n_obj = len([n for n in truth.names if not n.startswith("mtl/")])
    is_obj = truth.index < n_obj
    h, w = truth.shape
    total = np.bincount(truth.pixel[is_obj], truth.value[is_obj].astype(np.float64), minlength=h * w).reshape(h, w)
    ranks = crypto_ranks(crypto.layer, source)
    held = ranks.coverage.astype(np.float64).sum(axis=0)
    dropped = np.maximum(total - held, 0.0)
    err = np.abs(got - want)
    assert np.all(err <= dropped + 1e-6)
    complete = dropped <= 1e-6
    assert np.all(err[complete] <= 1e-6)
    assert complete.mean() > 0.95
    assert got.sum() == pytest.approx(sum(truth.total(n) for n in objects), rel=1e-4)
    np.testing.assert_array_equal(got, layer_matte(crypto.layer, source, crypto.selection))
