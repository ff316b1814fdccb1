"""SampleTable: one row per sample in depth order, every channel, ids in hex, CSV copy, highlight."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QAbstractItemView

from app.document import DocumentModel
from tests.gui.helpers import EventSpy, make_deep, make_document, make_flat
from widgets.sample_table import HIGHLIGHT, SampleTable

pytestmark = pytest.mark.gui


@pytest.fixture
def deep_setup(qtbot):
    model = DocumentModel()
    image = make_deep(np.array([[2, 5], [0, 1]]), rng=np.random.default_rng(5))
    model.set_document(make_document(image))
    table = SampleTable(model)
    qtbot.addWidget(table)
    table.show()
    return model, table, image


def cell(table, row, col):
    return table.table_model.data(table.table_model.index(row, col))


def test_rows_are_the_pixel_samples(deep_setup):
    model, table, image = deep_setup
    model.set_current_pixel((1, 0))
    a, b = int(image.offsets[1]), int(image.offsets[2])
    headers = table.table_model.headers
    assert headers[:4] == ["#", "kind", "Z", "ZBack"]
    assert set(image.channels) <= set(headers)
    assert headers[-1] == "opacity"
    assert table.table_model.rowCount() == b - a == 5
    for r in range(5):
        s = a + r
        assert cell(table, r, 0) == str(r)
        assert cell(table, r, headers.index("Z")) == f"{image.channels['Z'][s]:.6g}"
        assert cell(table, r, headers.index("R")) == f"{image.channels['R'][s]:.6g}"
        assert cell(table, r, headers.index("id")) == f"0x{int(image.channels['id'][s]):08x}"
        vol = image.channels["ZBack"][s] > image.channels["Z"][s]
        assert cell(table, r, 1) == ("volume" if vol else "point")
    assert "5 samples" in table.caption.text()


def test_copy_as_csv_round_trips_values(qtbot, deep_setup):
    model, table, image = deep_setup
    model.set_current_pixel((1, 0))
    a = int(image.offsets[1])
    text = table.copy_csv()
    assert QGuiApplication.clipboard().text() == text
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:]
    assert len(body) == 5
    for r, row in enumerate(body):
        for name in ("Z", "R", "A"):
            assert np.float32(float(row[header.index(name)])) == image.channels[name][a + r]
        assert int(row[header.index("id")], 16) == int(image.channels["id"][a + r])
    # with a selection, only the selected rows
    # (select explicitly: selectRow() extends the selection when Qt thinks Shift is held, which
    # an earlier test's shift-click can leave behind)
    flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
    table.view.selectionModel().select(table.table_model.index(3, 0), flags)
    rows = list(csv.reader(io.StringIO(table.copy_csv())))
    assert len(rows) == 2 and rows[1][0] == "3"


def test_ctrl_c_copies(qtbot, deep_setup):
    model, table, image = deep_setup
    model.set_current_pixel((0, 0))
    QGuiApplication.clipboard().setText("")
    table.view.setFocus()
    qtbot.waitUntil(table.view.hasFocus, timeout=2000)
    qtbot.keyClick(table.view, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert QGuiApplication.clipboard().text().splitlines()[0].startswith("#,kind,Z")


def test_hovered_sample_highlights_row_and_row_hover_sets_it(qtbot, deep_setup):
    model, table, image = deep_setup
    model.set_current_pixel((1, 0))
    model.set_hovered_sample(3)
    brush = table.table_model.data(table.table_model.index(3, 2), Qt.ItemDataRole.BackgroundRole)
    assert brush is not None and brush.color() == HIGHLIGHT
    assert table.table_model.data(table.table_model.index(2, 2), Qt.ItemDataRole.BackgroundRole) is None
    table._on_row_entered(table.table_model.index(1, 0))
    assert model.hovered_sample == 1
    model.set_current_pixel((0, 1))  # empty pixel: no rows, no highlight
    assert table.table_model.rowCount() == 0 and model.hovered_sample is None


def test_flat_pixel_lists_channel_values(qtbot):
    model = DocumentModel()
    flat = make_flat(3, 4)
    model.set_document(make_document(flat))
    table = SampleTable(model)
    qtbot.addWidget(table)
    model.set_current_pixel((2, 1))
    assert table.table_model.headers == ["channel", "value", "type"]
    names = [cell(table, r, 0) for r in range(table.table_model.rowCount())]
    assert names == ["R", "G", "B", "Z", "id", "A", "spec.R", "spec.G", "spec.B"]  # grouped like tev
    for r, name in enumerate(names):
        v = flat.channels[name][1, 2]
        expected = f"0x{int(v):08x}" if name == "id" else f"{v:.6g}"
        assert cell(table, r, 1) == expected
    assert table.view.selectionBehavior() == QAbstractItemView.SelectionBehavior.SelectRows


def test_clicking_between_pixels_replaces_rows_in_place(qtbot, deep_setup):
    """Same columns: rows are inserted, removed and changed (no model reset, which would reset the
    header and lay the view out again); other columns: a reset."""
    model, table, image = deep_setup
    tm = table.table_model
    signals = []
    for name in ("modelReset", "rowsInserted", "rowsRemoved", "dataChanged"):
        getattr(tm, name).connect(lambda *a, name=name: signals.append(name))
    model.set_current_pixel((1, 0))  # 5 samples
    widths = [table.view.horizontalHeader().sectionSize(c) for c in range(tm.columnCount())]
    signals.clear()
    model.set_current_pixel((0, 0))  # 2 samples
    assert "modelReset" not in signals and "rowsRemoved" in signals
    assert tm.rowCount() == 2 and cell(table, 1, 0) == "1"
    a = int(image.offsets[0])
    assert cell(table, 0, tm.headers.index("Z")) == f"{image.channels['Z'][a]:.6g}"
    signals.clear()
    model.set_current_pixel((1, 0))
    assert "modelReset" not in signals and "rowsInserted" in signals and tm.rowCount() == 5
    assert [table.view.horizontalHeader().sectionSize(c) for c in range(tm.columnCount())] == widths
    signals.clear()
    model.set_current_pixel((0, 1))  # no samples
    assert tm.rowCount() == 0
    model.set_current_pixel((1, 1))
    assert tm.rowCount() == 1
    signals.clear()
    model.set_document(make_document(make_flat()))
    model.set_current_pixel((1, 1))
    assert "modelReset" in signals and tm.headers == ["channel", "value", "type"]


def test_caption_changes_do_not_relayout_the_table(qtbot, deep_setup):
    """The caption is a fixed-height line: a new text repaints it and nothing else."""
    from PySide6.QtCore import QEvent

    model, table, image = deep_setup
    model.set_current_pixel((1, 0))
    qtbot.wait(20)
    height = table.caption.height()
    with EventSpy(table, QEvent.Type.LayoutRequest) as requests:
        table.caption.setText("a much longer caption than before, " * 5)
        qtbot.wait(20)
    assert requests == [] and table.caption.height() == height
    assert table.caption.toolTip().startswith("a much longer caption")
