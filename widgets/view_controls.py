"""View controls: the view mode, exposure, display transfer (sRGB / gamma / linear) and gamma.

Every control writes the document model and follows it, so keyboard shortcuts and other
widgets changing the model move the controls too.
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QWidget,
)

from app.document import DocumentModel
from app.render import VIEW_MODE_LABELS, VIEW_MODES, View, view_is_valid

TRANSFER_LABELS = {"srgb": "sRGB", "gamma": "Gamma", "linear": "Linear"}
EXPOSURE_SLIDER_STEPS = 10  # slider ticks per stop
EXPOSURE_LIMIT = 10.0


class ViewControls(QWidget):
    """Mode combo, exposure slider and spin box, transfer combo, gamma spin box, reset."""

    def __init__(self, model: DocumentModel, parent=None):
        super().__init__(parent)
        self.model = model
        self.setObjectName("view_controls")

        self.mode_combo = QComboBox()
        for mode in VIEW_MODES:
            self.mode_combo.addItem(VIEW_MODE_LABELS[mode], mode)
        self.mode_combo.setToolTip("What the canvas shows: the layer in colour, one channel, alpha, "
                                   "depth as a colour map, or the samples per pixel (deep parts)")

        self.exposure_slider = QSlider(Qt.Orientation.Horizontal)
        limit = int(EXPOSURE_LIMIT * EXPOSURE_SLIDER_STEPS)
        self.exposure_slider.setRange(-limit, limit)
        self.exposure_slider.setToolTip("Exposure in stops (E / Shift+E)")
        self.exposure_spin = QDoubleSpinBox()
        self.exposure_spin.setRange(-20.0, 20.0)
        self.exposure_spin.setDecimals(2)
        self.exposure_spin.setSingleStep(0.5)
        self.exposure_spin.setSuffix(" EV")
        exposure_row = QHBoxLayout()
        exposure_row.addWidget(self.exposure_slider, 1)
        exposure_row.addWidget(self.exposure_spin)

        self.transfer_combo = QComboBox()
        for key, label in TRANSFER_LABELS.items():
            self.transfer_combo.addItem(label, key)
        self.gamma_spin = QDoubleSpinBox()
        self.gamma_spin.setRange(0.1, 10.0)
        self.gamma_spin.setDecimals(2)
        self.gamma_spin.setSingleStep(0.1)
        self.gamma_spin.setToolTip("Gamma of the 'Gamma' display transfer")
        transfer_row = QHBoxLayout()
        transfer_row.addWidget(self.transfer_combo, 1)
        transfer_row.addWidget(self.gamma_spin)

        self.reset_button = QPushButton("Reset")
        self.reset_button.setToolTip("Exposure 0, sRGB")
        self.frame_label = QLabel("")
        self.frame_label.setObjectName("frame_label")
        self.frame_label.setWordWrap(True)

        form = QFormLayout(self)
        form.setContentsMargins(4, 4, 4, 4)
        form.addRow("View", self.mode_combo)
        form.addRow("Exposure", exposure_row)
        form.addRow("Display", transfer_row)
        form.addRow("", self.reset_button)
        form.addRow(self.frame_label)

        self.mode_combo.activated.connect(self._on_mode_activated)
        self.exposure_slider.valueChanged.connect(
            lambda v: self.model.set_exposure(v / EXPOSURE_SLIDER_STEPS))
        self.exposure_spin.valueChanged.connect(self.model.set_exposure)
        self.transfer_combo.activated.connect(
            lambda i: self.model.set_transfer(self.transfer_combo.itemData(i)))
        self.gamma_spin.valueChanged.connect(self.model.set_gamma)
        self.reset_button.clicked.connect(self.model.reset_tone)

        model.view_changed.connect(self._on_view_changed)
        model.document_changed.connect(self._update_modes)
        model.part_changed.connect(self._update_modes)
        model.exposure_changed.connect(self._on_exposure_changed)
        model.gamma_changed.connect(self._on_gamma_changed)
        model.transfer_changed.connect(self._on_transfer_changed)
        model.frame_changed.connect(self._on_frame_changed)
        self._update_modes()
        self._on_exposure_changed(model.exposure)
        self._on_gamma_changed(model.gamma)
        self._on_transfer_changed(model.transfer)

    # ------------------------------------------------------------------ model -> controls
    def _update_modes(self, *_args) -> None:
        """Enable the modes the current part can show (sample count: deep parts only)."""
        image = self.model.image
        view = self.model.view
        combo_model = self.mode_combo.model()
        for i, mode in enumerate(VIEW_MODES):
            if image is None:
                ok = False
            elif mode == "channel":
                ok = bool(image.channels)
            else:
                ok = view_is_valid(image, View(mode, view.layer, None))
            combo_model.item(i).setEnabled(ok)
        self._on_view_changed(view)

    def _on_view_changed(self, view: View) -> None:
        with QSignalBlocker(self.mode_combo):
            self.mode_combo.setCurrentIndex(VIEW_MODES.index(view.mode))

    def _on_exposure_changed(self, value: float) -> None:
        with QSignalBlocker(self.exposure_slider), QSignalBlocker(self.exposure_spin):
            self.exposure_slider.setValue(round(value * EXPOSURE_SLIDER_STEPS))
            self.exposure_spin.setValue(value)

    def _on_gamma_changed(self, value: float) -> None:
        with QSignalBlocker(self.gamma_spin):
            self.gamma_spin.setValue(value)

    def _on_transfer_changed(self, value: str) -> None:
        with QSignalBlocker(self.transfer_combo):
            self.transfer_combo.setCurrentIndex(self.transfer_combo.findData(value))
        self.gamma_spin.setEnabled(value == "gamma")

    def _on_frame_changed(self, frame) -> None:
        self.frame_label.setText("" if frame is None else f"Showing {frame.title}")

    # ------------------------------------------------------------------ controls -> model
    def _on_mode_activated(self, index: int) -> None:
        mode = self.mode_combo.itemData(index)
        try:
            self.model.set_view_mode(mode)
        except ValueError:  # not available for this part: put the combo back
            self._on_view_changed(self.model.view)
