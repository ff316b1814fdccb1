"""The Recolor panel: grade, remove, thin or vary the selected objects, and compare with a matte grade.

The objects are the Deep IDs selection (pick them in the Deep IDs panel: the deep samples
are regraded, edges keep their true colour) or the current Cryptomatte layer's matte (a
matte-based grade of the flat beauty). With "Compare", the canvas shows a wipe: the deep
recolor left of the divider, the matte-based grade right of it (drag the divider). Every
control writes the :class:`~app.preview_model.PreviewModel` and follows it; moving one turns
the recolor preview on.
"""

from __future__ import annotations

import os

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.preview_model import SOURCE_LABELS, SOURCES, PreviewModel
from core.recolor import Grade
from widgets.param_slider import LABEL_WIDTH, ParamSlider
from widgets.preview_export import ask_preview_export_path
from widgets.task_progress import TaskProgress

NOTE_STYLE = "color: rgb(170, 170, 170);"
COMPARE_HELP = (
    "Split the image: left of the divider the deep recolor (each selected sample regraded, then flattened), "
    "right of it the grade a compositor makes with a coverage matte (Cryptomatte) on the flat beauty. Drag the "
    "divider on the image. The matte is the visible coverage of the same ids, so the two differ only where a "
    "pixel mixes the objects with others: the matte grade tints the neighbours' share of the edge too."
)


def linear_to_srgb8(value: float) -> int:
    v = min(max(float(value), 0.0), 1.0)
    v = 12.92 * v if v <= 0.0031308 else 1.055 * v ** (1.0 / 2.4) - 0.055
    return int(round(v * 255))


def srgb8_to_linear(code: int) -> float:
    c = min(max(int(code), 0), 255) / 255.0
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


