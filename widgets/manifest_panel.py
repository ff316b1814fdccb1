"""The manifest panel: a Cryptomatte layer's names and ids, filterable, with checkboxes.

Rows come from :class:`app.crypto_model.ManifestIndex`: the manifest names sorted
case-insensitively, then (once the pixels are counted) the ids seen in the image that have
no name, written ``<float>`` as in the Nuke gizmo. Each row shows its preview colour, its id
in hex and the pixels it covers. A checkbox keys or un-keys the id. The list is a model over
numpy arrays, never one item object per name, so a 100k-name manifest filters per keystroke.
The tree view splits names on ``/``; checking a branch selects every name shown under it.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QAbstractItemModel, QAbstractTableModel, QModelIndex, QObject, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QStackedWidget,
    QTableView,
    QToolButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from app.crypto_model import HEX_MIN_DIGITS, CryptoModel, ManifestIndex
from core.cryptomatte import id_colours
from core.hashing import bits_to_float

COLUMNS = ("Name", "Id", "Pixels")
#: expand the whole tree when a filter leaves at most this many rows
EXPAND_LIMIT = 300
FILTER_TIP = (
    "Filter the names. Plain text finds names containing it (any case) and, written 0x… or with "
    f"{HEX_MIN_DIGITS}+ hex digits, ids by their hex. With * (any run) or ? (one character) the "
    "pattern must match the whole name, case-sensitively, exactly as the matte list keys wildcards; "
    "[ and ] are literal here."
)
Checked, Unchecked, Partial = (Qt.CheckState.Checked, Qt.CheckState.Unchecked, Qt.CheckState.PartiallyChecked)
# built once: views ask for the flags of every row they lay out
_FLAGS = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
_CHECKABLE_FLAGS = _FLAGS | Qt.ItemFlag.ItemIsUserCheckable


def _check_value(value) -> bool:
    """True when a setData value means 'checked' (Qt passes an int or a CheckState)."""
    if isinstance(value, Qt.CheckState):
        return value == Checked
    return int(value) == Checked.value


class _Rows:
    """What both item models share: the index, the checked mask, colours, fonts."""

    def __init__(self) -> None:
        self.index: ManifestIndex | None = None
        self.checked = np.zeros(0, bool)
        self.colours = np.zeros((0, 3), np.float32)
        self.italic = QFont()
        self.italic.setItalic(True)

    def set_index(self, index: ManifestIndex | None) -> None:
        self.index = index
        n = 0 if index is None else len(index)
        self.checked = np.zeros(n, bool)
        self.colours = id_colours(index.ids) if index is not None and n else np.zeros((0, 3), np.float32)

    def data(self, row: int, column: int, role: int):
        index = self.index
        if index is None or not 0 <= row < len(index):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            if column == 0:
                return index.names[row]
            if column == 1:
                return f"{int(index.ids[row]):08x}"
            if column == 2:
                return "" if index.pixels is None else str(int(index.pixels[row]))
        elif role == Qt.ItemDataRole.CheckStateRole and column == 0:
            return Checked if self.checked[row] else Unchecked
        elif role == Qt.ItemDataRole.DecorationRole and column == 0:
            r, g, b = (min(max(float(c), 0.0), 1.0) for c in self.colours[row])
            return QColor.fromRgbF(r, g, b)
        elif role == Qt.ItemDataRole.FontRole and column == 0 and not index.named[row]:
            return self.italic
        elif role == Qt.ItemDataRole.ToolTipRole:
            return self.tooltip(row)
        elif role == Qt.ItemDataRole.TextAlignmentRole and column == 2:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def tooltip(self, row: int) -> str:
        index = self.index
        bits = int(index.ids[row])
        lines = [index.names[row] if index.named[row] else f"{index.names[row]}: no name in the manifest",
                 f"id {bits:08x} = {bits_to_float(bits):.9g}"]
        if index.pixels is not None:
            lines.append(f"{int(index.pixels[row])} pixels, coverage {float(index.coverage[row]):.4g}")
        return "\n".join(lines)


class ManifestListModel(QAbstractTableModel):
    """The rows a filter shows, flat: name (checkable, colour swatch), hex id, pixels."""

    toggled = Signal(object, bool)  # id bits (np.ndarray), checked

    def __init__(self, rows: _Rows, parent: QObject | None = None):
        super().__init__(parent)
        self._rows = rows
        self.shown = np.zeros(0, np.int64)  # index rows in view order

    def reset(self, shown: np.ndarray) -> None:
        self.beginResetModel()
        self.shown = shown
        self.endResetModel()

    def checks_changed(self) -> None:
        if len(self.shown):
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.shown) - 1, 0),
                                  [Qt.ItemDataRole.CheckStateRole])

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008 - Qt signature
        return 0 if parent.isValid() else len(self.shown)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: B008
        return len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        return self._rows.data(int(self.shown[index.row()]), index.column(), role)

    def flags(self, index: QModelIndex):
        return _CHECKABLE_FLAGS if index.column() == 0 else _FLAGS

    def setData(self, index: QModelIndex, value, role=Qt.ItemDataRole.EditRole) -> bool:
        if not index.isValid() or role != Qt.ItemDataRole.CheckStateRole or self._rows.index is None:
            return False
        row = int(self.shown[index.row()])
        self.toggled.emit(self._rows.index.ids[row:row + 1].copy(), _check_value(value))
        return True

    def row_of(self, position: int) -> int:
        return int(self.shown[position])


class _Node:
    """A tree node: a path segment, its children, and (for a name) its index row."""

    __slots__ = ("label", "parent", "children", "child_map", "row", "lo", "hi")

    def __init__(self, label: str, parent: _Node | None):
        self.label = label
        self.parent = parent
        self.children: list[_Node] = []
        self.child_map: dict[str, _Node] = {}
        self.row = -1  # index row when this node is a name
        self.lo = self.hi = 0  # its names are dfs_rows[lo:hi]


class ManifestTreeModel(QAbstractItemModel):
    """The names split on ``/`` into a tree; only branches holding shown names are listed.

    Names are placed in depth-first order once (``dfs_rows``), so every branch covers a
    contiguous range: whether a branch has shown or checked names is a difference of two
    prefix sums, whatever the size of the manifest.
    """

    toggled = Signal(object, bool)

    def __init__(self, rows: _Rows, parent: QObject | None = None):
        super().__init__(parent)
        self._rows = rows
        self.root = _Node("", None)
        self.dfs_rows = np.zeros(0, np.int64)
        self._shown_sum = np.zeros(1, np.int64)
        self._checked_sum = np.zeros(1, np.int64)
        self._visible: dict[int, list[_Node]] = {}
        self._position: dict[int, int] = {}
        self._built_for: ManifestIndex | None = None

    # ---------------------------------------------------------------- building
    def build(self) -> None:
        """(Re)build the tree from the rows' index."""
        index = self._rows.index
        root = _Node("", None)
        if index is not None:
            for row, name in enumerate(index.names):
                parts = [p for p in name.split("/") if p] if index.named[row] else []
                parts = parts or [name]
                node = root
                for part in parts[:-1]:
                    child = node.child_map.get(part)
                    if child is None:
                        child = node.child_map[part] = _Node(part, node)
                        node.children.append(child)
                    node = child
                leaf = node.child_map.get(parts[-1])
                if leaf is None or leaf.row >= 0:  # the same path twice: a second leaf
                    leaf = _Node(parts[-1], node)
                    node.children.append(leaf)
                    node.child_map.setdefault(parts[-1], leaf)
                leaf.row = row
        order: list[int] = []
        stack: list[tuple[_Node, bool]] = [(root, False)]
        while stack:  # iterative depth-first walk: ranges without recursion limits
            node, done = stack.pop()
            if done:
                node.hi = len(order)
                continue
            node.lo = len(order)
            if node.row >= 0:
                order.append(node.row)
            stack.append((node, True))
            stack.extend((c, False) for c in reversed(node.children))
        self.root = root
        self.dfs_rows = np.array(order, dtype=np.int64)
        self._built_for = index

    @property
    def built_for(self) -> ManifestIndex | None:
        return self._built_for

    def reset(self, shown: np.ndarray) -> None:
        self.beginResetModel()
        mask = np.zeros(0 if self._rows.index is None else len(self._rows.index), bool)
        mask[shown] = True
        self._shown_sum = np.concatenate([[0], np.cumsum(mask[self.dfs_rows])])
        self._update_checked()
        self._visible.clear()
        self._position.clear()
        self.endResetModel()

    def _update_checked(self) -> None:
        self._checked_sum = np.concatenate([[0], np.cumsum(self._rows.checked[self.dfs_rows])])

    def checks_changed(self) -> None:
        self._update_checked()
        self._emit_check_changes(QModelIndex())

    def _emit_check_changes(self, parent: QModelIndex) -> None:
        n = self.rowCount(parent)
        if n:
            self.dataChanged.emit(self.index(0, 0, parent), self.index(n - 1, 0, parent),
                                  [Qt.ItemDataRole.CheckStateRole])

    # ---------------------------------------------------------------- structure
    def _shown_count(self, node: _Node) -> int:
        return int(self._shown_sum[node.hi] - self._shown_sum[node.lo])

    def visible_children(self, node: _Node) -> list[_Node]:
        key = id(node)
        kids = self._visible.get(key)
        if kids is None:
            kids = [c for c in node.children if self._shown_count(c) > 0]
            self._visible[key] = kids
            for i, c in enumerate(kids):
                self._position[id(c)] = i
        return kids

    def node(self, index: QModelIndex) -> _Node:
        return index.internalPointer() if index.isValid() else self.root

    def index(self, row: int, column: int, parent=QModelIndex()) -> QModelIndex:  # noqa: B008
        kids = self.visible_children(self.node(parent))
        if not 0 <= row < len(kids) or not 0 <= column < len(COLUMNS):
            return QModelIndex()
        return self.createIndex(row, column, kids[row])

    def parent(self, index=None):  # QObject.parent() without an argument
        if index is None:
            return QObject.parent(self)
        if not index.isValid():
            return QModelIndex()
        up = index.internalPointer().parent
        if up is None or up is self.root:
            return QModelIndex()
        self.visible_children(up.parent)
        return self.createIndex(self._position[id(up)], 0, up)

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008
        if parent.isValid() and parent.column() != 0:
            return 0
        return len(self.visible_children(self.node(parent)))

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: B008
        return len(COLUMNS)

    def hasChildren(self, parent=QModelIndex()) -> bool:  # noqa: B008
        node = self.node(parent)
        if not node.children:
            return False
        own = int(self._shown_sum[node.lo + 1] - self._shown_sum[node.lo]) if node.row >= 0 else 0
        return self._shown_count(node) - own > 0

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        node: _Node = index.internalPointer()
        if node.row >= 0 and not node.children:
            if role == Qt.ItemDataRole.DisplayRole and index.column() == 0:
                return node.label
            return self._rows.data(node.row, index.column(), role)
        # a branch (possibly also a name itself)
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{node.label}  ({self._shown_count(node)})" if index.column() == 0 else ""
        if role == Qt.ItemDataRole.CheckStateRole and index.column() == 0:
            total = node.hi - node.lo
            on = int(self._checked_sum[node.hi] - self._checked_sum[node.lo])
            return Checked if on == total else (Unchecked if on == 0 else Partial)
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{self.path_of(node)}/: {self._shown_count(node)} names shown, {node.hi - node.lo} in all"
        return None

    def path_of(self, node: _Node) -> str:
        parts = []
        while node is not None and node is not self.root:
            parts.append(node.label)
            node = node.parent
        return "/".join(reversed(parts))

    def flags(self, index: QModelIndex):
        return _CHECKABLE_FLAGS if index.column() == 0 else _FLAGS

    def branch_rows(self, node: _Node) -> np.ndarray:
        """The index rows of the names under ``node`` that the filter shows."""
        rows = self.dfs_rows[node.lo:node.hi]
        shown = np.diff(self._shown_sum[node.lo:node.hi + 1]) > 0
        return rows[shown]

    def setData(self, index: QModelIndex, value, role=Qt.ItemDataRole.EditRole) -> bool:
        if not index.isValid() or role != Qt.ItemDataRole.CheckStateRole or self._rows.index is None:
            return False
        node: _Node = index.internalPointer()
        rows = self.branch_rows(node)
        if node.children:  # a branch: all on unless every shown name is on already
            on = not bool(self._rows.checked[rows].all()) if len(rows) else False
        else:
            on = _check_value(value)
        self.toggled.emit(self._rows.index.ids[rows].copy(), on)
        return True


