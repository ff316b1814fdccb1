"""The whole viewer on real files: open each kind, switch views, click pixels, exposure, errors,
multi-part, reload, recent files, drag and drop, the demo scene."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from app.render import View
from app.settings import ViewerSettings
from app.workers import wait_for_pool
from core.exr_read import open_exr
from core.model import DeepImage
from tests.gui.helpers import wait_rendered
from tests.shared_data import shared_path

pytestmark = pytest.mark.gui

FILES = {
    "deep scanline": "deep/openexr-images/LowResLeftView/Balls.exr",
    "deep tiled": "deep/oiio/deepalpha.exr",
    "multi-part deep": "deep/openexr-images/Stereo/Trunks.exr",
    "flat, data window inside display window": "cryptomatte/psyop/cornellBox_CryptoWildcard.0001.exr",
    "flat tiled cryptomatte": "cryptomatte/psyop/multichannel.exr",
    "flat with uint ids": "deepid/openexr/manifest_id.exr",
}


def open_and_wait(qtbot, window, path) -> None:
    window.open_file(path)
    qtbot.waitUntil(lambda: window.model.document is not None and window.model.document.path == str(path),
                    timeout=30000)
    wait_rendered(qtbot, window)


def click_pixel(qtbot, window, x: int, y: int, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    """Zoom to the pixel so it is big on screen, then click it with the mouse."""
    canvas = window.canvas
    canvas.centre_on(x + 0.5, y + 0.5, zoom=16)
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, modifier, pos=canvas.widget_pos_of(x, y))


def reader_samples(image: DeepImage, x: int, y: int) -> dict[str, np.ndarray]:
    dw = image.data_window
    return image.pixel_samples(x - dw.xmin, y - dw.ymin)


@pytest.mark.parametrize("kind", list(FILES))
def test_open_each_kind_and_switch_views(qtbot, main_window, kind):
    path = shared_path(*FILES[kind].split("/"))
    window = main_window()
    open_and_wait(qtbot, window, path)
    model = window.model
    doc = model.document
    image = model.image
    assert window.canvas.frame.rgba.shape == (image.height, image.width, 4)
    assert os.path.basename(str(path)) in window.windowTitle()
    assert window.part_selector.count() == len(doc.parts)
    assert window.channel_list.topLevelItemCount() == len(model.layers)
    shown = window.canvas.image_item.mapRectToParent(window.canvas.image_item.boundingRect())
    assert (shown.left(), shown.top()) == (image.data_window.xmin, image.data_window.ymin)
    assert window.canvas.display_outline.isVisible() == (image.display_window != image.data_window)

    combo = window.view_controls.mode_combo
    for mode in ("alpha", "depth", "samples", "color"):
        i = combo.findData(mode)
        if not combo.model().item(i).isEnabled():
            assert mode == "samples" and not isinstance(image, DeepImage) or mode in ("alpha", "depth")
            continue
        combo.setCurrentIndex(i)
        combo.activated.emit(i)
        wait_rendered(qtbot, window)
        assert window.canvas.frame.view.mode == mode
    # a single channel from the channel list
    layer = model.layers[-1]
    channel = layer.channels[0]
    item = window.channel_list.item_for(layer.name, channel)
    window.channel_list.itemClicked.emit(item, 0)
    wait_rendered(qtbot, window)
    assert window.canvas.frame.view == View("channel", layer.name, channel)
    assert list(window.canvas.frame.values) == [layer.short_name(channel)]
    assert not window.banner.isVisible()


def test_deep_tiled_pixel_graph_and_table(qtbot, main_window):
    """deepalpha.exr: OIIO says the pixel with the most samples is (104, 64) with 22."""
    path = shared_path("deep", "oiio", "deepalpha.exr")
    window = main_window()
    open_and_wait(qtbot, window, path)
    click_pixel(qtbot, window, 104, 64)
    assert window.model.current_pixel == (104, 64)
    expected = reader_samples(open_exr(path).parts[0].image, 104, 64)
    assert len(expected["A"]) == 22
    x, y = window.deep_graph.samples.getData("A")
    np.testing.assert_array_equal(x, expected["Z"])
    np.testing.assert_array_equal(y, np.abs(expected["A"]))
    assert np.all(np.diff(x) >= 0)  # depth order
    table = window.sample_table.table_model
    assert table.rowCount() == 22
    zcol = table.headers.index("Z")
    assert [float(table.csv_rows[r][zcol]) for r in range(22)] == pytest.approx(expected["Z"].tolist())
    assert "22 samples" in window.readout.text()


def test_deep_scanline_pixel_and_exposure_keys(qtbot, main_window):
    path = shared_path("deep", "openexr-images", "LowResLeftView", "Balls.exr")
    window = main_window()
    open_and_wait(qtbot, window, path)
    image = window.model.image
    counts = image.sample_counts()
    ly, lx = np.unravel_index(int(np.argmax(counts)), counts.shape)
    x, y = int(lx) + image.data_window.xmin, int(ly) + image.data_window.ymin
    click_pixel(qtbot, window, x, y)
    expected = reader_samples(open_exr(path).parts[0].image, x, y)
    for slot in "RGB":
        np.testing.assert_array_equal(window.deep_graph.samples.getData(slot)[1], expected[slot])
    assert window.sample_table.table_model.rowCount() == int(counts.max())

    before = window.canvas.frame.rgba.astype(np.int64).sum()
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_E)
    assert window.model.exposure == 0.5
    assert window.view_controls.exposure_spin.value() == 0.5
    wait_rendered(qtbot, window)
    assert window.canvas.frame.tone.exposure == 0.5
    assert window.canvas.frame.rgba.astype(np.int64).sum() > before
    qtbot.keyClick(window.canvas, Qt.Key.Key_E, Qt.KeyboardModifier.ShiftModifier)
    assert window.model.exposure == 0.0
    wait_rendered(qtbot, window)
    assert window.canvas.frame.rgba.astype(np.int64).sum() == before


def test_view_keys_fit_and_one_to_one(qtbot, main_window):
    window = main_window()
    open_and_wait(qtbot, window, shared_path("deep", "oiio", "deepalpha.exr"))
    canvas = window.canvas
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert canvas.zoom() == pytest.approx(1.0, rel=0.02)
    qtbot.keyClick(canvas, Qt.Key.Key_F)
    assert canvas.view_box.viewRect().contains(canvas.content_rect())
    fitted = canvas.zoom()
    qtbot.keyClick(canvas, Qt.Key.Key_Plus)
    assert canvas.zoom() == pytest.approx(fitted * 1.25, rel=0.02)
    assert window.zoom_label.text() == f"{canvas.zoom() * 100:.0f}%"
    # the controller knows what is on screen, for the quick frames while the tone moves
    controller = window.controller
    for _ in range(6):
        qtbot.keyClick(canvas, Qt.Key.Key_Plus)
    x0, y0, x1, y1 = canvas.visible_rect()
    dw = window.model.image.data_window
    assert canvas.zoom() > 2 and controller.quick_stride() == 1
    region = controller.quick_region()
    assert region is not None and region[0] <= x0 - dw.xmin and region[2] >= x1 - dw.xmin
    assert region[1] <= y0 - dw.ymin and region[3] >= y1 - dw.ymin
    qtbot.keyClick(canvas, Qt.Key.Key_F)
    assert controller.quick_region() is None
    for _ in range(12):
        qtbot.keyClick(canvas, Qt.Key.Key_Minus)
    assert controller.quick_stride() == min(int(1 / (canvas.zoom() * canvas.devicePixelRatioF())), 8) >= 2


def test_trunks_each_part_shows_its_own_samples(qtbot, main_window):
    path = shared_path("deep", "openexr-images", "Stereo", "Trunks.exr")
    reference = open_exr(path)
    left, right = (p.image for p in reference.parts)
    assert left.data_window != right.data_window
    # a pixel inside both parts where both have samples, and different ones
    cl, cr = left.sample_counts(), right.sample_counts()
    w = min(cl.shape[1], cr.shape[1])
    both = (cl[:, :w] >= 2) & (cr[:, :w] >= 2)
    ys, xs = np.nonzero(both)
    k = len(xs) // 2
    x, y = int(xs[k]) + left.data_window.xmin, int(ys[k]) + left.data_window.ymin
    window = main_window()
    open_and_wait(qtbot, window, path)
    click_pixel(qtbot, window, x, y)
    for index, image in enumerate((left, right)):
        window.part_selector.setCurrentIndex(index)
        wait_rendered(qtbot, window)
        assert window.model.part_index == index and window.canvas.frame.key[2] == index
        assert window.model.current_pixel == (x, y)
        expected = reader_samples(image, x, y)
        gx, gy = window.deep_graph.samples.getData("R")
        np.testing.assert_array_equal(gx, expected["Z"])
        np.testing.assert_array_equal(gy, expected["R"])
        assert window.sample_table.table_model.rowCount() == len(expected["Z"])
        assert reference.parts[index].header.label in window.windowTitle()


def test_damaged_file_shows_error_and_keeps_old_image(qtbot, main_window):
    good = shared_path("deep", "oiio", "deepalpha.exr")
    folder = shared_path("damaged", "openexr-images")
    window = main_window()
    open_and_wait(qtbot, window, good)
    doc, frame = window.model.document, window.canvas.frame
    for damaged in sorted(folder.iterdir()):
        window.banner.dismiss()
        window.open_file(damaged)
        qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=30000)  # noqa: B023
        text = window.banner.text
        assert damaged.name in text and "\n" not in text
        assert window.statusBar().currentMessage() == text
        assert window.model.document is doc and window.canvas.frame is frame
        assert "deepalpha.exr" in window.windowTitle()


def test_missing_file_error(qtbot, main_window, tmp_path):
    window = main_window()
    window.open_file(tmp_path / "nope.exr")
    qtbot.waitUntil(window.banner.isVisible, timeout=10000)
    assert "nope.exr" in window.banner.text
    assert window.model.document is None


def test_cancelled_load_changes_nothing(qtbot, main_window):
    path = shared_path("deep", "openexr-images", "Stereo", "Trunks.exr")
    window = main_window()
    window.open_file(path)
    window.task_progress.cancel()  # before the result can be delivered
    assert wait_for_pool(window.controller.pool, 30000)
    qtbot.wait(50)
    assert window.model.document is None and not window.controller.busy and not window.banner.isVisible()


def test_reload_keeps_view_and_pixel_and_recent_files(qtbot, main_window, settings, tmp_path):
    src = shared_path("deep", "oiio", "deepalpha.exr")
    path = tmp_path / "copy.exr"
    shutil.copy(src, path)
    window = main_window()
    open_and_wait(qtbot, window, path)
    assert settings.recent_files()[0] == str(path)
    window.model.set_view(View("samples"))
    window.model.set_current_pixel((104, 64))
    first = window.model.document
    window.reload_action.trigger()
    qtbot.waitUntil(lambda: window.model.document is not first, timeout=30000)
    wait_rendered(qtbot, window)
    assert window.model.view.mode == "samples" and window.model.current_pixel == (104, 64)
    assert window.sample_table.table_model.rowCount() == 22


def test_reload_when_file_changes_on_disk(qtbot, main_window, tmp_path):
    path = tmp_path / "watched.exr"
    shutil.copy(shared_path("deep", "oiio", "deepalpha.exr"), path)
    window = main_window()
    open_and_wait(qtbot, window, path)
    assert str(path) in window.controller.watched_files()
    replacement = shared_path("deep", "oiio", "tinydeep.exr")
    tmp = tmp_path / "watched.tmp"
    shutil.copy(replacement, tmp)
    os.replace(tmp, path)  # how renderers and our own writer update files
    qtbot.waitUntil(lambda: window.model.image is not None and window.model.image.width == 4, timeout=15000)
    wait_rendered(qtbot, window)


def test_drop_a_file_opens_it(qtbot, main_window):
    path = shared_path("deep", "oiio", "tinydeep.exr")
    window = main_window()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    qtbot.waitUntil(lambda: window.model.document is not None, timeout=10000)
    assert window.model.document.path == str(path)


def test_window_layout_persists(qtbot, main_window, settings):
    window = main_window()
    window.resize(760, 560)  # the offscreen screen is 800x600
    window.graph_dock.hide()
    window.close()
    again = main_window()
    assert (again.width(), again.height()) == (760, 560)
    assert not again.graph_dock.isVisible()
    assert isinstance(settings, ViewerSettings)


def test_open_demo_menu(qtbot, main_window, demo_dir):
    window = main_window()
    window.demo_crypto_action.trigger()
    wait_rendered(qtbot, window)
    assert os.path.basename(window.model.document.path) == "demo.exr"
    assert str(demo_dir) in window.model.document.path
    window.demo_deep_action.trigger()
    qtbot.waitUntil(lambda: window.model.document.path.endswith("demo.deep.exr"), timeout=30000)
    wait_rendered(qtbot, window)
    assert window.model.is_deep


def test_run_gui_without_a_file_opens_the_demo(tmp_path, demo_dir):
    """The real entry point, in its own process (an event loop that quits can't be reused)."""
    script = textwrap.dedent("""
        import sys
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication
        from app.gui import make_application, run_gui

        make_application()  # timers need the application; run_gui reuses it
        from app.main_window import MainWindow

        def poll():
            windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
            if not windows or windows[0].model.frame is None:
                QTimer.singleShot(50, poll)
                return
            print("opened", windows[0].model.document.path, windows[0].windowTitle())
            windows[0].close()
            QApplication.instance().quit()

        QTimer.singleShot(50, poll)
        QTimer.singleShot(50000, lambda: QApplication.instance().exit(3))
        sys.exit(run_gui(None))
    """)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", DEEPSCOPE_CACHE=str(demo_dir),
               XDG_CONFIG_HOME=str(tmp_path / "config"), HOME=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env,
                         cwd=str(Path(__file__).resolve().parents[2]))
    assert out.returncode == 0, out.stderr[-3000:]
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("opened ")][0]
    assert str(demo_dir) in line and "demo.deep.exr" in line
    assert (tmp_path / "config" / "Deepscope" / "Deepscope.conf").exists()  # settings went to the sandbox
