"""The channel list: the current part's channels grouped into layers, like tev.

Each layer is a top-level item (R,G,B, X,Y,Z, U,V, singles, alpha last inside it):
clicking a layer shows it in colour, clicking a channel shows that channel alone.
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtWidgets import QAbstractItemView, QTreeWidget, QTreeWidgetItem

from app.document import DocumentModel
from app.render import View

ROLE = Qt.ItemDataRole.UserRole


class ChannelList(QTreeWidget):
    """Layers and channels of the current part; selecting one sets the model's view."""

    def __init__(self, model: DocumentModel, parent=None):
        super().__init__(parent)
        self.model = model
        self.setObjectName("channel_list")
        self.setColumnCount(2)
        self.setHeaderLabels(["Layer / channel", "Type"])
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setRootIsDecorated(True)
        self.setUniformRowHeights(True)
        self.itemClicked.connect(self._on_item_clicked)
        self.currentItemChanged.connect(self._on_current_item_changed)
        model.document_changed.connect(self._populate)
        model.part_changed.connect(self._populate)
        model.view_changed.connect(self._select_view)
        self._populate()

    def _populate(self, *_args) -> None:
        image = self.model.image
        with QSignalBlocker(self):
            self.clear()
            if image is None:
                return
            for layer in self.model.layers:
                n = len(layer.channels)
                top = QTreeWidgetItem([layer.label, f"{n} channel{'s' if n != 1 else ''}"])
                top.setData(0, ROLE, (layer.name, None))
                top.setToolTip(0, f"Show layer {layer.label} in colour: "
                                  f"{', '.join(layer.short_name(c) for c in layer.channels)}")
                for name in layer.channels:
                    ptype = image.pixel_types.get(name)
                    child = QTreeWidgetItem([layer.short_name(name), ptype.name.lower() if ptype is not None else ""])
                    child.setData(0, ROLE, (layer.name, name))
                    child.setToolTip(0, name)
                    top.addChild(child)
                self.addTopLevelItem(top)
            self.expandAll()
            self.resizeColumnToContents(0)
        self._select_view(self.model.view)

    def item_for(self, layer: str, channel: str | None) -> QTreeWidgetItem | None:
        """The tree item of a layer (channel None) or of one of its channels."""
        for i in range(self.topLevelItemCount()):
            top = self.topLevelItem(i)
            if top.data(0, ROLE)[0] != layer:
                continue
            if channel is None:
                return top
            for j in range(top.childCount()):
                if top.child(j).data(0, ROLE)[1] == channel:
                    return top.child(j)
        return None

    def _select_view(self, view: View) -> None:
        item = self.item_for(view.layer, view.channel if view.mode == "channel" else None)
        with QSignalBlocker(self):
            self.setCurrentItem(item)

    def _apply(self, item: QTreeWidgetItem | None) -> None:
        if item is None:
            return
        layer, channel = item.data(0, ROLE)
        view = self.model.view
        if channel is None:
            mode = "alpha" if view.mode == "alpha" else "color"  # a layer's alpha, else its colour
            self.model.set_view(View(mode, layer, None))
        else:
            self.model.set_view(View("channel", layer, channel))

    def _on_item_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        self._apply(item)

    def _on_current_item_changed(self, current: QTreeWidgetItem | None, _previous) -> None:
        self._apply(current)  # keyboard navigation
