"""Deep IDs in the whole viewer: click objects on real files and the demo scene, check the selection
against the DeepImage read directly, the mask against core's deep mask, the sample table's names,
the deep graph's emphasis and the canvas overlay."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from core.deepid import deep_mask
from core.demo import demo_paths, read_truth
from core.exr_read import open_exr
from core.hashing import deepid_hash
from core.model import DeepImage
from tests.gui.helpers import wait_rendered
from tests.shared_data import shared_path
from widgets.deep_graph import DIMMED_ALPHA

pytestmark = pytest.mark.gui

CTRL = Qt.KeyboardModifier.ControlModifier
ALT = Qt.KeyboardModifier.AltModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier


def open_and_wait(qtbot, window, path=None) -> None:
    if path is None:
        window.open_demo("deep")
        qtbot.waitUntil(lambda: window.model.document is not None, timeout=60000)
    else:
        window.open_file(path)
        qtbot.waitUntil(lambda: window.model.document is not None and window.model.document.path == str(path),
                        timeout=30000)
    wait_rendered(qtbot, window)
    settle(qtbot, window)


def settle(qtbot, window) -> None:
    qtbot.waitUntil(lambda: not window.deepid_model.busy and not window.controller.busy, timeout=30000)


def click_pixel(qtbot, window, x: int, y: int, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    canvas = window.canvas
    canvas.centre_on(x + 0.5, y + 0.5, zoom=12)
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, modifier, pos=canvas.widget_pos_of(x, y))
    settle(qtbot, window)


def front_visible(image: DeepImage, lx: int, ly: int) -> int | None:
    """Reference: the first sample, in stored order, whose |alpha| * (1 - accumulated) is above zero."""
    i = ly * image.width + lx
    acc = 0.0
    for s in range(int(image.offsets[i]), int(image.offsets[i + 1])):
        a = abs(float(image.channels["A"][s]))
        if a * (1.0 - acc) > 0:
            return s - int(image.offsets[i])
        acc += a * (1.0 - acc)
    return None


def pixel_with_layers(image: DeepImage, channel: str) -> tuple[int, int]:
    """A pixel with several samples where the front visible sample's id differs from a sample behind it."""
    counts = image.sample_counts()
    candidates = np.argwhere(counts >= 3)
    for ly, lx in candidates[len(candidates) // 3:]:
        s = front_visible(image, int(lx), int(ly))
        ids = image.pixel_samples(int(lx), int(ly))[channel]
        if s is not None and len(set(ids.tolist())) > 1:
            return int(lx), int(ly)
    raise AssertionError("no layered pixel")


def test_click_objects_on_42(qtbot, main_window):
    path = shared_path("deepid", "openexr", "42.deep.exr")
    reference = open_exr(path).parts[0].image
    window = main_window()
    open_and_wait(qtbot, window, path)
    ids = window.deepid_model
    assert window.idmanifest_panel.tabs.count() == 3 and window.deepid_dock.isVisible()
    lx, ly = pixel_with_layers(reference, "modelid")
    x, y = lx + reference.data_window.xmin, ly + reference.data_window.ymin

    # without Pick a click only inspects
    click_pixel(qtbot, window, x, y)
    assert window.model.current_pixel == (x, y) and not ids.has_selection

    window.idmanifest_panel.pick_button.click()
    window.idmanifest_panel.tabs.setCurrentIndex(0)  # model
    click_pixel(qtbot, window, x, y)
    s = front_visible(reference, lx, ly)
    samples = reference.pixel_samples(lx, ly)
    picked = int(samples["modelid"][s])
    assert ids.checked_ids("group:0") == {picked}
    assert picked in ids.manifest.groups[0].entries
    selected = reference.channels["modelid"] == picked
    np.testing.assert_array_equal(ids.mask, deep_mask(reference, selected))
    assert window.model.current_pixel == (x, y)  # the graph and table still follow the click

    # the sample table names each sample's ids and marks the selected ones
    table = window.sample_table.table_model
    ids_col, sel_col = table.headers.index("ids"), table.headers.index("sel")
    groups = ids.manifest.groups
    for i in range(table.rowCount()):
        model_name = groups[0].entries[int(samples["modelid"][i])][0]
        material_name = groups[1].entries[int(samples["materialid"][i])][0]
        assert f"model={model_name}" in table.rows[i][ids_col]
        assert f"material={material_name}" in table.rows[i][ids_col]
        assert table.rows[i][sel_col] == ("✓" if samples["modelid"][i] == picked else "")
    # the deep graph rings the selected samples
    gx, _ = window.deep_graph.selection_marker.getData()
    expected_z = samples["Z"][samples["modelid"] == picked]
    assert sorted(set(gx.tolist())) == sorted(set(expected_z.astype(np.float64).tolist()))
    assert "selected sample" in window.deep_graph.header.text()
    qtbot.wait(50)  # the plot redraws after the range changes: the dimming must survive it
    alphas = [alpha for _hollow, alpha in window.deep_graph.samples.marker_styles("A")]
    assert alphas == [255 if v == picked else DIMMED_ALPHA for v in samples["modelid"]]

    # another pixel with another number of samples: the graph follows it, still emphasised
    counts = reference.sample_counts()
    oy, ox = map(int, np.argwhere((counts >= 1) & (counts != counts[ly, lx]))[0])
    ids.set_pick_enabled(False)
    click_pixel(qtbot, window, ox + reference.data_window.xmin, oy + reference.data_window.ymin)
    other = reference.pixel_samples(ox, oy)
    for slot in ("R", "G", "B", "A"):
        assert window.deep_graph.samples.getData(slot)[0].size == counts[oy, ox]
    assert f"Pixel ({ox}, {oy})" in window.deep_graph.header.text()
    np.testing.assert_array_equal(window.deep_graph.emphasis, other["modelid"] == picked)
    ids.set_pick_enabled(True)
    click_pixel(qtbot, window, x, y)  # back (picking the same id again changes nothing)
    assert ids.checked_ids("group:0") == {picked}

    # a second object, in the material tab, adds to the selection
    window.idmanifest_panel.tabs.setCurrentIndex(1)
    click_pixel(qtbot, window, x, y)
    material = int(samples["materialid"][s])
    assert ids.checked_ids("group:1") == {material}
    both = selected | (reference.channels["materialid"] == material)
    np.testing.assert_array_equal(ids.mask, deep_mask(reference, both))

    # Ctrl+click and Alt+click remove; Shift+click pins and does not pick
    click_pixel(qtbot, window, x, y, CTRL)
    assert ids.checked_ids("group:1") == set() and ids.checked_ids("group:0") == {picked}
    window.idmanifest_panel.tabs.setCurrentIndex(0)
    click_pixel(qtbot, window, x, y, SHIFT)
    assert window.model.pinned_pixel == (x, y) and ids.checked_ids("group:0") == {picked}
    click_pixel(qtbot, window, x, y, ALT)
    assert not ids.has_selection
    np.testing.assert_array_equal(ids.mask, np.zeros((reference.height, reference.width), np.float32))
    assert window.deep_graph.selection_marker.getData()[0].size == 0
    assert all(alpha == 255 for _hollow, alpha in window.deep_graph.samples.marker_styles("A"))


def test_click_an_object_of_the_demo_scene(qtbot, main_window, demo_dir):
    window = main_window()
    open_and_wait(qtbot, window)
    image = window.model.image
    ids = window.deepid_model
    assert [s.title for s in ids.sources] == ["object", "material"]
    body = deepid_hash(["/char/hero/body"], "MurmurHash3_32")
    assert ids.manifest.groups[0].entries[body] == ("/char/hero/body",)
    # a pixel whose front visible sample is the hero's body
    target = None
    counts = image.sample_counts()
    for ly, lx in np.argwhere(counts >= 1):
        s = front_visible(image, int(lx), int(ly))
        if s is not None and image.pixel_samples(int(lx), int(ly))["objectid"][s] == body:
            target = int(lx), int(ly)
            break
    assert target is not None
    x, y = target[0] + image.data_window.xmin, target[1] + image.data_window.ymin
    ids.set_pick_enabled(True)
    click_pixel(qtbot, window, x, y)
    assert ids.checked_ids("group:0") == {body}
    selected = image.channels["objectid"] == body
    np.testing.assert_array_equal(ids.mask, deep_mask(image, selected))
    # the demo's ground truth: the deep mask of a solid object is its coverage (up to half float alpha)
    truth = read_truth(demo_paths(demo_dir)["truth"])
    np.testing.assert_allclose(ids.mask, truth["/char/hero/body"], atol=1e-3)

    # the preview overlays the canvas, and follows the mode
    assert not window.deepid_overlay.shown
    ids.set_preview_mode("mask overlay")
    settle(qtbot, window)
    assert window.deepid_overlay.shown
    np.testing.assert_array_equal(window.deepid_overlay.item.image, ids.overlay)
    ids.set_preview_mode("selected objects only")
    settle(qtbot, window)
    assert window.deepid_overlay.shown and ids.deep_selection is not None
    np.testing.assert_array_equal(window.deepid_overlay.item.image, ids.overlay)
    ids.set_preview_mode("off")
    settle(qtbot, window)
    assert not window.deepid_overlay.shown
    click_pixel(qtbot, window, x, y, CTRL)
    assert not ids.has_selection


def test_object_id_file_and_a_file_without_ids(qtbot, main_window):
    window = main_window()
    path = shared_path("deepid", "openexr", "objectid.deep.exr")
    reference = open_exr(path).parts[0].image
    open_and_wait(qtbot, window, path)
    ids = window.deepid_model
    panel = window.idmanifest_panel
    assert [panel.tabs.tabText(i) for i in range(panel.tabs.count())] == ["model / material", "particleid"]
    lx, ly = pixel_with_layers(reference, "id")
    ids.set_pick_enabled(True)
    click_pixel(qtbot, window, lx + reference.data_window.xmin, ly + reference.data_window.ymin)
    s = front_visible(reference, lx, ly)
    value = int(reference.pixel_samples(lx, ly)["id"][s])
    assert ids.checked_ids("group:0") == {value}
    np.testing.assert_array_equal(ids.mask, deep_mask(reference, reference.channels["id"] == value))
    table = window.sample_table.table_model
    model, material = ids.manifest.groups[0].entries[value]
    assert f"model={model} material={material}" in table.rows[s][table.headers.index("ids")]

    # a deep file with no ids: the panel says so, clicks only inspect, nothing breaks
    open_and_wait(qtbot, window, shared_path("deep", "oiio", "deepalpha.exr"))
    assert panel.stack.currentWidget() is panel.empty and not panel.pick_button.isEnabled()
    assert ids.sources == [] and not ids.has_selection
    click_pixel(qtbot, window, 104, 64)
    assert window.model.current_pixel == (104, 64)
    assert "ids" not in window.sample_table.table_model.headers
    assert window.sample_table.table_model.rowCount() == 22
    assert not window.deepid_overlay.shown and not window.banner.isVisible()
