"""A labelled number control: a slider for quick moves and a spin box for exact values.

The slider covers ``[minimum, maximum]`` linearly or logarithmically (f-stops, focal lengths,
distances); the spin box may accept a wider range (``spin_minimum``/``spin_maximum``), the
slider then rests at its end. ``value_changed`` is emitted for the user's edits only (every
step of a slider drag, an Enter or focus change in the spin box); :meth:`set_value` changes
what is shown without emitting, so a model can update the control without a loop.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import QDoubleSpinBox, QHBoxLayout, QLabel, QSlider, QWidget

STEPS = 1000
LABEL_WIDTH = 80


class ParamSlider(QWidget):
    """``label [slider] [spin]`` editing one float."""

    value_changed = Signal(float)

    def __init__(self, label: str, minimum: float, maximum: float, value: float, *, log: bool = False,
                 decimals: int = 2, suffix: str = "", spin_minimum: float | None = None,
                 spin_maximum: float | None = None, tip: str = "", name: str = "", parent=None):
        super().__init__(parent)
        if log and not 0 < minimum < maximum:
            raise ValueError("a logarithmic slider needs 0 < minimum < maximum")
        if name:
            self.setObjectName(name)
        self.minimum, self.maximum, self.log = float(minimum), float(maximum), bool(log)
        self.label = QLabel(label)
        self.label.setMinimumWidth(LABEL_WIDTH)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, STEPS)
        self.slider.setMinimumWidth(60)
        self.spin = QDoubleSpinBox()
        self.spin.setDecimals(decimals)
        self.spin.setRange(self.minimum if spin_minimum is None else spin_minimum,
                           self.maximum if spin_maximum is None else spin_maximum)
        self.spin.setSingleStep(self._spin_step())
        self.spin.setKeyboardTracking(False)  # typing emits on Enter / focus out, not per key
        self.spin.setMinimumWidth(78)
        self.spin.setMaximumWidth(96)
        if suffix:
            self.spin.setSuffix(suffix)
        if tip:
            for widget in (self.label, self.slider, self.spin):
                widget.setToolTip(tip)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.spin)
        self._value = float(value)
        self.set_value(value)
        self.slider.valueChanged.connect(self._on_slider)
        self.spin.valueChanged.connect(self._on_spin)

    def _spin_step(self) -> float:
        span = self.maximum - self.minimum
        return 10 ** math.floor(math.log10(span / 100.0)) if span > 0 else 0.1

    # ------------------------------------------------------------------ mapping
    def position_of(self, value: float) -> int:
        """The slider position showing ``value`` (clamped to the slider's range)."""
        v = min(max(float(value), self.minimum), self.maximum)
        if self.log:
            t = math.log(v / self.minimum) / math.log(self.maximum / self.minimum)
        else:
            t = (v - self.minimum) / (self.maximum - self.minimum) if self.maximum > self.minimum else 0.0
        return int(round(t * STEPS))

    def value_at(self, position: int) -> float:
        """The value at a slider position."""
        t = min(max(position, 0), STEPS) / STEPS
        if self.log:
            return self.minimum * (self.maximum / self.minimum) ** t
        return self.minimum + t * (self.maximum - self.minimum)

    # ------------------------------------------------------------------ value
    def value(self) -> float:
        return self._value

    def set_value(self, value: float) -> None:
        """Show ``value`` without emitting ``value_changed``."""
        self._value = float(value)
        with QSignalBlocker(self.slider), QSignalBlocker(self.spin):
            self.slider.setValue(self.position_of(value))
            self.spin.setValue(float(value))

    def set_range(self, minimum: float, maximum: float) -> None:
        """A new slider range (the value is kept; the spin box range widens to hold it)."""
        if self.log and not 0 < minimum < maximum:
            return
        self.minimum, self.maximum = float(minimum), float(maximum)
        self.spin.setRange(min(self.spin.minimum(), minimum), max(self.spin.maximum(), maximum))
        self.spin.setSingleStep(self._spin_step())
        self.set_value(self._value)

    def _on_slider(self, position: int) -> None:
        value = self.value_at(position)
        # a value with the spin box's precision, so the two agree
        value = round(value, self.spin.decimals())
        if value == self._value:
            return
        self._value = value
        with QSignalBlocker(self.spin):
            self.spin.setValue(value)
        self.value_changed.emit(value)

    def _on_spin(self, value: float) -> None:
        value = float(value)
        if value == self._value:
            return
        self._value = value
        with QSignalBlocker(self.slider):
            self.slider.setValue(self.position_of(value))
        self.value_changed.emit(value)
