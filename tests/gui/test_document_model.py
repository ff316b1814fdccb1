"""DocumentModel: setters validate, store, and emit only on change; documents reset or keep state."""

from __future__ import annotations

import numpy as np
import pytest

from app.document import DocumentModel
from app.render import PartData, View
from core.model import Box
from tests.gui.helpers import make_deep, make_document, make_flat

pytestmark = pytest.mark.gui


class Recorder:
    """Collects every emission of the model's signals, by name."""

    NAMES = ("document_changed", "part_changed", "view_changed", "exposure_changed", "gamma_changed",
             "transfer_changed", "pixel_changed", "pinned_changed", "hover_changed", "hovered_sample_changed",
             "frame_changed")

    def __init__(self, model: DocumentModel):
        self.events: list[tuple[str, object]] = []
        for name in self.NAMES:
            getattr(model, name).connect(lambda value, name=name: self.events.append((name, value)))

    def names(self) -> list[str]:
        return [n for n, _ in self.events]

    def clear(self) -> None:
        self.events.clear()


@pytest.fixture
def model(qtbot):
    return DocumentModel()


def test_tone_setters_emit_only_on_change_and_validate(model):
    rec = Recorder(model)
    model.set_exposure(1.5)
    model.set_exposure(1.5)
    model.set_gamma(1.8)
    model.set_gamma(1.8)
    model.set_transfer("gamma")
    model.set_transfer("gamma")
    assert rec.events == [("exposure_changed", 1.5), ("gamma_changed", 1.8), ("transfer_changed", "gamma")]
    with pytest.raises(ValueError):
        model.set_transfer("rec709")
    with pytest.raises(ValueError):
        model.set_exposure(float("nan"))
    with pytest.raises(ValueError):
        model.set_gamma(float("inf"))
    model.set_exposure(1e9)
    assert model.exposure == 20.0  # clamped
    model.reset_tone()
    assert (model.exposure, model.gamma, model.transfer) == (0.0, 2.2, "srgb")


def test_pixels_emit_only_on_change(model):
    rec = Recorder(model)
    model.set_current_pixel((3, 4))
    model.set_current_pixel((3, 4))
    model.set_pinned_pixel((1, 1))
    model.set_pinned_pixel((1, 1))
    model.set_hover_pixel((2, 2))
    model.set_hover_pixel(None)
    assert [e for e in rec.events if e[0] != "hovered_sample_changed"] == [
        ("pixel_changed", (3, 4)), ("pinned_changed", (1, 1)), ("hover_changed", (2, 2)), ("hover_changed", None)]
    with pytest.raises(ValueError):
        model.set_hovered_sample(-1)


def test_new_document_resets_view_and_pixels(model):
    deep = make_deep(np.array([[1, 2], [0, 3]]))
    model.set_current_pixel((1, 1))
    model.set_pinned_pixel((0, 0))
    model.set_exposure(2.0)
    rec = Recorder(model)
    doc = make_document(deep)
    model.set_document(doc)
    assert model.document is doc and model.image is deep
    assert model.current_pixel is None and model.pinned_pixel is None
    assert model.view == View("color", "", None)
    assert model.exposure == 2.0  # tone is a viewer setting, kept across files
    assert rec.names()[0] == "document_changed"
    assert ("pixel_changed", None) in rec.events and ("pinned_changed", None) in rec.events


def test_reload_keeps_part_view_and_pixel(model):
    doc = make_document(make_flat(), make_deep(np.ones((3, 5), int)))
    model.set_document(doc)
    model.set_part(1)
    model.set_view(View("samples", "", None))
    model.set_current_pixel((2, 1))
    rec = Recorder(model)
    reloaded = make_document(make_flat(), make_deep(np.ones((3, 5), int)), mtime=2.0)
    model.set_document(reloaded, keep_state=True)
    assert model.part_index == 1 and model.view.mode == "samples" and model.current_pixel == (2, 1)
    assert "part_changed" not in rec.names() and "view_changed" not in rec.names()
    assert "pixel_changed" not in rec.names()


