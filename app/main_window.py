"""The main window: wires the model, the controller, the widgets, the menus and the shortcuts.

It holds no image logic: the canvas, deep graph, sample table and controls observe the
:class:`DocumentModel`; the :class:`DocumentController` loads and renders in the background.
"""

from __future__ import annotations

import os

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QFrame,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.controller import DocumentController
from app.crypto_model import CryptoModel
from app.deepid_model import DeepIdModel
from app.document import DocumentModel
from app.preview_model import EFFECT_LABELS, EFFECTS, PreviewModel
from app.settings import ViewerSettings
from widgets.channel_list import ChannelList
from widgets.crypto_canvas import CryptoCanvasTool
from widgets.deep_graph import DeepGraph
from widgets.deepid_overlay import DeepIdOverlay
from widgets.defocus_panel import DefocusPanel
from widgets.id_stack import IdStackView
from widgets.idmanifest_panel import IdManifestPanel
from widgets.image_canvas import ImageCanvas
from widgets.manifest_panel import ManifestPanel as CryptoManifestPanel
from widgets.matte_panel import MattePanel
from widgets.message_banner import MessageBanner
from widgets.part_selector import PartSelector
from widgets.pixel_readout import PixelReadout
from widgets.preview_overlay import PreviewOverlay
from widgets.recolor_panel import RecolorPanel
from widgets.sample_table import SampleTable
from widgets.task_progress import TaskProgress
from widgets.view_controls import ViewControls
from widgets.wipe_overlay import WipeOverlay

EXR_FILTER = "OpenEXR images (*.exr *.EXR);;All files (*)"
EXPOSURE_STEP = 0.5
ZOOM_STEP = 1.25


