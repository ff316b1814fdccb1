"""The Cryptomatte panels as widgets: the manifest panel (filter, list, tree, checkboxes, count,
speed on 100k names), the matte panel (layers, matte list round trip, clipboard, options,
errors), the id stack, and the export-all dialog and export."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from app.crypto_model import CryptoModel
from app.document import DocumentModel
from core.cryptomatte import layer_matte
from core.exr_read import open_exr
from core.hashing import crypto_hash, layer_key
from core.model import Box, PixelType
from core.selection import Selection, format_id, parse_matte_list
from core.writer import write_flat
from tests.shared_data import shared_path
from widgets.id_stack import IdStackView
from widgets.manifest_panel import ManifestPanel
from widgets.matte_export_dialog import MatteExportDialog
from widgets.matte_panel import MattePanel

pytestmark = pytest.mark.gui

PSYOP = "cryptomatte/psyop"
CORNELL1 = f"{PSYOP}/cornellBox_CryptoWildcard.0001.exr"


class Env:
    """A document model, a crypto model and the three panels on one file."""

    def __init__(self, qtbot, path):
        self.qtbot = qtbot
        self.document = DocumentModel()
        self.crypto = CryptoModel(self.document)
        self.manifest = ManifestPanel(self.crypto)
        self.matte = MattePanel(self.crypto)
        self.stack = IdStackView(self.crypto, self.document)
        for w in (self.manifest, self.matte, self.stack):
            qtbot.addWidget(w)
        self.document.set_document(open_exr(path))
        self.settle()

    def settle(self) -> None:
        self.qtbot.waitUntil(lambda: not self.crypto.busy, timeout=30000)


@pytest.fixture
def env(qtbot):
    made = []

    def make(path) -> Env:
        e = Env(qtbot, path)
        made.append(e)
        return e

    yield make
    for e in made:
        e.crypto.shutdown()


def shared(rel: str):
    return shared_path(*rel.split("/"))


# ============================================================ manifest panel


def test_wildcard_facts_through_the_filter(env):
    e = env(shared(CORNELL1))
    panel = e.manifest
    assert len(panel.shown_names()) == 7
    panel.filter_edit.setText("*Rect*")  # as typed: textChanged filters
    assert set(panel.shown_names()) == {"Rect_[]_right", "Rect_]_left"}
    panel.filter_edit.setText("*rect*")
    assert set(panel.shown_names()) == {"rect_[_top", "rect_][_bot"}
    panel.filter_edit.setText("sphere_?_2")  # ? matches one character: the name with a literal ? too
    assert panel.shown_names() == ["sphere_?_2"]
    panel.filter_edit.setText("RECT")  # plain text: any case
    assert len(panel.shown_names()) == 4
    panel.filter_edit.setText("5def0d04")  # an id's hex
    assert panel.shown_names() == ["has_*_asterisk"]
    # "Add pattern" puts the wildcard in the matte list unexpanded
    panel.filter_edit.setText("*Rect*")
    assert panel.add_pattern_button.isEnabled()
    panel.add_pattern_button.click()
    assert e.crypto.matte_list() == "*Rect*"
    assert set(e.crypto.selected_names()) == {"Rect_[]_right", "Rect_]_left"}
    assert set(panel.checked_names()) == {"Rect_[]_right", "Rect_]_left"}
    panel.filter_edit.setText("Rect")
    assert not panel.add_pattern_button.isEnabled()


def test_checkboxes_count_and_unnamed_rows(env):
    e = env(shared(CORNELL1))
    panel, model = e.manifest, e.manifest.list_model
    panel.filter_edit.setText("")
    row = panel.shown_names().index("has_n_asterisk")
    assert model.data(model.index(row, 0), Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Unchecked
    assert model.setData(model.index(row, 0), Qt.CheckState.Checked.value, Qt.ItemDataRole.CheckStateRole)
    assert e.crypto.selected_names() == ["has_n_asterisk"]
    assert model.data(model.index(row, 0), Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Checked
    assert "1 selected" in panel.count_label.text()
    assert model.data(model.index(row, 1)) == "976d3582"
    assert int(model.data(model.index(row, 2))) > 0  # pixels, once counted
    model.setData(model.index(row, 0), Qt.CheckState.Unchecked.value, Qt.ItemDataRole.CheckStateRole)
    assert e.crypto.selected_names() == []
    panel.select_shown_button.click()
    assert len(e.crypto.selected_ids()) == 7 and "7 selected" in panel.count_label.text()
    panel.deselect_shown_button.click()
    assert len(e.crypto.selected_ids()) == 0


def test_ids_without_names_are_listed_as_floats(env):
    e = env(shared("cryptomatte/cryptomatte-api/images/arnold_three_crypto.exr"))
    e.crypto.set_layer("crypto_asset")  # its manifest is {} and its pixels hold id 00800000
    e.settle()
    names = e.manifest.shown_names()
    assert names == [format_id(0x00800000)]
    e.manifest.filter_edit.setText("0x008")
    assert e.manifest.shown_names() == names
    model = e.manifest.list_model
    assert model.data(model.index(0, 1)) == "00800000"
    assert "no name in the manifest" in model.data(model.index(0, 0), Qt.ItemDataRole.ToolTipRole)
    model.setData(model.index(0, 0), Qt.CheckState.Checked.value, Qt.ItemDataRole.CheckStateRole)
    assert e.crypto.matte_list() == format_id(0x00800000)  # the Nuke <float> form
    e.settle()
    assert e.crypto.matte.pixels > 0


def test_tree_view_splits_on_slash(env, demo_dir):
    from core.demo import demo_paths

    e = env(demo_paths(demo_dir)["flat"])
    e.crypto.set_layer("CryptoObject")
    e.settle()
    panel = e.manifest
    panel.tree_button.click()
    assert panel.tree_mode
    tree = panel.tree_model
    top = [tree.data(tree.index(r, 0)) for r in range(tree.rowCount())]
    assert top == ["char  (2)", "fx  (301)", "props  (2)", "set  (2)"]
    fx = tree.index(1, 0)
    kids = [tree.data(tree.index(r, 0, fx)) for r in range(tree.rowCount(fx))]
    assert kids == ["dust  (300)", "fog"]
    dust = tree.index(0, 0, fx)
    assert tree.rowCount(dust) == 300 and tree.parent(dust) == fx
    assert tree.parent(tree.index(5, 0, dust)) == dust
    # checking a branch selects every name under it; the branch then shows checked
    assert tree.data(dust, Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Unchecked
    tree.setData(dust, Qt.CheckState.Checked.value, Qt.ItemDataRole.CheckStateRole)
    assert len(e.crypto.selected_ids()) == 300
    assert tree.data(dust, Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Checked
    assert tree.data(fx, Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.PartiallyChecked
    tree.setData(dust, Qt.CheckState.Unchecked.value, Qt.ItemDataRole.CheckStateRole)
    assert len(e.crypto.selected_ids()) == 0
    # the filter prunes the tree to the branches holding shown names
    panel.filter_edit.setText("p000")
    assert [tree.data(tree.index(r, 0)) for r in range(tree.rowCount())] == ["fx  (9)"]
    fx = tree.index(0, 0)
    dust = tree.index(0, 0, fx)
    assert tree.rowCount(fx) == 1 and tree.rowCount(dust) == 9
    leaf = tree.index(3, 0, dust)
    assert tree.data(leaf) == "p0004"
    tree.setData(leaf, Qt.CheckState.Checked.value, Qt.ItemDataRole.CheckStateRole)
    assert e.crypto.selected_names() == ["/fx/dust/p0004"]
    assert panel.view.isExpanded(dust)  # a small result is shown expanded
    panel.tree_button.click()
    assert not panel.tree_mode and len(panel.shown_names()) == 9


@pytest.fixture(scope="module")
def big_manifest_file(tmp_path_factory):
    """An 8x8 Cryptomatte whose sidecar manifest has 100,000 names (a few of them in the pixels)."""
    folder = tmp_path_factory.mktemp("big_manifest")
    names = [f"/set/group{i % 97:02d}/obj{i:06d}" for i in range(100_000)]
    manifest = {n: f"{crypto_hash(n):08x}" for n in names}
    (folder / "big.json").write_text(json.dumps(manifest), encoding="utf-8")
    ids = np.array([crypto_hash(n) for n in names[:64]], np.uint32).reshape(8, 8).view(np.float32)
    zeros = np.zeros((8, 8), np.float32)
    channels = {"CryptoBig00.R": ids, "CryptoBig00.G": np.ones((8, 8), np.float32),
                "CryptoBig00.B": zeros, "CryptoBig00.A": zeros}
    key = layer_key("CryptoBig")
    attrs = {f"cryptomatte/{key}/name": "CryptoBig", f"cryptomatte/{key}/hash": "MurmurHash3_32",
             f"cryptomatte/{key}/conversion": "uint32_to_float32", f"cryptomatte/{key}/manif_file": "big.json"}
    path = folder / "big.exr"
    write_flat(path, channels, Box(0, 0, 7, 7), Box(0, 0, 7, 7), {c: PixelType.FLOAT for c in channels},
               attributes=attrs)
    return path


def test_filter_of_a_100k_manifest_keeps_up_with_typing(env, big_manifest_file):
    e = env(big_manifest_file)
    panel = e.manifest
    panel.resize(400, 600)
    panel.show()
    assert len(panel.index) == 100_000 and len(panel.shown_names()) == 100_000
    for mode in ("list", "tree"):
        if mode == "tree":
            panel.tree_button.click()
        times = {}
        for text in ("o", "ob", "obj0", "obj00", "obj001", "", "*", "*obj00?2?1", "*group5*", "0x1", "x"):
            best = 1.0
            for _ in range(3):
                t = time.perf_counter()
                panel.filter_edit.setText(text)
                QApplication.processEvents()  # the view lays itself out and paints
                best = min(best, time.perf_counter() - t)
                panel.filter_edit.setText("q" if text != "q" else "")
            times[text] = best
        slow = {k: f"{v * 1000:.0f} ms" for k, v in times.items() if v > 0.05}
        assert not slow, f"{mode} filter slower than 50 ms per keystroke: {slow}"
    panel.filter_edit.setText("*obj00?2?1")
    assert len(panel.shown_names()) == 100  # obj00x2y1: 10 x 10


# ============================================================ matte panel


def test_matte_list_round_trips_special_names_and_copies(env):
    e = env(shared(f"{PSYOP}/special_chars.exr"))
    crypto, panel = e.crypto, e.matte
    manifest = crypto.layer.manifest
    assert set(manifest) == {'name containing a "quote"  ', "name_containing/slash", "равнина",
                             "name, with, comma"}
    crypto.add_ids(manifest.values())
    text = panel.matte_list_edit.text()
    assert text == crypto.matte_list()
    assert set(crypto.selected_names()) == set(manifest)
    # the text parses back to the same selection: quotes around commas, escaped quotes
    assert set(Selection(parse_matte_list(text), manifest).ids.tolist()) == set(manifest.values())
    crypto.clear_selection()
    assert panel.matte_list_edit.text() == ""
    panel.matte_list_edit.setText(text)
    assert panel.apply_matte_list()
    assert set(crypto.selected_names()) == set(manifest)
    copied = panel.copy_matte_list()
    assert copied == text and QGuiApplication.clipboard().text() == text
    # a bad text is kept for fixing, the selection is unchanged, the message says why
    panel.matte_list_edit.setText('"name, with')
    assert not panel.apply_matte_list()
    assert panel.matte_list_edit.text() == '"name, with' and "unterminated quote" in panel.message_label.text()
    assert set(crypto.selected_names()) == set(manifest)
    # a number token keys an id without a name in the manifest
    bits = manifest["равнина"]
    panel.matte_list_edit.setText(format_id(bits))
    panel.matte_list_edit.returnPressed.emit()
    assert crypto.selected_ids().tolist() == [bits]
    assert crypto.matte_list() == format_id(bits)
    e.settle()
    assert crypto.matte.total == pytest.approx(108.118, abs=1e-3)  # README per-name coverage
    assert "matte covers 147 pixels" in panel.status_label.text()


def test_options_layer_combo_and_status(env):
    e = env(shared(f"{PSYOP}/multichannel.exr"))
    crypto, panel = e.crypto, e.matte
    labels = [panel.layer_combo.itemText(i) for i in range(panel.layer_combo.count())]
    assert labels == ["crypto_asset  (2 names)", "crypto_material  (4 names)", "crypto_object  (407 names)"]
    panel.layer_combo.setCurrentIndex(2)
    panel.layer_combo.activated.emit(2)
    assert crypto.layer.name == "crypto_object"
    assert "crypto_object00" in panel.layer_combo.toolTip()  # the metadata -> channels mapping
    panel.wildcards_check.setChecked(False)
    assert not crypto.wildcards
    panel.single_check.setChecked(True)
    assert crypto.single_selection
    panel.pick_button.setChecked(False)
    assert not crypto.picking
    crypto.set_picking(True)
    assert panel.pick_button.isChecked()
    i = panel.preview_combo.findData("edges")
    panel.preview_combo.setCurrentIndex(i)
    panel.preview_combo.activated.emit(i)
    assert crypto.preview_mode == "edges"
    panel.wildcards_check.setChecked(True)
    panel.matte_list_edit.setText("nothing_like_this*, not_a_name")
    panel.apply_matte_list()
    status = panel.status_label.text()
    assert "matches no name: nothing_like_this*" in status
    assert "not in the manifest (keyed by the hash of the name): not_a_name" in status


def test_half_ids_show_the_error_and_disable_exports(env):
    e = env(shared("cryptomatte/cryptomatte-api/images/karma_cpu_solaris_one_crypto_16bit.exr"))
    panel = e.matte
    assert "HALF ids: cannot key" in panel.layer_combo.itemText(0)
    assert not panel.error_label.isHidden()
    assert "refusing to key" in panel.error_label.text() and "CryptoObject00.R" in panel.error_label.text()
    assert not panel.export_button.isEnabled() and not panel.export_all_button.isEnabled()
    e.document.set_hover_pixel((70, 40))
    assert e.stack.stack is None and e.stack.table.rowCount() == 0  # nothing read from HALF ids


def test_id_stack_follows_hover_and_marks_the_selection(env):
    e = env(shared(CORNELL1))
    view = e.stack
    e.document.set_hover_pixel((600, 389))
    assert view.rows()[0][:2] == ("has_*_asterisk", "5def0d04") and view.rows()[0][2] == 1.0
    assert "x 600  y 389" in view.title.text()
    last = view.table.rowCount() - 1
    assert view.table.item(last, 2).text() == "sum of all ranks"
    assert float(view.table.item(last, 4).text()) == pytest.approx(view.stack.total)
    assert view.table.item(0, 0).text() == ""
    e.crypto.pick(600, 389)
    assert view.table.item(0, 0).text() == "✓"
    e.document.set_hover_pixel(None)  # falls back to the clicked pixel
    e.document.set_current_pixel((350, 389))
    assert view.rows()[0][0] == "sphere_?_2"
    e.document.set_current_pixel((10, 10))  # outside the data window: empty stack, sum 0
    assert view.rows() == [] and view.table.item(0, 4).text() == "0"


# ============================================================ export all


def test_export_all_with_a_template(env, qtbot, tmp_path):
    e = env(shared(CORNELL1))
    crypto = e.crypto
    dialog = MatteExportDialog(crypto, str(tmp_path))
    qtbot.addWidget(dialog)
    dialog.pattern_edit.setText("*asterisk")
    ok = dialog.buttons.button(dialog.buttons.StandardButton.Ok)
    assert ok.isEnabled() and "2 ids" in dialog.preview_label.text()
    assert "uCryptoWildcard_has___asterisk.exr" in dialog.preview_label.text()
    dialog.template_edit.setText("{layer}.exr")
    assert not ok.isEnabled() and "needs" in dialog.preview_label.text()
    dialog.template_edit.setText("{layer}_{name}.exr")
    values = dialog.values()
    assert values == {"folder": str(tmp_path), "template": "{layer}_{name}.exr", "pattern": "*asterisk",
                      "include_empty": False}
    reports = []
    crypto.export_finished.connect(reports.append)
    assert crypto.export_all(**values) == 2
    qtbot.waitUntil(lambda: bool(reports), timeout=30000)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["uCryptoWildcard_has___asterisk.exr", "uCryptoWildcard_has_n_asterisk.exr"]
    image = crypto.layer_image
    for name, fname in (("has_*_asterisk", files[0]), ("has_n_asterisk", files[1])):
        out = open_exr(tmp_path / fname).parts[0].image
        assert out.data_window == image.data_window and out.display_window == image.display_window
        np.testing.assert_array_equal(out.channels["A"],
                                      layer_matte(crypto.layer, image, np.array([crypto.layer.manifest[name]])))
    # every id as PNG with a numbered template; names absent from the pixels are skipped
    folder = tmp_path / "png"
    folder.mkdir()
    reports.clear()
    assert crypto.export_all(folder, "{index:02d}_{hex}.png") == 7
    qtbot.waitUntil(lambda: bool(reports), timeout=30000)
    assert reports[0].count == len(os.listdir(folder)) == 7 - reports[0].skipped
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in folder.iterdir())
    failures = []
    crypto.export_failed.connect(failures.append)
    assert crypto.export_all(tmp_path, "{layer}.exr") == 0
    assert "needs" in failures[0]


def test_export_all_can_be_cancelled(env, qtbot, tmp_path):
    e = env(shared(f"{PSYOP}/multichannel.exr"))
    crypto = e.crypto
    crypto.set_layer("crypto_object")
    e.settle()
    messages = []
    crypto.message_changed.connect(messages.append)
    assert crypto.export_all(tmp_path, "{hex}.exr") == 407
    qtbot.waitUntil(lambda: len(os.listdir(tmp_path)) >= 3, timeout=30000)
    crypto.cancel_export()
    qtbot.waitUntil(lambda: crypto.export_lane.running_count == 0, timeout=30000)
    written = [p for p in tmp_path.iterdir()]
    assert 3 <= len(written) < 300
    assert not [p for p in written if p.name.endswith(".tmp")]  # every file complete
    assert "cancelled" in messages[-1]
    for p in written:  # each one a whole, readable matte
        assert open_exr(p).parts[0].image.channels["A"].shape == (128, 128)


def test_no_layers_and_no_document(env, qtbot):
    e = env(shared("deep/oiio/tinydeep.exr"))
    assert e.crypto.layers == [] and e.crypto.layer is None
    assert e.matte.layer_combo.itemText(0) == "(no Cryptomatte layer)"
    assert e.manifest.count_label.text() == "No Cryptomatte layer"
    assert e.crypto.pick(0, 0) is None and e.crypto.id_stack_at(0, 0) is None
    e.document.set_document(None)
    assert e.matte.layer_combo.itemText(0) == ""
    assert e.manifest.list_model.rowCount(QModelIndex()) == 0
