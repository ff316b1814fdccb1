"""DocumentController: a part is flattened once, renders follow the latest state, errors are reported."""

from __future__ import annotations

import numpy as np
import pytest

import app.controller as controller_module
from app.controller import DocumentController, error_message
from app.document import DocumentModel
from app.render import View
from app.workers import wait_for_pool
from core.errors import ExrError
from tests.gui.helpers import make_deep, make_document, make_flat

pytestmark = pytest.mark.gui


@pytest.fixture
def setup(qtbot, monkeypatch):
    calls = []
    real = controller_module.compute_part_data

    def counting(image, progress=None, cancel=None):
        calls.append(image)
        return real(image, progress, cancel)

    monkeypatch.setattr(controller_module, "compute_part_data", counting)
    model = DocumentModel()
    controller = DocumentController(model, watch_files=False)
    yield model, controller, calls
    controller.shutdown()


def settled(model, controller):
    f = model.frame
    return (not controller.busy and f is not None and f.key == model.part_key and f.view == model.view
            and f.tone == model.tone)


def test_flatten_once_per_part_and_latest_state_wins(qtbot, setup):
    model, controller, calls = setup
    deep = make_deep(np.random.default_rng(2).integers(0, 5, (16, 16)))
    flat = make_flat()
    model.set_document(make_document(deep, flat))
    for e in (0.5, 1.0, 1.5, 2.0):  # while the part is being flattened
        model.set_exposure(e)
    model.set_view(View("alpha"))
    qtbot.waitUntil(lambda: settled(model, controller), timeout=30000)
    assert [id(i) for i in calls] == [id(deep)]
    assert model.frame.tone.exposure == 2.0 and model.frame.view.mode == "alpha"
    for e in (0.0, -1.0, 3.0):
        model.set_exposure(e)
    model.set_view(View("samples"))
    qtbot.waitUntil(lambda: settled(model, controller), timeout=30000)
    assert len(calls) == 1  # cached
    model.set_part(1)
    qtbot.waitUntil(lambda: settled(model, controller), timeout=30000)
    model.set_part(0)
    qtbot.waitUntil(lambda: settled(model, controller), timeout=30000)
    assert model.view.mode == "color"  # the flat part could not show sample counts
    model.set_view(View("samples"))
    qtbot.waitUntil(lambda: settled(model, controller), timeout=30000)
    assert [id(i) for i in calls] == [id(deep), id(flat)]  # part 0 came from the cache
    np.testing.assert_array_equal(model.frame.values["samples"], deep.sample_counts())


def test_tone_changes_give_quick_frames_then_the_full_one_when_zoomed_out(qtbot, setup):
    from app.render import RenderRequest, render_frame

    model, controller, _calls = setup
    deep = make_deep(np.random.default_rng(4).integers(0, 5, (21, 34)))
    model.set_document(make_document(deep))
    controller.set_display_view(0.3)  # 3 image pixels per screen pixel
    assert controller.quick_stride() == 3
    # (on a cold numba cache the quick kernel compiles for seconds: the full frame, 150 ms after
    # the last change, would then replace the quick one before it is shown; so the tone "rests"
    # only once the quick frame is in)
    controller.quick_settle_ms = 60_000
    qtbot.waitUntil(lambda: settled(model, controller), timeout=30000)
    assert model.frame.stride == 1  # the first frame of a view is a full one
    frames = []
    model.frame_changed.connect(frames.append)
    model.set_exposure(1.25)
    qtbot.waitUntil(lambda: bool(frames), timeout=30000)
    assert controller.busy  # the full frame is still to come
    controller.quick_settle_ms = 10
    qtbot.waitUntil(lambda: settled(model, controller), timeout=30000)
    quick, full = frames[0], frames[-1]
    assert quick.stride == 3 and quick.tone.exposure == 1.25 and full.stride == 1 and full.tone.exposure == 1.25
    data = model.cached_part_data(model.part_key)
    want = render_frame(RenderRequest(model.part_key, deep, model.view, model.tone, data)).frame
    np.testing.assert_array_equal(full.rgba, want.rgba)
    ys, xs = np.arange(21) // 3 * 3, np.arange(34) // 3 * 3
    np.testing.assert_array_equal(quick.rgba, want.rgba[ys][:, xs])
    assert quick.rgba.shape == want.rgba.shape
    # zoomed in, or a view that does not depend on the tone: full frames only
    for zoom, view in ((0.6, View("color")), (0.3, View("samples"))):
        controller.set_display_view(zoom)
        model.set_view(view)
        qtbot.waitUntil(lambda: settled(model, controller), timeout=30000)
        frames.clear()
        model.set_exposure(model.exposure + 0.5)
        qtbot.waitUntil(lambda: settled(model, controller), timeout=30000)
        assert frames and all(f.stride == 1 for f in frames)
    assert controller.quick_stride() == 3
    controller.set_display_view(0.01)
    assert controller.quick_stride() == controller_module.QUICK_MAX_STRIDE