def test_set_view_validates(model):
    model.set_document(make_document(make_flat(), make_deep(np.ones((2, 2), int))))
    with pytest.raises(ValueError):
        model.set_view(View("samples"))  # part 0 is flat
    with pytest.raises(ValueError):
        model.set_view(View("channel", "", "nope"))
    with pytest.raises(ValueError):
        model.set_view(View("color", "nolayer"))
    with pytest.raises(ValueError):
        model.set_view(View("sparkle"))
    model.set_view(View("channel", "spec", "spec.G"))
    assert model.view == View("channel", "spec", "spec.G")
    model.set_view_mode("alpha")
    assert model.view == View("alpha", "spec", None)
    model.set_view_mode("channel")
    assert model.view == View("channel", "spec", "spec.R")  # the layer's first channel


def test_switching_part_fixes_an_invalid_view(model):
    model.set_document(make_document(make_deep(np.ones((2, 2), int)), make_flat()))
    model.set_view(View("samples"))
    rec = Recorder(model)
    model.set_part(1)
    assert model.view.mode == "color"  # the flat part has no sample count
    assert rec.names()[:2] == ["part_changed", "view_changed"]
    with pytest.raises(ValueError):
        model.set_part(2)
    model.set_view(View("channel", "spec", "spec.B"))
    model.set_part(0)
    assert model.view == View("color", "", None)  # no spec layer in part 0


def test_local_pixel_uses_data_window(model):
    image = make_deep(np.ones((2, 3), int), data_window=Box(10, 20, 12, 21), display_window=Box(0, 0, 99, 99))
    model.set_document(make_document(image))
    assert model.local_pixel((10, 20)) == (0, 0)
    assert model.local_pixel((12, 21)) == (2, 1)
    assert model.local_pixel((13, 21)) is None
    assert model.local_pixel((9, 20)) is None


def test_part_cache_is_keyed_and_cleared(model):
    doc = make_document(make_flat(), make_flat(), path="/tmp/a.exr", mtime=5.0)
    model.set_document(doc)
    data = PartData({"R": np.zeros((1, 1), np.float32)})
    model.store_part_data(("/tmp/a.exr", 5.0, 1), data)
    model.store_part_data(("/tmp/other.exr", 5.0, 0), data)  # not the open document: ignored
    model.store_part_data(("/tmp/a.exr", 4.0, 0), data)  # stale mtime: ignored
    assert model.cached_part_data(("/tmp/a.exr", 5.0, 1)) is data
    assert model.cached_part_data(("/tmp/other.exr", 5.0, 0)) is None
    assert model.cached_part_data(("/tmp/a.exr", 4.0, 0)) is None
    model.set_document(make_document(make_flat(), path="/tmp/a.exr", mtime=6.0), keep_state=True)
    assert model.cached_part_data(("/tmp/a.exr", 5.0, 1)) is None  # reload clears the file's entries


def test_pixel_profile_is_shared_recoloured_per_tone_and_dropped_with_the_document(model):
    image = make_deep(np.array([[2, 5], [0, 3]]), rng=np.random.default_rng(2))
    model.set_document(make_document(image))
    first = model.pixel_profile((1, 0))
    assert first is model.pixel_profile((1, 0))  # the graph and the table share one sort and format
    assert first.count == 5
    from app.render import pixel_profile

    colours = first.colours.copy()
    model.set_exposure(3.0)
    again = model.pixel_profile((1, 0))
    assert again is first and again.tone == model.tone
    np.testing.assert_array_equal(again.colours, pixel_profile(image, 1, 0, model.tone).colours)
    assert not np.array_equal(again.colours, colours)
    from app.document import PROFILES_KEPT

    others = [(0, 0), (0, 1), (1, 1), (5, 5), (6, 6)][:PROFILES_KEPT]
    for pixel in others[:-1]:
        model.pixel_profile(pixel)
    assert model.pixel_profile((1, 0)) is first  # used again: kept longest
    for pixel in others:  # as many other pixels as are kept: it goes
        model.pixel_profile(pixel)
    assert model.pixel_profile((1, 0)) is not first
    assert model.pixel_profile((5, 5)) is None and model.pixel_profile(None) is None  # outside; no pixel
    kept = model.pixel_profile((1, 0))
    model.set_document(make_document(make_deep(np.array([[1, 1], [1, 1]])), path="/other.exr"))
    assert model.pixel_profile((1, 0)) is not kept and model.pixel_profile((1, 0)).count == 1
    model.set_document(make_document(make_flat()))
    assert model.pixel_profile((0, 0)) is None  # flat parts have no samples
