"""The sample table: every sample of the current pixel in depth order, every channel.

Deep parts: one row per sample (depth order, the same order and indices as the deep
graph), columns Z/ZBack, then the channels grouped by layer, then the accumulated opacity.
Id (UINT) channels are shown in hex. Flat parts: one row per channel with the pixel's value.
Ctrl+C or the context menu copies the table (or the selected rows) as CSV. The row of the
model's hovered sample is highlighted, and hovering a row sets it.
"""

from __future__ import annotations

import csv
import io

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QAction, QBrush, QColor, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QMenu, QTableView, QVBoxLayout, QWidget

from app.document import DocumentModel
from app.render import PixelProfile, format_value
from core.layers import group_channels
from core.model import DeepImage, PixelType
from widgets.text_line import TextLine

HIGHLIGHT = QColor(90, 80, 20)
DEPTH_COLUMNS = ("Z", "ZBack")
COLUMN_PADDING = 14  # px beyond the widest text of a column (the cell margins)
# Built once: data() runs for every visible cell and role on each repaint
_DISPLAY = Qt.ItemDataRole.DisplayRole
_BACKGROUND = Qt.ItemDataRole.BackgroundRole
_ALIGNMENT = Qt.ItemDataRole.TextAlignmentRole
_TOOLTIP = Qt.ItemDataRole.ToolTipRole
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_HIGHLIGHT_BRUSH = QBrush(HIGHLIGHT)


def _csv_value(value, pixel_type: PixelType | None) -> str:
    """Full precision for CSV: float32 round-trips with 9 significant digits."""
    if pixel_type is PixelType.UINT or np.issubdtype(np.asarray(value).dtype, np.integer):
        return f"0x{int(value):08x}"
    return f"{float(value):.9g}"


class SampleTableModel(QAbstractTableModel):
    """Rows of already formatted strings, plus full-precision text for CSV."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.headers: list[str] = []
        self.rows: list[list[str]] = []
        self.csv_rows: list[list[str]] = []
        self.highlight: int | None = None

    def set_table(self, headers: list[str], rows: list[list[str]], csv_rows: list[list[str]]) -> None:
        """Show new rows. With the same columns as before (clicking from pixel to pixel of a part)
        the rows are replaced in place: a model reset would also reset the header and make the
        view lay itself out and repaint from scratch."""
        if headers != self.headers or not self.rows or not rows:
            self.beginResetModel()
            self.headers, self.rows, self.csv_rows = headers, rows, csv_rows
            self.highlight = None
            self.endResetModel()
            return
        old, new = len(self.rows), len(rows)
        self.highlight = None
        if new < old:
            self.beginRemoveRows(QModelIndex(), new, old - 1)
            self.rows, self.csv_rows = rows, csv_rows
            self.endRemoveRows()
        elif new > old:
            self.beginInsertRows(QModelIndex(), old, new - 1)
            self.rows, self.csv_rows = rows, csv_rows
            self.endInsertRows()
        else:
            self.rows, self.csv_rows = rows, csv_rows
        self.dataChanged.emit(self.index(0, 0), self.index(min(old, new) - 1, len(headers) - 1))

    def set_highlight(self, row: int | None) -> None:
        old, self.highlight = self.highlight, row
        for r in (old, row):
            if r is not None and 0 <= r < len(self.rows):
                self.dataChanged.emit(self.index(r, 0), self.index(r, len(self.headers) - 1))

    def rowCount(self, parent: QModelIndex | None = None) -> int:  # noqa: N802 - Qt override
        return 0 if parent is not None and parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | None = None) -> int:  # noqa: N802 - Qt override
        return 0 if parent is not None and parent.isValid() else len(self.headers)

    def data(self, index: QModelIndex, role: int = _DISPLAY):
        if role == _DISPLAY:
            return self.rows[index.row()][index.column()] if index.isValid() else None
        if role == _ALIGNMENT:
            return _RIGHT if index.column() > 0 else None
        if role == _BACKGROUND:
            return _HIGHLIGHT_BRUSH if self.highlight is not None and index.row() == self.highlight else None
        if role == _TOOLTIP and index.isValid():
            return self.csv_rows[index.row()][index.column()]
        return None

    def column_texts(self, column: int) -> list[str]:
        """The header and every cell text of a column (for sizing it)."""
        return [self.headers[column], *(row[column] for row in self.rows)]

    def headerData(self, section: int, orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.headers[section] if section < len(self.headers) else None
        return None

    def to_csv(self, rows: list[int] | None = None) -> str:
        """The header and the given rows (all by default) as CSV text."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.headers)
        for r in range(len(self.rows)) if rows is None else rows:
            writer.writerow(self.csv_rows[r])
        return out.getvalue()