def test_quick_frames_of_a_zoomed_in_view_cover_what_is_on_screen(qtbot, setup):
    from app.controller import QUICK_MARGIN
    from app.render import QUICK_COARSE, RenderRequest, render_frame

    model, controller, _calls = setup
    deep = make_deep(np.random.default_rng(6).integers(0, 5, (70, 90)))
    model.set_document(make_document(deep))
    dw = deep.data_window
    # 2 screen pixels per image pixel, showing image columns 40.5-60.2 and rows 30-40.7
    controller.quick_settle_ms = 60_000  # (see above)
    controller.set_display_view(2.0, (dw.xmin + 40.5, dw.ymin + 30.0, dw.xmin + 60.2, dw.ymin + 40.7))
    region = (40 - QUICK_MARGIN, 30 - QUICK_MARGIN, 61 + QUICK_MARGIN, 41 + QUICK_MARGIN)
    assert controller.quick_stride() == 1 and controller.quick_region() == region
    qtbot.waitUntil(lambda: settled(model, controller), timeout=30000)
    frames = []
    model.frame_changed.connect(frames.append)
    model.set_exposure(-0.75)
    qtbot.waitUntil(lambda: bool(frames), timeout=30000)
    controller.quick_settle_ms = 10
    qtbot.waitUntil(lambda: settled(model, controller), timeout=30000)
    quick, full = frames[0], frames[-1]
    assert quick.quick and quick.region == region and quick.stride == 1 and not full.quick
    data = model.cached_part_data(model.part_key)
    want = render_frame(RenderRequest(model.part_key, deep, model.view, model.tone, data)).frame.rgba
    np.testing.assert_array_equal(full.rgba, want)
    x0, y0, x1, y1 = region
    np.testing.assert_array_equal(quick.rgba[y0:y1, x0:x1], want[y0:y1, x0:x1])  # on screen: exact
    ys, xs = np.arange(70) // QUICK_COARSE * QUICK_COARSE, np.arange(90) // QUICK_COARSE * QUICK_COARSE
    outside = np.ones((70, 90), bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(quick.rgba[outside], want[ys][:, xs][outside])
    # the whole image on screen at full size: no quick frames
    controller.set_display_view(1.0, (dw.xmin - 5.0, dw.ymin - 5.0, dw.xmax + 6.0, dw.ymax + 6.0))
    assert controller.quick_region() is None and controller.quick_stride() == 1
    frames.clear()
    model.set_exposure(0.25)
    qtbot.waitUntil(lambda: settled(model, controller), timeout=30000)
    assert frames and not any(f.quick for f in frames)


def test_a_view_change_during_quick_frames_renders_in_full(qtbot, setup):
    model, controller, _calls = setup
    model.set_document(make_document(make_deep(np.random.default_rng(5).integers(0, 4, (12, 12)))))
    controller.set_display_view(0.25)
    qtbot.waitUntil(lambda: settled(model, controller), timeout=30000)
    model.set_exposure(0.75)
    model.set_view(View("alpha"))
    qtbot.waitUntil(lambda: settled(model, controller), timeout=30000)
    assert model.frame.stride == 1 and model.frame.view.mode == "alpha" and model.frame.tone.exposure == 0.75


def test_no_document_clears_the_frame(qtbot, setup):
    model, controller, calls = setup
    model.set_document(make_document(make_flat()))
    qtbot.waitUntil(lambda: settled(model, controller), timeout=30000)
    model.set_document(None)
    qtbot.waitUntil(lambda: model.frame is None and not controller.busy, timeout=5000)


def test_load_failure_leaves_the_model_alone(qtbot, setup, tmp_path):
    model, controller, calls = setup
    doc = make_document(make_flat())
    model.set_document(doc)
    bad = tmp_path / "bad.exr"
    bad.write_bytes(b"not an exr at all")
    with qtbot.waitSignal(controller.load_failed, timeout=10000) as blocker:
        controller.open(bad)
    path, message = blocker.args
    assert path == str(bad) and message.startswith(str(bad)) and "\n" not in message
    assert model.document is doc
    assert wait_for_pool(controller.pool, 10000)


def test_error_message_is_one_line():
    assert error_message("/a.exr", ExrError("/a.exr", "bad\nthing")) == "/a.exr: bad thing"
    assert error_message("/a.exr", FileNotFoundError(2, "No such file or directory")) == (
        "/a.exr: No such file or directory")
    assert error_message("/a.exr", ValueError("x\ny")) == "/a.exr: ValueError: x y"
