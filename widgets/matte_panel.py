"""The matte panel: Cryptomatte layer, preview mode, picking options, the matte list, exports.

The matte list field shows and takes the Nuke gizmo's ``matteList`` syntax (comma-separated
names, double quotes around names with commas, quotes or spaces, ``<float>`` for ids with no
name, wildcards kept unexpanded); Enter applies it. Every control writes the
:class:`~app.crypto_model.CryptoModel` and follows it.
"""

from __future__ import annotations

import os

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QWidget,
)

from app.crypto_model import PREVIEW_LABELS, PREVIEW_MODES, CryptoModel, MatteResult
from core.errors import SelectionError
from core.selection import has_wildcards, parse_id_token
from widgets.matte_export_dialog import MatteExportDialog
from widgets.task_progress import TaskProgress

PICK_HELP = (
    "Pick (K): a click on the image adds the highest-coverage id at that pixel that is not yet in "
    "the matte; Ctrl+click (or Alt+click) removes the highest-coverage selected one. The click still "
    "inspects the pixel (deep graph, samples); Shift+click pins as usual. Turn Pick off to inspect "
    "without changing the matte. Picking works while this panel is shown."
)
MATTE_LIST_TIP = (
    "The Nuke matte list: names separated by commas, \"double quotes\" around names with commas, "
    "quotes or spaces, <float> for an id with no name, * ? [ ] wildcards (kept unexpanded; \\* is a "
    "literal *). Press Enter to apply."
)
ERROR_STYLE = "color: rgb(255, 110, 110);"
NOTE_STYLE = "color: rgb(170, 170, 170);"