def deep_table(image: DeepImage, profile: PixelProfile, extra: list[tuple[str, list[str]]] | None = None,
               ) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """Headers and rows (display text and CSV text) for the samples of one deep pixel.

    ``extra`` columns (header, one text per sample) come right after the sample kind.
    """
    names = [c for c in DEPTH_COLUMNS if c in profile.values]
    names += [c for layer in group_channels(image.channels) for c in layer.channels if c not in DEPTH_COLUMNS]
    extra = list(extra or [])
    headers = ["#", "kind", *(h for h, _ in extra), *names]
    if profile.accumulated is not None:
        headers.append("opacity")
    rows, csv_rows = [], []
    for i in range(profile.count):
        kind = "volume" if profile.is_volume[i] else "point"
        row = [str(i), kind, *(texts[i] for _, texts in extra)]
        crow = list(row)
        for name in names:
            v = profile.values[name][i]
            row.append(format_value(v, image.pixel_types.get(name)))
            crow.append(_csv_value(v, image.pixel_types.get(name)))
        if profile.accumulated is not None:
            row.append(format_value(profile.accumulated[i]))
            crow.append(_csv_value(profile.accumulated[i], None))
        rows.append(row)
        csv_rows.append(crow)
    return headers, rows, csv_rows


def flat_table(image, lx: int, ly: int) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """Headers and rows for the channel values of one flat pixel (data-window-relative)."""
    headers = ["channel", "value", "type"]
    rows, csv_rows = [], []
    for layer in group_channels(image.channels):
        for name in layer.channels:
            v = image.channels[name][ly, lx]
            ptype = image.pixel_types.get(name)
            tname = ptype.name if ptype is not None else str(image.channels[name].dtype)
            rows.append([name, format_value(v, ptype), tname])
            csv_rows.append([name, _csv_value(v, ptype), tname])
    return headers, rows, csv_rows


