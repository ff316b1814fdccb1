"""The Deep IDs panel: the manifest as tables, a filter/query field, picking, preview and export.

One tab per id source of :class:`~app.deepid_model.DeepIdModel` (a manifest group, or an id
channel no group names): a table with the id in hex (16 digits for 64-bit ids) and a checkbox,
one column per manifest component, and where the id shows in the image (samples and visible
coverage). Typing in the field filters the tables (plain text, case-insensitive, over ids and
names; or the ``deepidselect`` query language); Enter (or "Select") makes the query the
selection. "Pick" makes a click on the image pick ids; the preview shows the mask over the
image or only the selected objects; the export menu writes the mask or the deep selection.
"""

from __future__ import annotations

import os

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt, QTimer
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetrics
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QStackedWidget,
    QTableView,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.deepid_model import PREVIEW_LABELS, PREVIEW_MODES, DeepIdModel, IdRow, IdSource, format_id
from core.errors import SelectionError

#: with more rows than this in all tables, filtering waits until typing pauses for FILTER_DELAY_MS
DEFER_FILTER_ROWS = 20000
FILTER_DELAY_MS = 150
MAX_NAME_WIDTH = 260
MISSING_BRUSH = QBrush(QColor(150, 150, 150))
RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

PICK_HELP = ("Pick on (and this panel shown): a click on the image adds the ids of the front-most visible "
             "sample at that pixel (in the current tab's channels); Ctrl+click or Alt+click removes them. The "
             "deep graph and sample table still follow the clicked pixel; Shift+click still pins.")
QUERY_HELP = ("Filter the tables by text (ids in hex or decimal, names), or type a deepidselect query: "
              "blue  material:blue  particleid:3  blob*  =blob/big  -blob  not:material:red  a --and b. "
              "Enter selects what the query matches.")