class MainWindow(QMainWindow):
    """Deepscope's window: canvas in the middle, view controls, deep graph and samples in docks."""

    def __init__(self, model: DocumentModel | None = None, controller: DocumentController | None = None,
                 settings: ViewerSettings | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("main_window")
        self.setWindowTitle("Deepscope")
        self.setAcceptDrops(True)
        self.model = model if model is not None else DocumentModel(self)
        self.controller = controller if controller is not None else DocumentController(self.model, parent=self)
        self.settings = settings if settings is not None else ViewerSettings()

        # centre: error banner above the canvas
        self.canvas = ImageCanvas(self.model)
        self.canvas.setAcceptDrops(False)  # drops go to the window
        self.banner = MessageBanner()
        centre = QWidget()
        centre_layout = QVBoxLayout(centre)
        centre_layout.setContentsMargins(0, 0, 0, 0)
        centre_layout.setSpacing(0)
        centre_layout.addWidget(self.banner)
        centre_layout.addWidget(self.canvas, 1)
        self.setCentralWidget(centre)

        # docks
        self.part_selector = PartSelector(self.model)
        self.view_controls = ViewControls(self.model)
        self.channel_list = ChannelList(self.model)
        controls = QWidget()
        controls_layout = QVBoxLayout(controls)
        controls_layout.setContentsMargins(2, 2, 2, 2)
        controls_layout.addWidget(QLabel("Part"))
        controls_layout.addWidget(self.part_selector)
        controls_layout.addWidget(self.view_controls)
        controls_layout.addWidget(self.channel_list, 1)
        self.deep_graph = DeepGraph(self.model)
        self.sample_table = SampleTable(self.model)
        self.view_dock = self._dock("View", "view_dock", controls, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.graph_dock = self._dock("Deep graph", "graph_dock", self.deep_graph,
                                     Qt.DockWidgetArea.BottomDockWidgetArea)
        self.samples_dock = self._dock("Samples", "samples_dock", self.sample_table,
                                       Qt.DockWidgetArea.BottomDockWidgetArea)
        self.resizeDocks([self.view_dock], [270], Qt.Orientation.Horizontal)
        self.resizeDocks([self.graph_dock], [300], Qt.Orientation.Vertical)

        # Deep IDs: its own model (manifest, selection, mask), the panel dock, the canvas overlay and picking
        self.deepid_model = DeepIdModel(self.model, pool=self.controller.pool, parent=self)
        self.idmanifest_panel = IdManifestPanel(self.deepid_model)
        self.deepid_dock = self._dock("Deep IDs", "deepid_dock", self.idmanifest_panel,
                                      Qt.DockWidgetArea.RightDockWidgetArea)
        # active while its dock is the tab showing (a tab behind another reports isVisible() all the same)
        self.deepid_overlay = DeepIdOverlay(self.canvas, self.deepid_model,
                                            active=self._shown_tracker(self.deepid_dock), parent=self)
        self.deepid_model.sources_changed.connect(lambda sources: sources and self.deepid_dock.raise_())
        self.sample_table.add_column_provider(self.deepid_model.sample_columns)
        self.deep_graph.set_sample_emphasis(self.deepid_model.profile_selected)
        self.deepid_model.selection_changed.connect(lambda _s: self.sample_table.refresh())
        self.deepid_model.selection_changed.connect(lambda _s: self.deep_graph.refresh(autorange=False))
        self.deepid_model.export_finished.connect(lambda _p, text: self.statusBar().showMessage(text, 15000))
        self.deepid_model.export_failed.connect(lambda _p, text: self.show_error(text))
        self.resizeDocks([self.deepid_dock], [380], Qt.Orientation.Horizontal)

        # Cryptomatte: its own model (layers, selection per layer, matte, preview), one dock with the matte
        # panel, the manifest panel and the id stack (tabbed with Deep IDs: only the shown tab picks)
        self.crypto_model = CryptoModel(self.model, parent=self)
        self.matte_panel = MattePanel(self.crypto_model)
        self.crypto_manifest_panel = CryptoManifestPanel(self.crypto_model)
        self.id_stack = IdStackView(self.crypto_model, self.model)
        crypto_splitter = QSplitter(Qt.Orientation.Vertical)
        crypto_splitter.setObjectName("crypto_splitter")
        for widget, stretch in ((self.matte_panel, 0), (self.crypto_manifest_panel, 3), (self.id_stack, 1)):
            crypto_splitter.addWidget(widget)
            crypto_splitter.setStretchFactor(crypto_splitter.count() - 1, stretch)
        crypto_splitter.setSizes([self.matte_panel.sizeHint().height(), 500, 260])
        crypto_scroll = QScrollArea()  # a small window scrolls the panels rather than growing
        crypto_scroll.setWidgetResizable(True)
        crypto_scroll.setFrameShape(QFrame.Shape.NoFrame)
        crypto_scroll.setWidget(crypto_splitter)
        self.crypto_dock = self._dock("Cryptomatte", "crypto_dock", crypto_scroll,
                                      Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.deepid_dock, self.crypto_dock)
        self.crypto_tool = CryptoCanvasTool(self.canvas, self.crypto_model, dock=self.crypto_dock, parent=self)
        self.crypto_model.layers_changed.connect(lambda layers: layers and self.crypto_dock.raise_())
        self.crypto_model.export_finished.connect(
            lambda _r: self.statusBar().showMessage(self.crypto_model.message, 15000))
        self.crypto_model.export_failed.connect(lambda text: self.show_error(f"Cryptomatte export: {text}"))

        # Previews: defocus and recolor (their own model, rendered on a worker lane), two docks tabbed with the
        # id panels (only the shown one acts on clicks), the preview and the recolor wipe on the canvas
        self.preview_model = PreviewModel(self.model, self.deepid_model, self.crypto_model, pool=self.controller.pool,
                                          parent=self)
        self.defocus_panel = DefocusPanel(self.preview_model)
        self.recolor_panel = RecolorPanel(self.preview_model)
        self.defocus_dock = self._dock("Defocus", "defocus_dock", self._scrolling(self.defocus_panel),
                                       Qt.DockWidgetArea.RightDockWidgetArea)
        self.recolor_dock = self._dock("Recolor", "recolor_dock", self._scrolling(self.recolor_panel),
                                       Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.crypto_dock, self.defocus_dock)
        self.tabifyDockWidget(self.defocus_dock, self.recolor_dock)
        self.crypto_dock.raise_()  # the tab shown at start stays the Cryptomatte one
        self.preview_overlay = PreviewOverlay(self.canvas, self.preview_model,
                                              active=self._shown_tracker(self.defocus_dock), parent=self)
        self.wipe_overlay = WipeOverlay(self.canvas, self.preview_model, parent=self)
        self.preview_model.export_finished.connect(lambda _p, text: self.statusBar().showMessage(text, 15000))
        self.preview_model.export_failed.connect(lambda _p, text: self.show_error(f"Preview export: {text}"))

        # status bar
        self.readout = PixelReadout(self.model)
        self.task_progress = TaskProgress(self.controller.lanes)
        self.zoom_label = QLabel("")
        self.statusBar().addWidget(self.readout, 1)
        self.statusBar().addPermanentWidget(self.task_progress)
        self.statusBar().addPermanentWidget(self.zoom_label)

        self._build_actions()
        self._build_menus()

        self.controller.load_started.connect(self._on_load_started)
        self.controller.document_loaded.connect(self._on_document_loaded)
        self.controller.load_failed.connect(self._on_load_failed)
        self.controller.render_failed.connect(lambda message: self.show_error(message))
        self.model.document_changed.connect(self._update_title)
        self.model.part_changed.connect(self._update_title)
        self.canvas.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f}%"))
        # quick frames while the tone moves: what is on screen, as coarse as the screen shows it
        self.canvas.zoom_changed.connect(
            lambda z: self.controller.set_display_view(z * self.canvas.devicePixelRatioF(),
                                                       self.canvas.visible_rect()))
        self.controller.set_watch_files(self.settings.reload_on_change)

        self.resize(1400, 900)
        self.settings.restore_window(self)
        self._update_title()

    @staticmethod
    def _shown_tracker(dock: QDockWidget):
        """A function telling whether ``dock`` is showing (the current tab of its group, not closed)."""
        shown = [dock.isVisible()]
        dock.visibilityChanged.connect(lambda visible: shown.__setitem__(0, bool(visible)))
        return lambda: shown[0]

    @staticmethod
    def _scrolling(widget: QWidget) -> QScrollArea:
        scroll = QScrollArea()  # a small window scrolls the panel rather than growing
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(widget)
        return scroll

    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)  # saveState needs names
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    # ------------------------------------------------------------------ actions and menus
    def _action(self, text: str, slot, shortcuts=(), checkable: bool = False, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcuts:
            action.setShortcuts([QKeySequence(s) for s in shortcuts])
        action.setCheckable(checkable)
        if tip:
            action.setStatusTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)  # shortcuts work even when the menu bar is hidden
        return action

    def _build_actions(self) -> None:
        m = self.model
        self.open_action = self._action("&Open…", self.open_dialog, [QKeySequence.StandardKey.Open])
        self.demo_deep_action = self._action("Open Demo (&deep)", lambda: self.open_demo("deep"))
        self.demo_crypto_action = self._action("Open Demo (&Cryptomatte)", lambda: self.open_demo("flat"))
        self.reload_action = self._action("&Reload", self.controller.reload, ["F5", "Ctrl+R"])
        self.watch_action = self._action("Reload When the File &Changes", self._set_reload_on_change,
                                         checkable=True)
        self.watch_action.setChecked(self.settings.reload_on_change)
        self.quit_action = self._action("&Quit", self.close, [QKeySequence.StandardKey.Quit])
        self.fit_action = self._action("&Fit", self.canvas.fit, ["F"])
        self.one_to_one_action = self._action("&1:1", self.canvas.one_to_one, ["Ctrl+0"])
        self.zoom_in_action = self._action("Zoom &In", lambda: self.canvas.zoom_by(ZOOM_STEP), ["Ctrl++", "+"])
        self.zoom_out_action = self._action("Zoom &Out", lambda: self.canvas.zoom_by(1 / ZOOM_STEP),
                                            ["Ctrl+-", "-"])
        self.exposure_up_action = self._action("&Exposure Up", lambda: m.set_exposure(m.exposure + EXPOSURE_STEP),
                                               ["E"])
        self.exposure_down_action = self._action("Exposure &Down",
                                                 lambda: m.set_exposure(m.exposure - EXPOSURE_STEP), ["Shift+E"])
        self.reset_tone_action = self._action("Reset Exposure and &Gamma", m.reset_tone, ["Ctrl+Shift+E"])
        self.pin_action = self._action("&Pin Current Pixel", lambda: m.set_pinned_pixel(m.current_pixel), ["P"],
                                       tip="Overlay this pixel's samples (dashed) while you click others")
        self.unpin_action = self._action("&Unpin", lambda: m.set_pinned_pixel(None), ["Shift+P"])
        self.cancel_action = self._action("&Cancel Loading", self.controller.cancel, ["Esc"])

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.open_action)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addAction(self.demo_deep_action)
        file_menu.addAction(self.demo_crypto_action)
        file_menu.addSeparator()
        file_menu.addAction(self.reload_action)
        file_menu.addAction(self.watch_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)

        view_menu = bar.addMenu("&View")
        for action in (self.fit_action, self.one_to_one_action, self.zoom_in_action, self.zoom_out_action):
            view_menu.addAction(action)
        view_menu.addSeparator()
        for action in (self.exposure_up_action, self.exposure_down_action, self.reset_tone_action):
            view_menu.addAction(action)
        view_menu.addSeparator()
        view_menu.addAction(self.pin_action)
        view_menu.addAction(self.unpin_action)
        view_menu.addSeparator()
        for dock in (self.view_dock, self.graph_dock, self.samples_dock):
            view_menu.addAction(dock.toggleViewAction())
        view_menu.addAction(self.deepid_dock.toggleViewAction())
        view_menu.addAction(self.crypto_dock.toggleViewAction())
        view_menu.addAction(self.defocus_dock.toggleViewAction())
        view_menu.addAction(self.recolor_dock.toggleViewAction())
        self._build_crypto_menu(bar)
        self._build_preview_menu(bar)

        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self._action("&Keys and Mouse", self._show_help))

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = self.settings.recent_files()
        for path in files:
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _checked=False, p=path: self.open_file(p))
        if files:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear Recent Files", self.settings.clear_recent)
        else:
            self.recent_menu.addAction("(none)").setEnabled(False)

    # ------------------------------------------------------------------ opening
    def open_file(self, path: str | os.PathLike) -> None:
        """Open a file in the background; what is open stays until it has loaded."""
        self.controller.open(path)

    def open_demo(self, kind: str = "deep") -> None:
        self.controller.open_demo(kind)

    def open_dialog(self) -> None:
        doc = self.model.document
        start = os.path.dirname(doc.path) if doc is not None else ""
        path, _ = QFileDialog.getOpenFileName(self, "Open an OpenEXR image", start, EXR_FILTER)
        if path:
            self.open_file(path)

    def _set_reload_on_change(self, enabled: bool) -> None:
        self.settings.reload_on_change = enabled
        self.controller.set_watch_files(enabled)

    def _on_load_started(self, path: str) -> None:
        self.task_progress.label.setToolTip(path)

    def _on_document_loaded(self, path: str) -> None:
        self.banner.dismiss()
        self.statusBar().clearMessage()  # the hover readout takes the status bar again
        if os.path.exists(path):
            self.settings.add_recent(path)

    def _on_load_failed(self, path: str, message: str) -> None:
        self.show_error(message)

    def show_error(self, message: str) -> None:
        """One line in the status bar and a banner above the canvas; nothing open is lost."""
        self.statusBar().showMessage(message, 15000)
        self.banner.show_message(message, "error")

    def _update_title(self, *_args) -> None:
        doc = self.model.document
        if doc is None:
            self.setWindowTitle("Deepscope")
            return
        part = doc.parts[self.model.part_index].header.label if doc.parts else ""
        multi = f" [{part}]" if doc.is_multipart else ""
        self.setWindowTitle(f"{doc.name}{multi} — Deepscope")

    def _show_help(self) -> None:
        QMessageBox.information(self, "Deepscope: keys and mouse", (
            "Wheel: zoom to the cursor · drag: pan · F: fit · Ctrl+0: 1:1\n"
            "Click: inspect a pixel (deep graph, samples) · Shift+click or P: pin a pixel to compare\n"
            "E / Shift+E: exposure up / down · Ctrl+Shift+E: reset\n"
            "F5 / Ctrl+R: reload · Ctrl+O: open · drop a file on the window to open it\n"
            "Deep graph: wheel/drag zoom and pan the depth axis; hover a sample to find its row\n"
            "Samples: Ctrl+C copies the rows (or the selected rows) as CSV\n"
            "Deep IDs: with Pick on, a click adds the ids of the front visible sample (in the panel's current "
            "tab), Ctrl+click or Alt+click removes them; the graph and samples still follow the click\n"
            "Cryptomatte: with Pick on (K) and its panel shown, a click adds the highest-coverage id not yet in "
            "the matte, Ctrl+click or Alt+click removes one; the click still inspects the pixel\n"
            "Defocus: with Focus on and its panel shown, a click focuses on the frontmost visible surface there\n"
            "Recolor: grade the Deep IDs selection; Compare splits the image, drag the divider"))

    # ------------------------------------------------------------------ Cryptomatte menu
    def _build_crypto_menu(self, bar) -> None:
        c, panel = self.crypto_model, self.matte_panel
        self.crypto_pick_action = self._action("&Pick Ids on Click", c.set_picking, ["K"], checkable=True,
                                               tip="Clicks on the image add ids to the matte (Ctrl/Alt+click removes)")
        self.crypto_pick_action.setChecked(c.picking)
        c.picking_changed.connect(self.crypto_pick_action.setChecked)
        menu = bar.addMenu("&Cryptomatte")
        menu.addAction(self.crypto_pick_action)
        menu.addAction(self._action("&Copy Matte List", panel.copy_matte_list, ["Ctrl+Shift+C"]))
        menu.addAction(self._action("C&lear Matte", c.clear_selection))
        menu.addSeparator()
        menu.addAction(self._action("&Export Matte…", panel.export_matte_dialog, ["Ctrl+Shift+M"]))
        menu.addAction(self._action("Export &Every Id…", panel.export_all_dialog))

    # ------------------------------------------------------------------ Preview menu
    def _build_preview_menu(self, bar) -> None:
        p = self.preview_model
        menu = bar.addMenu("&Preview")
        self.preview_effect_actions = {}
        for effect in EFFECTS:
            action = self._action(EFFECT_LABELS[effect], lambda _c=False, e=effect: p.set_effect(e), checkable=True)
            self.preview_effect_actions[effect] = action
            menu.addAction(action)

        def follow(effect: str) -> None:
            for name, action in self.preview_effect_actions.items():
                action.setChecked(name == effect)

        p.effect_changed.connect(follow)
        follow(p.effect)
        menu.addSeparator()
        self.focus_tool_action = self._action("&Focus Tool", p.set_focus_tool, checkable=True,
                                              tip="A click on the image focuses there (Defocus panel shown)")
        p.focus_tool_changed.connect(self.focus_tool_action.setChecked)
        menu.addAction(self.focus_tool_action)
        menu.addSeparator()
        menu.addAction(self._action("Export &Defocus…", self.defocus_panel.export_dialog))
        menu.addAction(self._action("Export &Recolor…", self.recolor_panel.export_dialog))

    # ------------------------------------------------------------------ drag and drop
    @staticmethod
    def _dropped_file(event) -> str | None:
        mime = event.mimeData()
        if mime is None or not mime.hasUrls():
            return None
        for url in mime.urls():
            if url.isLocalFile():
                return url.toLocalFile()
        return None

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if self._dropped_file(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        path = self._dropped_file(event)
        if path:
            event.acceptProposedAction()
            self.open_file(path)
        else:
            event.ignore()

    # ------------------------------------------------------------------ closing
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        self.settings.save_window(self)
        self.deepid_model.shutdown()
        self.preview_model.shutdown()
        self.crypto_model.shutdown()
        self.controller.shutdown()
        super().closeEvent(event)
