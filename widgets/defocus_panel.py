"""The Defocus panel: the thin-lens camera (or the simple blur) of the deep defocus preview.

Every control writes the :class:`~app.preview_model.PreviewModel` and follows it. Moving a
control turns the defocus preview on; the model renders a proxy at once and the full
resolution when the controls rest. "Focus" makes a click on the image focus on the
frontmost visible surface there (while this panel is the one shown). The camera values a
renderer wrote in the header are used when the file is opened, and the panel says which
attributes they came from.
"""

from __future__ import annotations

import os

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.preview_model import DefocusSettings, PreviewModel, SceneProbe, camera_note
from widgets.param_slider import LABEL_WIDTH, ParamSlider
from widgets.preview_export import ask_preview_export_path
from widgets.task_progress import TaskProgress

FOCUS_HELP = (
    "Focus tool: while on, a click on the image focuses on the frontmost visible surface at that pixel "
    "(thin fog and dust in front are looked through). It acts while this panel is the one shown; the click "
    "still inspects the pixel. Shift+click pins as usual."
)
UNITS = (("metres", 1.0), ("centimetres", 0.01), ("millimetres", 0.001), ("inches", 0.0254), ("feet", 0.3048))
NOTE_STYLE = "color: rgb(170, 170, 170);"


class DefocusPanel(QWidget):
    """Preview switch, focus tool, lens or simple blur, export."""

    def __init__(self, model: PreviewModel, parent=None):
        super().__init__(parent)
        self.model = model
        self.setObjectName("defocus_panel")
        self.last_export_dir = ""

        self.enable_check = QCheckBox("Preview defocus")
        self.enable_check.setObjectName("defocus_enable")
        self.enable_check.setToolTip("Show the deep image through the lens below (moving a control turns it on)")
        self.focus_button = QToolButton()
        self.focus_button.setObjectName("focus_tool_button")
        self.focus_button.setText("Focus")
        self.focus_button.setCheckable(True)
        self.focus_button.setToolTip(FOCUS_HELP)
        self.reset_button = QToolButton()
        self.reset_button.setText("Reset")
        self.reset_button.setToolTip("Back to the camera the header gave (or the defaults)")
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.enable_check)
        top.addStretch(1)
        top.addWidget(self.focus_button)
        top.addWidget(self.reset_button)

        self.camera_label = QLabel("")
        self.camera_label.setObjectName("camera_note")
        self.camera_label.setWordWrap(True)
        self.camera_label.setStyleSheet(NOTE_STYLE)
        self.camera_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.simple_check = QCheckBox("Simple mode (depth units unknown)")
        self.simple_check.setObjectName("defocus_simple")
        self.simple_check.setToolTip("One control: a blur of 'Blur / unit' pixels per depth unit away from the "
                                     "focus distance, instead of a thin lens")

        s = model.defocus
        self.focus_slider = ParamSlider("Focus distance", 0.01, 1000.0, s.focus_distance, log=True, decimals=3,
                                        spin_minimum=1e-4, spin_maximum=1e9, name="focus_distance",
                                        tip="The distance in focus, in the file's depth units (Z)")
        self.fstop_slider = ParamSlider("f-stop", 0.5, 64.0, s.f_stop, log=True, decimals=2, spin_maximum=1e4,
                                        name="f_stop", tip="The f-number: smaller opens the aperture (more blur)")
        self.focal_slider = ParamSlider("Focal length", 8.0, 600.0, s.focal_length_mm, log=True, decimals=1,
                                        suffix=" mm", spin_minimum=0.5, spin_maximum=5000.0, name="focal_length",
                                        tip="Focal length of the lens in mm")
        self.sensor_slider = ParamSlider("Sensor width", 2.0, 100.0, s.sensor_width_mm, log=True, decimals=2,
                                         suffix=" mm", spin_minimum=0.5, spin_maximum=500.0, name="sensor_width",
                                         tip="Width of the film back in mm (36: full frame); it spans the display "
                                             "window")
        self.units_combo = QComboBox()
        self.units_combo.setObjectName("units_combo")
        for label, value in UNITS:
            self.units_combo.addItem(label, value)
        self.units_combo.addItem("custom", None)
        self.units_combo.setToolTip("What one depth unit of the file is")
        self.units_spin = QDoubleSpinBox()
        self.units_spin.setObjectName("units_to_m")
        self.units_spin.setDecimals(6)
        self.units_spin.setRange(1e-6, 1e6)
        self.units_spin.setKeyboardTracking(False)
        self.units_spin.setSuffix(" m")
        self.units_spin.setToolTip("Metres per depth unit (0.01 for centimetres)")
        units_row = QHBoxLayout()
        units_row.setContentsMargins(0, 0, 0, 0)
        units_label = QLabel("Depth unit")
        units_label.setMinimumWidth(LABEL_WIDTH)
        units_row.addWidget(units_label)
        units_row.addWidget(self.units_combo, 1)
        units_row.addWidget(self.units_spin)
        self.units_row = QWidget()
        self.units_row.setLayout(units_row)
        self.blur_slider = ParamSlider("Blur / unit", 0.01, 100.0, s.blur_per_unit, log=True, decimals=3,
                                       spin_minimum=0.0, spin_maximum=1e5, suffix=" px", name="blur_per_unit",
                                       tip="Simple mode: blur radius in pixels per depth unit from the focus")
        self.radius_slider = ParamSlider("Max radius", 0.0, 256.0, s.max_radius, decimals=1, spin_maximum=4096.0,
                                         suffix=" px", name="max_radius",
                                         tip="The largest blur radius, in full-resolution pixels")

        self.status_label = QLabel("")
        self.status_label.setObjectName("defocus_status")
        self.status_label.setWordWrap(True)
        self.status_label.setStyleSheet(NOTE_STYLE)
        self.progress = TaskProgress({"rendering": model.lane, "exporting": model.export_lane})
        self.export_button = QPushButton("Export preview…")
        self.export_button.setToolTip("Write the defocus at full resolution: RGBA float32 EXR, the part's windows")
        bottom = QHBoxLayout()
        bottom.setContentsMargins(0, 0, 0, 0)
        bottom.addWidget(self.progress)
        bottom.addStretch(1)
        bottom.addWidget(self.export_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(top)
        layout.addWidget(self.camera_label)
        layout.addWidget(self.simple_check)
        for widget in (self.focus_slider, self.fstop_slider, self.focal_slider, self.sensor_slider, self.units_row,
                       self.blur_slider, self.radius_slider):
            layout.addWidget(widget)
        layout.addWidget(self.status_label)
        layout.addLayout(bottom)
        layout.addStretch(1)

        # view -> model
        self.enable_check.toggled.connect(self._on_enable)
        self.focus_button.toggled.connect(model.set_focus_tool)
        self.reset_button.clicked.connect(model.reset_defocus)
        self.simple_check.toggled.connect(lambda on: self._edit(simple=bool(on)))
        self.focus_slider.value_changed.connect(lambda v: self._edit(focus_distance=v))
        self.fstop_slider.value_changed.connect(lambda v: self._edit(f_stop=v))
        self.focal_slider.value_changed.connect(lambda v: self._edit(focal_length_mm=v))
        self.sensor_slider.value_changed.connect(lambda v: self._edit(sensor_width_mm=v))
        self.blur_slider.value_changed.connect(lambda v: self._edit(blur_per_unit=v))
        self.radius_slider.value_changed.connect(lambda v: self._edit(max_radius=v))
        self.units_combo.activated.connect(self._on_units_preset)
        self.units_spin.valueChanged.connect(lambda v: self._edit(units_to_m=float(v)))
        self.export_button.clicked.connect(self.export_dialog)
        # model -> view
        model.effect_changed.connect(self._on_effect)
        model.defocus_changed.connect(self._on_settings)
        model.camera_guess_changed.connect(lambda guess: self.camera_label.setText(camera_note(guess)))
        model.scene_changed.connect(self._on_scene)
        model.focus_tool_changed.connect(self._on_focus_tool)
        model.status_changed.connect(self.status_label.setText)
        self._on_effect(model.effect)
        self._on_settings(model.defocus)
        self._on_scene(model.scene)
        self._on_focus_tool(model.focus_tool)
        self.camera_label.setText(camera_note(model.camera_guess))
        self.status_label.setText(model.status)

    # ------------------------------------------------------------------ view -> model
    def _on_enable(self, on: bool) -> None:
        if on:
            self.model.set_effect("defocus")
        elif self.model.effect == "defocus":
            self.model.set_effect("off")

    def _edit(self, **changes) -> None:
        self.model.update_defocus(**changes)
        self.model.set_effect("defocus")

    def _on_units_preset(self, index: int) -> None:
        value = self.units_combo.itemData(index)
        if value is not None:
            self._edit(units_to_m=float(value))

    def export_dialog(self) -> None:
        path = ask_preview_export_path(self, self.model.document.document, "defocus", self.last_export_dir)
        if path:
            self.last_export_dir = os.path.dirname(path)
            self.model.export(path, "defocus")

    # ------------------------------------------------------------------ model -> view
    def _on_effect(self, effect: str) -> None:
        with QSignalBlocker(self.enable_check):
            self.enable_check.setChecked(effect == "defocus")

    def _on_focus_tool(self, on: bool) -> None:
        with QSignalBlocker(self.focus_button):
            self.focus_button.setChecked(on)

    def _on_scene(self, probe: SceneProbe | None) -> None:
        if probe is not None:
            lo, hi = probe.z_min / 2.0, probe.z_max * 2.0
            if hi > lo > 0:
                self.focus_slider.set_range(lo, hi)

    def _on_settings(self, s: DefocusSettings) -> None:
        with QSignalBlocker(self.simple_check):
            self.simple_check.setChecked(s.simple)
        self.focus_slider.set_value(s.focus_distance)
        self.fstop_slider.set_value(s.f_stop)
        self.focal_slider.set_value(s.focal_length_mm)
        self.sensor_slider.set_value(s.sensor_width_mm)
        self.blur_slider.set_value(s.blur_per_unit)
        self.radius_slider.set_value(s.max_radius)
        with QSignalBlocker(self.units_spin), QSignalBlocker(self.units_combo):
            self.units_spin.setValue(s.units_to_m)
            index = next((i for i, (_l, v) in enumerate(UNITS) if abs(v - s.units_to_m) <= 1e-12), len(UNITS))
            self.units_combo.setCurrentIndex(index)
        for widget in (self.fstop_slider, self.focal_slider, self.sensor_slider, self.units_row):
            widget.setEnabled(not s.simple)
        self.blur_slider.setEnabled(s.simple)
