"""IdManifestPanel: tables per source, checkboxes both ways, filtering, queries, tabs, pick and preview controls."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from app.deepid_model import DeepIdModel
from app.document import DocumentModel
from core.exr_read import open_exr
from tests.gui.helpers import make_deep, make_document
from tests.shared_data import shared_path
from widgets.idmanifest_panel import IdManifestPanel

pytestmark = pytest.mark.gui


def make_panel(qtbot, document) -> tuple[DocumentModel, DeepIdModel, IdManifestPanel]:
    doc = DocumentModel()
    ids = DeepIdModel(doc)
    panel = IdManifestPanel(ids)
    qtbot.addWidget(panel)
    panel.resize(420, 600)
    panel.show()
    doc.set_document(document)
    qtbot.waitUntil(lambda: not ids.busy, timeout=30000)
    return doc, ids, panel


def shown_rows(tab) -> list[list[str]]:
    model = tab.table_model
    return [[model.index(r, c).data() for c in range(model.columnCount())] for r in range(model.rowCount())]


def check_state(tab, value: int):
    row = tab.table_model.row_of(value)
    return tab.table_model.index(row, 0).data(Qt.ItemDataRole.CheckStateRole)


def test_tables_show_each_group(qtbot):
    path = shared_path("deepid", "openexr", "42.deep.exr")
    doc, ids, panel = make_panel(qtbot, open_exr(path))
    manifest = ids.manifest
    assert [panel.tabs.tabText(i) for i in range(panel.tabs.count())] == ["model", "material", "particleid"]
    model_tab = panel.source_tabs["group:0"]
    assert model_tab.table_model.headers == ["id", "model", "samples", "coverage"]
    rows = shown_rows(model_tab)
    assert [(r[0], r[1]) for r in rows] == [(f"{v:08x}", e[0]) for v, e in sorted(manifest.groups[0].entries.items())]
    counts = {int(v): int(c) for v, c in zip(*np.unique(doc.image.channels["modelid"], return_counts=True),
                                               strict=True)}
    assert [int(r[2]) for r in rows] == [counts[v] for v in sorted(manifest.groups[0].entries)]
    particles = panel.source_tabs["group:2"]
    assert particles.table_model.headers == ["id", "samples", "coverage"]  # no components
    assert particles.table_model.rowCount() == len(np.unique(doc.image.channels["particleid"]))
    assert panel.stack.currentWidget() is panel.tabs and panel.pick_button.isEnabled()
    assert "0 of 6 selected" in model_tab.count.text()


def test_64_bit_ids_are_16_hex_digits(qtbot):
    doc, ids, panel = make_panel(qtbot, open_exr(shared_path("deepid", "openexr", "64.deep.exr")))
    rows = shown_rows(panel.source_tabs["group:0"])
    assert rows and all(len(r[0]) == 16 for r in rows)
    assert {int(r[0], 16) for r in rows} == set(ids.manifest.groups[0].entries)
    assert all(len(r[0]) == 8 for r in shown_rows(panel.source_tabs["group:2"]))


def test_checkboxes_and_model_agree(qtbot):
    doc, ids, panel = make_panel(qtbot, open_exr(shared_path("deepid", "openexr", "42.deep.exr")))
    tab = panel.source_tabs["group:1"]
    blue = next(v for v, e in ids.manifest.groups[1].entries.items() if e == ("blue",))
    row = tab.table_model.row_of(blue)
    tab.table_model.setData(tab.table_model.index(row, 0), Qt.CheckState.Checked.value, Qt.ItemDataRole.CheckStateRole)
    assert ids.checked_ids("group:1") == {blue}
    assert "1 of 7 selected" in tab.count.text() and "1 material id" in panel.status.text()
    ids.set_ids("group:1", set())
    assert check_state(tab, blue) == Qt.CheckState.Unchecked
    ids.set_checked("group:1", [blue], True)
    assert check_state(tab, blue) == Qt.CheckState.Checked
    # clicking the checkbox in the view toggles it
    view = tab.view
    index = tab.table_model.index(row, 0)
    view.scrollTo(index)
    rect = view.visualRect(index)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(rect.left() + 10, rect.center().y()))
    assert ids.checked_ids("group:1") == set()
    panel.clear_button.click()
    assert not ids.has_selection


def test_filter_and_query(qtbot):
    doc, ids, panel = make_panel(qtbot, open_exr(shared_path("deepid", "openexr", "42.deep.exr")))
    model_tab, material_tab = panel.source_tabs["group:0"], panel.source_tabs["group:1"]
    qtbot.keyClicks(panel.query_edit, "blob")
    assert sorted(r[1] for r in shown_rows(model_tab)) == ["blob/big", "blob/medium", "blob/small"]
    assert shown_rows(material_tab) == [] and "3 shown" in model_tab.count.text()
    panel.query_edit.setText("*/big")
    assert sorted(r[1] for r in shown_rows(model_tab)) == ["blob/big", "circle/big"]
    panel.query_edit.setText("not:material:blue")
    assert "blue" not in [r[1] for r in shown_rows(material_tab)] and len(shown_rows(material_tab)) == 6
    # the check-shown button selects what the filter shows
    panel.query_edit.setText("circle")
    model_tab.check_shown.click()
    circles = {v for v, e in ids.manifest.groups[0].entries.items() if e[0].startswith("circle")}
    assert ids.checked_ids("group:0") == circles
    model_tab.uncheck_shown.click()
    assert ids.checked_ids("group:0") == set()
    # Enter applies the query as the selection
    panel.query_edit.setText("material:blue --and model:blob")
    qtbot.keyClick(panel.query_edit, Qt.Key.Key_Return)
    assert ids.query == "material:blue --and model:blob"
    assert "every --and group" in panel.status.text()
    panel.query_edit.setText("")
    assert len(shown_rows(model_tab)) == 6
    # a query that does not parse is reported and changes nothing
    panel.query_edit.setText("not:")
    panel.select_button.click()
    assert "query" in panel.message_label.text() and ids.query == "material:blue --and model:blob"


def test_tabs_pick_and_preview_controls(qtbot):
    doc, ids, panel = make_panel(qtbot, open_exr(shared_path("deepid", "openexr", "42.deep.exr")))
    panel.tabs.setCurrentIndex(1)
    assert ids.active_source == "group:1"
    ids.set_active_source("group:2")
    assert panel.tabs.currentWidget() is panel.source_tabs["group:2"]
    panel.pick_button.click()
    assert ids.pick_enabled
    ids.set_pick_enabled(False)
    assert not panel.pick_button.isChecked()
    combo = panel.preview_combo
    i = combo.findData("mask overlay")
    combo.setCurrentIndex(i)
    combo.activated.emit(i)
    assert ids.preview_mode == "mask overlay"
    ids.set_preview_mode("selected objects only")
    assert combo.currentData() == "selected objects only"
    assert panel.export_deep_action.isEnabled() and panel.export_mask_action.isEnabled()


def test_no_ids_and_flat_parts(qtbot):
    doc, ids, panel = make_panel(qtbot, make_document(make_deep([[1, 2]], with_id=False)))
    assert panel.stack.currentWidget() is panel.empty and "No id channels" in panel.empty.text()
    assert not panel.pick_button.isEnabled() and not panel.export_button.isEnabled()
    doc.set_document(open_exr(shared_path("deepid", "openexr", "manifest_id.exr")))
    qtbot.waitUntil(lambda: not ids.busy, timeout=30000)
    assert panel.stack.currentWidget() is panel.tabs and panel.tabs.tabText(0) == "model / material"
    assert panel.export_mask_action.isEnabled() and not panel.export_deep_action.isEnabled()
    rows = shown_rows(panel.source_tabs["group:0"])
    assert [r[1:3] for r in rows] == [list(e) for _, e in sorted(ids.manifest.groups[0].entries.items())]
    doc.set_document(None)
    assert panel.stack.currentWidget() is panel.empty and "No image" in panel.empty.text()


def test_default_export_names(qtbot, tmp_path):
    doc, ids, panel = make_panel(qtbot, open_exr(shared_path("deepid", "openexr", "42.deep.exr")))
    folder = str(shared_path("deepid", "openexr"))
    assert panel._default_path("_mask.exr") == f"{folder}/42_mask.exr"
    assert panel._default_path("_selection.deep.exr") == f"{folder}/42_selection.deep.exr"


def test_a_100k_entry_manifest_stays_responsive(qtbot):
    """Opening, filtering and checking in a manifest of 100,000 names (generous limits: 2 shared cores)."""
    import time

    from core.idmanifest import ChannelGroup, IdManifest, encode_id_manifest
    from core.model import Attribute

    rng = np.random.default_rng(2)
    image = make_deep(rng.integers(0, 3, (40, 50)), rng=rng)
    n = 100_000
    image.channels["id"] = rng.integers(1, n + 1, image.total_samples).astype(np.uint32)
    group = ChannelGroup(channels={"id"}, components=["object"], hash_scheme="custom", encoding_scheme="id",
                         entries={i: (f"/set/prop{i:06d}",) for i in range(1, n + 1)})
    document = make_document(image)
    document.parts[0].header.attributes["idManifest"] = Attribute(
        "idManifest", "idManifest", encode_id_manifest(IdManifest([group])))
    start = time.perf_counter()
    doc, ids, panel = make_panel(qtbot, document)
    assert time.perf_counter() - start < 15
    tab = panel.source_tabs["group:0"]
    assert tab.table_model.rowCount() == n
    start = time.perf_counter()
    panel.query_edit.setText("prop0123")  # deferred while typing: many rows
    assert tab.table_model.rowCount() == n
    qtbot.waitUntil(lambda: tab.table_model.rowCount() == 100, timeout=5000)
    assert time.perf_counter() - start < 3
    assert {r[1] for r in shown_rows(tab)} == {f"/set/prop0123{k:02d}" for k in range(100)}
    start = time.perf_counter()
    tab.check_shown.click()
    assert len(ids.checked_ids("group:0")) == 100 and time.perf_counter() - start < 2
