"""The fast paths of the viewer's interactions give the same results as the slow ones:
a tone change recolours the deep graph's bars only, a render reuses the stacked colour planes,
a manifest index prepared in a worker filters like one built on the first keystroke."""

from __future__ import annotations

import numpy as np
import pytest

from app.crypto_model import ManifestIndex
from app.document import DocumentModel
from app.render import PixelProfile, RenderRequest, Tone, View, compute_part_data, pixel_profile, render_frame
from tests.gui.helpers import make_deep, make_document
from widgets.deep_graph import DeepGraph
from widgets.sample_table import SampleTable

pytestmark = pytest.mark.gui
KEY = ("mem.exr", 0.0, 0)


@pytest.fixture
def deep():
    return make_deep(np.array([[3, 0, 1], [6, 2, 9]]), rng=np.random.default_rng(3), negative_alpha_at=(4,))


def bar_colours(graph: DeepGraph) -> list[tuple[int, int, int]]:
    return [b.color().getRgb()[:3] for b in graph.colour_bar.opts["brushes"]]


def test_tone_change_recolours_the_bar_like_a_fresh_profile(qtbot, deep):
    model = DocumentModel()
    model.set_document(make_document(deep))
    graph = DeepGraph(model)
    qtbot.addWidget(graph)
    dw = deep.data_window
    model.set_current_pixel((2 + dw.xmin, 1 + dw.ymin))
    model.set_pinned_pixel((0 + dw.xmin, 1 + dw.ymin))
    curve_before = graph.samples.getData("R")[1].copy()
    model.set_exposure(2.5)
    model.set_transfer("linear")
    want = pixel_profile(deep, 2 + dw.xmin, 1 + dw.ymin, model.tone)
    assert bar_colours(graph) == [tuple(int(v) for v in c[:3]) for c in want.colours]
    pinned = pixel_profile(deep, dw.xmin, 1 + dw.ymin, model.tone)
    got_pinned = [b.color().getRgb()[:3] for b in graph.pinned_bar.opts["brushes"]]
    assert got_pinned == [tuple(int(v) for v in c[:3]) for c in pinned.colours]
    np.testing.assert_array_equal(graph.samples.getData("R")[1], curve_before)


def test_tone_change_keeps_the_selection_emphasis(qtbot, deep):
    model = DocumentModel()
    model.set_document(make_document(deep))
    graph = DeepGraph(model)
    qtbot.addWidget(graph)
    dw = deep.data_window
    model.set_current_pixel((2 + dw.xmin, 1 + dw.ymin))

    def first_only(_image, profile: PixelProfile):
        return np.arange(profile.count) == 0

    graph.set_sample_emphasis(first_only)
    model.set_exposure(-1.0)
    want = pixel_profile(deep, 2 + dw.xmin, 1 + dw.ymin, model.tone)
    got = bar_colours(graph)
    from PySide6.QtGui import QColor

    expect = [QColor(int(c[0]), int(c[1]), int(c[2])) for c in want.colours]
    expect = [c if i == 0 else c.darker(300) for i, c in enumerate(expect)]
    assert got == [c.getRgb()[:3] for c in expect]


def test_render_reuses_the_stacked_planes_with_the_same_result(deep):
    data = compute_part_data(deep)
    first = render_frame(RenderRequest(KEY, deep, View("color"), Tone(exposure=0.5), data))
    assert len(data.stacked) == 1
    stacked = next(iter(data.stacked.values()))
    again = render_frame(RenderRequest(KEY, deep, View("color"), Tone(exposure=-1.5), data))
    assert next(iter(data.stacked.values())) is stacked  # reused, not rebuilt
    fresh = render_frame(RenderRequest(KEY, deep, View("color"), Tone(exposure=-1.5), compute_part_data(deep)))
    np.testing.assert_array_equal(again.frame.rgba, fresh.frame.rgba)
    assert not np.array_equal(first.frame.rgba, again.frame.rgba)


def test_sample_table_columns_fit_their_widest_text(qtbot, deep):
    model = DocumentModel()
    model.set_document(make_document(deep))
    table = SampleTable(model)
    qtbot.addWidget(table)
    dw = deep.data_window
    model.set_current_pixel((2 + dw.xmin, 1 + dw.ymin))
    fm = table.view.fontMetrics()
    header = table.view.horizontalHeader()
    tm = table.table_model
    for col in range(tm.columnCount()):
        widest = max(fm.horizontalAdvance(t) for t in tm.column_texts(col)[1:])
        assert header.sectionSize(col) >= widest
    widths = [header.sectionSize(c) for c in range(tm.columnCount())]
    model.set_current_pixel((0 + dw.xmin, 0 + dw.ymin))  # same columns: widths only grow
    assert all(header.sectionSize(c) >= w for c, w in enumerate(widths))


def test_prepared_manifest_index_filters_like_a_lazy_one():
    rng = np.random.default_rng(9)
    names = [f"grp{i % 7}/Obj_{i:04d}" for i in range(300)]
    manifest = {n: int(rng.integers(1, 2**32 - 1)) for n in names}
    lazy = ManifestIndex.from_manifest(manifest)
    ready = ManifestIndex.from_manifest(manifest).prepare_search()
    some_hex = f"{int(lazy.ids[17]):08x}"
    for text in ("obj_00", "GRP3", "0x" + some_hex[:3], some_hex[:5], "grp?/Obj_01*", "zzz"):
        np.testing.assert_array_equal(ready.filter(text), lazy.filter(text))
        want = [i for i, n in enumerate(lazy.names) if text.lower() in n.lower()]
        if "*" not in text and "?" not in text and not text.startswith("0x") and text != some_hex[:5]:
            assert ready.filter(text).tolist() == want
