"""The "export every id" dialog: folder, file name template, which ids, and a preview of the names."""

from __future__ import annotations

import os

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.crypto_model import DEFAULT_TEMPLATE, TEMPLATE_FIELDS, CryptoModel, check_template, plan_export_all
from core.errors import DeepscopeError

EXAMPLES = 3


class MatteExportDialog(QDialog):
    """Asks where and how to write one matte per id; shows how many files and a few names."""

    def __init__(self, crypto: CryptoModel, folder: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.crypto = crypto
        self.setObjectName("matte_export_dialog")
        self.setWindowTitle("Export every id as its own matte")
        self.folder_edit = QLineEdit(folder)
        browse = QToolButton()
        browse.setText("…")
        browse.clicked.connect(self._browse)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(browse)
        self.template_edit = QLineEdit(DEFAULT_TEMPLATE)
        self.template_edit.setToolTip(
            "File name of each matte: " + ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
            + " ({index:04d} pads); .exr writes float32 A, .png 16-bit grey. Names are made safe for "
            "file systems (/ : spaces and the like become _); clashes get the id's hex appended.")
        self.pattern_edit = QLineEdit()
        self.pattern_edit.setPlaceholderText("every id; or a filter such as *flower* or rect")
        self.pattern_edit.setToolTip("The same filter as the manifest panel's")
        self.include_empty_check = QCheckBox("Also names with no pixels (all-zero mattes)")
        self.preview_label = QLabel("")
        self.preview_label.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        form = QFormLayout()
        form.addRow("Folder", folder_row)
        form.addRow("File names", self.template_edit)
        form.addRow("Ids", self.pattern_edit)
        form.addRow("", self.include_empty_check)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.preview_label)
        layout.addWidget(self.buttons)
        for edit in (self.folder_edit, self.template_edit, self.pattern_edit):
            edit.textChanged.connect(self._update_preview)
        self._update_preview()

    def values(self) -> dict:
        """The arguments of :meth:`CryptoModel.export_all`."""
        return {"folder": self.folder_edit.text(), "template": self.template_edit.text(),
                "pattern": self.pattern_edit.text() or None,
                "include_empty": self.include_empty_check.isChecked()}

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export mattes into", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)

    def _update_preview(self) -> None:
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        layer = self.crypto.layer
        try:
            check_template(self.template_edit.text())
            entries = self.crypto.export_entries(self.pattern_edit.text() or None)
            folder = self.folder_edit.text()
            if layer is None:
                raise DeepscopeError("no Cryptomatte layer")
            examples = plan_export_all(folder, self.template_edit.text(), layer.name, entries[:EXAMPLES],
                                       self.crypto.document.path if self.crypto.document else None)
        except DeepscopeError as exc:
            self.preview_label.setText(str(exc))
            ok.setEnabled(False)
            return
        names = ", ".join(os.path.basename(item.path) for item in examples)
        more = ", …" if len(entries) > EXAMPLES else ""
        self.preview_label.setText(f"{len(entries)} ids: {names}{more}" if entries else "no id matches")
        ok.setEnabled(bool(entries))