class MattePanel(QWidget):
    """Layer selector, preview mode, Pick / wildcards / single-selection, matte list, exports."""

    def __init__(self, crypto: CryptoModel, parent=None):
        super().__init__(parent)
        self.crypto = crypto
        self.setObjectName("matte_panel")
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)  # room goes to the names
        self.last_export_dir = ""

        self.layer_combo = QComboBox()
        self.layer_combo.setObjectName("crypto_layer_combo")
        self.layer_combo.setToolTip("The Cryptomatte layer to key")
        self.preview_combo = QComboBox()
        self.preview_combo.setObjectName("crypto_preview_combo")
        for mode in PREVIEW_MODES:
            self.preview_combo.addItem(PREVIEW_LABELS[mode], mode)
        self.preview_combo.setToolTip(
            "What is drawn over the image: nothing, a colour per id, where ids mix (edges), the matte "
            "over the beauty, or the matte alone")

        self.pick_button = QToolButton()
        self.pick_button.setObjectName("crypto_pick_button")
        self.pick_button.setText("Pick")
        self.pick_button.setCheckable(True)
        self.pick_button.setToolTip(PICK_HELP)
        self.wildcards_check = QCheckBox("Wildcards")
        self.wildcards_check.setToolTip("Off: * ? [ ] in the matte list are characters of the names, not patterns")
        self.single_check = QCheckBox("Single selection")
        self.single_check.setToolTip("A pick replaces the matte with the top id at the pixel")
        options = QHBoxLayout()
        options.setContentsMargins(0, 0, 0, 0)
        options.addWidget(self.pick_button)
        options.addWidget(self.wildcards_check)
        options.addWidget(self.single_check)
        options.addStretch(1)

        self.matte_list_edit = QLineEdit()
        self.matte_list_edit.setObjectName("matte_list_edit")
        self.matte_list_edit.setPlaceholderText("pick on the image, tick names, or type a matte list")
        self.matte_list_edit.setToolTip(MATTE_LIST_TIP)
        self.copy_button = QToolButton()
        self.copy_button.setText("Copy")
        self.copy_button.setToolTip("Copy the matte list (paste it into the Nuke gizmo's matteList)")
        self.clear_button = QToolButton()
        self.clear_button.setText("Clear")
        self.clear_button.setToolTip("Empty the matte")
        matte_row = QHBoxLayout()
        matte_row.setContentsMargins(0, 0, 0, 0)
        matte_row.addWidget(self.matte_list_edit, 1)
        matte_row.addWidget(self.copy_button)
        matte_row.addWidget(self.clear_button)

        self.status_label = QLabel("")
        self.status_label.setObjectName("matte_status")
        self.status_label.setWordWrap(True)
        self.error_label = QLabel("")
        self.error_label.setObjectName("matte_error")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(ERROR_STYLE)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message_label = QLabel(PICK_HELP.split(". The click")[0] + ".")
        self.message_label.setObjectName("matte_message")
        self.message_label.setWordWrap(True)
        self.message_label.setStyleSheet(NOTE_STYLE)

        self.export_button = QPushButton("Export matte…")
        self.export_button.setToolTip("Write the matte: .exr (float32 A, the source's windows) or 16-bit .png")
        self.export_all_button = QPushButton("Export all…")
        self.export_all_button.setToolTip("Write every id (or every id a pattern matches) as its own matte file")
        self.progress = TaskProgress({"exporting": crypto.export_lane})
        self.progress.cancel_button.setToolTip("Stop exporting (files already written are complete)")
        export_row = QHBoxLayout()
        export_row.setContentsMargins(0, 0, 0, 0)
        export_row.addWidget(self.export_button)
        export_row.addWidget(self.export_all_button)
        export_row.addWidget(self.progress)
        export_row.addStretch(1)

        form = QFormLayout(self)
        form.setContentsMargins(4, 4, 4, 4)
        form.addRow("Layer", self.layer_combo)
        form.addRow("Preview", self.preview_combo)
        form.addRow("", options)
        form.addRow("Matte", matte_row)
        form.addRow(self.status_label)
        form.addRow(self.error_label)
        form.addRow(self.message_label)
        form.addRow(export_row)

        self.layer_combo.activated.connect(self._on_layer_activated)
        self.preview_combo.activated.connect(
            lambda i: crypto.set_preview_mode(self.preview_combo.itemData(i)))
        self.pick_button.toggled.connect(crypto.set_picking)
        self.wildcards_check.toggled.connect(crypto.set_wildcards)
        self.single_check.toggled.connect(crypto.set_single_selection)
        self.matte_list_edit.returnPressed.connect(self.apply_matte_list)
        self.copy_button.clicked.connect(self.copy_matte_list)
        self.clear_button.clicked.connect(crypto.clear_selection)
        self.export_button.clicked.connect(self.export_matte_dialog)
        self.export_all_button.clicked.connect(self.export_all_dialog)

        crypto.layers_changed.connect(self._on_layers_changed)
        crypto.layer_changed.connect(self._on_layer_changed)
        crypto.selection_changed.connect(self._on_selection_changed)
        crypto.wildcards_changed.connect(self._on_wildcards_changed)
        crypto.single_selection_changed.connect(self._sync_checks)
        crypto.picking_changed.connect(self._sync_checks)
        crypto.preview_mode_changed.connect(self._on_preview_mode_changed)
        crypto.matte_changed.connect(self._on_matte_changed)
        crypto.error_changed.connect(self._on_error_changed)
        crypto.message_changed.connect(self.message_label.setText)
        crypto.export_failed.connect(self._on_export_failed)
        crypto.export_finished.connect(lambda _report: self.message_label.setStyleSheet(NOTE_STYLE))
        crypto.ranks_changed.connect(lambda _ranks: self._update_enabled())
        self._on_layers_changed(crypto.layers)
        self._on_preview_mode_changed(crypto.preview_mode)
        self._sync_checks()
        self._on_error_changed(crypto.error)

    # ------------------------------------------------------------------ model -> panel
    def _on_layers_changed(self, layers) -> None:
        with QSignalBlocker(self.layer_combo):
            self.layer_combo.clear()
            for layer in layers:
                if layer.half_id_channels:
                    note = "HALF ids: cannot key"
                elif not layer.ranks:
                    note = "no rank channels"
                elif layer.manifest:
                    note = f"{len(layer.manifest)} names"
                else:
                    note = "no manifest"
                self.layer_combo.addItem(f"{self.crypto.layer_label(layer)}  ({note})")
                self.layer_combo.setItemData(self.layer_combo.count() - 1, layer.describe(),
                                             Qt.ItemDataRole.ToolTipRole)
            if not layers:
                self.layer_combo.addItem("(no Cryptomatte layer)" if self.crypto.document is not None else "")
        self._on_layer_changed(self.crypto.layer)

    def _on_layer_changed(self, layer) -> None:
        with QSignalBlocker(self.layer_combo):
            if layer is not None:
                self.layer_combo.setCurrentIndex(self.crypto.layer_index)
        self.layer_combo.setToolTip(layer.describe() if layer is not None else "The Cryptomatte layer to key")
        self._on_selection_changed(self.crypto.selection)
        self._update_enabled()

    def _on_selection_changed(self, selection) -> None:
        self.matte_list_edit.setText(self.crypto.matte_list())
        self.matte_list_edit.setStyleSheet("")
        self._update_status()

    def _on_wildcards_changed(self, _on: bool) -> None:
        self._sync_checks()
        self._update_status()

    def _sync_checks(self, *_args) -> None:
        for widget, value in ((self.pick_button, self.crypto.picking), (self.wildcards_check, self.crypto.wildcards),
                              (self.single_check, self.crypto.single_selection)):
            with QSignalBlocker(widget):
                widget.setChecked(value)

    def _on_preview_mode_changed(self, mode: str) -> None:
        with QSignalBlocker(self.preview_combo):
            self.preview_combo.setCurrentIndex(self.preview_combo.findData(mode))

    def _on_matte_changed(self, _result) -> None:
        self._update_status()

    def _on_error_changed(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.setVisible(bool(text))
        self._update_enabled()

    def _on_export_failed(self, text: str) -> None:
        self.message_label.setStyleSheet(ERROR_STYLE)
        self.message_label.setText(f"export failed: {text}")

    def _update_enabled(self) -> None:
        keyable = self.crypto.layer is not None and not self.crypto.error
        for widget in (self.matte_list_edit, self.copy_button, self.clear_button):
            widget.setEnabled(self.crypto.layer is not None)
        ready = keyable and self.crypto.ranks is not None
        self.export_button.setEnabled(ready)
        self.export_all_button.setEnabled(ready)

    def _update_status(self) -> None:
        crypto = self.crypto
        if crypto.layer is None:
            self.status_label.setText("")
            return
        sel = crypto.effective_selection()
        n = len(sel.ids)
        parts = [f"{n} id{'s' if n != 1 else ''} selected"]
        result: MatteResult | None = crypto.matte
        if result is not None and n and len(result.ids) == n:
            parts.append(f"matte covers {result.pixels} pixels (sum {result.total:.6g})")
        unmatched = sel.unmatched()
        empty = [t for t in unmatched if has_wildcards(t) and parse_id_token(t) is None]
        unknown = [t for t in unmatched if t not in empty]
        if empty:
            parts.append("matches no name: " + ", ".join(empty))
        if unknown and crypto.layer.manifest:
            parts.append("not in the manifest (keyed by the hash of the name): " + ", ".join(unknown))
        self.status_label.setText(" · ".join(parts))

    # ------------------------------------------------------------------ panel -> model
    def _on_layer_activated(self, index: int) -> None:
        if 0 <= index < len(self.crypto.layers):
            self.crypto.set_layer(index)

    def apply_matte_list(self) -> bool:
        """Apply the matte list text; a text that does not parse is shown in red and kept."""
        try:
            self.crypto.set_matte_list(self.matte_list_edit.text())
        except SelectionError as exc:
            self.matte_list_edit.setStyleSheet("border: 1px solid rgb(255, 110, 110);")
            self.message_label.setStyleSheet(ERROR_STYLE)
            self.message_label.setText(str(exc))
            return False
        self._on_selection_changed(self.crypto.selection)  # show it normalised (sorted, quoted)
        return True

    def copy_matte_list(self) -> str:
        """Put the matte list on the clipboard and return it."""
        text = self.crypto.matte_list()
        QGuiApplication.clipboard().setText(text)
        self.message_label.setStyleSheet(NOTE_STYLE)
        self.message_label.setText("matte list copied" if text else "the matte list is empty")
        return text

    def _start_dir(self) -> str:
        if self.last_export_dir:
            return self.last_export_dir
        doc = self.crypto.document
        return os.path.dirname(doc.path) if doc is not None else ""

    def default_matte_name(self) -> str:
        layer = self.crypto.layer
        doc = self.crypto.document
        stem = os.path.splitext(doc.name)[0] if doc is not None else "matte"
        return f"{stem}_{layer.name if layer is not None else 'matte'}_matte.exr"

    def export_matte_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export the matte", os.path.join(self._start_dir(), self.default_matte_name()),
            "OpenEXR float32 A (*.exr);;16-bit PNG (*.png)")
        if path:
            if not os.path.splitext(path)[1]:
                path += ".exr"
            self.last_export_dir = os.path.dirname(path)
            self.crypto.export_matte(path)

    def export_all_dialog(self) -> None:
        dialog = MatteExportDialog(self.crypto, self._start_dir(), self)
        if dialog.exec():
            values = dialog.values()
            self.last_export_dir = values["folder"]
            self.crypto.export_all(**values)
        dialog.deleteLater()