class SampleTable(QWidget):
    """A caption and the table of the current pixel's samples (or channel values)."""

    def __init__(self, model: DocumentModel, parent=None):
        super().__init__(parent)
        self.model = model
        self.setObjectName("sample_table")
        self.caption = TextLine("Click a pixel to list its samples")
        self.table_model = SampleTableModel(self)
        self.view = QTableView()
        self.view.setModel(self.table_model)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.verticalHeader().setVisible(False)
        self.view.verticalHeader().setDefaultSectionSize(20)
        # the row count changes with every click: a scroll bar that came and went would re-lay out
        # and repaint the whole table each time (and shift the columns under the mouse)
        self.view.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        # widths from font metrics once per pixel (ResizeToContents asks the model for every cell on each layout)
        self.view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self._headers: list[str] = []  # the columns last sized: widths only grow while they stay
        self.view.setMouseTracking(True)
        self.view.entered.connect(self._on_row_entered)
        self.view.viewport().installEventFilter(self)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._show_menu)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(2)
        layout.addWidget(self.caption)
        layout.addWidget(self.view, 1)

        self.copy_action = QAction("Copy as CSV", self)
        self.copy_action.setShortcut(QKeySequence.StandardKey.Copy)
        self.copy_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.copy_action.triggered.connect(self.copy_csv)
        self.addAction(self.copy_action)

        self.profile: PixelProfile | None = None
        self.column_providers: list = []  # provider(image, profile) -> [(header, texts)]: see add_column_provider
        for signal in (model.document_changed, model.part_changed, model.pixel_changed):
            signal.connect(self.refresh)
        model.hovered_sample_changed.connect(self._on_hovered_sample_changed)
        self.refresh()

    def refresh(self, *_args) -> None:
        model = self.model
        image, pixel = model.image, model.current_pixel
        self.profile = None
        local = model.local_pixel(pixel, image) if pixel is not None else None
        if image is None or pixel is None:
            self.table_model.set_table([], [], [])
            self.caption.setText("No image" if image is None else "Click a pixel to list its samples")
            return
        if local is None:
            self.table_model.set_table([], [], [])
            self.caption.setText(f"Pixel ({pixel[0]}, {pixel[1]}): outside the data window")
            return
        if isinstance(image, DeepImage):
            self.profile = model.pixel_profile(pixel)
            extra = [col for provider in self.column_providers for col in provider(image, self.profile)]
            self.table_model.set_table(*deep_table(image, self.profile, extra))
            n = self.profile.count
            self.caption.setText(f"Pixel ({pixel[0]}, {pixel[1]}): {n} sample{'s' if n != 1 else ''}, "
                                 "front to back")
        else:
            self.table_model.set_table(*flat_table(image, *local))
            self.caption.setText(f"Pixel ({pixel[0]}, {pixel[1]}): flat part, {len(image.channels)} channels")
        self._fit_columns()
        self._on_hovered_sample_changed(model.hovered_sample)

    def _fit_columns(self) -> None:
        """Size each column to its widest text (header included), from the font's metrics.

        A column keeps its width from one pixel to the next unless the new texts need more, so
        clicking around does not make the columns jump.
        """
        tm = self.table_model
        if not tm.headers:
            return
        fresh = tm.headers != self._headers
        self._headers = list(tm.headers)
        fm = self.view.fontMetrics()
        hv = self.view.horizontalHeader()
        header_fm = hv.fontMetrics()
        for col, name in enumerate(tm.headers):
            texts = tm.column_texts(col)[1:]
            # strings of one length differ little in width: measure the few longest
            cands = sorted(set(texts), key=len, reverse=True)[:3]
            width = max([header_fm.horizontalAdvance(name), *(fm.horizontalAdvance(t) for t in cands)])
            width += COLUMN_PADDING
            if fresh or width > hv.sectionSize(col):
                hv.resizeSection(col, width)

    # ------------------------------------------------------------------ extra columns (features add theirs)
    def add_column_provider(self, provider) -> None:
        """Add columns after the sample kind: ``provider(image, profile) -> [(header, [text per sample])]``.

        Features (Deep IDs: the names of each sample's ids) add theirs; call :meth:`refresh` when
        what they show changes.
        """
        self.column_providers.append(provider)
        self.refresh()

    # ------------------------------------------------------------------ hover
    def _on_hovered_sample_changed(self, index) -> None:
        if self.profile is None:
            self.table_model.set_highlight(None)
            return
        self.table_model.set_highlight(index)
        if index is not None and 0 <= index < self.table_model.rowCount():
            self.view.scrollTo(self.table_model.index(index, 0))

    def _on_row_entered(self, index: QModelIndex) -> None:
        if self.profile is not None and index.isValid():
            self.model.set_hovered_sample(index.row())

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt override
        if obj is self.view.viewport() and event.type() == event.Type.Leave and self.profile is not None:
            self.model.set_hovered_sample(None)
        return super().eventFilter(obj, event)

    # ------------------------------------------------------------------ copy
    def selected_rows(self) -> list[int]:
        return sorted({i.row() for i in self.view.selectionModel().selectedRows()})

    def copy_csv(self) -> str:
        """Copy the selected rows (all rows when none is selected) as CSV; returns the text."""
        rows = self.selected_rows() or None
        text = self.table_model.to_csv(rows)
        QGuiApplication.clipboard().setText(text)
        return text

    def _show_menu(self, pos) -> None:
        menu = QMenu(self)
        copy_all = menu.addAction("Copy all rows as CSV")
        copy_sel = menu.addAction("Copy selected rows as CSV")
        copy_sel.setEnabled(bool(self.selected_rows()))
        chosen = menu.exec(self.view.viewport().mapToGlobal(pos))
        if chosen is copy_all:
            QGuiApplication.clipboard().setText(self.table_model.to_csv())
        elif chosen is copy_sel:
            self.copy_csv()