class RecolorPanel(QWidget):
    """Preview switch, objects, comparison, grade controls, export."""

    def __init__(self, model: PreviewModel, parent=None):
        super().__init__(parent)
        self.model = model
        self.setObjectName("recolor_panel")
        self.last_export_dir = ""

        self.enable_check = QCheckBox("Preview recolor")
        self.enable_check.setObjectName("recolor_enable")
        self.enable_check.setToolTip("Show the selected objects regraded (moving a control turns it on)")
        self.reset_button = QToolButton()
        self.reset_button.setText("Reset")
        self.reset_button.setToolTip("Back to no grade")
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.enable_check)
        top.addStretch(1)
        top.addWidget(self.reset_button)

        self.source_combo = QComboBox()
        self.source_combo.setObjectName("recolor_source")
        for source in SOURCES:
            self.source_combo.addItem(SOURCE_LABELS[source], source)
        self.source_combo.setToolTip("Which objects: the Deep IDs selection (deep samples) or a Cryptomatte matte "
                                     "(a matte grade of the flat beauty)")
        source_row = QHBoxLayout()
        source_row.setContentsMargins(0, 0, 0, 0)
        source_label = QLabel("Objects")
        source_label.setMinimumWidth(LABEL_WIDTH)
        source_row.addWidget(source_label)
        source_row.addWidget(self.source_combo, 1)
        self.selection_label = QLabel("")
        self.selection_label.setObjectName("recolor_selection")
        self.selection_label.setWordWrap(True)
        self.selection_label.setStyleSheet(NOTE_STYLE)
        self.compare_check = QCheckBox("Compare: deep recolor | matte-based grade")
        self.compare_check.setObjectName("recolor_compare")
        self.compare_check.setToolTip(COMPARE_HELP)

        g = model.grade
        self.gain_sliders = [
            ParamSlider(f"Gain {c}", 0.0, 4.0, g.gain[i], decimals=2, spin_maximum=1000.0, name=f"gain_{c}",
                        tip=f"Multiply the selected objects' {c}")
            for i, c in enumerate("RGB")
        ]
        self.saturation_slider = ParamSlider("Saturation", 0.0, 2.0, g.saturation, decimals=2, spin_minimum=-10.0,
                                             spin_maximum=10.0, name="saturation", tip="0: grey, 1: unchanged")
        self.hue_slider = ParamSlider("Hue", -180.0, 180.0, g.hue, decimals=1, suffix="°", name="hue",
                                      tip="Rotate the hue (about the grey axis)")
        self.tint_button = QToolButton()
        self.tint_button.setObjectName("tint_button")
        self.tint_button.setToolTip("The flat tint colour (mixed in by Mix)")
        self.tint_button.setFixedWidth(32)
        self.mix_slider = ParamSlider("Tint mix", 0.0, 1.0, g.mix, decimals=2, name="mix",
                                      tip="How much of the flat tint replaces the graded colour")
        tint_row = QHBoxLayout()
        tint_row.setContentsMargins(0, 0, 0, 0)
        tint_row.addWidget(self.mix_slider, 1)
        tint_row.addWidget(self.tint_button)
        self.remove_check = QCheckBox("Remove the objects")
        self.remove_check.setObjectName("recolor_remove")
        self.remove_check.setToolTip("Drop their samples: what was behind them shows")
        self.keep_slider = ParamSlider("Keep %", 0.0, 100.0, g.keep_percent, decimals=1, name="keep_percent",
                                       tip="Keep this share of the selected ids (chosen by a hash of each id: the "
                                           "same ones on every frame), remove the others")
        self.vary_slider = ParamSlider("Vary", 0.0, 1.0, g.vary_amount, decimals=2, name="vary_amount",
                                       tip="Give each selected id its own hue and gain (up to ±180° × amount, gain "
                                           "1 ± amount / 2)")
        self.seed_spin = QSpinBox()
        self.seed_spin.setObjectName("vary_seed")
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setPrefix("seed ")
        self.seed_spin.setToolTip("The variation's seed: another seed, another look per id")
        self.seed_spin.setMaximumWidth(110)
        self.seed_spin.setValue(1)
        vary_row = QHBoxLayout()
        vary_row.setContentsMargins(0, 0, 0, 0)
        vary_row.addWidget(self.vary_slider, 1)
        vary_row.addWidget(self.seed_spin)
        self._seed = 1

        self.status_label = QLabel("")
        self.status_label.setObjectName("recolor_status")
        self.status_label.setWordWrap(True)
        self.status_label.setStyleSheet(NOTE_STYLE)
        self.progress = TaskProgress({"rendering": model.lane, "exporting": model.export_lane})
        self.export_button = QPushButton("Export preview…")
        self.export_button.setToolTip("Write the recolor at full resolution (the deep recolor when comparing): "
                                      "RGBA float32 EXR, the part's windows")
        bottom = QHBoxLayout()
        bottom.setContentsMargins(0, 0, 0, 0)
        bottom.addWidget(self.progress)
        bottom.addStretch(1)
        bottom.addWidget(self.export_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(top)
        layout.addLayout(source_row)
        layout.addWidget(self.selection_label)
        layout.addWidget(self.compare_check)
        for widget in (*self.gain_sliders, self.saturation_slider, self.hue_slider):
            layout.addWidget(widget)
        layout.addLayout(tint_row)
        layout.addWidget(self.remove_check)
        layout.addWidget(self.keep_slider)
        layout.addLayout(vary_row)
        layout.addWidget(self.status_label)
        layout.addLayout(bottom)
        layout.addStretch(1)

        # view -> model
        self.enable_check.toggled.connect(self._on_enable)
        self.reset_button.clicked.connect(lambda: model.set_grade(Grade()))
        self.source_combo.activated.connect(lambda i: model.set_source(self.source_combo.itemData(i)))
        self.compare_check.toggled.connect(self._on_compare)
        for i, slider in enumerate(self.gain_sliders):
            slider.value_changed.connect(lambda v, i=i: self._set_gain(i, v))
        self.saturation_slider.value_changed.connect(lambda v: self._edit(saturation=v))
        self.hue_slider.value_changed.connect(lambda v: self._edit(hue=v))
        self.mix_slider.value_changed.connect(lambda v: self._edit(mix=v))
        self.tint_button.clicked.connect(self.choose_tint)
        self.remove_check.toggled.connect(lambda on: self._edit(remove=bool(on)))
        self.keep_slider.value_changed.connect(lambda v: self._edit(keep_percent=v))
        self.vary_slider.value_changed.connect(self._set_vary_amount)
        self.seed_spin.valueChanged.connect(self._set_seed)
        self.export_button.clicked.connect(self.export_dialog)
        # model -> view
        model.effect_changed.connect(self._on_effect)
        model.grade_changed.connect(self._on_grade)
        model.source_changed.connect(self._on_source)
        model.compare_changed.connect(self._on_compare_changed)
        model.selection_changed.connect(self.selection_label.setText)
        model.status_changed.connect(self.status_label.setText)
        model.document.document_changed.connect(lambda _d: self._on_source(model.source))
        self._on_effect(model.effect)
        self._on_grade(model.grade)
        self._on_source(model.source)
        self._on_compare_changed(model.compare)
        self.selection_label.setText(model.selection_text())
        self.status_label.setText(model.status)

    # ------------------------------------------------------------------ view -> model
    def _on_enable(self, on: bool) -> None:
        if on:
            self.model.set_effect("recolor")
        elif self.model.effect == "recolor":
            self.model.set_effect("off")

    def _on_compare(self, on: bool) -> None:
        self.model.set_compare(on)
        self.model.set_effect("recolor")

    def _edit(self, **changes) -> None:
        self.model.update_grade(**changes)
        self.model.set_effect("recolor")

    def _set_gain(self, index: int, value: float) -> None:
        gain = list(self.model.grade.gain)
        gain[index] = value
        self._edit(gain=tuple(gain))

    def _set_vary_amount(self, amount: float) -> None:
        self._edit(vary_amount=amount, vary_seed=self._seed if amount > 0 else None)

    def _set_seed(self, seed: int) -> None:
        self._seed = int(seed)
        self._edit(vary_seed=self._seed if self.model.grade.vary_amount > 0 else None)

    def choose_tint(self) -> None:
        r, g, b = (linear_to_srgb8(v) for v in self.model.grade.tint)
        colour = QColorDialog.getColor(QColor(r, g, b), self, "Tint colour")
        if colour.isValid():
            self.set_tint_colour(colour)

    def set_tint_colour(self, colour: QColor) -> None:
        """Take a screen (sRGB) colour as the tint (linear); a tint with no mix gets a full mix."""
        tint = (srgb8_to_linear(colour.red()), srgb8_to_linear(colour.green()), srgb8_to_linear(colour.blue()))
        mix = self.model.grade.mix if self.model.grade.mix > 0 else 1.0
        self._edit(tint=tint, mix=mix)

    def export_dialog(self) -> None:
        path = ask_preview_export_path(self, self.model.document.document, "recolor", self.last_export_dir)
        if path:
            self.last_export_dir = os.path.dirname(path)
            self.model.export(path, "recolor")

    # ------------------------------------------------------------------ model -> view
    def _on_effect(self, effect: str) -> None:
        with QSignalBlocker(self.enable_check):
            self.enable_check.setChecked(effect == "recolor")

    def _on_source(self, source: str) -> None:
        with QSignalBlocker(self.source_combo):
            self.source_combo.setCurrentIndex(SOURCES.index(source))
        self.compare_check.setEnabled(self.model.can_compare)

    def _on_compare_changed(self, on: bool) -> None:
        with QSignalBlocker(self.compare_check):
            self.compare_check.setChecked(on)

    def _on_grade(self, g: Grade) -> None:
        for slider, value in zip(self.gain_sliders, g.gain, strict=True):
            slider.set_value(value)
        self.saturation_slider.set_value(g.saturation)
        self.hue_slider.set_value(g.hue)
        self.mix_slider.set_value(g.mix)
        self.keep_slider.set_value(g.keep_percent)
        self.vary_slider.set_value(g.vary_amount)
        with QSignalBlocker(self.remove_check):
            self.remove_check.setChecked(g.remove)
        if g.vary_seed is not None:
            self._seed = int(g.vary_seed)
            with QSignalBlocker(self.seed_spin):
                self.seed_spin.setValue(self._seed)
        r, gg, b = (linear_to_srgb8(v) for v in g.tint)
        self.tint_button.setStyleSheet(f"background-color: rgb({r}, {gg}, {b}); border: 1px solid #888;")
        for widget in (*self.gain_sliders, self.saturation_slider, self.hue_slider, self.mix_slider,
                       self.keep_slider, self.vary_slider, self.seed_spin, self.tint_button):
            widget.setEnabled(not g.remove)
        self.tint_button.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