class IdTableModel(QAbstractTableModel):
    """The rows of one source: a checkable id column, the manifest components, samples, coverage.

    Filtering (``set_visible``) and sorting (``sort``, called by the view's header) happen here
    on plain Python lists, so a manifest of 100,000 entries stays quick: no proxy model asking
    for every cell.
    """

    def __init__(self, source: IdSource, parent=None):
        super().__init__(parent)
        self.source = source
        self.all_rows: list[IdRow] = []
        self.rows: list[IdRow] = []  # the shown rows, in the shown order
        self.visible: set[int] | None = None
        self.sort_column = 0
        self.sort_order = Qt.SortOrder.AscendingOrder
        self.checked: frozenset[int] = frozenset()
        self.headers = ["id", *(source.components or ()), "samples", "coverage"]
        self.on_check = None  # callable(id, checked) set by the panel
        self.id_font = QFont("monospace")
        self.id_font.setStyleHint(QFont.StyleHint.Monospace)

    def set_rows(self, rows: list[IdRow]) -> None:
        self.all_rows = rows
        self._rebuild()

    def set_visible(self, visible: set[int] | None) -> None:
        """Show only the rows whose id is in ``visible`` (all when None)."""
        self.visible = visible
        self._rebuild()

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self.sort_column, self.sort_order = column, order
        self._rebuild()

    def _sort_key(self, column: int):
        n_comp = len(self.source.components)
        if column <= 0 or column > n_comp + 2:
            return lambda r: r.id
        if column <= n_comp:
            k = column - 1
            return lambda r: (r.names is None, (r.names[k] if r.names and k < len(r.names) else "").lower(), r.id)
        if column == n_comp + 1:
            return lambda r: (r.samples, r.id)
        return lambda r: (r.coverage, r.id)

    def _rebuild(self) -> None:
        self.beginResetModel()
        rows = self.all_rows if self.visible is None else [r for r in self.all_rows if r.id in self.visible]
        self.rows = sorted(rows, key=self._sort_key(self.sort_column),
                           reverse=self.sort_order == Qt.SortOrder.DescendingOrder)
        self.endResetModel()

    def shown_ids(self) -> list[int]:
        return [r.id for r in self.rows]

    def set_checked(self, checked: frozenset[int]) -> None:
        if checked == self.checked:
            return
        self.checked = checked
        if self.rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.rows) - 1, 0),
                                  [Qt.ItemDataRole.CheckStateRole])

    def row_of(self, value: int) -> int | None:
        """The shown row of an id (None when filtered out or absent)."""
        for i, row in enumerate(self.rows):
            if row.id == value:
                return i
        return None

    def rowCount(self, parent: QModelIndex | None = None) -> int:  # noqa: N802 - Qt override
        return 0 if parent is not None and parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | None = None) -> int:  # noqa: N802 - Qt override
        return 0 if parent is not None and parent.isValid() else len(self.headers)

    def flags(self, index: QModelIndex):
        base = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if index.isValid() and index.column() == 0:
            base |= Qt.ItemFlag.ItemIsUserCheckable
        return base

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        col = index.column()
        n_comp = len(self.source.components)
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return format_id(row.id, self.source.bits)
            if col <= n_comp:
                if row.names is None:
                    return "—"
                return row.names[col - 1] if col - 1 < len(row.names) else ""
            if col == n_comp + 1:
                return str(row.samples) if row.samples else ""
            return f"{row.coverage:.1f}" if row.coverage else ""
        if role == Qt.ItemDataRole.CheckStateRole and col == 0:
            return Qt.CheckState.Checked if row.id in self.checked else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == 0:
                return f"{row.id} (decimal)"
            if 0 < col <= n_comp and row.names is None:
                return "no manifest entry for this id"
            if col == n_comp + 1:
                return "samples holding this id"
            if col == n_comp + 2:
                return "visible coverage: how many pixels' worth of this id shows after compositing"
        if role == Qt.ItemDataRole.ForegroundRole and 0 < col <= n_comp and row.names is None:
            return MISSING_BRUSH
        if role == Qt.ItemDataRole.FontRole and col == 0:
            return self.id_font
        if role == Qt.ItemDataRole.TextAlignmentRole and col > n_comp:
            return RIGHT
        return None

    def setData(self, index: QModelIndex, value, role: int = Qt.ItemDataRole.EditRole) -> bool:  # noqa: N802
        if not index.isValid() or index.column() != 0 or role != Qt.ItemDataRole.CheckStateRole:
            return False
        checked = Qt.CheckState(value) == Qt.CheckState.Checked if not isinstance(value, bool) else value
        if self.on_check is not None:
            self.on_check(self.rows[index.row()].id, checked)
        return True

    def headerData(self, section: int, orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.headers[section] if section < len(self.headers) else None
        return None


class _SourceTab(QWidget):
    """One tab: what the source is, its table, and how many of its ids are selected."""

    def __init__(self, source: IdSource, parent=None):
        super().__init__(parent)
        self.source = source
        self.info = QLabel(source.describe())
        self.info.setWordWrap(True)
        self.info.setStyleSheet("color: #a0a0a0;")
        self.table_model = IdTableModel(source, self)
        self.view = QTableView()
        self.view.setModel(self.table_model)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setWordWrap(False)
        vertical = self.view.verticalHeader()
        vertical.setVisible(False)
        vertical.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)  # uniform rows: no per-row measuring
        vertical.setDefaultSectionSize(20)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self.count = QLabel("")
        self.check_shown = QToolButton()
        self.check_shown.setText("Check shown")
        self.check_shown.setToolTip("Select every id the filter shows in this table")
        self.uncheck_shown = QToolButton()
        self.uncheck_shown.setText("Uncheck shown")
        footer = QHBoxLayout()
        footer.setContentsMargins(0, 0, 0, 0)
        footer.addWidget(self.count, 1)
        footer.addWidget(self.check_shown)
        footer.addWidget(self.uncheck_shown)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(2)
        layout.addWidget(self.info)
        layout.addWidget(self.view, 1)
        layout.addLayout(footer)

    def set_rows(self, rows: list[IdRow]) -> None:
        self.table_model.set_rows(rows)
        self.fit_columns()

    def fit_columns(self) -> None:
        """Widths from the widest text of every row (not only those on screen), without asking for each cell."""
        model = self.table_model
        rows = model.all_rows
        metrics = self.view.fontMetrics()
        pad = 12
        n_comp = len(self.source.components)
        id_width = QFontMetrics(model.id_font).horizontalAdvance("0" * (16 if self.source.bits > 32 else 8))
        self.view.setColumnWidth(0, id_width + pad + 16)  # the checkbox
        for k in range(n_comp):
            longest = max((r.names[k] for r in rows if r.names and k < len(r.names)), key=len, default="")
            text = max(longest, model.headers[k + 1], key=len)
            self.view.setColumnWidth(k + 1, min(metrics.horizontalAdvance(text) + pad, MAX_NAME_WIDTH))
        samples = str(max((r.samples for r in rows), default=0))
        coverage = f"{max((r.coverage for r in rows), default=0.0):.1f}"
        self.view.setColumnWidth(n_comp + 1, metrics.horizontalAdvance(max(samples, "samples", key=len)) + pad)
        self.view.setColumnWidth(n_comp + 2, metrics.horizontalAdvance(max(coverage, "coverage", key=len)) + pad)

    def update_count(self) -> None:
        total = len(self.table_model.all_rows)
        shown = self.table_model.rowCount()
        selected = len(self.table_model.checked)
        text = f"{selected} of {total} selected"
        if shown != total:
            text += f" · {shown} shown"
        self.count.setText(text)


