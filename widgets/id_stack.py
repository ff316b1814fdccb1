"""The id stack: what every Cryptomatte rank holds at the hovered pixel, and the sum.

One row per rank that holds something (rank, preview colour, name or ``<float>``, hex id,
coverage), ids in the matte ticked, then the float32 sum of all the coverage. It follows the
pixel under the mouse and falls back to the clicked pixel when the mouse leaves the image.
Reading one pixel's ranks is cheap, so this runs in the GUI thread.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.crypto_model import CryptoModel
from app.document import DocumentModel
from core.cryptomatte import IdStack, id_colour
from core.selection import format_id

HEADERS = ("", "Rank", "Name", "Id", "Coverage")


class IdStackView(QWidget):
    """The ranks of one pixel of the current Cryptomatte layer."""

    def __init__(self, crypto: CryptoModel, document: DocumentModel, parent=None):
        super().__init__(parent)
        self.crypto = crypto
        self.document = document
        self.setObjectName("id_stack")
        self.pixel: tuple[int, int] | None = None
        self.stack: IdStack | None = None
        self.title = QLabel("")
        self.title.setObjectName("id_stack_title")
        self.table = QTableWidget(0, len(HEADERS))
        self.table.setObjectName("id_stack_table")
        self.table.setHorizontalHeaderLabels(HEADERS)
        rows = self.table.verticalHeader()
        rows.setVisible(False)
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setShowGrid(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Fixed)
        header.resizeSection(0, 22)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setToolTip("Every rank at the pixel under the mouse, highest coverage first; ✓ = in the matte")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.title)
        layout.addWidget(self.table, 1)
        self._bold = QFont()
        self._bold.setBold(True)

        document.hover_changed.connect(self.refresh)
        document.pixel_changed.connect(self.refresh)
        for signal in (crypto.layer_changed, crypto.selection_changed, crypto.ranks_changed,
                       crypto.wildcards_changed):
            signal.connect(self.refresh)
        self.refresh()

    def refresh(self, *_args) -> None:
        """Show the hovered pixel (or the clicked one)."""
        pixel = self.document.hover_pixel or self.document.current_pixel
        layer = self.crypto.layer
        self.pixel = pixel
        self.stack = None if pixel is None or layer is None else self.crypto.id_stack_at(*pixel)
        if layer is None:
            self.title.setText("No Cryptomatte layer")
        elif pixel is None:
            self.title.setText(f"{layer.name}: hover the image")
        else:
            self.title.setText(f"{layer.name} at x {pixel[0]}  y {pixel[1]}")
        self._fill()

    def _item(self, text: str, align_right: bool = False) -> QTableWidgetItem:
        item = QTableWidgetItem(text)
        if align_right:
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return item

    def _fill(self) -> None:
        table = self.table
        stack = self.stack
        if stack is None:
            table.setRowCount(0)
            return
        selected = {int(i) for i in self.crypto.selected_ids()}
        table.setRowCount(len(stack.entries) + 1)
        for row, entry in enumerate(stack.entries):
            chosen = entry.id_bits in selected
            mark = self._item("✓" if chosen else "")
            r, g, b = (min(max(c, 0.0), 1.0) for c in id_colour(entry.id_bits))
            mark.setBackground(QBrush(QColor.fromRgbF(r, g, b)))
            mark.setForeground(QBrush(QColor(0, 0, 0) if 0.3 * r + 0.6 * g + 0.1 * b > 0.5 else QColor(255, 255, 255)))
            name = entry.name if entry.name is not None else format_id(entry.id_bits)
            cells = [mark, self._item(str(entry.rank), True), self._item(name), self._item(entry.hex),
                     self._item(f"{entry.coverage:.6g}", True)]
            if entry.name is None:
                cells[2].setToolTip(f"id {entry.hex} has no name in the manifest")
            for col, cell in enumerate(cells):
                if chosen and col:
                    cell.setFont(self._bold)
                table.setItem(row, col, cell)
        last = len(stack.entries)
        total = [self._item(""), self._item(""), self._item("sum of all ranks"), self._item(""),
                 self._item(f"{stack.total:.6g}", True)]
        for col, cell in enumerate(total):
            cell.setFont(self._bold)
            table.setItem(last, col, cell)

    def rows(self) -> list[tuple[str, str, float]]:
        """(name, hex, coverage) of the rows shown, for tests and copying."""
        if self.stack is None:
            return []
        return [(e.name if e.name is not None else format_id(e.id_bits), e.hex, e.coverage)
                for e in self.stack.entries]
