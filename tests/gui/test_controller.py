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