class IdManifestPanel(QWidget):
    """The Deep IDs dock: tables of the manifest, filter and query, picking, preview, export."""

    def __init__(self, model: DeepIdModel, parent=None):
        super().__init__(parent)
        self.model = model
        self.setObjectName("idmanifest_panel")

        self.pick_button = QToolButton()
        self.pick_button.setText("Pick")
        self.pick_button.setCheckable(True)
        self.pick_button.setToolTip(PICK_HELP)
        self.pick_button.setStyleSheet("QToolButton:checked { background: #b4641e; color: white; }")
        self.preview_combo = QComboBox()
        for mode in PREVIEW_MODES:
            self.preview_combo.addItem(PREVIEW_LABELS[mode], mode)
        self.preview_combo.setToolTip("Preview the selection on the image: the mask over the image, or the "
                                      "flattened selected samples alone (true edge colours) over a checkerboard")
        self.clear_button = QToolButton()
        self.clear_button.setText("Clear")
        self.clear_button.setToolTip("Select nothing")
        self.export_button = QToolButton()
        self.export_button.setText("Export")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.export_menu = QMenu(self)
        self.export_mask_action = self.export_menu.addAction("Export Mask…", self.export_mask_dialog)
        self.export_mask_action.setToolTip("float32 A EXR with the part's windows, or a 16-bit PNG")
        self.export_deep_action = self.export_menu.addAction("Export Deep Selection…", self.export_deep_dialog)
        self.export_button.setMenu(self.export_menu)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.pick_button)
        top.addWidget(QLabel("Preview"))
        top.addWidget(self.preview_combo, 1)
        top.addWidget(self.clear_button)
        top.addWidget(self.export_button)

        self.query_edit = QLineEdit()
        self.query_edit.setPlaceholderText("filter, or query: material:blue --and model:blob")
        self.query_edit.setToolTip(QUERY_HELP)
        self.query_edit.setClearButtonEnabled(True)
        self.select_button = QPushButton("Select")
        self.select_button.setToolTip("Make the query the selection (Enter)")
        query_row = QHBoxLayout()
        query_row.setContentsMargins(0, 0, 0, 0)
        query_row.addWidget(self.query_edit, 1)
        query_row.addWidget(self.select_button)

        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.empty = QLabel("")
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.tabs)
        self.stack.addWidget(self.empty)
        self.message_label = QLabel("")
        self.message_label.setWordWrap(True)
        self.message_label.setStyleSheet("color: #c8c8a0;")
        self.help = QLabel(PICK_HELP)
        self.help.setWordWrap(True)
        self.help.setStyleSheet("color: #909090; font-size: 11px;")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(3)
        layout.addLayout(top)
        layout.addLayout(query_row)
        layout.addWidget(self.status)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.message_label)
        layout.addWidget(self.help)

        self.source_tabs: dict[str, _SourceTab] = {}

        self.pick_button.toggled.connect(model.set_pick_enabled)
        self.preview_combo.activated.connect(lambda i: model.set_preview_mode(self.preview_combo.itemData(i)))
        self.clear_button.clicked.connect(model.clear_selection)
        self.query_edit.textChanged.connect(self._on_filter_text)
        self._filter_timer = QTimer(self)  # big manifests: filter once typing pauses
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(FILTER_DELAY_MS)
        self._filter_timer.timeout.connect(lambda: self.apply_filter())
        self.query_edit.returnPressed.connect(self.select_query)
        self.select_button.clicked.connect(self.select_query)
        self.tabs.currentChanged.connect(self._on_tab_changed)

        model.sources_changed.connect(self._on_sources_changed)
        model.id_stats_changed.connect(self._on_stats_changed)
        model.selection_changed.connect(self._on_selection_changed)
        model.query_changed.connect(lambda _q: self._update_status())
        model.active_source_changed.connect(self._on_active_changed)
        model.pick_enabled_changed.connect(self._on_pick_changed)
        model.preview_mode_changed.connect(self._on_preview_changed)
        model.message.connect(self.message_label.setText)
        model.export_finished.connect(lambda _p, text: self.message_label.setText(text))
        model.export_failed.connect(lambda _p, text: self.message_label.setText(text))
        self._on_sources_changed(model.sources)
        self._on_pick_changed(model.pick_enabled)
        self._on_preview_changed(model.preview_mode)

    # ------------------------------------------------------------------ model -> panel
    def _on_sources_changed(self, sources: list[IdSource]) -> None:
        self.tabs.blockSignals(True)
        while self.tabs.count():
            widget = self.tabs.widget(0)
            self.tabs.removeTab(0)
            widget.deleteLater()
        self.source_tabs = {}
        for source in sources:
            tab = _SourceTab(source)
            tab.table_model.on_check = lambda value, checked, key=source.key: self.model.set_checked(
                key, [value], checked)
            tab.check_shown.clicked.connect(lambda _c=False, key=source.key: self.check_shown(key, True))
            tab.uncheck_shown.clicked.connect(lambda _c=False, key=source.key: self.check_shown(key, False))
            self.source_tabs[source.key] = tab
            self.tabs.addTab(tab, source.title)
            self.tabs.setTabToolTip(self.tabs.count() - 1, source.describe())
        self.tabs.blockSignals(False)
        self._on_active_changed(self.model.active_source)
        self._on_stats_changed(self.model.id_stats)
        has_ids = bool(sources)
        self.stack.setCurrentWidget(self.tabs if has_ids else self.empty)
        if not has_ids:
            self.empty.setText("No image open." if self.model.image is None else
                               "No id channels in this part: Deep IDs are UINT channels (id, objectid, materialid, "
                               "particleid, …, x.id0/x.id1 pairs, or the channels an idManifest names).")
        mask_ok, deep_ok = self.model.can_export()
        for w in (self.pick_button, self.preview_combo, self.clear_button, self.query_edit, self.select_button):
            w.setEnabled(has_ids)
        self.export_button.setEnabled(mask_ok)
        self.export_mask_action.setEnabled(mask_ok)
        self.export_deep_action.setEnabled(deep_ok)
        self.message_label.setText("")
        self._on_selection_changed(self.model.selection)

    def _on_stats_changed(self, _stats=None) -> None:
        for key, tab in self.source_tabs.items():
            tab.set_rows(self.model.rows(key))
            tab.table_model.set_checked(self.model.checked_ids(key))
        self.apply_filter(self.query_edit.text())

    def _on_selection_changed(self, _selection) -> None:
        for key, tab in self.source_tabs.items():
            tab.table_model.set_checked(self.model.checked_ids(key))
            tab.update_count()
        self._update_status()

    def _update_status(self) -> None:
        m = self.model
        if not m.sources:
            self.status.setText("")
            return
        if m.query:
            terms = [t for g in m.selection.query.groups for t in g]
            exact = len(m.selection.query.groups) > 1 or any(t.negated for t in terms)
            self.status.setText(f"Selection: query «{m.query}», {m.selected_count} matching id"
                                f"{'s' if m.selected_count != 1 else ''}"
                                + (" (a sample must match every --and group)" if exact else ""))
            return
        counts = [(s.title, len(m.checked_ids(s.key))) for s in m.sources]
        picked = [f"{n} {title} id{'s' if n != 1 else ''}" for title, n in counts if n]
        self.status.setText("Selection: " + (", ".join(picked) if picked else "nothing"))

    def _on_active_changed(self, key) -> None:
        tab = self.source_tabs.get(key)
        if tab is not None and self.tabs.currentWidget() is not tab:
            self.tabs.setCurrentWidget(tab)

    def _on_tab_changed(self, index: int) -> None:
        tab = self.tabs.widget(index)
        if isinstance(tab, _SourceTab):
            self.model.set_active_source(tab.source.key)

    def _on_pick_changed(self, enabled: bool) -> None:
        if self.pick_button.isChecked() != enabled:
            self.pick_button.setChecked(enabled)

    def _on_preview_changed(self, mode: str) -> None:
        i = self.preview_combo.findData(mode)
        if i >= 0 and self.preview_combo.currentIndex() != i:
            self.preview_combo.setCurrentIndex(i)

    # ------------------------------------------------------------------ filter and query
    def _on_filter_text(self, text: str) -> None:
        if sum(len(tab.table_model.all_rows) for tab in self.source_tabs.values()) > DEFER_FILTER_ROWS:
            self._filter_timer.start()
        else:
            self.apply_filter(text)

    def apply_filter(self, text: str | None = None) -> None:
        """Show only the rows the filter text (plain or query) matches."""
        text = self.query_edit.text() if text is None else text
        visible = self.model.filter_ids(text)
        for key, tab in self.source_tabs.items():
            tab.table_model.set_visible(None if visible is None else visible.get(key, set()))
            tab.update_count()

    def select_query(self) -> None:
        """Make the field's query the selection; a query that does not parse is reported, nothing changes."""
        try:
            self.model.apply_query(self.query_edit.text())
        except SelectionError as exc:
            self.message_label.setText(f"query: {exc}")
            return
        self.message_label.setText("")

    def check_shown(self, key: str, checked: bool) -> None:
        """Check (or uncheck) every row the filter shows in one table."""
        tab = self.source_tabs.get(key)
        if tab is not None:
            self.model.set_checked(key, tab.table_model.shown_ids(), checked)

    # ------------------------------------------------------------------ export
    def _default_path(self, suffix: str) -> str:
        doc = self.model.document.document
        if doc is None:
            return ""
        folder, name = os.path.split(doc.path)
        stem = name[:-4] if name.lower().endswith(".exr") else name
        stem = stem[:-5] if stem.lower().endswith(".deep") else stem
        return os.path.join(folder, stem + suffix)

    def export_mask_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the Deep IDs mask", self._default_path("_mask.exr"),
                                              "OpenEXR float32 A (*.exr);;16-bit PNG (*.png)")
        if path:
            self.model.export_mask(path)

    def export_deep_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the selected deep samples",
                                              self._default_path("_selection.deep.exr"), "Deep OpenEXR (*.exr)")
        if path:
            self.model.export_deep_selection(path)