def _outline_checkboxes(view: QAbstractItemView) -> None:
    """Make unticked checkboxes visible on a dark palette: Fusion outlines them with a darker shade
    of the Window colour, nearly the row colour; a light Window colour for the rows alone fixes
    it (header and scroll bars keep the application's palette)."""
    keep = view.palette()
    rows = QPalette(keep)
    rows.setColor(QPalette.ColorRole.Window, QColor(150, 150, 155))
    view.setPalette(rows)
    header = view.horizontalHeader() if isinstance(view, QTableView) else view.header()
    for child in (header, view.verticalScrollBar(), view.horizontalScrollBar()):
        child.setPalette(keep)


class ManifestPanel(QWidget):
    """Filter field, list or tree of names with checkboxes, count, select/deselect actions."""

    def __init__(self, crypto: CryptoModel, parent=None):
        super().__init__(parent)
        self.crypto = crypto
        self.setObjectName("manifest_panel")
        self._rows = _Rows()
        self.list_model = ManifestListModel(self._rows, self)
        self.tree_model = ManifestTreeModel(self._rows, self)
        self.shown = np.zeros(0, np.int64)

        self.filter_edit = QLineEdit()
        self.filter_edit.setObjectName("manifest_filter")
        self.filter_edit.setPlaceholderText("Filter names: text, or * and ? wildcards")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setToolTip(FILTER_TIP)
        self.tree_button = QToolButton()
        self.tree_button.setText("Tree")
        self.tree_button.setCheckable(True)
        self.tree_button.setToolTip("Show the names as a tree split on '/'")
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.filter_edit, 1)
        top.addWidget(self.tree_button)

        # the flat list is a table view: it lays out only the rows on screen, whatever their number
        self.list_view = QTableView()
        self.list_view.setObjectName("manifest_list_view")
        self.list_view.setModel(self.list_model)
        self.list_view.setShowGrid(False)
        self.list_view.setWordWrap(False)
        self.list_view.setAlternatingRowColors(True)
        self.list_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.list_view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        rows_header = self.list_view.verticalHeader()
        rows_header.setVisible(False)
        rows_header.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows_header.setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.tree_view = QTreeView()
        self.tree_view.setObjectName("manifest_tree_view")
        self.tree_view.setModel(self.tree_model)
        self.tree_view.setUniformRowHeights(True)
        self.tree_view.setAlternatingRowColors(True)
        self.tree_view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        for header in (self.list_view.horizontalHeader(), self.tree_view.header()):
            header.setStretchLastSection(False)
            header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
            for column, width in ((1, 80), (2, 70)):
                header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
                header.resizeSection(column, width)
        for view in (self.list_view, self.tree_view):
            _outline_checkboxes(view)
        self.views = QStackedWidget()
        self.views.addWidget(self.list_view)
        self.views.addWidget(self.tree_view)

        self.count_label = QLabel("")
        self.count_label.setObjectName("manifest_count")
        self.select_shown_button = QPushButton("Select shown")
        self.select_shown_button.setToolTip("Add every name the filter shows to the matte (by name)")
        self.deselect_shown_button = QPushButton("Deselect shown")
        self.deselect_shown_button.setToolTip("Take every name the filter shows off the matte")
        self.add_pattern_button = QPushButton("Add pattern")
        self.add_pattern_button.setToolTip(
            "Add the filter as a wildcard to the matte list (kept unexpanded: it keys every name it "
            "matches, now and in the next frame)")
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(self.select_shown_button)
        buttons.addWidget(self.deselect_shown_button)
        buttons.addWidget(self.add_pattern_button)
        buttons.addStretch(1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(top)
        layout.addWidget(self.views, 1)
        layout.addWidget(self.count_label)
        layout.addLayout(buttons)

        self.filter_edit.textChanged.connect(self.set_filter)
        self.tree_button.toggled.connect(self.set_tree_mode)
        self.list_model.toggled.connect(self._on_toggled)
        self.tree_model.toggled.connect(self._on_toggled)
        self.select_shown_button.clicked.connect(lambda: self._on_toggled(self.shown_ids(), True))
        self.deselect_shown_button.clicked.connect(lambda: self._on_toggled(self.shown_ids(), False))
        self.add_pattern_button.clicked.connect(self.add_pattern)
        crypto.index_changed.connect(self._on_index_changed)
        crypto.selection_changed.connect(self._on_selection_changed)
        crypto.wildcards_changed.connect(self._on_selection_changed)
        self._on_index_changed(crypto.index)

    # ---------------------------------------------------------------- public
    @property
    def index(self) -> ManifestIndex | None:
        return self._rows.index

    @property
    def tree_mode(self) -> bool:
        return self.views.currentWidget() is self.tree_view

    @property
    def view(self) -> QAbstractItemView:
        """The view on screen: the flat list or the tree."""
        return self.views.currentWidget()

    def set_filter(self, text: str) -> None:
        """Show the rows ``text`` matches (see :meth:`ManifestIndex.filter`)."""
        if self.filter_edit.text() != text:
            self.filter_edit.setText(text)  # comes back here through textChanged
            return
        index = self._rows.index
        self.shown = index.filter(text) if index is not None else np.zeros(0, np.int64)
        self._refresh_view()
        self.add_pattern_button.setEnabled(ManifestIndex.pattern_token(text) is not None)

    def shown_names(self) -> list[str]:
        """The names (``<float>`` for unnamed ids) the filter shows, in list order."""
        index = self._rows.index
        return [] if index is None else [index.names[r] for r in self.shown]

    def shown_ids(self) -> np.ndarray:
        index = self._rows.index
        return np.zeros(0, np.uint32) if index is None else index.ids[self.shown]

    def checked_names(self) -> list[str]:
        """Every row whose checkbox is on (shown or not)."""
        index = self._rows.index
        return [] if index is None else [index.names[r] for r in np.flatnonzero(self._rows.checked)]

    def set_tree_mode(self, on: bool) -> None:
        if self.tree_button.isChecked() != on:
            self.tree_button.setChecked(on)  # comes back here through toggled
            return
        self.views.setCurrentWidget(self.tree_view if on else self.list_view)
        self._refresh_view()

    def add_pattern(self) -> None:
        """Add the wildcard filter as one matte-list token."""
        token = ManifestIndex.pattern_token(self.filter_edit.text())
        if token is not None:
            self.crypto.add_tokens([token])

    # ---------------------------------------------------------------- internals
    def _refresh_view(self) -> None:
        if self.tree_mode:
            if self.tree_model.built_for is not self._rows.index:
                self.tree_model.build()
            self.tree_model.reset(self.shown)
            if len(self.shown) <= EXPAND_LIMIT and self.filter_edit.text():
                self.tree_view.expandAll()
        else:
            self.list_model.reset(self.shown)
        self._update_count()

    def _on_index_changed(self, index: ManifestIndex | None) -> None:
        self._rows.set_index(index)
        self._update_checked()
        self.set_filter(self.filter_edit.text())
        enabled = index is not None
        for w in (self.filter_edit, self.select_shown_button, self.deselect_shown_button):
            w.setEnabled(enabled)
        # the tree needs paths: names without '/' would make one flat level as long as the list
        has_paths = index is not None and any("/" in n for n in index.names)
        self.tree_button.setEnabled(has_paths)
        self.tree_button.setToolTip("Show the names as a tree split on '/'" if has_paths
                                    else "The names have no '/': nothing to show as a tree")
        if self.tree_mode and not has_paths:
            self.set_tree_mode(False)

    def _update_checked(self) -> bool:
        index = self._rows.index
        if index is None:
            return False
        checked = np.isin(index.ids, self.crypto.selected_ids())
        if np.array_equal(checked, self._rows.checked):
            return False
        self._rows.checked = checked
        return True

    def _on_selection_changed(self, *_args) -> None:
        if self._update_checked():
            model = self.tree_model if self.tree_mode else self.list_model
            model.checks_changed()
        self._update_count()

    def _on_toggled(self, ids: np.ndarray, on: bool) -> None:
        if len(ids) == 0:
            return
        if on:
            self.crypto.add_ids(ids.tolist())
        else:
            self.crypto.remove_ids(ids.tolist())

    def _update_count(self) -> None:
        index = self._rows.index
        if index is None:
            self.count_label.setText("No Cryptomatte layer")
            return
        n = len(index)
        named = int(index.named.sum())
        extra = f" + {n - named} unnamed ids" if n > named else ""
        selected = len(self.crypto.selected_ids())
        self.count_label.setText(f"{len(self.shown)} of {named} names{extra} shown · {selected} selected")
